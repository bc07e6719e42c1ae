"""The pinned vLLM's flag table, the extra-args parser built on it, and the model catalog."""

from pathlib import Path

import pytest
import yaml

from llmstack_k8s import versions
from llmstack_k8s.cluster import gpu_node_pool as gp
from llmstack_k8s.serving import vllm_flags as vf
from llmstack_k8s.serving.vllm_pod import Dtype, Quantization, VllmEngineArgs, vllm_args
from llmstack_k8s.sizing import model_catalog as mc

ROOT = Path(__file__).resolve().parents[2]
TABLE = vf.load_table()


def parse(*args):
    return vf.parse_extra_args(list(args))


def problems(*args, kind=None):
    _, found = vf.extra_args_problems(list(args))
    return [p for p in found if kind is None or p.kind == kind]


# --- the table ---------------------------------------------------------------------------------
def test_table_is_the_pinned_vllms():
    assert TABLE.vllm_version == versions.VLLM_VERSION
    assert (ROOT / "components" / "serving" / vf.table_path()).exists()
    assert len(TABLE.flags) > 250  # the whole parser, not a hand-picked subset


def test_enums_are_exactly_the_tables_choices():
    assert {d.value for d in Dtype} == set(TABLE.dtype_choices)
    assert {q.value for q in Quantization} == set(TABLE.quantization_methods)
    assert "bitsandbytes" not in TABLE.quantization_methods  # vLLM 0.32 dropped it; so did the enum


def test_every_dtype_and_quantization_has_a_size():
    assert set(mc.BYTES_PER_PARAMETER_DTYPE) == set(TABLE.dtype_choices)
    assert set(mc.BYTES_PER_PARAMETER_QUANTIZED) == set(TABLE.quantization_methods)
    for q in Quantization:  # the fit check's estimate no longer KeyErrors on a method vLLM accepts
        assert 0 < gp.estimate_weights_gib(8, "auto", q) < gp.estimate_weights_gib(8, "bfloat16")


def test_policy_lists_name_flags_this_vllm_has():
    dests = {f.dest for f in TABLE.flags.values()}
    for table in (vf.GPU_COUNT_FLAGS, vf.NOT_SERVING_FLAGS, vf.SET_OUTSIDE_ARGS):
        assert set(table) <= dests, set(table) - dests


# --- the managed set is what vllm_args renders ---------------------------------------------------
def test_managed_set_is_derived_from_the_renderer():
    assert set(vf._SAMPLE_ENGINE) == set(VllmEngineArgs.__required_keys__ | VllmEngineArgs.__optional_keys__) - {
        "extra_args"
    }, "a VllmEngineArgs field is missing from vllm_flags._SAMPLE_ENGINE, so its flag would not count as managed"
    rendered = {a.flag.dest for a in parse(*map(str, vllm_args(dict(vf._SAMPLE_ENGINE), "/m"))).args}
    assert rendered | set(vf.SET_OUTSIDE_ARGS) == vf.managed_dests()
    assert {"tensor_parallel_size", "quantization", "port", "api_key", "enable_prefix_caching"} <= vf.managed_dests()


# --- parsing, spelling by spelling -----------------------------------------------------------------
@pytest.mark.parametrize(
    "args, dest, values",
    [
        (["--max-num-batched-tokens", "8192"], "max_num_batched_tokens", ("8192",)),
        (["--max_num_batched_tokens=8k"], "max_num_batched_tokens", ("8k",)),
        (["-tp", "2"], "tensor_parallel_size", ("2",)),
        (["-tp=2"], "tensor_parallel_size", ("2",)),
        (["--no-enforce-eager"], "enforce_eager", ()),
        (["-O3"], "optimization_level", ("3",)),
        (["-O", "2"], "optimization_level", ("2",)),
        (["--compilation-config.mode", "3"], "compilation_config", ("3",)),
        (["-cc.mode=3"], "compilation_config", ("3",)),
        (["--api-key", "a", "b"], "api_key", ("a", "b")),
        (["--seed", "-1"], "seed", ("-1",)),
        (["--max-model-len", "auto"], "max_model_len", ("auto",)),
        (["--distributed-executor-backend", "None"], "distributed_executor_backend", ("None",)),
    ],
)
def test_every_spelling_reaches_its_flag(args, dest, values):
    parsed = parse(*args)
    assert not parsed.problems, parsed.problems
    assert [(a.flag.dest, a.values) for a in parsed.args] == [(dest, values)]


