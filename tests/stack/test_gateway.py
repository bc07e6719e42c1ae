"""The serving edge: an HTTPRoute per model on one Gateway host (or an ingress-nginx
Ingress), routed by the body's model name with a path-per-model fallback, timeouts of the model's
request budget, only /v1 exposed, and NetworkPolicies admitting the gateway to exposed models only."""

import copy

import pulumi
import pytest

from conftest import assert_refused, render_with
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.edge.model_route import API_PREFIX, MODEL_NAME_HEADER, ModelRoute
from llmstack_k8s.rules import Declared, Flow, routes_reach_servers, selected
from llmstack_k8s.rules.network import admits
from llmstack_k8s.serving.vllm_pod import HTTP_PORT
from stack.test_cross_objects import BASE, H100_POOL, _render, model
from stacks.config.gateway import request_budget
from support.schemas import validate_object


def objects(manifests, kind):
    return [o for o in manifests if o["kind"] == kind]


def seconds(duration: str) -> int:
    assert duration.endswith("s"), duration
    return int(duration[:-1])


def test_prod_routes_both_models_through_one_gateway_host():
    manifests, _declared, cfg = _render("prod")
    routes = objects(manifests, "HTTPRoute")
    assert sorted(r["metadata"]["name"] for r in routes) == sorted(m.name for m in cfg.models)
    assert {tuple(r["spec"]["hostnames"]) for r in routes} == {("llm.example.com",)}
    assert {(p["namespace"], p["name"]) for r in routes for p in r["spec"]["parentRefs"]} == {
        ("gateway", "inference-gateway")
    }
    for r in routes:
        m = next(m for m in cfg.models if m.name == r["metadata"]["name"])
        by_name, fallback = r["spec"]["rules"]
        # Routed by the body's model name (the body-based router's header) on /v1 ...
        assert [
            h["value"] for match in by_name["matches"] for h in match["headers"] if h["name"] == MODEL_NAME_HEADER
        ] == [m.served_name]
        # ... or by the path-per-model fallback, rewritten to /v1.
        assert fallback["matches"][0]["path"]["value"] == f"/models/{m.name}{API_PREFIX}"
        assert fallback["filters"][0]["urlRewrite"]["path"]["replacePrefixMatch"] == API_PREFIX
        backends = {
            (b.get("kind", "Service"), b["name"], b.get("port"))
            for rule in r["spec"]["rules"]
            for b in rule["backendRefs"]
        }
        # The model's Service, or (kvCacheAwareRouting) its InferencePool: tests/stack/test_inference_pool.py.
        assert backends == (
            {("InferencePool", m.name, None)}
            if m.route and m.route.kv_cache_aware_routing
            else {("Service", m.name, HTTP_PORT)}
        )


@pytest.mark.parametrize("stack", ["prod", "ingress-one-model-exposed"])
def test_route_timeouts_cover_the_request_budget(stack):
    manifests, _, cfg = _render(stack)
    exposed = objects(manifests, "HTTPRoute") + objects(manifests, "Ingress")
    assert exposed
    for r in exposed:
        m = next(m for m in cfg.models if m.name == r["metadata"]["name"])
        budget = request_budget(cfg.gateway, m)
        assert budget >= 60
        if r["kind"] == "HTTPRoute":
            for rule in r["spec"]["rules"]:
                assert (
                    seconds(rule["timeouts"]["request"]) >= budget
                    and seconds(rule["timeouts"]["backendRequest"]) >= budget
                )
        else:
            notes = r["metadata"]["annotations"]
            for key in ("proxy-read-timeout", "proxy-send-timeout"):
                assert int(notes[f"nginx.ingress.kubernetes.io/{key}"]) >= budget


def test_a_models_own_budget_overrides_the_gateways():
    cfg = {
        **copy.deepcopy(BASE),
        "gpuPool": H100_POOL,
        "gateway": {"gatewayRef": {"name": "gw", "namespace": "edge"}, "requestTimeoutSeconds": 300},
        "models": [model("short"), model("long", route={"requestTimeoutSeconds": 3600})],
    }
    routes = {o["metadata"]["name"]: o for o in render_with(cfg).objects if o["kind"] == "HTTPRoute"}
    assert {n: r["spec"]["rules"][0]["timeouts"]["request"] for n, r in routes.items()} == {
        "short": "300s",
        "long": "3600s",
    }


@pytest.mark.parametrize("stack", ["prod", "ingress-one-model-exposed"])
def test_only_the_api_is_exposed_never_metrics(stack):
    manifests, _, _ = _render(stack)
    paths = [
        m["path"]["value"]
        for r in objects(manifests, "HTTPRoute")
        for rule in r["spec"]["rules"]
        for m in rule["matches"]
    ]
    paths += [
        p["path"] for i in objects(manifests, "Ingress") for rule in i["spec"]["rules"] for p in rule["http"]["paths"]
    ]
    assert paths
    for p in paths:
        assert p == API_PREFIX or (p.startswith("/models/") and f"{API_PREFIX}" in p), p
        assert "metrics" not in p


