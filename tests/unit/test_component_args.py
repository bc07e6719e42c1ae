"""Args are checked where they enter a component: unknown keys, wrong types, enum
values given as strings, whole-number floats from other languages, missing required keys. One
message names the component, its resource name and the key path, and nothing is registered."""

import copy
import itertools

import pulumi
import pytest

from llmstack_k8s import (
    GpuAutoscaling,
    GpuNodePool,
    KnativeServing,
    KnativeVllmService,
    ModelCache,
    Observability,
    VllmService,
)
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError, validate_args
from llmstack_k8s.scaling.gpu_autoscaling import AutoscalingMetric
from llmstack_k8s.serving.model_cache import AccessMode
from llmstack_k8s.serving.vllm_pod import Dtype
from llmstack_k8s.sizing.cold_start import DEFAULT_SCHEDULING_SECONDS


@pytest.fixture
def mocks():
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="llmstack", stack="unit", preview=True)
    return m


ENGINE = {"served_model_name": "qwen-chat"}
SERVING = {
    "namespace": "llm",
    "engine": ENGINE,
    "model_path": "/models/org--qwen/abc",
    "cache_claim_name": "qwen-weights",
}
WORKLOAD = {
    "name": "qwen",
    "namespace": "llm",
    "deployment_name": "qwen",
    "service_name": "qwen",
    "served_model_name": "qwen-chat",
    "startup_budget_seconds": 900,
    "min_replicas": 1,
    "max_replicas": 3,
    "metric": "queueDepth",
    "target": 5,
    "cooldown_seconds": 900,
}

#: component -> (minimal valid args, an optional key to misspell (path, typo, suggestion),
#: a wrong type (path, value, message), an enum given as its string (path, value, member),
#: a required key to leave out (path)).
CASES = {
    ModelCache: (
        {"namespace": "llm", "model": "org/qwen", "revision": "abc", "size": "20Gi"},
        ("storage_class_name", "storage_clas_name", "storage_class_name"),
        ("backoff_limit", "4", "expected an integer, got '4'"),
        ("access_mode", "ReadWriteOnce", AccessMode.READ_WRITE_ONCE),
        "revision",
    ),
    VllmService: (
        SERVING,
        ("engine.max_num_seqs", "engine.max_num_seq", "max_num_seqs"),
        ("replicas", "2", "expected an integer, got '2'"),
        ("engine.dtype", "bfloat16", Dtype.BFLOAT16),
        "engine.served_model_name",
    ),
    KnativeVllmService: (
        SERVING,
        ("scaling.max_scale", "scaling.maxscale", "max_scale"),
        ("scaling.min_scale", True, "expected an integer, got True"),
        ("engine.dtype", "float16", Dtype.FLOAT16),
        "cache_claim_name",
    ),
    GpuAutoscaling: (
        {"workloads": [WORKLOAD]},
        ("http_add_on", "http_addon", "http_add_on"),
        ("workloads[0].max_replicas", 2.5, "expected an integer, got 2.5"),
        ("workloads[0].metric", "kvCacheUsage", AutoscalingMetric.KV_CACHE_USAGE),
        "workloads[0].deployment_name",
    ),
    GpuNodePool: (
        {"sharing": {"strategy": "none"}},
        ("gpu_feature_discovery", "gpu_feature_discover", "gpu_feature_discovery"),
        ("node_selector", ["gpu"], "expected a mapping, got a list"),
        ("install", "existing", None),
        "sharing.strategy",
    ),
    Observability: (
        {
            "models": [{"name": "qwen", "namespace": "llm", "served_model_name": "qwen-chat"}],
            "serving_namespaces": ["llm"],
        },
        ("scrape_interval", "scrape_intervall", "scrape_interval"),
        ("models[0].always_on", "yes", "expected a boolean, got 'yes'"),
        None,
        "models[0].served_model_name",
    ),
    KnativeServing: (
        {},
        ("allow_zero_initial_scale", "allowZeroInitialScale", "allow_zero_initial_scale"),
        ("features", "kubernetes.podspec-init-containers", "expected a list, got 'kubernetes.podspec-init-containers'"),
        None,
        None,  # every KnativeServing arg is optional
    ),
}
IDS = [c.__name__ for c in CASES]


def _split(path: str) -> list:
    out: list = []
    for part in path.split("."):
        if "[" in part:
            key, index = part[:-1].split("[")
            out += [key, int(index)]
        else:
            out.append(part)
    return out


