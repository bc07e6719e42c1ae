"""KV-cache-aware routing: an InferencePool over a model's server pods, its Endpoint Picker
(pinned image, read-only RBAC, config with the metric names from metrics.py), the HTTPRoute pointing
at the pool; prod opts the 8B model in. The cross-object rule sees broken copies."""

import copy

import pulumi
import pytest
import yaml

from conftest import assert_refused
from llmstack_k8s import versions
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.edge.inference_pool import EXT_PROC_PORT, InferencePool, picker_config
from llmstack_k8s.observability import metrics
from llmstack_k8s.rules import Flow, inference_pools_reach_servers, selected
from llmstack_k8s.rules.network import admits
from llmstack_k8s.serving.vllm_pod import HTTP_PORT
from stack.test_cross_objects import BASE, H100_POOL, _render, model
from unit.test_metrics import exported_wire_names


def of(manifests, kind, name=None):
    return [o for o in manifests if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def test_prod_routes_the_8b_model_through_its_pool_and_the_70b_to_its_service():
    manifests, _, _ = _render("prod")
    backends = {
        r["metadata"]["name"]: {
            (b.get("kind", "Service"), b["name"]) for rule in r["spec"]["rules"] for b in rule["backendRefs"]
        }
        for r in of(manifests, "HTTPRoute")
    }
    assert backends == {"llama-8b": {("InferencePool", "llama-8b")}, "llama-70b": {("Service", "llama-70b")}}
    assert [p["metadata"]["name"] for p in of(manifests, "InferencePool")] == ["llama-8b"]


def test_the_pool_selects_exactly_the_models_server_pods():
    manifests, _, _ = _render("prod")
    (pool,) = of(manifests, "InferencePool")
    chosen = selected(manifests, "llm", pool["spec"]["selector"])
    assert [(w.kind, w.name) for w in chosen] == [("Deployment", "llama-8b")]
    assert pool["spec"]["targetPorts"] == [{"number": HTTP_PORT}]
    assert pool["spec"]["endpointPickerRef"] == {
        "kind": "Service",
        "name": "llama-8b-epp",
        "port": {"number": EXT_PROC_PORT},
        "failureMode": "FailOpen",
    }


def test_the_picker_runs_the_pinned_image_with_read_only_rbac():
    manifests, _, _ = _render("prod")
    (deploy,) = of(manifests, "Deployment", "llama-8b-epp")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == versions.EPP_IMAGE and ":latest" not in container["image"]
    args = container["args"]
    assert args[args.index("--pool-name") + 1] == "llama-8b" and args[args.index("--pool-namespace") + 1] == "llm"
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "llama-8b-epp"
    (role,) = of(manifests, "Role", "llama-8b-epp")
    assert all(set(r["verbs"]) <= {"get", "watch", "list"} for r in role["rules"])
    assert not of(manifests, "ClusterRole", "llama-8b-epp")


def test_the_picker_reads_metrics_from_the_metrics_module_that_the_pinned_vllm_exports():
    engine = yaml.safe_load(picker_config(serves_lora=True))["plugins"][-1]["parameters"]["engineConfigs"][0]
    read = {v for k, v in engine.items() if k.endswith("Spec")}
    assert read == metrics.PICKER_METRICS
    # Every one is on a plain vLLM 0.32 server, but the LoRA info only where --enable-lora is set
    # (the real-vLLM suite checks it on dev's server, which serves an adapter).
    assert sorted(metrics.PICKER_METRICS - exported_wire_names()) == [metrics.PICKER_LORA_REQUESTS_INFO]
    without = yaml.safe_load(picker_config(serves_lora=False))["plugins"][-1]["parameters"]["engineConfigs"][0]
    assert without["loraSpec"] == ""


def test_the_gateway_reaches_the_picker_and_the_pool_but_clients_do_not_reach_the_picker():
    manifests, _, _ = _render("prod")
    (picker,) = list(selected(manifests, "llm", {"matchLabels": {"app.kubernetes.io/instance": "llama-8b-epp"}}))
    (policy,) = of(manifests, "NetworkPolicy", "llama-8b-epp")
    assert admits(policy, Flow("gateway", picker, EXT_PROC_PORT, "test"))
    assert not admits(policy, Flow("apps", picker, EXT_PROC_PORT, "test"))


def test_bad_kv_cache_routing_config_is_refused():
    ingress = {
        **copy.deepcopy(BASE),
        "gpuPool": H100_POOL,
        "gateway": {"kind": "ingress"},
        "models": [model("m", route={"kvCacheAwareRouting": True})],
    }
    assert_refused(ingress, "route.kvCacheAwareRouting: needs llmstack:gateway.kind gatewayApi")
    hidden = {
        **copy.deepcopy(BASE),
        "gpuPool": H100_POOL,
        "gateway": {"gatewayRef": {"name": "gw", "namespace": "edge"}},
        "models": [model("m", route={"kvCacheAwareRouting": True, "expose": False})],
    }
    assert_refused(hidden, "route.kvCacheAwareRouting: needs the model exposed")


def test_the_component_refuses_an_empty_selector():
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="llmstack", stack="unit", preview=True)
    with pytest.raises(ComponentArgsError, match=r"args.pod_selector: empty"):
        InferencePool("m", {"namespace": "llm", "pod_selector": {}, "gateway_namespace": "edge"})
    assert mocks.registrations == []


# --- the cross-object rule catches broken pools --------------------------------------------------


def _broken(change):
    manifests, declared, _ = _render("prod")
    manifests = copy.deepcopy(manifests)
    for o in manifests:
        change(o)
    return inference_pools_reach_servers(manifests, declared)


def test_rule_passes_on_prod():
    manifests, declared, _ = _render("prod")
    assert inference_pools_reach_servers(manifests, declared) == []


def test_rule_pool_selecting_nothing_or_the_wrong_port():
    def typo(o):
        if o["kind"] == "InferencePool":
            o["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] = "llama-8"

    assert any("selects no pods" in p for p in _broken(typo))

    def port(o):
        if o["kind"] == "InferencePool":
            o["spec"]["targetPorts"] = [{"number": 8080}]

    assert any("targets port 8080" in p for p in _broken(port))


def test_rule_gateway_blocked_from_picker_or_pods():
    def close_picker(o):
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "llama-8b-epp":
            o["spec"]["ingress"] = o["spec"]["ingress"][1:]

    assert any("'gateway' to Deployment llm/llama-8b-epp" in p for p in _broken(close_picker))

    def close_pods(o):
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "llama-8b":
            for rule in o["spec"]["ingress"]:
                rule["from"] = [p for p in rule["from"] if "namespaceSelector" not in p]

    problems = _broken(close_pods)
    assert any("'gateway' to Deployment llm/llama-8b on port 8000" in p for p in problems), problems


def test_rule_route_to_a_missing_pool():
    def gone(o):
        if o["kind"] == "HTTPRoute" and o["metadata"]["name"] == "llama-8b":
            o["spec"]["rules"][0]["backendRefs"][0]["name"] = "llama-9b"

    assert any("InferencePool llm/llama-9b" in p for p in _broken(gone))
