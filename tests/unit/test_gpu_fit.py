"""The GPU fit check belongs to the components, not only to the stack program: a VllmService or KnativeVllmService
created directly, with a GpuNodePool's contract, refuses a model its pool cannot run, naming the
component, the name and the arg, before anything is registered. The stack program runs the same
rules (``llmstack_k8s.sizing.gpu_fit``) and words them in stack-file keys."""

import copy

import pulumi
import pytest

from conftest import assert_refused, render_with
from llmstack_k8s import GpuNodePool, KnativeVllmService, VllmService
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.scaling import gpu_autoscaling
from llmstack_k8s.sizing import gpu_fit

L4 = {"product": "NVIDIA-L4", "memory_gib": 22, "per_node": 1}
H100 = {"product": "NVIDIA-H100-80GB-HBM3", "memory_gib": 79, "per_node": 8}
L4_SHARED = {"gpu": L4, "sharing": {"strategy": "timeSlicing", "replicas": 4}}
SERVING = {"namespace": "llm", "model_path": "/models/m", "cache_claim_name": "m-weights"}
#: meta-llama/Llama-3.1-70B-Instruct in bf16 (what the catalog estimates, rounded up).
LLAMA_70B_GIB = 132


@pytest.fixture
def mocks():
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="llmstack", stack="unit", preview=True)
    return m


def serving(pool: GpuNodePool, weights_gib=None, **engine) -> dict:
    args = {**copy.deepcopy(SERVING), "engine": {"served_model_name": "m", **engine}, "scheduling": pool.contract}
    if weights_gib is not None:
        args["weights_gib"] = weights_gib
    return args


def refused(mocks, cls, pool_args: dict, serving_args: dict, expected: str) -> str:
    """The serving component refuses its args with ``expected``; nothing of it is registered
    (checked after every pending registration has gone through the mocks)."""
    caught: list[str] = []

    def program():
        pool = GpuNodePool("gpu", pool_args)
        with pytest.raises(ComponentArgsError) as err:
            cls("llama", serving_args(pool))
        caught.append(str(err.value))
        return pool.urn

    pulumi.runtime.test(program)()
    (message,) = caught
    assert message.startswith(f"{cls.__name__} 'llama': args."), message
    assert expected in message, message
    assert mocks.registrations, "the pool registered nothing: the mocks saw no program"
    mine = [r for r in mocks.registrations if r.name.startswith("llama") or r.type.endswith(cls.__name__)]
    assert mine == [], f"registered before the args were refused: {mine}"
    return message


def renders(mocks, cls, pool_args: dict, serving_args) -> list[dict]:
    pulumi.runtime.test(lambda: cls("llama", serving_args(GpuNodePool("gpu", pool_args))).urn)()
    return mocks.objects()


# --- the components refuse what does not fit -----------------------------------------------------


def test_a_70b_model_on_a_shared_l4_is_refused_by_the_service_itself(mocks):
    message = refused(
        mocks,
        VllmService,
        L4_SHARED,
        lambda p: serving(p, LLAMA_70B_GIB, gpu_memory_utilization=0.2),
        "args.weights_gib: does not fit: 132.0 GiB of weights / 1 GPU(s) = 132.0 GiB per GPU, but vLLM may use "
        "gpu_memory_utilization 0.2 x 22.0 GiB (NVIDIA-L4, per timeSlicing share) = 4.4 GiB, which does not even hold "
        "the weights",
    )
    assert "Fix: give each pod a bigger share of a GPU" in message


def test_the_knative_service_runs_the_same_fit_check(mocks):
    refused(
        mocks,
        KnativeVllmService,
        L4_SHARED,
        lambda p: serving(p, LLAMA_70B_GIB, gpu_memory_utilization=0.2),
        "args.weights_gib: does not fit: 132.0 GiB of weights / 1 GPU(s)",
    )


def test_the_default_memory_utilization_on_a_time_sliced_gpu_is_refused(mocks):
    # vLLM's default 0.9 on a GPU shared four ways: the second pod would find no memory free.
    refused(
        mocks,
        VllmService,
        L4_SHARED,
        lambda p: serving(p, 1),
        "args.engine.gpu_memory_utilization: 0.9 on GPUs time-sliced 4 ways: each pod sharing a GPU claims that "
        "fraction of the whole GPU, so the pods after the first would not start; use at most 0.23",
    )


def test_tensor_parallelism_on_a_shared_pool_is_refused(mocks):
    refused(
        mocks,
        VllmService,
        {"sharing": {"strategy": "mps", "replicas": 2}},
        lambda p: serving(p, tensor_parallel_size=2),
        "args.engine.tensor_parallel_size: 2 GPUs per replica (tensor_parallel_size 2 x pipeline_parallel_size 1) "
        "on a pool sharing GPUs (mps): a pod gets one share of a GPU, never several GPUs",
    )


