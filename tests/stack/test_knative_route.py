"""Knative models through the gateway: one URL for every model, Knative ones included.

An exposed Knative model's HTTPRoute goes to Knative's cluster-local ingress (Kourier's
``kourier-internal``, in Knative's namespace, let in by a ReferenceGrant there) with the Host rewritten
to the Knative Service's cluster-local name, so Knative picks the Service, its activator holds the
request while a pod starts from zero and its traffic split (a Knative canary) applies. The Ingress
option reaches the Service Knative makes per Knative Service with ``upstream-vhost``. Timeouts add
the cold start; the revision's own timeout covers the route's. The policy pack's ``knative-traffic``
rule is checked here on a rendered Knative canary, passing and failing."""

import copy
import json
import sys

import pytest

from conftest import ROOT, assert_refused, render_with
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.cluster.knative_serving import LOCAL_GATEWAY_PORT, LOCAL_GATEWAY_SERVICE, SERVING_NAMESPACE
from llmstack_k8s.edge.model_route import MODEL_NAME_HEADER, REFERENCE_GRANT_API, ModelRoute, duration
from llmstack_k8s.rules import Declared, check_all, routes_reach_servers
from llmstack_k8s.serving.knative_vllm_service import KNATIVE_SERVING_API, QUEUE_PROXY_HTTP_PORT
from stack.test_cross_objects import BASE, H100_POOL, declared_for, manifests_of, model, render_with_config
from stack.test_knative_canary import _dev_canary_block
from stacks.config.gateway import knative_route_timeout, request_budget
from stacks.tools import render as render_mod
from support.schemas import validate_object

sys.path.insert(0, str(ROOT / "policy"))
import llmstack_policy as pack

GATEWAY = {"gatewayRef": {"name": "gw", "namespace": "edge"}, "hostname": "llm.example.com"}
TRAFFIC_POLICY = next(p for p in pack.POLICIES if p.name == "knative-traffic")


def objects(manifests, kind, name=None):
    return [o for o in manifests if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def ksvc(manifests, name):
    (svc,) = [o for o in manifests if o["apiVersion"] == KNATIVE_SERVING_API and o["metadata"]["name"] == name]
    return svc


def seconds(d: str) -> int:
    assert d.endswith("s") and d[:-1].isdigit(), d
    return int(d[:-1])


def dev_with_gateway(gateway=None, canary=False):
    """Pulumi.dev.yaml with llmstack:gateway added: its Knative model exposed, the other model not (it
    scales to zero through the KEDA HTTP add-on, which a route would bypass)."""
    project, config, secrets = render_mod.stack_config_env("dev")
    models = json.loads(config[f"{project}:models"])
    for m in models:
        if m.get("serving") == "knative":
            if canary:
                m["canary"] = _dev_canary_block()
        else:
            m["route"] = {"expose": False}
    config[f"{project}:models"] = json.dumps(models)
    config[f"{project}:gateway"] = json.dumps(gateway or GATEWAY)
    rendered, cfg = render_with_config(lambda: render_mod.run_program(project, "dev", config, secrets))
    return rendered, manifests_of(rendered), cfg


def prod_with_knative():
    """Pulumi.prod.yaml with a Knative model beside its two Deployments, through the same Gateway host."""
    project, config, secrets = render_mod.stack_config_env("prod")
    models = json.loads(config[f"{project}:models"])
    models.append(
        model(
            "qwen-kn",
            serving="knative",
            autoscaling={"minReplicas": 0, "maxReplicas": 2},
            servedModelName="qwen-kn-chat",
        )
    )
    config[f"{project}:models"] = json.dumps(models)
    rendered, cfg = render_with_config(lambda: render_mod.run_program(project, "prod", config, secrets))
    return manifests_of(rendered), cfg


def knative_model(cfg):
    (m,) = [m for m in cfg.models if m.serving == "knative"]
    return m


def assert_routed_through_knative(
    manifests, cfg, m, local=(SERVING_NAMESPACE, LOCAL_GATEWAY_SERVICE, LOCAL_GATEWAY_PORT)
):
    """The route's every rule: Knative's cluster-local ingress, Host = the Knative Service's, timeouts =
    cold start + request budget; a ReferenceGrant there lets in exactly this namespace's HTTPRoutes."""
    ns = cfg.team_of(m.name).effective_namespace if cfg.team_of(m.name) else cfg.namespace
    (route,) = objects(manifests, "HTTPRoute", m.name)
    validate_object(route)
    host = f"{m.name}.{ns}.svc.cluster.local"
    budget = knative_route_timeout(cfg.gateway, m)
    assert budget == m.cold_start_budget.total_seconds + request_budget(cfg.gateway, m)
    for rule in route["spec"]["rules"]:
        assert rule["backendRefs"] == [
            {"name": local[1], "namespace": local[0], "port": local[2]}
        ]  # one backend, no weights
        (rewrite,) = [f["urlRewrite"] for f in rule["filters"] if f["type"] == "URLRewrite"]
        assert rewrite["hostname"] == host
        assert seconds(rule["timeouts"]["request"]) == seconds(rule["timeouts"]["backendRequest"]) == budget
    served = [
        h["value"]
        for match in route["spec"]["rules"][0]["matches"]
        for h in match["headers"]
        if h["name"] == MODEL_NAME_HEADER
    ]
    assert served == [m.served_name, *(a.name for a in m.lora_adapters)]
    (grant,) = [g for g in objects(manifests, "ReferenceGrant") if g["metadata"]["namespace"] == local[0]]
    assert grant["apiVersion"] == REFERENCE_GRANT_API
    validate_object(grant)
    assert grant["spec"] == {
        "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": ns}],
        "to": [{"group": "", "kind": "Service", "name": local[1]}],
    }
    # Knative cuts a request at the revision's timeout: never before the route does.
    assert ksvc(manifests, m.name)["spec"]["template"]["spec"]["timeoutSeconds"] >= budget
    return route


