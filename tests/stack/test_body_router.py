"""The body-based router: gateway.bodyBasedRouting installs the Inference Extension's BBR
beside the Gateway, so one URL serves every model with the model named only in the body. Its objects
validate (core kinds with kubernetes-validate, the Istio hook against Istio 1.30.3's CRDs), match the
upstream chart at the pinned release, connect to the routes (cross-object rule) and run locked down."""

import copy
import itertools
import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import assert_refused, render_with, rendered_stack
from llmstack_k8s import versions
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.edge.body_router import GRPC_PORT, HEALTH_PORT, BodyRouter, router_args
from llmstack_k8s.edge.inference_objective import OBJECTIVE_HEADER
from llmstack_k8s.edge.model_route import MODEL_NAME_HEADER
from llmstack_k8s.rules import body_routers_reach_routes, check_all
from stack.test_canary import GATEWAY
from stack.test_cross_objects import BASE, H100_POOL, _render, declared_for, manifests_of, model, render_with_config
from support.schemas import validate_object

CHART = Path(__file__).resolve().parents[1] / "fixtures" / "body-based-routing-v1.5.0"
NAME, NS, GW = "body-based-router", "gateway", "inference-gateway"


def stack(provider: str = "istio", **bbr) -> dict:
    return {
        **BASE,
        "gpuPool": H100_POOL,
        "gateway": {**GATEWAY, "bodyBasedRouting": {"install": True, "provider": provider, **bbr}},
        "models": [model("a"), model("b", route={"kvCacheAwareRouting": True})],
    }


def in_gateway_ns(objects) -> dict:
    out = {}
    for o in objects:
        if (o.get("metadata") or {}).get("namespace") == NS:
            assert (o["kind"], o["metadata"]["name"]) not in out
            out[o["kind"]] = o
    return out


@pytest.fixture(scope="module")
def istio():
    rendered, cfg = render_with_config(lambda: render_with(stack()))
    return manifests_of(rendered), cfg


def test_istio_install_renders_the_router_and_its_hook_beside_the_gateway(istio):
    manifests, _ = istio
    objs = in_gateway_ns(manifests)
    assert set(objs) == {
        "ServiceAccount",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "EnvoyFilter",
        "DestinationRule",
    }
    for o in objs.values():  # core kinds: kubernetes-validate; EnvoyFilter/DestinationRule: Istio 1.30.3's CRDs
        validate_object(o)
    assert not [
        o
        for o in manifests
        if o["kind"] in ("Role", "RoleBinding", "ClusterRole") and "router" in o["metadata"]["name"]
    ]
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == versions.BBR_IMAGE and versions.BBR_IMAGE.endswith(":" + versions.EPP_VERSION)
    # locked down: non-root, no escalation, nothing writable, no capabilities
    assert pod["securityContext"]["runAsNonRoot"] and c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["readinessProbe"]["grpc"]["port"] == HEALTH_PORT
    assert objs["Deployment"]["spec"]["replicas"] == 2 and objs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    # only the Gateway's namespace, only on ext-proc
    (rule,) = objs["NetworkPolicy"]["spec"]["ingress"]
    assert rule["ports"] == [{"port": GRPC_PORT, "protocol": "TCP"}]
    assert [v for p in rule["from"] for e in p["namespaceSelector"]["matchExpressions"] for v in e["values"]] == [NS]


def test_the_router_sets_the_header_every_route_matches_and_the_objective_header():
    plugins = {}
    args = router_args()
    for flag, value in itertools.pairwise(args):
        if flag == "--plugin":  # BBR's parser: <type>:<name>[:<json>], the json valid
            kind, name, conf = value.split(":", 2)
            plugins[name] = (kind, json.loads(conf))
    assert {(k, c["fieldName"], c["headerName"]) for k, c in plugins.values()} == {
        ("body-field-to-header", "model", MODEL_NAME_HEADER),
        ("body-field-to-header", "model", OBJECTIVE_HEADER),
    }
    # the chart's default plugin is this same extractor with the same header
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["bbr"]["plugins"][0]["json"] == {"fieldName": "model", "headerName": MODEL_NAME_HEADER}
    assert values["bbr"]["image"]["tag"] == versions.EPP_VERSION and values["bbr"]["port"] == GRPC_PORT
    assert "--streaming" in args and "--enable-pprof=false" in args


def _chart(template: str, **values) -> list[dict]:
    """A chart template with the component's values filled in (its conditionals are on the provider only)."""
    text = (CHART / template).read_text()
    text = re.sub(r"^\{\{-? (if|end)[^}]*\}\}\n", "", text, flags=re.M)
    text = re.sub(
        r"^\s*\{\{- if \.Values\.provider\.istio\.envoyFilter\.anchorSubFilter \}\}\n(.*\n)*?\s*\{\{- end \}\}\n",
        "",
        text,
        flags=re.M,
    )
    subs = {
        ".Values.bbr.name": NAME,
        ".Release.Namespace": NS,
        ".Values.inferenceGateway.name": GW,
        ".Values.provider.istio.envoyFilter.operation": "INSERT_FIRST",
        ".Values.bbr.port": str(GRPC_PORT),
        ".Values.bbr.healthCheckPort": str(HEALTH_PORT),
        **values,
    }
    text = re.sub(r"\{\{ *([^} ]+) *\}\}", lambda m: subs[m.group(1)], text)
    return [d for d in yaml.safe_load_all(text) if d]


