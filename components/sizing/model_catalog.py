"""Architectures of popular open-weight models, and the checks vLLM applies to them at start-up.

vLLM refuses, minutes into a rollout, a tensor parallel size that does not divide the attention
heads, more pipeline stages than layers, or a context longer than the model's; and a model too
big for its GPUs dies with CUDA out-of-memory. With the model's architecture known at preview
these become errors before anything is deployed. ``known(model_id)`` has the architectures of the
models below; for others a caller (the stack file's ``architecture`` key) can state them.

Every entry is copied from the model's ``config.json`` on the Hugging Face Hub, through the
public copies cited beside it (no network at preview). The parameter count is not in config.json:
``ModelArchitecture.parameters`` derives it from the shapes (tested against the counts the model
cards publish).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_GIB = 2**30

#: Bytes per parameter in GPU memory by ``--dtype`` (auto: vLLM loads float32 checkpoints in
#: 16 bits on GPUs, so 2 bytes either way).
BYTES_PER_PARAMETER_DTYPE = {"auto": 2.0, "bfloat16": 2.0, "float16": 2.0, "half": 2.0, "float": 4.0, "float32": 4.0}

#: Bytes per parameter in GPU memory by ``--quantization`` (every method of the pinned vLLM; a test
#: keeps this equal to the flag table). 4-bit methods ~0.7 (packed weights, scales, and embeddings
#: left in 16 bits); 8-bit methods and those whose width varies by checkpoint ~1.1 (the larger
#: guess: an estimate too small would let a model that does not fit pass the fit check).
_FOUR_BIT = (
    "awq",
    "auto_awq",
    "awq_marlin",
    "gptq",
    "auto_gptq",
    "gptq_marlin",
    "moe_wna16",
    "mxfp4",
    "gpt_oss_mxfp4",
    "modelopt_fp4",
    "nvfp4_per_token",
    "fp_quant",
)
_EIGHT_BIT_OR_VARYING = (
    "fp8",
    "fbgemm_fp8",
    "fp8_per_tensor",
    "fp8_per_block",
    "fp8_per_channel",
    "int8_per_channel_weight_only",
    "experts_int8",
    "modelopt",
    "modelopt_mxfp8",
    "modelopt_mixed",
    "mxfp8",
    "deepseek_v4_fp8",
    "compressed-tensors",
    "quark",
    "inc",
    "torchao",
    "online",
    "humming",
)
BYTES_PER_PARAMETER_QUANTIZED = {**dict.fromkeys(_FOUR_BIT, 0.7), **dict.fromkeys(_EIGHT_BIT_OR_VARYING, 1.1)}

#: RoPE types whose max_position_embeddings is already the scaled length (vLLM's
#: _get_and_verify_max_len applies ``factor`` only for the others).
_ROPE_ALREADY_SCALED = ("default", "su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")


def bytes_per_parameter(dtype: object = "auto", quantization: object = None) -> float:
    q: Any = getattr(quantization, "value", quantization)  # an enum member or its value
    d: Any = getattr(dtype, "value", dtype) or "auto"
    return BYTES_PER_PARAMETER_QUANTIZED[q] if q else BYTES_PER_PARAMETER_DTYPE[d]


@dataclass(frozen=True)
class ModelArchitecture:
    """What vLLM's start-up checks and the GPU fit check need to know about a model."""

    attention_heads: int
    """``num_attention_heads``."""
    kv_heads: int
    """``num_key_value_heads`` (equal to the heads without grouped-query attention)."""
    layers: int | None = None
    """``num_hidden_layers``."""
    max_position_embeddings: int | None = None
    """``max_position_embeddings``: the longest context vLLM accepts (with the RoPE rule below)."""
    rope_type: str = "default"
    rope_factor: float = 1.0
    experts: int | None = 0
    """Routed experts per MoE layer (0: a dense model; None: not known)."""
    hidden_size: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    head_dim: int | None = None
    """``head_dim`` where config.json sets it (else hidden_size / attention_heads)."""
    tied_embeddings: bool = False
    qkv_bias: bool = False
    norms_per_layer: int = 2
    dtype: str = "bfloat16"
    """``torch_dtype`` of the checkpoint."""
    source: str = ""
    """Where the values come from."""

    @property
    def max_model_len(self) -> int | None:
        """The longest ``--max-model-len`` vLLM accepts for this model (its derived max_model_len)."""
        if self.max_position_embeddings is None:
            return None
        factor = 1.0 if self.rope_type in _ROPE_ALREADY_SCALED else self.rope_factor
        return int(self.max_position_embeddings * factor)

    @property
    def parameters(self) -> int | None:
        """Parameter count from the shapes (embeddings, attention, MLP or experts, norms)."""
        h, v, i, layers = self.hidden_size, self.vocab_size, self.intermediate_size, self.layers
        if h is None or v is None or i is None or layers is None:
            return None
        hd = self.head_dim or h // self.attention_heads
        q, kv = self.attention_heads * hd, self.kv_heads * hd
        attention = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if self.qkv_bias else 0)
        mlp = 3 * h * i
        if self.experts:
            mlp = self.experts * mlp + h * self.experts  # experts + router
        per_layer = attention + mlp + self.norms_per_layer * h
        embeddings = v * h * (1 if self.tied_embeddings else 2)
        return embeddings + layers * per_layer + h

    @property
    def parameters_billions(self) -> float | None:
        p = self.parameters
        return None if p is None else p / 1e9

    def weights_gib(self, dtype: object = "auto", quantization: object = None) -> float | None:
        p = self.parameters
        return None if p is None else p * bytes_per_parameter(dtype, quantization) / _GIB