def netpol_sources(manifests, name):
    (np,) = objects(manifests, "NetworkPolicy", name)
    return {
        v
        for rule in np["spec"]["ingress"]
        for peer in rule.get("from", [])
        for e in (peer.get("namespaceSelector") or {}).get("matchExpressions", [])
        for v in e["values"]
    }


# --- dev with the gateway: its Knative model exposed ----------------------------------------------


def test_dev_itself_stays_unexposed():
    manifests = manifests_of(render_mod.render("dev"))
    assert (
        not objects(manifests, "HTTPRoute")
        and not objects(manifests, "ReferenceGrant")
        and not objects(manifests, "Ingress")
    )


def test_dev_knative_model_routes_through_knatives_ingress():
    _, manifests, cfg = dev_with_gateway()
    m = knative_model(cfg)
    assert_routed_through_knative(manifests, cfg, m)
    assert [r["metadata"]["name"] for r in objects(manifests, "HTTPRoute")] == [m.name]  # the other model: expose false
    # What admits what: the Gateway calls Kourier, Kourier (or the activator) calls queue-proxy; the
    # Gateway's namespace never reaches the model's pods directly.
    sources = netpol_sources(manifests, m.name)
    assert SERVING_NAMESPACE in sources and "edge" not in sources
    problems = check_all(manifests, declared_for(cfg))
    assert not problems, "\n".join(problems)


def test_prod_variant_with_a_knative_model_shares_the_host_and_the_router():
    manifests, cfg = prod_with_knative()
    m = knative_model(cfg)
    route = assert_routed_through_knative(manifests, cfg, m)
    assert route["spec"]["hostnames"] == ["llm.example.com"]
    assert route["spec"]["parentRefs"][0]["name"] == "inference-gateway"
    # the Deployments keep their own Services / pools as backends
    for r in objects(manifests, "HTTPRoute"):
        if r["metadata"]["name"] != m.name:
            assert all("namespace" not in b for rule in r["spec"]["rules"] for b in rule["backendRefs"])
    problems = check_all(manifests, declared_for(cfg))  # includes the body-based router's header rule
    assert not problems, "\n".join(problems)