def test_the_istio_hook_is_the_charts(istio):
    objs = in_gateway_ns(istio[0])
    chart = {d["kind"]: d for d in _chart("istio.yaml")}
    assert objs["EnvoyFilter"]["spec"] == chart["EnvoyFilter"]["spec"]
    assert objs["DestinationRule"]["spec"] == chart["DestinationRule"]["spec"]
    assert objs["EnvoyFilter"]["apiVersion"] == chart["EnvoyFilter"]["apiVersion"]


def test_the_gke_hook_is_the_charts():
    """No CRD of GKE's networking.gke.io kinds is public: the structure is checked against the chart's."""
    objs = in_gateway_ns(render_with(stack("gke")).objects)
    assert "EnvoyFilter" not in objs and "DestinationRule" not in objs
    chart = {d["kind"]: d for d in _chart("gke.yaml")}
    assert objs["GCPRoutingExtension"]["spec"] == chart["GCPRoutingExtension"]["spec"]
    assert objs["HealthCheckPolicy"]["spec"] == chart["HealthCheckPolicy"]["spec"]
    for kind in ("Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget"):
        validate_object(objs[kind])


def test_cross_object_checks_pass_and_catch_a_broken_hook(istio):
    manifests, cfg = istio
    assert check_all(manifests, declared_for(cfg)) == []
    declared = declared_for(cfg)
    # the router's Service renamed: the hook calls nothing
    broken = copy.deepcopy(manifests)
    (svc,) = [o for o in broken if o["kind"] == "Service" and o["metadata"]["namespace"] == NS]
    svc["metadata"]["name"] = "other"
    assert any("which is no Service of the stack" in p for p in body_routers_reach_routes(broken, declared))
    # a route matching a header the router never sets
    broken = copy.deepcopy(manifests)
    route = next(o for o in broken if o["kind"] == "HTTPRoute")
    route["spec"]["rules"][0]["matches"][0]["headers"][0]["name"] = "X-Model"
    assert any(
        "matches header X-Model, which the body-based router" in p for p in body_routers_reach_routes(broken, declared)
    )
    # the NetworkPolicy admitting another namespace
    broken = copy.deepcopy(manifests)
    (pol,) = [o for o in broken if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == NS]
    pol["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] = ["apps"]
    assert any("no NetworkPolicy admits namespace 'gateway'" in p for p in body_routers_reach_routes(broken, declared))
    # the hook aimed at a Gateway in another namespace (Istio would ignore it)
    broken = copy.deepcopy(manifests)
    (ef,) = [o for o in broken if o["kind"] == "EnvoyFilter"]
    ef["spec"]["targetRefs"][0]["name"] = "other-gateway"
    assert any("targets Gateway gateway/other-gateway" in p for p in body_routers_reach_routes(broken, declared))


def test_prod_installs_the_router_on_its_istio_gateway_and_dev_stays_unexposed():
    prod = rendered_stack("prod").objects
    objs = in_gateway_ns(prod)
    assert objs["EnvoyFilter"]["spec"]["targetRefs"][0]["name"] == GW
    manifests, _, cfg = _render("prod")
    assert check_all(manifests, declared_for(cfg)) == []
    dev = rendered_stack("dev").objects
    assert not [o for o in dev if o["kind"] in ("EnvoyFilter", "HTTPRoute", "InferencePool")]
    assert not [o for o in dev if "body-based-router" in (o.get("metadata") or {}).get("name", "")]


@pytest.mark.parametrize(
    "bbr, expected",
    [
        ({"install": True}, "gateway.bodyBasedRouting.provider: not set, but install is"),
        ({"install": True, "provider": "envoy"}, "gateway.bodyBasedRouting.provider"),
        ({"install": True, "provider": "istio", "replicas": 0}, "gateway.bodyBasedRouting.replicas"),
        ({"install": True, "provider": "istio", "replica": 2}, "gateway.bodyBasedRouting.replica"),
        ({"instal": True, "provider": "istio"}, "gateway.bodyBasedRouting.instal"),
        ({"provider": "istio"}, "gateway.bodyBasedRouting.provider: applies to the router the stack installs"),
        ({"install": "yes please", "provider": "istio"}, "gateway.bodyBasedRouting.install"),
    ],
)
def test_bad_router_settings_are_refused(bbr, expected):
    cfg = stack()
    cfg["gateway"]["bodyBasedRouting"] = bbr
    assert_refused(cfg, expected)


def test_the_router_needs_a_gateway_api_gateway():
    cfg = {
        **BASE,
        "gpuPool": H100_POOL,
        "models": [model("a")],
        "gateway": {
            "kind": "ingress",
            "hostname": "llm.example.com",
            "bodyBasedRouting": {"install": True, "provider": "istio"},
        },
    }
    assert_refused(cfg, "gateway.bodyBasedRouting: applies to kind gatewayApi")


@pytest.mark.parametrize(
    "args, key",
    [
        ({"provider": "nginx"}, "provider"),
        ({"replicas": 0}, "replicas"),
        ({"replicas": 1.5}, "replicas"),
        ({"gateway": "gw"}, "gateway"),
    ],
)
def test_the_component_refuses_bad_args_before_registering(args, key):
    import pulumi

    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    with pytest.raises(ComponentArgsError) as err:
        BodyRouter("bbr", {"namespace": NS, "gateway_name": GW, "provider": "istio", **args})
    assert f"args.{key}" in str(err.value) and mocks.registrations == []