def test_more_gpus_per_replica_than_a_node_has_is_refused(mocks):
    a10g = {"product": "NVIDIA-A10G", "memory_gib": 22, "per_node": 4}
    refused(
        mocks,
        KnativeVllmService,
        {"gpu": a10g},
        lambda p: serving(p, pipeline_parallel_size=2, tensor_parallel_size=4),
        "args.engine.tensor_parallel_size: a replica needs 8 GPUs (tensor_parallel_size 4 x pipeline_parallel_size 2) "
        "but a node of the pool has 4 (NVIDIA-A10G)",
    )


def test_the_hint_names_a_tensor_parallel_size_that_fits(mocks):
    refused(
        mocks,
        VllmService,
        {"gpu": H100},
        lambda p: serving(p, LLAMA_70B_GIB, tensor_parallel_size=2, gpu_memory_utilization=0.92),
        "which leaves 5.7 GiB for the KV cache after a 1 GiB runtime reserve; the KV cache needs at least 7.3 GiB. "
        "Fix: use tensor_parallel_size 4",
    )


def test_a_contract_and_a_capacity_of_different_pools_are_refused(mocks):
    def mixed(pool):
        args = serving(pool, 1, gpu_memory_utilization=0.2)
        args["scheduling"] = {**pool.contract, "gpu_resource_name": "nvidia.com/gpu"}
        return args

    refused(
        mocks,
        VllmService,
        L4_SHARED,
        mixed,
        "args.scheduling.gpu_capacity.gpu_resource_name: 'nvidia.com/gpu.shared' but the contract requests "
        "'nvidia.com/gpu'",
    )


@pytest.mark.parametrize("cls", [VllmService, KnativeVllmService])
@pytest.mark.parametrize(
    "pool, engine, weights",
    [
        ({"gpu": H100}, {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.92}, LLAMA_70B_GIB),
        (L4_SHARED, {"gpu_memory_utilization": 0.22}, 1),
        ({"gpu": L4}, {"quantization": "awq"}, gpu_fit.estimate_weights_gib(8, "auto", "awq")),
        ({"gpu": H100, "sharing": {"strategy": "mig", "mig_strategy": "mixed", "mig_profile": "3g.40gb"}}, {}, 15),
    ],
    ids=["70B-on-4-H100", "0.5B-on-an-L4-share", "8B-awq-on-an-L4", "8B-on-a-MIG-instance"],
)
def test_models_that_fit_are_served(mocks, cls, pool, engine, weights):
    objs = renders(mocks, cls, pool, lambda p: serving(p, weights, **engine))
    assert any(o["metadata"]["name"] == "llama" for o in objs)


def test_without_the_pools_facts_nothing_is_measured(mocks):
    """A contract written by hand (no ``gpu_capacity``) gets no fit check: the component cannot know."""
    objs = renders(
        mocks,
        VllmService,
        {},
        lambda p: {
            **serving(p, LLAMA_70B_GIB),
            "scheduling": {k: v for k, v in p.contract.items() if k != "gpu_capacity"},
        },
    )
    assert any(o["kind"] == "Deployment" for o in objs)


# --- the pool states its capacity as plain facts -------------------------------------------------


@pytest.mark.parametrize(
    "pool_args, expected",
    [
        (
            {"gpu": {**H100, "memory_gib": 80}, "sharing": {"strategy": "mps", "replicas": 4}},
            {
                "gpu_resource_name": "nvidia.com/gpu.shared",
                "sharing": gpu_fit.SharingStrategy.MPS,
                "pods_per_gpu": 4,
                "device_memory_gib": 20.0,
            },
        ),
        (
            {"gpu": H100, "sharing": {"strategy": "mig", "mig_strategy": "mixed", "mig_profile": "3g.40gb"}},
            {
                "gpu_resource_name": "nvidia.com/mig-3g.40gb",
                "sharing": gpu_fit.SharingStrategy.MIG,
                "device_memory_gib": pytest.approx(37.25, abs=0.01),
            },
        ),
        (
            {"sharing": {"strategy": "timeSlicing", "replicas": 3, "rename_resource": False}},
            {"gpu_resource_name": "nvidia.com/gpu", "sharing": gpu_fit.SharingStrategy.TIME_SLICING, "pods_per_gpu": 3},
        ),
    ],
    ids=["mps", "mig-mixed", "time-slicing-unrenamed"],
)
def test_the_pool_states_what_a_pod_gets(mocks, pool_args, expected):
    caught = []
    pulumi.runtime.test(lambda: caught.append(GpuNodePool("gpu", pool_args)) or caught[0].urn)()
    (pool,) = caught
    capacity = pool.capacity
    for key, value in expected.items():
        assert capacity[key] == value, key
    assert "gpu" in capacity if "gpu" in pool_args else "gpu" not in capacity
    assert pool.contract["gpu_capacity"] is capacity
    assert capacity["gpu_resource_name"] == pool.contract["gpu_resource_name"]
    assert not any(isinstance(v, pulumi.Output) for v in capacity.values())