def test_knative_canary_through_the_gateway_is_one_backend_and_knatives_split():
    rendered, manifests, cfg = dev_with_gateway(canary=True)
    m = knative_model(cfg)
    assert_routed_through_knative(manifests, cfg, m)
    svc = ksvc(manifests, m.name)
    weight = m.canary.weight
    assert [t["percent"] for t in svc["spec"]["traffic"]] == [100 - weight, weight]
    assert not check_all(manifests, declared_for(cfg))
    # policy pack: knative-traffic passes on the real split ...
    res = [(r.type, r.name, copy.deepcopy(r.inputs)) for r in rendered.registrations if r.custom]
    assert run_policy(res) == []
    # ... and fails, with its fix, when the split is broken
    (inputs,) = [i for t, _, i in res if t.endswith(":Service") and i.get("apiVersion") == KNATIVE_SERVING_API]
    inputs["spec"]["traffic"][1]["percent"] = weight - 5
    found = run_policy(res)
    assert found and any(f"sum to {100 - 5}, not 100" in msg for msg, _ in found), found
    assert all(urn.startswith("urn:pulumi:dev::") for _, urn in found)


def run_policy(resources):
    from contract.test_policy import run

    return run(TRAFFIC_POLICY, "dev", resources)


def test_knative_traffic_is_in_the_policy_pack_once():
    assert [p.name for p in pack.POLICIES].count("knative-traffic") == 1
    # one source: the pack calls the library's rule, the one the cross-object checks run
    from llmstack_k8s import rules

    assert "rules.knative_traffic" in (ROOT / "policy" / "llmstack_policy.py").read_text()
    assert rules.knative_traffic.__module__ == "llmstack_k8s.rules.knative"


def test_ingress_option_reaches_knatives_service_with_the_host():
    gateway = {"kind": "ingress", "hostname": "llm.example.com"}
    _, manifests, cfg = dev_with_gateway(gateway)
    m = knative_model(cfg)
    (ing,) = objects(manifests, "Ingress", m.name)
    validate_object(ing)
    (path,) = ing["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"] == {"name": m.name, "port": {"number": 80}}  # Knative's Service for the ksvc
    notes = ing["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/upstream-vhost"] == f"{m.name}.{cfg.namespace}.svc.cluster.local"
    budget = m.cold_start_budget.total_seconds + request_budget(cfg.gateway, m)
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) == budget
    assert not objects(manifests, "ReferenceGrant")  # an Ingress stays in its namespace
    problems = check_all(manifests, declared_for(cfg))
    assert not problems, "\n".join(problems)


def test_knative_canary_through_an_ingress_needs_no_weighted_backends():
    """A Deployment's canary needs Gateway API (weighted backends); a Knative canary splits inside
    Knative, so the Ingress option carries it too."""
    _, manifests, cfg = dev_with_gateway({"kind": "ingress"}, canary=True)
    m = knative_model(cfg)
    (ing,) = objects(manifests, "Ingress", m.name)
    assert [p["backend"]["service"]["name"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]] == [m.name]
    assert [t["percent"] for t in ksvc(manifests, m.name)["spec"]["traffic"]] == [
        100 - m.canary.weight,
        m.canary.weight,
    ]
    problems = check_all(manifests, declared_for(cfg))
    assert not problems, "\n".join(problems)


EXISTING = {
    "install": False,
    "maxRevisionTimeoutSeconds": 3600,
    "features": [
        "kubernetes.podspec-persistent-volume-claim",
        "kubernetes.podspec-persistent-volume-write",
        "kubernetes.podspec-init-containers",
        "kubernetes.podspec-securitycontext",
        "kubernetes.podspec-tolerations",
        "kubernetes.podspec-nodeselector",
        "kubernetes.podspec-runtimeclassname",
        "kubernetes.podspec-priorityclassname",
        "kubernetes.podspec-volumes-emptydir",
    ],
}