@pytest.mark.parametrize(
    "args, index, text",
    [
        (["--max-num-seqs 8"], 0, "one list item holding a flag and its value"),
        (["--swap-space", "4"], 0, "not a flag of vLLM"),
        (["--enable-chunk-prefill"], 0, "did you mean --enable-chunked-prefill"),
        (["--seed", "x"], 0, "'x' is not an integer"),
        (["--gpu-memory-utilization", "lots"], 0, "'lots' is not a number"),
        (["--max-model-len", "1.5K"], 0, "no decimals with binary suffixes"),
        (["--dtype", "fp16"], 0, "'fp16' is not one of auto, bfloat16, float, float16, float32, half"),
        (["--hf-overrides", "{not: json}"], 0, "is not JSON"),
        (["--compilation-config", "[1]"], 0, "is not a JSON object"),
        (["--enforce-eager=1"], 0, "is a switch and takes no value"),
        (["--seed"], 0, "expects a value but none follows"),
        (["--enforce-eager", "yes"], 1, "follows no flag that takes a value"),
        (["-p", "2"], 0, "is ambiguous"),
        (["--", "x"], 0, "ends vLLM's options"),
        (["--seed", "1", "--seed=2"], 2, "sets --seed again"),
        (["--enforce-eager.x", "1"], 0, "takes no JSON keys"),
    ],
)
def test_each_mistake_is_found_at_its_position(args, index, text):
    found = parse(*args).problems
    assert found and found[0].index == index and text in found[0].message, found


def test_unknown_flag_is_one_problem_not_one_per_word():
    assert len(parse("--swap-space", "4", "--enforce-eager").problems) == 1


@pytest.mark.parametrize(
    "args, kind, dest",
    [
        (["--tensor_parallel_size=2"], "managed", "tensor_parallel_size"),
        (["--tensor-parallel", "2"], "managed", "tensor_parallel_size"),  # argparse expands the prefix
        (["-q", "awq"], "managed", "quantization"),
        (["--device-memory-utilization", "0.5"], "managed", "gpu_memory_utilization"),
        (["--revision", "main"], "managed", "revision"),
        (["-dp", "2"], "gpu_count", "data_parallel_size"),
        (["-pcp", "2"], "gpu_count", "prefill_context_parallel_size"),
        (["-n", "2"], "gpu_count", "nnodes"),
        (["--help"], "not_serving", "help"),
        (["--config", "x.yaml"], "not_serving", "config"),
        (["--enforce"], "abbreviation", "enforce_eager"),
    ],
)
def test_what_the_stack_cannot_allow(args, kind, dest):
    found = problems(*args)
    assert [(p.kind, p.dest) for p in found] == [(kind, dest)], found


def test_expert_parallel_alone_keeps_the_gpu_count():
    # vLLM's world size is tp x pp x pcp; expert parallelism reuses those ranks (checked per model instead).
    assert problems("--enable-expert-parallel") == []


# --- the catalog ---------------------------------------------------------------------------------
#: Parameter counts the model cards publish (Hugging Face "Model size" / "Number of Parameters").
PUBLISHED_BILLIONS = {
    "meta-llama/Llama-3.1-8B-Instruct": 8.03,
    "meta-llama/Llama-3.1-70B-Instruct": 70.6,
    "meta-llama/Llama-3.2-1B-Instruct": 1.24,
    "meta-llama/Llama-3.2-3B-Instruct": 3.21,
    "Qwen/Qwen2.5-0.5B-Instruct": 0.49,
    "Qwen/Qwen2.5-1.5B-Instruct": 1.54,
    "Qwen/Qwen2.5-3B-Instruct": 3.09,
    "Qwen/Qwen2.5-7B-Instruct": 7.61,
    "Qwen/Qwen2.5-14B-Instruct": 14.7,
    "Qwen/Qwen2.5-72B-Instruct": 72.7,
    "mistralai/Mistral-7B-Instruct-v0.3": 7.25,
    "mistralai/Mixtral-8x7B-Instruct-v0.1": 46.7,
    "google/gemma-2-2b-it": 2.61,
    "google/gemma-2-9b-it": 9.24,
    "google/gemma-2-27b-it": 27.2,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": 1.78,
}


@pytest.mark.parametrize("model_id", sorted(PUBLISHED_BILLIONS))
def test_parameters_derived_from_the_shapes_match_the_published_counts(model_id):
    assert mc.known(model_id).parameters_billions == pytest.approx(PUBLISHED_BILLIONS[model_id], rel=0.01)


def test_every_catalogued_model_cites_its_source_and_is_consistent():
    for model_id, a in mc.catalog().items():
        assert a.source, model_id
        assert a.attention_heads % a.kv_heads == 0, model_id
        assert a.max_model_len and a.layers and a.parameters, model_id


