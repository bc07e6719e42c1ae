"""Components built through the provider host from values shaped the way the engine sends them
(every number a double, enums as their strings, camelCase names) render exactly what the same
args render from Python. This is the path a TypeScript, Go, C#, Java or YAML program takes."""

import copy
import enum
import functools

import pulumi
import pytest
from google.protobuf import struct_pb2
from pulumi.errors import InputPropertyError
from pulumi.provider.experimental.analyzer import PropertyDefinition, PropertyType
from pulumi.provider.server import ProviderServicer
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from llmstack_k8s._core.provider_host import COMPONENTS, LlmstackProvider
from llmstack_k8s._core.testing import RecordingMocks, Rendered
from llmstack_k8s.cluster.gpu_node_pool import GpuInstall, SharingStrategy
from llmstack_k8s.edge.inference_pool import FailureMode
from llmstack_k8s.edge.model_route import RouteKind
from llmstack_k8s.scaling.gpu_autoscaling import AutoscalingMetric
from llmstack_k8s.serving.model_cache import AccessMode, model_dir
from llmstack_k8s.serving.vllm_pod import Dtype

MODEL, REVISION = "Qwen/Qwen2.5-0.5B-Instruct", "7ae557604adf67be50417f59c2c2f167def9a775"
ENGINE = {
    "served_model_name": "qwen",
    "tensor_parallel_size": 2,
    "max_model_len": 8192,
    "max_num_seqs": 64,
    "gpu_memory_utilization": 0.85,
    "dtype": Dtype.BFLOAT16,
    "enable_prefix_caching": True,
}
SCHEDULING = {
    "gpu_resource_name": "nvidia.com/gpu",
    "node_selector": {"pool": "gpu"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}

#: One call per component, with every kind of value the wire changes: integers (top level and
#: nested), floats, enums, lists and maps of objects.
CASES = {
    "ModelCache": {
        "namespace": "llm",
        "model": MODEL,
        "revision": REVISION,
        "size": "10Gi",
        "access_mode": AccessMode.READ_WRITE_ONCE,
        "backoff_limit": 2,
        "active_deadline_seconds": 1200,
        "hf_token": "hf_example",
    },
    "VllmService": {
        "namespace": "llm",
        "engine": ENGINE,
        "model_path": model_dir(MODEL, REVISION),
        "cache_claim_name": "qwen-weights",
        "replicas": 3,
        "startup_budget_seconds": 900,
        "scheduling_seconds": 300,
        "scheduling": SCHEDULING,
        "api_key": "sk-example",
        "rollout": {"max_surge": 0, "max_unavailable": 1},
        "network": {"client_namespaces": ["apps"], "monitoring_namespaces": ["monitoring"]},
    },
    "KnativeVllmService": {
        "namespace": "llm",
        "engine": ENGINE,
        "model_path": model_dir(MODEL, REVISION),
        "cache_claim_name": "qwen-weights",
        "startup_budget_seconds": 900,
        "scaling": {"min_scale": 0, "max_scale": 3, "initial_scale": 1, "target_concurrency": 8},
        "request_timeout_seconds": 1800,
        "api_key": "sk-example",
        "scheduling": SCHEDULING,
    },
    "KnativeServing": {"max_revision_timeout_seconds": 3600, "allow_zero_initial_scale": True},
    # TP 2 x PP 2 over nodes of 2 GPUs: a group of two pods (whole numbers arrive as doubles)
    "MultiNodeVllmService": {
        "namespace": "llm",
        "engine": {**ENGINE, "pipeline_parallel_size": 2},
        "model_path": model_dir(MODEL, REVISION),
        "cache_claim_name": "qwen-weights",
        "gpus_per_node": 2,
        "replicas": 2,
        "weights_gib": 1.5,
        "startup_budget_seconds": 900,
        "max_unavailable": 1,
        "rdma": {"resource_name": "rdma/ib", "per_pod": 2},
        "api_key": "sk-example",
        "scheduling": SCHEDULING,
    },
    "LeaderWorkerSetController": {"namespace": "lws-system"},
    "ImagePrePull": {"namespace": "llm", "images": ["docker.io/vllm/vllm-openai:v0.32.0"], "scheduling": SCHEDULING},
    "Team": {
        "namespace": "research",
        "quota": {"gpus": 8, "cpu": "64", "memory": "512Gi", "storage": "2Ti"},
        "gpu_resource_name": "nvidia.com/gpu",
        "api_key": "sk-team",
    },
    "GpuNodePool": {
        "install": GpuInstall.DEVICE_PLUGIN,
        "namespace": "gpu",
        "sharing": {"strategy": SharingStrategy.TIME_SLICING, "replicas": 4},
        "node_selector": {"pool": "gpu"},
        "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
        "priority_class": {"name": "llm-serving", "value": 100000},
    },
    "GpuAutoscaling": {
        "workloads": [
            {
                "name": "qwen",
                "namespace": "llm",
                "deployment_name": "qwen",
                "service_name": "qwen",
                "served_model_name": "qwen",
                "startup_budget_seconds": 900,
                "min_replicas": 1,
                "max_replicas": 4,
                "metric": AutoscalingMetric.QUEUE_DEPTH,
                "target": 5.0,
                "cooldown_seconds": 1200,
                "polling_interval_seconds": 15,
            }
        ]
    },
    "ModelRoute": {
        "namespace": "llm",
        "service_name": "qwen",
        "served_model_names": ["qwen", "qwen-sql"],
        "kind": RouteKind.INGRESS,
        "hostnames": ["llm.example.com"],
        "request_timeout_seconds": 900.0,
        "ingress": {"tls_secret_name": "llm-tls", "max_body_size": "32m"},
        # a Knative model (its Service is Knative's): whole seconds arrive as doubles
        "knative": {
            "host": "qwen.llm.svc.cluster.local",
            "local_gateway_namespace": "knative-serving",
            "local_gateway_port": 80.0,
            "cold_start_seconds": 600.0,
        },
    },
    "BodyRouter": {"namespace": "gateway", "gateway_name": "inference-gateway", "provider": "gke", "replicas": 3.0},
    "InferencePool": {
        "namespace": "llm",
        "pod_selector": {"app.kubernetes.io/instance": "qwen"},
        "gateway_namespace": "gateway",
        "monitoring_namespaces": ["monitoring"],
        "serves_lora": True,
        "failure_mode": FailureMode.FAIL_CLOSE,
        "objectives": [{"served_model_name": "qwen-sql", "priority": -1.0}],
    },
    "Observability": {
        "models": [
            {
                "name": "qwen",
                "namespace": "llm",
                "served_model_name": "qwen",
                "ttft_p95_seconds": 2.0,
                "always_on": True,
            }
        ],
        "serving_namespaces": ["llm"],
        "thresholds": {
            "queue_waiting_requests": 10,
            "queue_minutes": 5,
            "kv_cache_usage_ratio": 0.9,
            "gpu_temperature_celsius": 85,
        },
    },
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def to_wire(value, keep_keys: bool = False):
    """What a program in another language sends: camelCase names, enum values; numbers become
    doubles when packed into the protobuf Struct below. Map keys (``keep_keys``) stay as written."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {(k if keep_keys else _camel(k)): to_wire(v, keep_keys=k in MAP_FIELDS) for k, v in value.items()}
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    return value


#: Fields that are maps with keys of the caller's choosing (not field names).
MAP_FIELDS = {"node_selector", "extra_env", "pod_annotations", "monitor_labels", "service_monitor_labels"}


def _render(build) -> Rendered:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="wire", stack="test", preview=True)

    @pulumi.runtime.test
    def run():
        # A component, or the host's ConstructResult: both carry the URN to wait for.
        return build().urn

    run()
    return Rendered("test", mocks.registrations)


def _wire_inputs(wire: dict, dependencies: dict | None = None) -> dict:
    struct = struct_pb2.Struct()
    struct.update(wire)
    deps = {
        k: provider_pb2.ConstructRequest.PropertyDependencies(urns=urns) for k, urns in (dependencies or {}).items()
    }
    # The servicer's own conversion of a ConstructRequest's inputs (secrets, dependencies, unknowns).
    return _sync_await(ProviderServicer._construct_inputs(struct, deps))


def construct_from_wire(component: str, wire: dict, name: str = "m"):
    provider = LlmstackProvider()
    return provider.construct(name, f"llmstack:index:{component}", _wire_inputs(wire), pulumi.ResourceOptions())


def _python(component: str, args: dict, name: str = "m"):
    cls = {c.__name__: c for c in COMPONENTS}[component]
    return cls(name, args)


def test_every_component_has_a_case():
    missing = {c.__name__ for c in COMPONENTS} - set(CASES)
    assert not missing, (
        f"add a call of {sorted(missing)} to CASES (args with integers, floats and enums where it has them)"
    )
    assert set(CASES) <= {c.__name__ for c in COMPONENTS}


def test_numbers_really_travel_as_doubles():
    struct = struct_pb2.Struct()
    struct.update(to_wire(CASES["VllmService"]))
    assert struct["engine"]["tensorParallelSize"] == 2.0 and isinstance(struct["engine"]["tensorParallelSize"], float)
    assert struct["engine"]["dtype"] == "bfloat16"


@pytest.mark.parametrize("component", sorted(CASES))
def test_wire_shaped_values_render_what_python_renders(component):
    args = CASES[component]
    from_python = _render(lambda: _python(component, args))
    from_wire = _render(lambda: construct_from_wire(component, to_wire(args)))
    assert from_wire.objects == from_python.objects
    assert from_wire.helm_releases == from_python.helm_releases
    # Same children (registration order follows when each one's inputs resolve).
    assert sorted((r.type, r.name) for r in from_wire.registrations) == sorted(
        (r.type, r.name) for r in from_python.registrations
    )


def test_integers_from_the_wire_are_integers_in_what_is_rendered():
    """What whole-number doubles from the wire used to render: ``--tensor-parallel-size 2.0`` and Knative
    ``max-scale: '1.0'``."""
    for component in ("VllmService", "KnativeVllmService"):
        rendered = _render(lambda component=component: construct_from_wire(component, to_wire(CASES[component])))
        (container,) = [c for o in rendered.objects for c in _containers(o) if c["name"] == "vllm"]
        args = container["args"]
        assert args[args.index("--tensor-parallel-size") + 1] == "2"
        assert args[args.index("--max-model-len") + 1] == "8192"
        assert args[args.index("--max-num-seqs") + 1] == "64"
    (ksvc,) = [
        o
        for o in _render(
            lambda: construct_from_wire("KnativeVllmService", to_wire(CASES["KnativeVllmService"]))
        ).objects
        if o["kind"] == "Service" and o["apiVersion"].startswith("serving.knative")
    ]
    annotations = ksvc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/max-scale"] == "3"
    assert annotations["autoscaling.knative.dev/initial-scale"] == "1"
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    assert annotations["autoscaling.knative.dev/target"] == "8"


def _containers(obj: dict) -> list[dict]:
    spec = obj.get("spec", {})
    template = spec.get("template", {}).get("spec", {})
    return list(template.get("containers", []))


def _refusal(component: str, wire: dict) -> InputPropertyError:
    with pytest.raises(InputPropertyError) as err:
        _render(lambda: construct_from_wire(component, wire))
    return err.value


def test_a_fraction_where_an_integer_belongs_is_refused_naming_the_property():
    wire = to_wire(CASES["VllmService"])
    wire["engine"]["tensorParallelSize"] = 2.5
    err = _refusal("VllmService", wire)
    assert err.property_path == "engine.tensorParallelSize"
    assert "2.5" in err.reason and "integer" in err.reason


def test_an_unknown_enum_string_is_refused_with_the_allowed_values():
    wire = to_wire(CASES["VllmService"])
    wire["engine"]["dtype"] = "bf16"
    err = _refusal("VllmService", wire)
    assert err.property_path == "engine.dtype"
    assert "'bfloat16'" in err.reason


def test_a_misspelled_property_is_refused_not_dropped():
    wire = to_wire(CASES["ModelCache"])
    wire["backofLimit"] = 3
    err = _refusal("ModelCache", wire)
    assert "backofLimit" in err.property_path and "did you mean" in err.reason


def test_numbers_inside_outputs_are_converted_too():
    """A value with dependencies (another resource's output, or a secret) arrives as an Output;
    the host converts inside it as well."""
    provider = LlmstackProvider()
    seen = []

    @pulumi.runtime.test
    def run():
        pulumi.runtime.set_mocks(RecordingMocks(), project="wire", stack="test", preview=True)
        wrapped = pulumi.Output.secret(3.0)
        converted = provider._value(wrapped, PropertyDefinition(type=PropertyType.INTEGER), "replicas")
        return converted.apply(seen.append)

    run()
    assert seen == [3] and isinstance(seen[0], int)


#: How the engine sends a secret value (``fn::secret`` in YAML, ``pulumi.secret`` elsewhere).
SECRET_ON_THE_WIRE = {rpc._special_sig_key: rpc._special_secret_sig, "value": "hf_example"}


def test_secret_inputs_stay_secret_through_the_host():
    inputs = _wire_inputs(to_wire(CASES["ModelCache"]) | {"hfToken": SECRET_ON_THE_WIRE})
    assert isinstance(inputs["hfToken"], pulumi.Output)
    assert _sync_await(inputs["hfToken"].is_secret())


#: Another resource's output as the engine sends it: an output value carrying its dependency, without a
#: value while it is unknown (at preview).
OTHER_RESOURCE = "urn:pulumi:test::wire::kubernetes:core/v1:Namespace::elsewhere"


def _output_value(value, known: bool) -> dict:
    out = {rpc._special_sig_key: rpc._special_output_value_sig, "dependencies": [OTHER_RESOURCE]}
    return {**out, "value": value} if known else out


def _output_paths(value, prop: dict, types: dict, path: tuple):
    """Where a program may pass an Output: every value whose schema property is not plain (nested too)."""
    if not prop.get("plain"):
        yield path
    ref = types.get(prop.get("$ref", "").split("/")[-1]) or {}
    if "properties" in ref and isinstance(value, dict):
        for key, v in value.items():
            if key in ref["properties"]:
                yield from _output_paths(v, ref["properties"][key], types, (*path, key))
    elif prop.get("type") == "array" and isinstance(value, list):
        for i, v in enumerate(value):
            yield from _output_paths(v, prop["items"], types, (*path, i))
    elif prop.get("type") == "object" and "additionalProperties" in prop and isinstance(value, dict):
        for key, v in value.items():
            yield from _output_paths(v, prop["additionalProperties"], types, (*path, key))


def _replaced(wire: dict, path: tuple, known: bool) -> dict:
    out = copy.deepcopy(wire)
    holder = out
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = _output_value(holder[path[-1]], known)
    return out


@functools.cache
def _provider() -> LlmstackProvider:
    return LlmstackProvider()  # infers the schema of every component: once


def _construct_as_the_server_does(component: str, wire: dict) -> Rendered:
    """A Construct call the way ``pulumi.provider.server`` runs it: build, send back the component's
    outputs, wait for every registration (an error in any of them is raised)."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="wire", stack="test", preview=True)

    async def construct():
        struct = struct_pb2.Struct()
        struct.update(wire)
        inputs = await ProviderServicer._construct_inputs(struct, {})
        result = _provider().construct("m", f"llmstack:index:{component}", inputs, pulumi.ResourceOptions())
        await rpc.serialize_properties(result.state, {})
        await wait_for_rpcs()

    _sync_await(construct())
    return Rendered("test", mocks.registrations)


@pytest.mark.parametrize("component", sorted(CASES))
def test_every_field_typed_input_takes_another_resources_output(component):
    """The schema types these fields ``pulumi.Input``, so a TypeScript, Go or YAML program passes outputs
    there (a pool's ``gpuResourceName``, a namespace's name). Known, an output renders what its value
    renders; unknown (a preview before the other resource exists), the component is still built. The real
    engine found ``scheduling.gpuResourceName`` breaking VllmService and MultiNodeVllmService: it is a key
    of the container's resources, and a key cannot be an Output (Python callers pass the pool's plain
    ``contract``, so no Python test saw it)."""
    schema = _provider().schema_dict()
    props = schema["resources"][f"llmstack:index:{component}"]["inputProperties"]
    wire = to_wire(CASES[component])
    plain = _construct_as_the_server_does(component, wire)
    failures = []
    for key, value in wire.items():
        for path in _output_paths(value, props[key], schema["types"], (key,)):
            where = ".".join(map(str, path))
            for known in (True, False):
                try:
                    rendered = _construct_as_the_server_does(component, _replaced(wire, path, known))
                except Exception as e:
                    failures.append(f"{where} ({'known' if known else 'unknown'}): {type(e).__name__}: {e}")
                    continue
                if known and (rendered.objects, rendered.helm_releases) != (plain.objects, plain.helm_releases):
                    failures.append(f"{where} (known): renders differently from the plain value")
    assert not failures, "\n".join(failures)