def kn_stack(kn_config=None, gateway=None, **over):
    """A stack of one Knative model "kn" (``over``: its keys) behind GATEWAY; ``kn_config``: llmstack:knative."""
    m = model("kn", **{"serving": "knative", "autoscaling": {"minReplicas": 0, "maxReplicas": 2}, **over})
    cfg = {**copy.deepcopy(BASE), "gpuPool": H100_POOL, "gateway": gateway or GATEWAY, "models": [m]}
    if kn_config is not None:
        cfg["knative"] = kn_config
    return cfg


@pytest.mark.parametrize(
    "local, expected",
    [
        (None, ("kourier-system", "kourier-internal", 80)),  # Knative's release YAMLs
        (
            {"name": "knative-local-gateway", "namespace": "istio-system"},
            ("istio-system", "knative-local-gateway", 80),
        ),  # net-istio
    ],
)
def test_existing_knative_routes_to_its_local_gateway(local, expected):
    knative = {**EXISTING, "namespaces": ["knative-serving", "kourier-system", "istio-system"]}
    if local:
        knative["localGateway"] = local
    rendered, cfg = render_with_config(lambda: render_with(kn_stack(knative)))
    manifests = manifests_of(rendered)
    assert_routed_through_knative(manifests, cfg, knative_model(cfg), expected)
    problems = check_all(manifests, declared_for(cfg))
    assert not problems, "\n".join(problems)


def test_an_exposed_models_revision_timeout_covers_the_route():
    rendered, cfg = render_with_config(
        lambda: render_with(kn_stack(gateway={**GATEWAY, "requestTimeoutSeconds": 1800}))
    )
    manifests = manifests_of(rendered)
    m = knative_model(cfg)
    # default would be startup + 600: raised to the route's startup + 1800
    assert (
        ksvc(manifests, "kn")["spec"]["template"]["spec"]["timeoutSeconds"] == m.cold_start_budget.total_seconds + 1800
    )
    assert_routed_through_knative(manifests, cfg, m)


def test_long_durations_stay_gateway_api_durations():
    assert duration(900) == "900s" and duration(99999) == "99999s"
    assert duration(100000) == "27h46m40s"


# --- refusals: one message naming the stack file and key, nothing registered -----------------------


@pytest.mark.parametrize(
    "config, expected",
    [
        (
            kn_stack(route={"kvCacheAwareRouting": True}),
            "(name: kn).route.kvCacheAwareRouting: cannot be used with serving: knative",
        ),
        (
            kn_stack(knative={"requestTimeoutSeconds": 700}),
            "(name: kn).knative.requestTimeoutSeconds: 700 s is shorter than the route's timeout",
        ),
        (
            kn_stack({**EXISTING, "maxRevisionTimeoutSeconds": 900}),
            "(name: kn).route.requestTimeoutSeconds: the route's timeout",
        ),
        (
            kn_stack({"localGateway": {"namespace": "x"}}),
            "localGateway describes an existing Knative, but install is true",
        ),
        (
            kn_stack({**EXISTING, "localGateway": {"name": "knative-local-gateway", "namespace": "istio-system"}}),
            "localGateway.namespace 'istio-system' is not in namespaces",
        ),
        (
            kn_stack({**EXISTING, "namespaces": ["knative-serving"]}),
            "(name: kn).route.expose: routes through your Knative's cluster-local ingress",
        ),
        (kn_stack({**EXISTING, "localGateway": {"name": "Kourier_Internal"}}), "localGateway.name"),
    ],
)
def test_bad_knative_exposure_is_refused(config, expected):
    assert_refused(config, expected)


def route_args(**over):
    args = {
        "namespace": "llm",
        "service_name": "kn",
        "served_model_names": ["kn"],
        "gateway": {"name": "gw", "namespace": "edge"},
        "knative": {
            "host": "kn.llm.svc.cluster.local",
            "local_gateway_namespace": "knative-serving",
            "cold_start_seconds": 300,
        },
    }
    args.update(over)
    return args