def test_models_of_the_example_stacks_are_catalogued():
    for stack in ("dev", "prod"):
        doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
        for m in doc["config"]["llmstack:models"]:
            arch = mc.known(m["model"])
            assert arch is not None, f"{stack}: {m['model']} is not in the catalog"
            assert (
                mc.architecture_problems(
                    arch, tensor_parallel_size=m.get("tensorParallelSize", 1), max_model_len=m.get("maxModelLen")
                )
                == []
            )
            # the stack file's weightsGiB and the catalog agree within 10%
            assert mc.estimated_weights_gib(m["model"]) == pytest.approx(m["weightsGiB"], rel=0.1)


def test_lookup_is_case_insensitive_and_exact():
    assert mc.known("qwen/qwen2.5-7b-instruct") is mc.known("Qwen/Qwen2.5-7B-Instruct")
    assert mc.known("Qwen/Qwen2.5-7B-Instruct-AWQ") is None  # a different checkpoint: its own size
    assert mc.estimated_weights_gib("acme/unknown") is None


def test_weights_follow_dtype_and_quantization():
    full = mc.estimated_weights_gib("meta-llama/Llama-3.1-70B-Instruct")
    assert full == pytest.approx(70.55e9 * 2 / 2**30, rel=0.001)
    assert mc.estimated_weights_gib("meta-llama/Llama-3.1-70B-Instruct", "float32") == pytest.approx(2 * full)
    assert mc.estimated_weights_gib("meta-llama/Llama-3.1-70B-Instruct", "auto", "fp8") < 0.6 * full


LLAMA_8B = mc.known("meta-llama/Llama-3.1-8B-Instruct")  # 32 heads, 8 KV heads, 32 layers, 131072 positions


@pytest.mark.parametrize(
    "tp, ok", [(1, True), (2, True), (4, True), (8, True), (16, True), (3, False), (6, False), (12, False)]
)
def test_tensor_parallel_must_divide_heads_and_split_kv_heads(tp, ok):
    assert (mc.architecture_problems(LLAMA_8B, tensor_parallel_size=tp) == []) is ok


def test_kv_heads_rule_is_vllms():
    # 40 heads, 8 KV heads (Qwen2.5-14B): tp 5 and 10 divide the heads, but vLLM's QKVParallelLinear
    # can neither split 8 KV heads over 5 ranks nor replicate them evenly over 10.
    qwen14 = mc.known("Qwen/Qwen2.5-14B-Instruct")
    for tp in (5, 10):
        [(field, msg)] = mc.architecture_problems(qwen14, tensor_parallel_size=tp)
        assert field == "tensor_parallel_size" and "KV heads" in msg
    assert mc.architecture_problems(qwen14, tensor_parallel_size=8) == []


def test_pipeline_context_dcp_and_expert_rules():
    arch = mc.ModelArchitecture(attention_heads=8, kv_heads=2, layers=4, max_position_embeddings=4096)
    fields = lambda **kw: [f for f, _ in mc.architecture_problems(arch, **kw)]  # noqa: E731
    assert fields(pipeline_parallel_size=4) == [] and fields(pipeline_parallel_size=5) == ["pipeline_parallel_size"]
    assert fields(max_model_len=4096) == [] and fields(max_model_len=4097) == ["max_model_len"]
    assert fields(max_model_len=8192, long_context_allowed=True) == []
    assert fields(tensor_parallel_size=4, decode_context_parallel_size=2) == []
    assert fields(tensor_parallel_size=2, decode_context_parallel_size=2) == ["decode_context_parallel_size"]
    assert fields(tensor_parallel_size=8, decode_context_parallel_size=3) == ["decode_context_parallel_size"]
    assert fields(expert_parallel=True) == ["enable_expert_parallel"]
    assert mc.architecture_problems(mc.known("mistralai/Mixtral-8x7B-Instruct-v0.1"), expert_parallel=True) == []


def test_rope_factor_applies_only_where_vllm_applies_it():
    dynamic = mc.ModelArchitecture(8, 8, 4, 4096, rope_type="dynamic", rope_factor=2.0)
    assert dynamic.max_model_len == 8192
    assert LLAMA_8B.max_model_len == 131072  # llama3 RoPE: max_position_embeddings is already scaled


# --- what the stacks render ------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_rendered_server_command_line_reads_cleanly(stack):
    from conftest import rendered_stack

    servers = [
        c
        for o in rendered_stack(stack).objects
        if o["kind"] in ("Deployment", "Service")
        for c in (o.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [])
        if c["name"] == "vllm"
    ]
    assert servers, f"{stack}: no vLLM container rendered"
    for c in servers:
        parsed = vf.parse_extra_args([str(a) for a in c["args"]])
        assert parsed.problems == [], parsed.problems
        assert {"model", "served_model_name", "tensor_parallel_size", "port"} <= set(parsed.by_dest())