# ------------------------------------------------------------------------------------------------
# The catalog. Sources (pinned commits; each file copies the models' config.json values):
_MLC = "mlc-ai/mlc-llm@79d603f python/mlc_llm/model/model_preset.py"
_TORCHTUNE_QWEN25 = "pytorch/torchtune@bd2a0fc torchtune/models/qwen2_5/_model_builders.py (the *_instruct builders)"
_TORCHTUNE_LLAMA31_405B = "pytorch/torchtune torchtune/models/llama3_1/_model_builders.py: llama3_1_405b"
_TORCHTUNE_LLAMA33 = (
    "pytorch/torchtune@bd2a0fc torchtune/models/llama3_3/_model_builders.py: llama3_3_70b = llama3_1_70b"
)


def _llama(heads, kv, layers, hidden, inter, *, head_dim=None, tied=False, source=_MLC) -> ModelArchitecture:
    # Llama 3.1/3.2 config.json: vocab 128256, max_position_embeddings 131072, rope_type llama3.
    return ModelArchitecture(
        heads, kv, layers, 131072, "llama3", 8.0, 0, hidden, inter, 128256, head_dim, tied, source=source
    )


def _qwen25(heads, kv, layers, hidden, inter, vocab, tied) -> ModelArchitecture:
    # Qwen2.5-*-Instruct config.json: max_position_embeddings 32768, no rope_scaling, q/k/v bias.
    return ModelArchitecture(
        heads, kv, layers, 32768, "default", 1.0, 0, hidden, inter, vocab, None, tied, True, source=_TORCHTUNE_QWEN25
    )


def _gemma2(heads, kv, layers, hidden, inter, head_dim) -> ModelArchitecture:
    # Gemma 2 config.json: vocab 256000, max_position_embeddings 8192, tied embeddings, 4 norms per layer.
    return ModelArchitecture(
        heads,
        kv,
        layers,
        8192,
        "default",
        1.0,
        0,
        hidden,
        inter,
        256000,
        head_dim,
        True,
        norms_per_layer=4,
        source=f"{_MLC} (gemma2_*)",
    )