def _set(args: dict, path: str, value) -> dict:
    args = copy.deepcopy(args)
    *parents, last = _split(path)
    node = args
    for p in parents:
        if isinstance(node, dict):
            node = node.setdefault(p, {})
        else:
            node = node[p]
    node[last] = value
    return args


def _delete(args: dict, path: str) -> dict:
    args = copy.deepcopy(args)
    *parents, last = _split(path)
    node = args
    for p in parents:
        node = node[p]
    del node[last]
    return args


def _refused(mocks, cls, args, expected: str) -> str:
    with pytest.raises(ComponentArgsError) as err:
        cls("qwen", args)
    message = str(err.value)
    assert message.startswith(f"{cls.__name__} 'qwen': args."), message
    assert expected in message, message
    assert mocks.registrations == [], "something was registered before the args were refused"
    return message


@pytest.mark.parametrize("cls", CASES, ids=IDS)
def test_a_misspelt_optional_key_is_refused_with_a_suggestion(mocks, cls):
    base, (_, typo, suggestion), *_ = CASES[cls]
    message = _refused(mocks, cls, _set(base, typo, 1), f"args.{typo}: unknown key; did you mean {suggestion}?")
    assert cls.__name__ in message


@pytest.mark.parametrize("cls", CASES, ids=IDS)
def test_a_wrong_type_is_refused_naming_the_key(mocks, cls):
    base, _, (path, value, problem), *_ = CASES[cls]
    _refused(mocks, cls, _set(base, path, value), f"args.{path}: {problem}")


@pytest.mark.parametrize("cls", [c for c in CASES if CASES[c][4]], ids=[c.__name__ for c in CASES if CASES[c][4]])
def test_a_missing_required_key_is_named(mocks, cls):
    base, *_, missing = CASES[cls]
    _refused(mocks, cls, _delete(base, missing), f"args.{missing}: required key missing")


@pytest.mark.parametrize("cls", [c for c in CASES if CASES[c][3]], ids=[c.__name__ for c in CASES if CASES[c][3]])
def test_an_enum_value_given_as_a_string_becomes_the_member(mocks, cls):
    base, _, _, (path, value, member), _ = CASES[cls]
    args_type = {c: getattr(__import__(c.__module__, fromlist=["x"]), f"{c.__name__}Args") for c in CASES}[cls]
    normalized = validate_args(cls.__name__, "qwen", _set(base, path, value), args_type)
    node = normalized
    for p in _split(path):
        node = node[p]
    if member is not None:
        assert node is member
    # ... and the component takes it.
    pulumi.runtime.test(lambda: cls("qwen", _set(base, path, value)).urn)()
    assert mocks.registrations, "the component registered nothing"


@pytest.mark.parametrize("cls", CASES, ids=IDS)
def test_an_unknown_enum_value_lists_the_allowed_ones(mocks, cls):
    path = {
        ModelCache: "access_mode",
        VllmService: "engine.dtype",
        KnativeVllmService: "engine.quantization",
        GpuAutoscaling: "workloads[0].metric",
        GpuNodePool: "install",
        Observability: None,
        KnativeServing: None,
    }[cls]
    if path is None:
        pytest.skip(f"{cls.__name__} takes no enum")
    message = _refused(mocks, cls, _set(CASES[cls][0], path, "nope"), f"args.{path}: 'nope' is not one of ")
    assert message.count("'") >= 6  # the allowed values are listed


def test_an_output_is_refused_where_a_plain_value_decides_what_exists(mocks):
    _refused(
        mocks,
        VllmService,
        {**SERVING, "autoscaled": pulumi.Output.from_input(True)},
        "args.autoscaled: must be a plain value known at preview",
    )


def test_none_for_an_optional_key_means_not_given():
    out = validate_args(
        "VllmService", "qwen", {**SERVING, "replicas": None, "image": None}, __import__("llmstack_k8s").VllmServiceArgs
    )
    assert "replicas" not in out and "image" not in out


def test_the_callers_args_are_not_modified():
    args = copy.deepcopy({**SERVING, "engine": {**ENGINE, "tensor_parallel_size": 2.0}})
    before = copy.deepcopy(args)
    validate_args("VllmService", "qwen", args, __import__("llmstack_k8s").VllmServiceArgs)
    assert args == before and isinstance(args["engine"]["tensor_parallel_size"], float)