@pytest.mark.parametrize(
    "pool_args, expected",
    [
        ({"sharing": {"strategy": "timeSlicing", "replicas": 1}}, "args.sharing: sharing.replicas must be at least 2"),
        (
            {"install": "gpuOperator", "runtime_class": {"name": "nvidia"}},
            "args.runtime_class.create: the GPU operator creates its RuntimeClass itself",
        ),
        (
            {"gpu": L4, "sharing": {"strategy": "mig", "mig_profile": "3g.40gb"}},
            "args.sharing.mig_profile: 3g.40gb instances hold 37.3 GiB, more than the whole NVIDIA-L4 (22 GiB)",
        ),
        (
            {
                "gpu": H100,
                "node_selector": {"pool": "h100"},
                "karpenter": {
                    "node_class_ref": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                    "gpu_limit": 4,
                },
            },
            "args.karpenter.gpu_limit: 4 is below gpu.per_node 8: Karpenter could never provision a node",
        ),
        ({"gpu": {**L4, "per_node": 0}}, "args.gpu.per_node: 0 must be at least 1"),
    ],
    ids=[
        "one-pod-per-shared-gpu",
        "operator-and-own-runtime-class",
        "mig-profile-larger-than-the-gpu",
        "karpenter-below-one-node",
        "no-gpus-per-node",
    ],
)
def test_the_pool_refuses_contradictions_before_registering(mocks, pool_args, expected):
    with pytest.raises(ComponentArgsError) as err:
        GpuNodePool("gpu", pool_args)
    assert str(err.value).startswith("GpuNodePool 'gpu': ") and expected in str(err.value), str(err.value)
    pulumi.runtime.test(lambda: None)()  # let any pending registration through
    assert mocks.registrations == []


# --- Knative's own refusals now come before registering ------------------------------------------


@pytest.mark.parametrize(
    "extra, expected",
    [
        (
            {"scaling": {"target_concurrency": 40, "container_concurrency": 20}},
            "args.scaling.target_concurrency: 40 exceeds container_concurrency 20",
        ),
        (
            {"scaling": {"min_scale": 3, "max_scale": 2}},
            "args.scaling.min_scale: 3 must be between 0 and max_scale (2)",
        ),
        ({"scaling": {"stable_window": "5s"}}, "args.scaling.stable_window: '5s' must be between 6s and 1h"),
        ({"scaling": {"scale_down_delay": "10"}}, "args.scaling.scale_down_delay: '10' is not a duration"),
        (
            {"startup_budget_seconds": 900, "progress_deadline_seconds": 600},
            "args.progress_deadline_seconds: 600 is shorter than the startup budget 900",
        ),
        ({"extra_env": {"PORT": "9000"}}, "args.extra_env.PORT: Knative sets this variable itself"),
        (
            {"enabled_features": ["kubernetes.podspec-init-containers"]},
            "args.enabled_features: lacks kubernetes.podspec-",
        ),
    ],
    ids=[
        "target-above-container-concurrency",
        "min-above-max",
        "window-too-short",
        "delay-not-a-duration",
        "deadline-below-budget",
        "reserved-env",
        "missing-feature-flags",
    ],
)
def test_knative_refuses_what_its_webhook_would_before_registering(mocks, extra, expected):
    args = {**copy.deepcopy(SERVING), "engine": {"served_model_name": "m"}, **extra}
    with pytest.raises(ComponentArgsError) as err:
        KnativeVllmService("llama", args)
    assert str(err.value).startswith("KnativeVllmService 'llama': ") and expected in str(err.value), str(err.value)
    pulumi.runtime.test(lambda: None)()
    assert mocks.registrations == []


# --- the stack words the same rules in its own keys ----------------------------------------------


STACK_MODEL = {
    "name": "llama-70b",
    "model": "meta-llama/Llama-3.1-70B-Instruct",
    "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
    "weightsGiB": LLAMA_70B_GIB,
    "gpuMemoryUtilization": 0.2,
    "cache": {"size": "300Gi"},
}
STACK_L4_SHARED = {
    "gpu": {"product": "NVIDIA-L4", "memoryGiB": 22, "perNode": 1},
    "sharing": {"strategy": "timeSlicing", "replicas": 4},
}


