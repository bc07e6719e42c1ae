"""A model's vLLM engine settings as vLLM reads them: ``extraArgs`` parsed by the pinned vLLM's flag
table, and tensor/pipeline parallelism and context length checked against the model's architecture
(the catalog's, or the stack file's ``architecture`` key for models the catalog does not know).

Every refusal names the key (``extraArgs[2]``, ``tensorParallelSize``, ...) and says what vLLM would
do; the loader adds the stack file and the model.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import Field, model_validator
from pydantic.alias_generators import to_camel

from llmstack_k8s.serving import vllm_flags
from llmstack_k8s.sizing import model_catalog
from llmstack_k8s.sizing.model_catalog import ModelArchitecture

from .base import StackModel as _Model

#: Flags vLLM renders from something other than a ModelConfig key of the same name.
_KEY_OF_DEST = {
    "model": "model",
    "host": None,
    "port": None,
    "api_key": None,
    "revision": "revision",
    # LoRA: rendered from the model's loraAdapters (names, paths, ranks) and maxLoras
    "enable_lora": "loraAdapters",
    "lora_modules": "loraAdapters",
    "max_lora_rank": "loraAdapters",
}
_TRUE = ("1", "true", "yes")


class ArchitectureConfig(_Model):
    """The model's shape from its config.json, for models the built-in catalog does not know."""

    attention_heads: int = Field(ge=1, description="num_attention_heads.")
    kv_heads: int | None = Field(None, ge=1, description="num_key_value_heads (default: attentionHeads).")
    layers: int | None = Field(None, ge=1, description="num_hidden_layers.")
    max_position_embeddings: int | None = Field(
        None, ge=1, description="max_position_embeddings: the longest maxModelLen vLLM accepts."
    )
    experts: int | None = Field(None, ge=0, description="Routed experts per MoE layer (0: dense).")

    @model_validator(mode="after")
    def _kv_divides(self):
        kv = self.kv_heads or self.attention_heads
        if self.attention_heads % kv:
            raise ValueError(
                f"kvHeads {kv} does not divide attentionHeads {self.attention_heads}; check the model's config.json"
            )
        return self

    def architecture(self) -> ModelArchitecture:
        return ModelArchitecture(
            attention_heads=self.attention_heads,
            kv_heads=self.kv_heads or self.attention_heads,
            layers=self.layers,
            max_position_embeddings=self.max_position_embeddings,
            experts=self.experts,
            source="the stack file's architecture key",
        )


class _EngineModel(Protocol):
    """What the engine checks read of a model (ModelConfig, frozen: read-only members)."""

    @property
    def model(self) -> str: ...

    @property
    def tensor_parallel_size(self) -> int: ...

    @property
    def pipeline_parallel_size(self) -> int: ...

    @property
    def max_model_len(self) -> int | None: ...

    @property
    def quantization(self) -> object: ...

    @property
    def dtype(self) -> object: ...

    @property
    def extra_args(self) -> list[str]: ...

    @property
    def extra_env(self) -> dict[str, str]: ...

    @property
    def architecture(self) -> ArchitectureConfig | None: ...

    @property
    def weights_gib(self) -> float | None: ...


def stack_key(dest: str) -> str | None:
    """The ModelConfig key that renders a managed flag (None: the stack fixes it)."""
    return _KEY_OF_DEST[dest] if dest in _KEY_OF_DEST else to_camel(dest)


def architecture_of(m: _EngineModel) -> ModelArchitecture | None:
    """The stack file's architecture, else the catalog's, else None."""
    if m.architecture is not None:
        return m.architecture.architecture()
    return model_catalog.known(m.model)


def _conflicts(m: _EngineModel) -> list[str]:
    known = model_catalog.known(m.model)
    if m.architecture is None or known is None:
        return []
    stated = m.architecture
    pairs = [
        ("attentionHeads", stated.attention_heads, known.attention_heads),
        ("kvHeads", stated.kv_heads, known.kv_heads),
        ("layers", stated.layers, known.layers),
        ("maxPositionEmbeddings", stated.max_position_embeddings, known.max_position_embeddings),
        ("experts", stated.experts, known.experts),
    ]
    return [
        f"architecture.{key}: {mine} contradicts {m.model}'s config.json ({theirs}, from {known.source}); "
        "remove architecture (the catalog knows this model)"
        for key, mine, theirs in pairs
        if mine is not None and mine != theirs
    ]