# --- whole-number floats (how other languages' integers arrive) are integers again -----------


def _render(mocks, build):
    pulumi.runtime.test(lambda: build().urn)()
    return mocks.objects()


def test_whole_floats_render_as_integers_in_vllm_args(mocks):
    engine = {
        **ENGINE,
        "tensor_parallel_size": 2.0,
        "pipeline_parallel_size": 1.0,
        "max_model_len": 4096.0,
        "max_num_seqs": 64.0,
    }
    objs = _render(
        mocks,
        lambda: VllmService("qwen", {**SERVING, "engine": engine, "replicas": 2.0, "startup_budget_seconds": 900.0}),
    )
    (dep,) = [o for o in objs if o["kind"] == "Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = dict(itertools.pairwise(args))
    assert flags["--tensor-parallel-size"] == "2" and flags["--pipeline-parallel-size"] == "1"
    assert flags["--max-model-len"] == "4096" and flags["--max-num-seqs"] == "64"
    gpus = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus == "2"


def test_half_a_gpu_is_refused(mocks):
    _refused(
        mocks,
        VllmService,
        {**SERVING, "engine": {**ENGINE, "tensor_parallel_size": 1.5}},
        "args.engine.tensor_parallel_size: expected an integer, got 1.5",
    )


def test_whole_floats_render_as_integers_in_knative_annotations(mocks):
    scaling = {"min_scale": 0.0, "max_scale": 1.0, "initial_scale": 1.0, "target_concurrency": 16.0}
    objs = _render(
        mocks,
        lambda: KnativeVllmService(
            "qwen",
            {
                **SERVING,
                "scaling": scaling,
                "startup_budget_seconds": 900.0,
                "engine": {**ENGINE, "tensor_parallel_size": 1.0},
            },
        ),
    )
    (ksvc,) = [o for o in objs if o["kind"] == "Service" and o["apiVersion"].startswith("serving.knative.dev")]
    ann = ksvc["spec"]["template"]["metadata"]["annotations"]
    assert ann["autoscaling.knative.dev/max-scale"] == "1"
    assert ann["autoscaling.knative.dev/min-scale"] == "0"
    assert ann["autoscaling.knative.dev/initial-scale"] == "1"
    assert ann["autoscaling.knative.dev/target"] == "16"
    assert ann["serving.knative.dev/progress-deadline"] == "1500s"
    args = ksvc["spec"]["template"]["spec"]["containers"][0]["args"]
    assert dict(itertools.pairwise(args))["--tensor-parallel-size"] == "1"


def test_whole_floats_render_as_integers_in_knative_serving_config(mocks):
    objs = _render(mocks, lambda: KnativeServing("knative", {"max_revision_timeout_seconds": 7200.0}))
    (serving,) = [o for o in objs if o["kind"] == "KnativeServing"]
    assert serving["spec"]["config"]["defaults"]["max-revision-timeout-seconds"] == "7200"


def test_whole_floats_become_ints_in_autoscaling_strings(mocks):
    w = {
        **WORKLOAD,
        "startup_budget_seconds": 900.0,
        "min_replicas": 0.0,
        "max_replicas": 2.0,
        "cooldown_seconds": 900.0,
    }
    objs = _render(mocks, lambda: GpuAutoscaling("autoscaling", {"workloads": [w], "http_add_on": True}))
    (httpso,) = [o for o in objs if o["kind"] == "HTTPScaledObject"]
    # held through a node, the image (default figures: the workload names no VllmService) and the load
    assert httpso["spec"]["timeouts"]["conditionWait"] == f"{DEFAULT_SCHEDULING_SECONDS + 900 + 60}s"


# --- engine.extra_args: the same rules as the stack's extraArgs, in the component ------------------

EXTRA_ARGS_CASES = {
    "a flag the component renders": (
        ["--enforce-eager", "--tensor_parallel_size=2"],
        "args.engine.extra_args[1]: sets --tensor_parallel_size (that is --tensor-parallel-size), "
        "which {cls} renders from args.engine.tensor_parallel_size; set that instead",
    ),
    "the model path": (
        ["--model", "/elsewhere"],
        "args.engine.extra_args[0]: sets --model, which {cls} renders from args.model_path",
    ),
    "the API key in plain text": (
        ["--api-key", "sk-1"],
        "args.engine.extra_args[0]: sets --api-key, which {cls} sets itself: the API key comes from a Secret",
    ),
    "the port the Service uses": (["--port=9000"], "args.engine.extra_args[0]: sets --port, which {cls} sets itself"),
    "a flag vLLM does not have": (
        ["--max-batch", "8"],
        "args.engine.extra_args[0]: '--max-batch' is not a flag of vLLM",
    ),
    "more GPUs than the pod requests": (
        ["--data-parallel-size", "2"],
        "args.engine.extra_args[0]: --data-parallel-size runs several engine copies",
    ),
    "an abbreviation": (
        ["--enforce-eag"],
        "args.engine.extra_args[0]: --enforce-eag is an abbreviation vLLM expands to --enforce-eager",
    ),
}


@pytest.mark.parametrize("case", sorted(EXTRA_ARGS_CASES))
@pytest.mark.parametrize("cls", [VllmService, KnativeVllmService], ids=["VllmService", "KnativeVllmService"])
def test_extra_args_are_checked_by_the_serving_component(mocks, cls, case):
    extra, expected = EXTRA_ARGS_CASES[case]
    _refused(mocks, cls, {**SERVING, "engine": {**ENGINE, "extra_args": extra}}, expected.format(cls=cls.__name__))


@pytest.mark.parametrize("cls", [VllmService, KnativeVllmService], ids=["VllmService", "KnativeVllmService"])
def test_extra_args_vllm_accepts_render(mocks, cls):
    extra = ["--enforce-eager", "--max-num-batched-tokens", "8192"]
    objs = _render(mocks, lambda: cls("qwen", {**SERVING, "engine": {**ENGINE, "extra_args": extra}}))
    (server,) = [o for o in objs if o["kind"] in ("Deployment", "Service") and "template" in o.get("spec", {})]
    assert server["spec"]["template"]["spec"]["containers"][0]["args"][-3:] == extra


# --- fields that point at other objects take Outputs (the plain ones, with the reason: validation.PLAIN_BY_DESIGN) ---


def test_pointer_fields_take_outputs_and_resolve(mocks):
    from llmstack_k8s import InferencePool

    out = pulumi.Output.from_input

    def build():
        pool = GpuNodePool(
            "gpu",
            {
                "namespace": out("gpu-system"),
                "node_selector": {"pool": out("l4")},
                "runtime_class": {"name": out("nvidia-rc"), "handler": out("nvidia")},
                "priority_class": {"name": out("llm-critical")},
                "karpenter": {
                    "gpu_limit": 8,
                    "node_class_ref": {
                        "group": out("karpenter.k8s.aws"),
                        "kind": out("EC2NodeClass"),
                        "name": out("gpu-nodes"),
                    },
                },
            },
        )
        ModelCache(
            "qwen",
            {"namespace": "llm", "model": "org/qwen", "revision": "abc", "size": "20Gi", "image": out("mirror/vllm:1")},
        )
        Observability(
            "obs", {"models": [], "serving_namespaces": ["llm"], "monitor_labels": {"release": out("prom-main")}}
        )
        GpuAutoscaling(
            "autoscaling", {"workloads": [WORKLOAD], "service_monitor_labels": {"release": out("prom-main")}}
        )
        KnativeServing("knative", {"operator_namespace": out("kn-operator")})
        InferencePool(
            "qwen-pool",
            {
                "namespace": "llm",
                "pod_selector": {"app": "qwen"},
                "gateway_namespace": "edge",
                "image": out("mirror/epp:1"),
            },
        )
        return pool

    objs = _render(mocks, build)
    text = repr(objs) + repr(list(mocks.registrations))
    for value in (
        "gpu-system",
        "nvidia-rc",
        "llm-critical",
        "gpu-nodes",
        "EC2NodeClass",
        "mirror/vllm:1",
        "prom-main",
        "kn-operator",
        "mirror/epp:1",
    ):
        assert value in text, value
    (rc,) = [o for o in objs if o["kind"] == "RuntimeClass"]
    assert (
        rc["metadata"]["name"] == "nvidia-rc"
        and rc["handler"] == "nvidia"
        and rc["scheduling"]["nodeSelector"] == {"pool": "l4"}
    )
    (job,) = [o for o in objs if o["kind"] == "Job"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror/vllm:1"