_CATALOG: dict[str, ModelArchitecture] = {
    # meta-llama (mlc: llama3_1_8b, llama3_1_70b, llama3_2_1b, llama3_2_3b)
    "meta-llama/Llama-3.1-8B-Instruct": _llama(32, 8, 32, 4096, 14336),
    "meta-llama/Llama-3.1-8B": _llama(32, 8, 32, 4096, 14336),
    "meta-llama/Llama-3.1-70B-Instruct": _llama(64, 8, 80, 8192, 28672),
    "meta-llama/Llama-3.1-70B": _llama(64, 8, 80, 8192, 28672),
    # 405B: the largest Llama 3.1; 16-bit weights need two 8-GPU 80 GB nodes (a multi-node model).
    "meta-llama/Llama-3.1-405B-Instruct": _llama(128, 8, 126, 16384, 53248, source=_TORCHTUNE_LLAMA31_405B),
    "meta-llama/Llama-3.3-70B-Instruct": _llama(64, 8, 80, 8192, 28672, source=_TORCHTUNE_LLAMA33),
    "meta-llama/Llama-3.2-1B-Instruct": _llama(32, 8, 16, 2048, 8192, head_dim=64, tied=True),
    "meta-llama/Llama-3.2-3B-Instruct": _llama(24, 8, 28, 3072, 8192, head_dim=128, tied=True),
    # Qwen2.5 instruct: (heads, kv, layers, hidden, intermediate, vocab, tied)
    "Qwen/Qwen2.5-0.5B-Instruct": _qwen25(14, 2, 24, 896, 4864, 151936, True),
    "Qwen/Qwen2.5-1.5B-Instruct": _qwen25(12, 2, 28, 1536, 8960, 151936, True),
    "Qwen/Qwen2.5-3B-Instruct": _qwen25(16, 2, 36, 2048, 11008, 151936, True),
    "Qwen/Qwen2.5-7B-Instruct": _qwen25(28, 4, 28, 3584, 18944, 152064, False),
    "Qwen/Qwen2.5-14B-Instruct": _qwen25(40, 8, 48, 5120, 13824, 152064, False),
    "Qwen/Qwen2.5-32B-Instruct": _qwen25(40, 8, 64, 5120, 27648, 152064, False),
    "Qwen/Qwen2.5-72B-Instruct": _qwen25(64, 8, 80, 8192, 29568, 152064, False),
    # Mistral (mlc: mistral_7b_v03, Mixtral-8x7B-v0.1; the instruct models share the config)
    "mistralai/Mistral-7B-Instruct-v0.3": ModelArchitecture(
        32, 8, 32, 32768, "default", 1.0, 0, 4096, 14336, 32768, None, False, source=f"{_MLC} (mistral_7b_v03)"
    ),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": ModelArchitecture(
        32, 8, 32, 32768, "default", 1.0, 8, 4096, 14336, 32000, None, False, source=f"{_MLC} (Mixtral-8x7B-v0.1)"
    ),
    # Gemma 2 (mlc: gemma2_2b, gemma2_9b, gemma2_27b)
    "google/gemma-2-2b-it": _gemma2(8, 4, 26, 2304, 9216, 256),
    "google/gemma-2-9b-it": _gemma2(16, 8, 42, 3584, 14336, 256),
    "google/gemma-2-27b-it": _gemma2(32, 16, 46, 4608, 36864, 128),
    # DeepSeek-R1 distilled into Qwen2.5-Math-1.5B: its config.json as quoted in public code
    # (hidden 1536, intermediate 8960, 12 heads, 2 KV heads, 28 layers, 131072 positions, untied, q/k/v bias).
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": ModelArchitecture(
        12,
        2,
        28,
        131072,
        "default",
        1.0,
        0,
        1536,
        8960,
        151936,
        None,
        False,
        True,
        source="config.json of deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B (transformers 4.48.3), quoted in public code",
    ),
}
_BY_LOWER = {k.lower(): v for k, v in _CATALOG.items()}


def known(model_id: str) -> ModelArchitecture | None:
    """The architecture of a catalogued model (Hub ids compare case-insensitively), else None."""
    return _BY_LOWER.get(str(model_id).lower())


def catalog() -> dict[str, ModelArchitecture]:
    return dict(_CATALOG)


def estimated_weights_gib(model_id: str, dtype: object = "auto", quantization: object = None) -> float | None:
    """Weights in GPU memory of a catalogued model, loaded with ``dtype``/``quantization``, else None.

    A quantization named for a catalogued full-precision model (e.g. ``fp8`` online quantization)
    shrinks it accordingly; a pre-quantized checkpoint has its own id, which is not catalogued."""
    arch = known(model_id)
    return None if arch is None else arch.weights_gib(dtype, quantization)