def _extra_args(m: _EngineModel) -> tuple[vllm_flags.ParsedArgs, list[str]]:
    parsed, problems = vllm_flags.extra_args_problems(list(m.extra_args))
    out = []
    for p in problems:
        where = f"extraArgs[{p.index}] {m.extra_args[p.index]!r}"
        if p.kind == "managed":
            assert p.dest is not None  # a "managed" problem always names its flag's dest
            flag = vllm_flags.load_table().flag(p.dest).name
            key = stack_key(p.dest)
            given = next(a.given for a in parsed.args if a.index == p.index)
            spelled = given if given == flag else f"{given} (that is {flag})"
            if key:
                out.append(
                    f"extraArgs sets {spelled}, which the stack renders from its own key {key} ({where}); set {key} "
                    "instead"
                )
            else:
                why = vllm_flags.SET_OUTSIDE_ARGS.get(p.dest, "the Service, probes and NetworkPolicy depend on it")
                out.append(f"extraArgs sets {spelled}, which the stack sets itself ({where}): {why}")
        else:
            out.append(f"{where}: {p.message}")
    return parsed, out


def engine_problems(m: _EngineModel) -> list[str]:
    """Every engine-arg mistake of one model, each naming its key; empty when vLLM would start."""
    problems = _conflicts(m)
    parsed, arg_problems = _extra_args(m)
    problems += arg_problems
    table = vllm_flags.load_table()
    quant = getattr(m.quantization, "value", m.quantization)
    given = parsed.by_dest()
    if quant in table.deprecated_quantization_methods and "allow_deprecated_quantization" not in given:
        problems.append(
            f"quantization: {quant} is deprecated in vLLM {table.vllm_version}, which refuses it unless "
            "extraArgs has --allow-deprecated-quantization"
        )
    arch = architecture_of(m)
    if arch is None or arg_problems:
        return problems

    def value(dest: str, default):
        a = given.get(dest)
        return default if a is None else a

    dcp_arg = value("decode_context_parallel_size", None)
    ep_arg = value("enable_expert_parallel", None)
    overrides = value("hf_overrides", None)
    long_ok = str(m.extra_env.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "")).lower() in _TRUE or (
        overrides is not None and any(w in " ".join(overrides.values) for w in ("rope", "max_position_embeddings"))
    )
    keys = {
        "tensor_parallel_size": "tensorParallelSize",
        "pipeline_parallel_size": "pipelineParallelSize",
        "max_model_len": "maxModelLen",
        "decode_context_parallel_size": f"extraArgs[{dcp_arg.index}]" if dcp_arg else "extraArgs",
        "enable_expert_parallel": f"extraArgs[{ep_arg.index}]" if ep_arg else "extraArgs",
    }
    found = model_catalog.architecture_problems(
        arch,
        tensor_parallel_size=m.tensor_parallel_size,
        pipeline_parallel_size=m.pipeline_parallel_size,
        max_model_len=m.max_model_len,
        decode_context_parallel_size=int(dcp_arg.values[0]) if dcp_arg else 1,
        expert_parallel=bool(ep_arg) and not ep_arg.negated,
        long_context_allowed=long_ok,
    )
    whose = f"{m.model}, per {arch.source}" if arch.source else m.model
    for dest, message in found:
        key = keys[dest]
        label = {
            "decode_context_parallel_size": "--decode-context-parallel-size ",
            "enable_expert_parallel": "--enable-expert-parallel: ",
        }.get(dest, "")
        problems.append(f"{key}: {label}{message} ({whose})")
    return problems


def check_engine(m: _EngineModel) -> None:
    """Raise one ValueError listing every engine-arg mistake of the model (none: return)."""
    problems = engine_problems(m)
    if problems:
        raise ValueError(
            problems[0] if len(problems) == 1 else "\n    ".join([f"{len(problems)} problems:", *problems])
        )


def weights_estimate(m: _EngineModel) -> tuple[float, str, str] | None:
    """(GiB of weights in GPU memory, how that is known, the key to correct) from weightsGiB, the one key
    that sizes them, else the catalog's architecture for a model it knows; None when nothing tells the size."""
    if m.weights_gib is not None:
        return m.weights_gib, f"weightsGiB {m.weights_gib:g}", "weightsGiB"
    gib = model_catalog.estimated_weights_gib(m.model, m.dtype, m.quantization)
    if gib is not None:
        arch = model_catalog.known(m.model)
        assert arch is not None  # the estimate came from its architecture
        return (
            gib,
            f"{m.model} ({arch.parameters_billions:.2f}B parameters per its config.json) ~ {gib:.1f} GiB",
            "weightsGiB",
        )
    return None


def unknown_size_message(model: str) -> str:
    """Why the GPU fit check cannot run for a model of unknown size (for the pool's fit check)."""
    return (
        f"weightsGiB: the size of {model} is not known (no weightsGiB, not in the catalog), "
        "so the GPU fit check cannot run and an oversized model would only fail at start-up with CUDA out of "
        "memory; set weightsGiB (the checkpoint's size in GiB: its safetensors files on the Hub)"
    )