def test_the_stack_names_its_key_for_the_same_numbers(mocks):
    message = assert_refused(
        {"gpuPool": STACK_L4_SHARED, "models": [STACK_MODEL]},
        "models[0] (name: llama-70b).weightsGiB: does not fit: weightsGiB 132 / 1 GPU(s) = 132.0 GiB per GPU",
    )
    # The same arithmetic as the component's refusal above: one source for the rule.
    assert "gpuMemoryUtilization 0.2 x 22.0 GiB (NVIDIA-L4, per timeSlicing share) = 4.4 GiB" in message


def test_the_stack_hands_the_pool_and_the_weights_to_the_components(monkeypatch):
    """With the stack's own check switched off, the component's refusal still stops the 70B model:
    the composition passes the pool's capacity (through the contract) and ``weights_gib``."""
    import stacks.config

    monkeypatch.setattr(stacks.config, "check_models_fit", lambda pool, models: None)
    with pytest.raises(Exception) as err:
        render_with({"gpuPool": STACK_L4_SHARED, "models": [STACK_MODEL]})
    assert "VllmService 'llama-70b': args.weights_gib: does not fit" in str(err.value)


def test_the_stack_takes_the_autoscaling_defaults_from_the_component():
    from stacks import config

    assert config.AUTOSCALING_DEFAULT_TARGETS is gpu_autoscaling.DEFAULT_TARGETS
    assert config.AUTOSCALING_MIN_COOLDOWN is gpu_autoscaling.MIN_COOLDOWN_SECONDS


def test_time_slicing_is_checked_without_the_gpu_key(mocks):
    """The time-slicing bound needs only the pods per GPU, not the GPU's product or memory."""
    model = {**STACK_MODEL, "weightsGiB": 1, "gpuMemoryUtilization": 0.9, "cache": {"size": "20Gi"}}
    assert_refused(
        {"gpuPool": {"sharing": {"strategy": "timeSlicing", "replicas": 4}}, "models": [model]},
        "models[0] (name: llama-70b).gpuMemoryUtilization: 0.9 on GPUs time-sliced 4 ways (gpuPool.sharing.replicas)",
    )


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"weights_gib": 0}, "args.weights_gib: 0 must be above 0"),
        (
            {"capacity": {"gpu_resource_name": "nvidia.com/gpu.shared", "sharing": "timeSlicing"}},
            "args.scheduling.gpu_capacity.pods_per_gpu: timeSlicing shares each GPU between 2 or more pods",
        ),
        (
            {"capacity": {"gpu_resource_name": "nvidia.com/gpu", "pods_per_gpu": 4}},
            "args.scheduling.gpu_capacity.pods_per_gpu: applies to timeSlicing and mps only, not none",
        ),
        (
            {"capacity": {"gpu_resource_name": "nvidia.com/gpu", "gpu": L4, "device_memory_gib": 40}},
            "args.scheduling.gpu_capacity.device_memory_gib: 40 must be above 0 and at most the GPU's memory",
        ),
    ],
    ids=["no-weights", "time-slicing-without-pods-per-gpu", "pods-per-gpu-on-whole-gpus", "device-larger-than-the-gpu"],
)
def test_a_hand_written_capacity_that_contradicts_itself_is_refused(mocks, change, expected):
    args = {**copy.deepcopy(SERVING), "engine": {"served_model_name": "m"}}
    if "weights_gib" in change:
        args["weights_gib"] = change["weights_gib"]
    if "capacity" in change:
        args["scheduling"] = {
            "gpu_resource_name": change["capacity"]["gpu_resource_name"],
            "gpu_capacity": change["capacity"],
        }
    with pytest.raises(ComponentArgsError) as err:
        VllmService("llama", args)
    assert expected in str(err.value), str(err.value)
    pulumi.runtime.test(lambda: None)()
    assert mocks.registrations == []


def test_observability_refuses_a_threshold_that_is_no_fraction_before_registering(mocks):
    """The alert rules apply the thresholds inside an Output; the check runs where the args enter."""
    from llmstack_k8s import Observability

    args = {
        "models": [{"name": "m", "namespace": "llm", "served_model_name": "m"}],
        "serving_namespaces": ["llm"],
        "thresholds": {"kv_cache_usage_ratio": 95},
    }
    with pytest.raises(ComponentArgsError) as err:
        Observability("obs", args)
    assert (
        "Observability 'obs': args.thresholds: thresholds.kv_cache_usage_ratio is 95; it is a fraction between 0 and 1"
        in str(err.value)
    )
    pulumi.runtime.test(lambda: None)()
    assert mocks.registrations == []