def _divisors(n: int, limit: int = 16) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def architecture_problems(
    arch: ModelArchitecture,
    *,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    max_model_len: int | None = None,
    decode_context_parallel_size: int = 1,
    expert_parallel: bool = False,
    long_context_allowed: bool = False,
) -> list[tuple[str, str]]:
    """What vLLM would refuse at start-up for this model, as (engine arg, message) pairs.

    The rules are vLLM 0.32's: ``ModelConfig.verify_with_parallel_config`` (heads divisible by tp;
    decode context parallel against the KV heads), ``QKVParallelLinear`` (KV heads split evenly
    over tp, or replicated evenly when tp exceeds them), ``ParallelConfig`` (tp divisible by dcp),
    ``_get_and_verify_max_len`` (context within the derived maximum unless
    VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 or a RoPE override, ``long_context_allowed``), the expert
    parallel check (MoE models only), and one layer at least per pipeline stage."""
    found = [
        _tensor_parallel_problem(arch, tensor_parallel_size),
        _pipeline_problem(arch, pipeline_parallel_size),
        None if long_context_allowed else _context_problem(arch, max_model_len),
        _decode_context_parallel_problem(arch, tensor_parallel_size, decode_context_parallel_size),
        _expert_parallel_problem(arch, expert_parallel),
    ]
    return [p for p in found if p is not None]


def _tensor_parallel_problem(arch: ModelArchitecture, tp: int) -> tuple[str, str] | None:
    """Attention heads divisible by tp; KV heads split evenly over tp, or replicated evenly above them."""
    heads, kv = arch.attention_heads, arch.kv_heads
    if heads % tp:
        return (
            "tensor_parallel_size",
            (
                f"{tp} does not divide the model's {heads} attention heads (vLLM refuses it at start-up); "
                f"use one of {', '.join(map(str, _divisors(heads)))}"
            ),
        )
    if (tp >= kv and tp % kv) or (tp < kv and kv % tp):
        fits = [d for d in _divisors(heads) if (d >= kv and d % kv == 0) or (d < kv and kv % d == 0)]
        return (
            "tensor_parallel_size",
            (
                f"{tp} cannot split the model's {kv} KV heads evenly (vLLM shards them over tensor parallel ranks, "
                f"or replicates them when there are more ranks than heads); use one of {', '.join(map(str, fits))}"
            ),
        )
    return None


def _pipeline_problem(arch: ModelArchitecture, pipeline_parallel_size: int) -> tuple[str, str] | None:
    """One layer at least per pipeline stage."""
    if arch.layers is not None and pipeline_parallel_size > arch.layers:
        return (
            "pipeline_parallel_size",
            (
                f"{pipeline_parallel_size} pipeline stages for a model of {arch.layers} layers: a stage needs a "
                "layer at least"
            ),
        )
    return None


def _context_problem(arch: ModelArchitecture, max_model_len: int | None) -> tuple[str, str] | None:
    """The context within the model's derived maximum (unless a long context is allowed)."""
    limit = arch.max_model_len
    if max_model_len is not None and limit is not None and max_model_len > limit:
        return (
            "max_model_len",
            (
                f"{max_model_len} exceeds the model's maximum context of {limit} tokens (max_position_embeddings "
                f"{arch.max_position_embeddings}); vLLM refuses it at start-up. Use at most {limit}, or extend the "
                "context on purpose with --hf-overrides (RoPE scaling) in extraArgs"
            ),
        )
    return None


def _decode_context_parallel_problem(arch: ModelArchitecture, tp: int, dcp: int) -> tuple[str, str] | None:
    """Decode context parallel: divides tp, and shares the ranks tp has beyond the KV heads."""
    heads, kv = arch.attention_heads, arch.kv_heads
    if dcp <= 1:
        return None
    if tp % dcp:
        return ("decode_context_parallel_size", f"{dcp} does not divide tensor parallel size {tp} (vLLM refuses it)")
    if tp <= kv:
        return (
            "decode_context_parallel_size",
            (f"{dcp} needs tensor parallel size above the model's {kv} KV heads (it is {tp}); vLLM refuses it"),
        )
    if dcp > tp // kv or (heads // kv) % dcp:
        return (
            "decode_context_parallel_size",
            (
                f"{dcp} must be at most tensor parallel size / KV heads = {tp // kv} and divide the "
                f"{heads // kv} query heads per KV head (vLLM refuses it)"
            ),
        )
    return None


def _expert_parallel_problem(arch: ModelArchitecture, expert_parallel: bool) -> tuple[str, str] | None:
    """Expert parallelism on MoE models only."""
    if expert_parallel and arch.experts == 0:
        return (
            "enable_expert_parallel",
            ("expert parallelism on a dense model (it has no experts); vLLM refuses it at start-up"),
        )
    return None