def test_route_objects_validate_against_the_pinned_crds_and_schemas():
    for stack in ("prod", "ingress-one-model-exposed"):
        manifests, _, _ = _render(stack)
        for o in objects(manifests, "HTTPRoute") + objects(manifests, "Ingress"):
            validate_object(o)


def test_ingress_option_streams_with_tls_from_cert_manager():
    manifests, _, _ = _render("ingress-one-model-exposed")
    (ingress,) = objects(manifests, "Ingress")
    assert ingress["metadata"]["name"] == "public"
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert notes["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    assert notes["nginx.ingress.kubernetes.io/rewrite-target"] == "/v1/$1"
    assert notes["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"] == [{"hosts": ["llm.example.com"], "secretName": "llm-tls"}]
    assert ingress["spec"]["ingressClassName"] == "nginx"


def _admitted(manifests, workload_name: str, source: str) -> bool:
    # The model's namespace: the stack's, or its team's (prod's llama-70b is the research team's).
    ns = next(
        d["metadata"]["namespace"] for d in objects(manifests, "Deployment") if d["metadata"]["name"] == workload_name
    )
    (w,) = [
        w
        for w in selected(manifests, ns, {"matchLabels": {"app.kubernetes.io/instance": workload_name}})
        if w.kind == "Deployment"
    ]
    policies = [
        p
        for p in objects(manifests, "NetworkPolicy")
        if p["metadata"]["namespace"] == ns
        and all(w.labels.get(k) == v for k, v in p["spec"]["podSelector"].get("matchLabels", {}).items())
    ]
    assert policies, f"{workload_name} has no NetworkPolicy"
    return any(admits(p, Flow(source, w, HTTP_PORT, "test")) for p in policies)


def test_a_model_without_a_route_is_unreachable_from_the_gateway():
    manifests, _, _ = _render("ingress-one-model-exposed")
    assert _admitted(manifests, "public", "ingress-nginx")
    assert not _admitted(manifests, "internal", "ingress-nginx")
    assert not any(o["metadata"]["name"] == "internal" for o in objects(manifests, "Ingress"))
    # Its allow-list still holds: its own clients and Prometheus.
    assert _admitted(manifests, "internal", "apps") and _admitted(manifests, "internal", "monitoring")
    assert not _admitted(manifests, "internal", "elsewhere")


def test_prod_gateway_namespace_is_admitted_through_the_routes_only():
    manifests, _, cfg = _render("prod")
    assert "gateway" not in cfg.network.client_namespaces
    for m in cfg.models:
        assert _admitted(manifests, m.name, "gateway")


# --- the cross-object rule catches broken routes --------------------------------------------------


def _broken(stack, change):
    manifests, declared, _ = _render(stack)
    manifests = copy.deepcopy(manifests)
    for o in manifests:
        change(o)
    return routes_reach_servers(manifests, declared)


def test_rule_passes_on_the_rendered_stacks():
    for stack in ("prod", "ingress-one-model-exposed"):
        manifests, declared, _ = _render(stack)
        assert routes_reach_servers(manifests, declared) == []


def test_rule_short_or_missing_timeouts():
    def short(o):
        if o["kind"] == "HTTPRoute":
            o["spec"]["rules"][0]["timeouts"] = {"request": "30s"}
            o["spec"]["rules"][1].pop("timeouts")

    problems = _broken("prod", short)
    assert any("30s" in p and "cut off" in p for p in problems), problems
    assert any("unset" in p for p in problems), problems

    def nginx_default(o):
        if o["kind"] == "Ingress":
            del o["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]

    assert any("proxy-read-timeout" in p for p in _broken("ingress-one-model-exposed", nginx_default))


def test_rule_gateway_blocked_by_network_policy():
    def drop_gateway(o):
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "llama-70b":
            for rule in o["spec"]["ingress"]:
                for peer in rule["from"]:
                    for e in (peer.get("namespaceSelector") or {}).get("matchExpressions") or []:
                        e["values"] = [v for v in e["values"] if v != "gateway"]

    problems = _broken("prod", drop_gateway)
    assert any("'gateway'" in p and "llama-70b" in p for p in problems), problems


def test_rule_backend_and_gateway_must_exist():
    def typo(o):
        if o["kind"] == "HTTPRoute" and o["metadata"]["name"] == "llama-70b":
            o["spec"]["rules"][0]["backendRefs"][0]["name"] = "llama-7"

    assert any("Service research/llama-7," in p for p in _broken("prod", typo))  # the research team's namespace
    manifests, declared, _ = _render("prod")
    undeclared = Declared(**{**declared.__dict__, "objects": frozenset()})
    assert any("Gateway gateway/inference-gateway" in p for p in routes_reach_servers(manifests, undeclared))


# --- bad input: one message naming the stack file and key, nothing registered ---------------------

GATEWAY = {"gatewayRef": {"name": "gw", "namespace": "edge"}}


def _stack(gateway=None, **model_over):
    cfg = {**copy.deepcopy(BASE), "gpuPool": H100_POOL, "models": [model("m", **model_over)]}
    if gateway is not None:
        cfg["gateway"] = gateway
    return cfg


@pytest.mark.parametrize(
    "config, expected",
    [
        (_stack({}), "llmstack:gateway.gatewayRef: not set"),
        (_stack(route={"expose": True}), "route: is set but llmstack:gateway is not"),
        (_stack({**GATEWAY, "requestTimeoutSeconds": 30}), "requestTimeoutSeconds"),
        (_stack(GATEWAY, route={"requestTimeoutSeconds": 59}), "requestTimeoutSeconds"),
        (_stack({**GATEWAY, "hostname": "LLM.example.com"}), "is not a DNS host name"),
        (_stack({**GATEWAY, "ingress": {}}), "gateway.ingress: applies to kind ingress"),
        (
            _stack({"kind": "ingress", "gatewayRef": {"name": "gw", "namespace": "edge"}}),
            "gateway.gatewayRef: applies to kind gatewayApi",
        ),
        (
            _stack({"kind": "ingress", "ingress": {"clusterIssuer": "le"}}),
            "tlsSecretName: not set, but clusterIssuer is",
        ),
        (
            _stack({"kind": "ingress", "ingress": {"tlsSecretName": "t"}}),
            "hostname: not set, but ingress.tlsSecretName is",
        ),
        (_stack({"kind": "ingress", "ingress": {"maxBodySize": "16 MB"}}), "is not an nginx size"),
        # a Knative model is exposed through Knative's ingress (tests/stack/test_knative_route.py); no picker for it
        (
            _stack(
                GATEWAY,
                serving="knative",
                autoscaling={"minReplicas": 1, "maxReplicas": 1},
                route={"kvCacheAwareRouting": True},
            ),
            "(name: m).route.kvCacheAwareRouting: cannot be used with serving: knative",
        ),
        (
            _stack(
                {**GATEWAY},
                cache={"size": "20Gi", "accessMode": "ReadWriteOnce"},
                autoscaling={"minReplicas": 0, "maxReplicas": 1},
            ),
            "(name: m).route.expose: a Deployment scaled to zero",
        ),
    ],
)
def test_bad_gateway_config_is_refused(config, expected):
    if "autoscaling" in config["models"][0] and config["models"][0]["autoscaling"]["minReplicas"] == 0:
        config["autoscaling"] = {"httpAddOn": True}
    assert_refused(config, expected)


def test_an_unexposed_zero_scaled_model_is_accepted():
    cfg = _stack(
        GATEWAY,
        route={"expose": False},
        cache={"size": "20Gi", "accessMode": "ReadWriteOnce"},
        autoscaling={"minReplicas": 0, "maxReplicas": 1},
    )
    cfg["autoscaling"] = {"httpAddOn": True}
    assert not [o for o in render_with(cfg).objects if o["kind"] == "HTTPRoute"]


# --- the component on its own -------------------------------------------------------------------

ROUTE = {
    "namespace": "llm",
    "service_name": "qwen",
    "served_model_names": ["qwen-chat"],
    "gateway": {"name": "gw", "namespace": "edge"},
}


@pytest.mark.parametrize(
    "over, expected",
    [
        ({"request_timeout_seconds": 30}, "args.request_timeout_seconds: 30 s is below 60 s"),
        ({"served_model_names": []}, "args.served_model_names: empty"),
        ({"gateway": None}, "args.gateway: required with kind gatewayApi"),
        (
            {"kind": "ingress", "ingress": {"cluster_issuer": "le"}},
            "args.ingress.tls_secret_name: required with cluster_issuer",
        ),
        ({"kind": "ingress", "ingress": {"tls_secret_name": "t"}}, "args.hostnames: required with TLS"),
        ({"kind": "gRPC"}, "args.kind"),
    ],
)
def test_model_route_refuses_bad_args_before_registering(over, expected):
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="llmstack", stack="unit", preview=True)
    with pytest.raises(ComponentArgsError) as err:
        ModelRoute("qwen", {**ROUTE, **over})
    assert expected in str(err.value) and str(err.value).startswith("ModelRoute 'qwen': "), str(err.value)
    assert mocks.registrations == []
