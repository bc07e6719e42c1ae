"""Engine-arg mistakes in a stack file, as vLLM would meet them: extraArgs parsed with the pinned
vLLM's flag table, and parallelism / context length against the model's architecture. Each ends
in one message naming the stack file and the key, and registers nothing."""

import copy

import pytest

from conftest import assert_refused, render_with

BASE = {
    "name": "llama-8b",
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
    "weightsGiB": 15,
    "cache": {"size": "40Gi"},
}
WHERE = "llmstack:models[0] (name: llama-8b)"


def model(**kw) -> dict:
    m = copy.deepcopy(BASE)
    for k, v in kw.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return {"models": [m]}


CASES = {
    # --- managed flags, every spelling vLLM accepts -------------------------------------------
    "managed flag with underscores and =": (
        model(extraArgs=["--tensor_parallel_size=2"]),
        "extraArgs sets --tensor_parallel_size (that is --tensor-parallel-size), which the stack renders from its own "
        "key tensorParallelSize (extraArgs[0]",
    ),
    "managed flag by its short alias": (
        model(extraArgs=["--enforce-eager", "-tp", "2"]),
        "extraArgs sets -tp (that is --tensor-parallel-size), which the stack renders from its own key "
        "tensorParallelSize (extraArgs[1] '-tp')",
    ),
    "managed flag as an abbreviation argparse expands": (
        model(extraArgs=["--max-model", "4096"]),
        "extraArgs sets --max-model (that is --max-model-len), which the stack renders from its own key maxModelLen",
    ),
    "managed switch in its --no- form": (
        model(extraArgs=["--no-enable-prefix-caching"]),
        "which the stack renders from its own key enablePrefixCaching (extraArgs[0] '--no-enable-prefix-caching'); "
        "set enablePrefixCaching instead",
    ),
    "managed flag by an alias the old list missed": (
        model(extraArgs=["--device-memory-utilization", "0.5"]),
        "--device-memory-utilization (that is --gpu-memory-utilization), which the stack renders from its own key "
        "gpuMemoryUtilization",
    ),
    "API key in plain args": (
        model(extraArgs=["--api-key", "sk-123"]),
        "extraArgs sets --api-key, which the stack sets itself (extraArgs[0] '--api-key'): the API key comes from a "
        "Secret",
    ),
    "port moved away from the probes": (
        model(extraArgs=["--port=9000"]),
        "extraArgs sets --port, which the stack sets itself (extraArgs[0] '--port=9000')",
    ),
    # --- the way vLLM parses a list ------------------------------------------------------------
    "flag and value in one list item": (
        model(extraArgs=["--max-num-batched-tokens 8192"]),
        "extraArgs[0] '--max-num-batched-tokens 8192': '--max-num-batched-tokens 8192' is one list item holding a "
        "flag and its value; vLLM reads it as a single word",
    ),
    "flag vLLM 0.32 dropped": (
        model(extraArgs=["--swap-space", "4"]),
        "extraArgs[0] '--swap-space': '--swap-space' is not a flag of vLLM 0.32.0",
    ),
    "misspelt flag gets a did-you-mean": (
        model(extraArgs=["--enable-chunk-prefill"]),
        "extraArgs[0] '--enable-chunk-prefill': '--enable-chunk-prefill' is not a flag of vLLM 0.32.0 (did you mean "
        "--enable-chunked-prefill",
    ),
    "value of the wrong type": (
        model(extraArgs=["--max-num-batched-tokens", "lots"]),
        "extraArgs[0] '--max-num-batched-tokens': --max-num-batched-tokens: 'lots' is not an integer",
    ),
    "value outside the choices": (
        model(extraArgs=["--kv-cache-dtype", "fp9"]),
        "extraArgs[0] '--kv-cache-dtype': --kv-cache-dtype: 'fp9' is not one of auto, bfloat16, float16, fp8",
    ),
    "flag missing its value": (
        model(extraArgs=["--enable-chunked-prefill", "--max-num-batched-tokens"]),
        "extraArgs[1] '--max-num-batched-tokens': '--max-num-batched-tokens' expects a value but none follows",
    ),
    "value given to a switch": (
        model(extraArgs=["--enforce-eager=true"]),
        "--enforce-eager is a switch and takes no value; write --enforce-eager or --no-enforce-eager",
    ),
    "stray value vLLM would serve as the model": (
        model(extraArgs=["--enforce-eager", "true"]),
        "extraArgs[1] 'true': 'true' follows no flag that takes a value; vLLM would take it as the model to serve",
    ),
    "ambiguous short prefix": (
        model(extraArgs=["-p", "2"]),
        "extraArgs[0] '-p': '-p' is ambiguous: vLLM cannot tell which flag it means (-pcp, -pp)",
    ),
    "flag given twice": (
        model(extraArgs=["--max-num-batched-tokens", "4096", "--max_num_batched_tokens=8192"]),
        "extraArgs[2] '--max_num_batched_tokens=8192': --max_num_batched_tokens sets --max-num-batched-tokens again",
    ),
    # --- flags that change the GPUs a replica needs, or stop it serving ----------------------------
    "data parallel inside one replica": (
        model(extraArgs=["-dp", "2"]),
        "extraArgs[0] '-dp': -dp (that is --data-parallel-size) runs several engine copies in one replica",
    ),
    "prefill context parallel multiplies the GPUs": (
        model(extraArgs=["--prefill-context-parallel-size", "2"]),
        "--prefill-context-parallel-size multiplies the GPUs a replica needs",
    ),
    "multi-node replica": (
        model(extraArgs=["--nnodes", "2"]),
        "--nnodes spreads one replica over several nodes",
    ),
    "headless server": (
        model(extraArgs=["--headless"]),
        "extraArgs[0] '--headless': --headless starts no API server",
    ),
    # --- the model's architecture ------------------------------------------------------------------
    "tensor parallel size that does not divide the heads": (
        model(tensorParallelSize=3),
        "tensorParallelSize: 3 does not divide the model's 32 attention heads (vLLM refuses it at start-up); use one "
        "of 1, 2, 4, 8, 16",
    ),
    "tensor parallel size that splits KV heads unevenly": (
        model(model="Qwen/Qwen2.5-14B-Instruct", tensorParallelSize=5, weightsGiB=28),
        "tensorParallelSize: 5 cannot split the model's 8 KV heads evenly",
    ),
    "context longer than the model's": (
        model(model="Qwen/Qwen2.5-7B-Instruct", maxModelLen=65536),
        "maxModelLen: 65536 exceeds the model's maximum context of 32768 tokens",
    ),
    "more pipeline stages than layers (stated architecture)": (
        model(
            model="acme/tiny-chat",
            architecture={"attentionHeads": 8, "kvHeads": 2, "layers": 4},
            pipelineParallelSize=8,
        ),
        "pipelineParallelSize: 8 pipeline stages for a model of 4 layers",
    ),
    "stated architecture contradicting the catalog": (
        model(architecture={"attentionHeads": 40}),
        "architecture.attentionHeads: 40 contradicts meta-llama/Llama-3.1-8B-Instruct's config.json (32",
    ),
    "stated architecture whose KV heads do not divide the heads": (
        model(model="acme/tiny-chat", architecture={"attentionHeads": 12, "kvHeads": 5}),
        "architecture: kvHeads 5 does not divide attentionHeads 12",
    ),
    "expert parallel on a dense model": (
        model(extraArgs=["--enable-expert-parallel"]),
        "extraArgs[0]: --enable-expert-parallel: expert parallelism on a dense model",
    ),
    "decode context parallel beyond the KV heads": (
        model(tensorParallelSize=4, extraArgs=["--decode-context-parallel-size", "2"]),
        "extraArgs[0]: --decode-context-parallel-size 2 needs tensor parallel size above the model's 8 KV heads",
    ),
    "deprecated quantization without its opt-in": (
        model(quantization="fbgemm_fp8"),
        "quantization: fbgemm_fp8 is deprecated in vLLM 0.32.0, which refuses it unless extraArgs has "
        "--allow-deprecated-quantization",
    ),
    "quantization vLLM 0.32 does not have": (
        model(quantization="bitsandbytes"),
        f"{WHERE}.quantization: Input should be 'auto_awq', 'auto_gptq', 'awq'",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_mistake_is_one_clear_message_and_registers_nothing(case):
    config, expected = CASES[case]
    message = assert_refused(config, expected)
    assert "Pulumi.test.yaml" in message and "models[0] (name: llama-8b)" in message


def test_enough_engine_cases():
    assert len(CASES) >= 15


@pytest.mark.parametrize(
    "args",
    [
        ["--enable-chunked-prefill", "--max-num-batched-tokens", "8192"],
        ["--max_num_batched_tokens=8k", "-O3", "--kv-cache-dtype", "fp8"],
        ["--compilation-config.mode", "3"],
        [
            "--hf-overrides",
            '{"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}',
        ],
    ],
)
def test_valid_extra_args_render(args):
    # The refusals above are precise, not a blanket: what vLLM accepts (and the stack does not own) renders.
    r = render_with(model(model="Qwen/Qwen2.5-7B-Instruct", weightsGiB=15, extraArgs=args))
    deployment = next(
        o for o in r.objects if o["kind"] == "Deployment" and o["metadata"]["name"].startswith("llama-8b")
    )
    rendered = [str(a) for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]]
    assert rendered[-len(args) :] == args


def test_long_context_allowed_by_rope_override_or_env():
    long = {"model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 131072}
    render_with(model(**long, extraArgs=["--hf-overrides", '{"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}']))
    render_with(model(**long, extraEnv={"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}))


# --- the GPU fit check never skipped for want of a size ----------------------------------------
L4_SHARED = {
    "gpu": {"product": "NVIDIA-L4", "memoryGiB": 22, "perNode": 1},
    "sharing": {"strategy": "timeSlicing", "replicas": 4},
}
NO_SIZE_70B = {
    "name": "llama-70b",
    "model": "meta-llama/Llama-3.1-70B-Instruct",
    "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
    "gpuMemoryUtilization": 0.2,
    "cache": {"size": "300Gi"},
}


def test_catalogued_70b_without_a_size_is_refused_with_the_derived_figure():
    # No weightsGiB: the catalog's architecture gives the size (70.55B x 2 bytes).
    message = assert_refused(
        {"gpuPool": L4_SHARED, "models": [NO_SIZE_70B]},
        "models[0] (name: llama-70b).weightsGiB: does not fit: meta-llama/Llama-3.1-70B-Instruct "
        "(70.55B parameters per its config.json) ~ 131.4 GiB / 1 GPU(s) = 131.4 GiB per GPU",
    )
    assert "per timeSlicing share) = 4.4 GiB" in message


def test_uncatalogued_model_without_a_size_on_a_declared_gpu_is_refused():
    unknown = {**NO_SIZE_70B, "model": "acme/house-70b"}
    assert_refused(
        {"gpuPool": L4_SHARED, "models": [unknown]},
        "models[0] (name: llama-70b).weightsGiB: the size of acme/house-70b is not known (no weightsGiB, "
        "not in the catalog), so the GPU fit check cannot run",
    )
    # Stating the size lets the check run (and pass for a model that fits the share).
    render_with({"gpuPool": L4_SHARED, "models": [{**unknown, "weightsGiB": 1, "cache": {"size": "10Gi"}}]})
    # Without a declared GPU there is no memory to check against: nothing to refuse.
    render_with({"models": [{**unknown, "cache": {"size": "10Gi"}}]})


def test_catalogued_size_reaches_the_serving_component(monkeypatch):
    """The composition hands the component the size the stack checked (derived from the catalog
    here), so the component's own fit check refuses the 70B model too."""
    import stacks.config

    monkeypatch.setattr(stacks.config, "check_models_fit", lambda pool, models: None)
    with pytest.raises(Exception) as err:
        render_with({"gpuPool": L4_SHARED, "models": [NO_SIZE_70B]})
    assert "VllmService 'llama-70b': args.weights_gib: does not fit: 131.4 GiB of weights" in str(err.value)
    # A catalogued model that fits renders, its derived size passed on.
    small = {**NO_SIZE_70B, "name": "qwen", "model": "Qwen/Qwen2.5-0.5B-Instruct", "cache": {"size": "10Gi"}}
    r = render_with({"gpuPool": L4_SHARED, "models": [small]})
    assert any(o["kind"] == "Deployment" and o["metadata"]["name"].startswith("qwen") for o in r.objects)