@pytest.mark.parametrize(
    "over, expected",
    [
        ({"inference_pool_name": "kn"}, "inference_pool_name: cannot be combined with knative"),
        ({"canary": {"service_name": "kn-canary", "weight": 10}}, "canary: cannot be combined with knative"),
        (
            {"knative": {"host": "kn.llm", "local_gateway_namespace": "knative-serving", "cold_start_seconds": -1}},
            "knative.cold_start_seconds",
        ),
    ],
)
def test_model_route_refuses_knative_args_that_cannot_work(over, expected):
    import pulumi

    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    with pytest.raises(ComponentArgsError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        ModelRoute("kn", route_args(**over))
    assert mocks.registrations == []


# --- the cross-object rules catch a broken Knative route -------------------------------------------


def _broken(change):
    _, manifests, cfg = dev_with_gateway()
    manifests = copy.deepcopy(manifests)
    change(manifests, knative_model(cfg))
    return routes_reach_servers(manifests, declared_for(cfg))


def _route(ms, m):
    return objects(ms, "HTTPRoute", m.name)[0]


def _drop_grant(ms, m):
    ms[:] = [o for o in ms if o["kind"] != "ReferenceGrant"]


def _grant_other_namespace(ms, m):
    objects(ms, "ReferenceGrant")[0]["spec"]["from"][0]["namespace"] = "elsewhere"


def _host_typo(ms, m):
    for rule in _route(ms, m)["spec"]["rules"]:
        rule["filters"][0]["urlRewrite"]["hostname"] = f"{m.name}x.llm-dev.svc.cluster.local"


def _no_rewrite(ms, m):
    for rule in _route(ms, m)["spec"]["rules"]:
        rule["filters"][0]["urlRewrite"].pop("hostname")


def _wrong_port(ms, m):
    for rule in _route(ms, m)["spec"]["rules"]:
        rule["backendRefs"][0]["port"] = 8080


def _policy_blocks_kourier(ms, m):
    (np,) = objects(ms, "NetworkPolicy", m.name)
    for rule in np["spec"]["ingress"]:
        for peer in rule.get("from", []):
            for e in (peer.get("namespaceSelector") or {}).get("matchExpressions", []):
                e["values"] = [v for v in e["values"] if v != SERVING_NAMESPACE] or ["elsewhere"]


@pytest.mark.parametrize(
    "change, expected",
    [
        (_drop_grant, "no ReferenceGrant there lets HTTPRoutes of namespace 'llm-dev' use it"),
        (_grant_other_namespace, "no ReferenceGrant there"),
        (_host_typo, "names no Knative Service of the stack"),
        (_no_rewrite, "sends Knative's ingress the Host None"),
        (_wrong_port, "which is not the Knative ingress's cluster-local Service"),
        (
            _policy_blocks_kourier,
            "no NetworkPolicy admits namespace 'knative-serving' to KnativeService llm-dev/qwen-1-5b on port "
            f"{QUEUE_PROXY_HTTP_PORT}",
        ),
    ],
)
def test_cross_checks_catch_a_broken_knative_route(change, expected):
    problems = _broken(change)
    assert any(expected in p for p in problems), problems


def test_cross_checks_catch_an_ingress_without_the_knative_host():
    _, manifests, cfg = dev_with_gateway({"kind": "ingress"})
    m = knative_model(cfg)
    assert not routes_reach_servers(manifests, declared_for(cfg))
    ing = objects(manifests, "Ingress", m.name)[0]
    ing["metadata"]["annotations"].pop("nginx.ingress.kubernetes.io/upstream-vhost")
    assert any("sends Knative's ingress the Host None" in p for p in routes_reach_servers(manifests, declared_for(cfg)))


def test_existing_knative_without_a_declared_local_gateway_is_caught():
    rendered, cfg = render_with_config(lambda: render_with(kn_stack({**EXISTING})))
    manifests = manifests_of(rendered)
    declared = declared_for(cfg)
    assert not routes_reach_servers(manifests, declared)
    undeclared = Declared(**{**declared.__dict__, "knative_local_gateways": ()})
    assert any(
        "not the Knative ingress's cluster-local Service" in p for p in routes_reach_servers(manifests, undeclared)
    )
