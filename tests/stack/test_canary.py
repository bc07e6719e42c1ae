"""Canary releases: a model's second variant under the same served name, taking
canary.weight percent of its requests through the HTTPRoute's weighted backends; the PodMonitor
labels its series variant="canary" so alerts and dashboards compare it with the stable variant."""

import copy
import json
import re

import pytest

from conftest import assert_refused, stack_example
from llmstack_k8s._core.package import VARIANT_OF_POD_LABEL, VARIANT_POD_LABEL
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.edge.model_route import ModelRoute
from llmstack_k8s.rules import check_all
from llmstack_k8s.rules import matches as selected
from llmstack_k8s.serving.vllm_pod import PORT_NAME
from stack.test_cross_objects import (
    BASE,
    H100_POOL,
    _render,
    declared_for,
    manifests_of,
    model,
    render_with_config,
)
from stacks.tools import render as render_mod
from support.schemas import validate_object

OTHER_REVISION = "fedcba9876543210fedcba9876543210fedcba98"
GATEWAY = {"gatewayRef": {"name": "inference-gateway", "namespace": "gateway"}, "hostname": "llm.example.com"}


def _of(manifests, kind, name=None):
    return [o for o in manifests if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def _served_name(deployment) -> str:
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args[args.index("--served-model-name") + 1]


def _check_variants(manifests, cfg):
    canaries = [m for m in cfg.models if m.canary is not None]
    assert canaries
    for m in canaries:
        (route,) = _of(manifests, "HTTPRoute", m.name)
        for rule in route["spec"]["rules"]:  # the by-name rule and the path fallback alike
            refs = rule["backendRefs"]
            assert [r["weight"] for r in refs] == [100 - m.canary.weight, m.canary.weight]
            assert sum(r["weight"] for r in refs) == 100
            assert [r["name"] for r in refs] == [m.name, f"{m.name}-canary"]
            for ref in refs:  # both variants exist, each backend reaching its own Deployment's pods only
                (backend,) = _of(manifests, ref.get("kind", "Service"), ref["name"])
                sel = backend["spec"]["selector"]
                sel = sel if "matchLabels" in sel else {"matchLabels": sel}  # a Service's is the plain map
                hits = [
                    d["metadata"]["name"]
                    for d in _of(manifests, "Deployment")
                    if selected(sel, d["spec"]["template"]["metadata"]["labels"])
                ]
                assert hits == [ref["name"]], (ref, hits)
        stable, canary = _of(manifests, "Deployment", m.name)[0], _of(manifests, "Deployment", f"{m.name}-canary")[0]
        assert _served_name(stable) == _served_name(canary) == m.served_name
        assert canary["spec"]["replicas"] == m.canary.replicas
        labels = canary["spec"]["template"]["metadata"]["labels"]
        assert labels[VARIANT_POD_LABEL] == "canary" and labels[VARIANT_OF_POD_LABEL] == m.name
        assert (
            VARIANT_POD_LABEL not in stable["spec"]["template"]["metadata"]["labels"]
        )  # adding a canary never rolls the stable pods
        # PDBs and NetworkPolicies of one variant never select the other's pods.
        for kind in ("PodDisruptionBudget", "NetworkPolicy"):
            for name, other in ((m.name, canary), (f"{m.name}-canary", stable)):
                (obj,) = _of(manifests, kind, name)
                sel = obj["spec"].get("selector") or obj["spec"]["podSelector"]
                assert not selected(sel, other["spec"]["template"]["metadata"]["labels"]), (kind, name)


def test_canary_weights_sum_to_100_and_both_variants_exist():
    manifests, _, cfg = _render("gateway-canary")
    _check_variants(manifests, cfg)
    for obj in manifests:  # weighted backendRefs and both pools against the pinned CRDs
        if obj["kind"] in ("HTTPRoute", "InferencePool", "Deployment", "PodMonitor"):
            validate_object(obj)
    by_name = {m.name: m for m in cfg.models}
    # Other weights: their own cache volume and download; another image or args only: the model's cache.
    assert _of(manifests, "Job", "split-canary-download") and not _of(manifests, "Job", "pooled-canary-download")
    split = _of(manifests, "Deployment", "split-canary")[0]["spec"]["template"]["spec"]
    assert any(OTHER_REVISION in a for a in split["containers"][0]["args"])
    pooled = _of(manifests, "Deployment", "pooled-canary")[0]["spec"]["template"]["spec"]["containers"][0]
    assert pooled["image"] == by_name["pooled"].canary.image and "--max-num-batched-tokens" in pooled["args"]
    # KV-cache-aware routing: each variant gets its own pool and picker.
    assert {p["metadata"]["name"] for p in _of(manifests, "InferencePool")} == {"pooled", "pooled-canary"}


def _prod_canary_block() -> dict:
    """The commented canary example of Pulumi.prod.yaml, from its fixture file."""
    return stack_example("prod-canary.yaml")["canary"]


def test_prod_canary_example_renders_and_passes_the_cross_checks():
    project, config, secrets = render_mod.stack_config_env("prod")
    models = json.loads(config[f"{project}:models"])
    (llama8b,) = [m for m in models if m["name"] == "llama-8b"]
    llama8b["canary"] = _prod_canary_block()
    config[f"{project}:models"] = json.dumps(models)
    rendered, cfg = render_with_config(lambda: render_mod.run_program(project, "prod", config, secrets))
    manifests = manifests_of(rendered)
    _check_variants(manifests, cfg)
    problems = check_all(manifests, declared_for(cfg))
    assert not problems, "\n".join(problems)


def _stack(**canary_model) -> dict:
    return {**BASE, "gpuPool": H100_POOL, "gateway": GATEWAY, "models": [model("m", **canary_model)]}


@pytest.mark.parametrize(
    "config, expected",
    [
        (_stack(canary={"weight": 10}), "canary: differs from the model in nothing"),
        (
            _stack(canary={"weight": 10, "revision": model("m")["revision"]}),
            "canary: differs from the model in nothing",
        ),
        (_stack(canary={"weight": 0, "revision": OTHER_REVISION}), "canary.weight"),
        (_stack(canary={"weight": 100, "revision": OTHER_REVISION}), "canary.weight"),
        (_stack(canary={"weight": 10, "revision": "main"}), "canary.revision"),
        (_stack(canary={"weight": 10, "image": "vllm/vllm-openai:latest"}), "canary.image"),
        (_stack(canary={"weight": 10, "extraArgs": ["--no-such-flag"]}), "canary.extraArgs"),
        (
            _stack(canary={"weight": 10, "revision": OTHER_REVISION}, route={"expose": False}),
            "canary: needs the model exposed",
        ),
        (
            {**_stack(canary={"weight": 10, "revision": OTHER_REVISION}), "gateway": None},
            "canary: needs the model exposed",
        ),
        (
            {
                **_stack(canary={"weight": 10, "revision": OTHER_REVISION}),
                "gateway": {"kind": "ingress", "hostname": "llm.example.com"},
            },
            "canary: needs the model exposed",
        ),
        # Knative canaries (tests/stack/test_knative_canary.py): a revision of the model's Service, scaled like it
        (
            {
                **BASE,
                "gpuPool": H100_POOL,
                "models": [
                    model("kn", serving="knative", canary={"weight": 10, "replicas": 2, "revision": OTHER_REVISION})
                ],
            },
            "canary.replicas: applies to serving: deployment",
        ),
    ],
)
def test_bad_canaries_are_refused(config, expected):
    if config.get("gateway", "") is None:
        config = {k: v for k, v in config.items() if k != "gateway"}
    assert_refused(copy.deepcopy(config), expected)


def _route_args(**over) -> dict:
    args = {
        "namespace": "llm",
        "service_name": "m",
        "served_model_names": ["m"],
        "gateway": {"name": "gw", "namespace": "gateway"},
        "canary": {"service_name": "m-canary", "weight": 10},
    }
    args.update(over)
    return args


@pytest.mark.parametrize(
    "over, key",
    [
        ({"canary": {"service_name": "m-canary", "weight": 100}}, "canary.weight"),
        ({"kind": "ingress"}, "canary"),
        ({"inference_pool_name": "m"}, "canary.inference_pool_name"),
    ],
)
def test_model_route_refuses_bad_canary_args(over, key):
    import pulumi

    pulumi.runtime.set_mocks(RecordingMocks(), preview=False)
    with pytest.raises(ComponentArgsError, match=re.escape(key)):
        ModelRoute("m", _route_args(**over))


def _relabel(rules: list[dict], meta: dict) -> dict:
    """Prometheus' ``replace`` relabeling (the only action the PodMonitor uses) over a target's labels."""
    labels = dict(meta)
    for r in rules:
        assert r.get("action", "replace") == "replace"
        value = ";".join(labels.get(s, "") for s in r.get("sourceLabels", []))
        match = re.fullmatch(r.get("regex", "(.*)"), value)
        if match:
            labels[r["targetLabel"]] = match.expand(r.get("replacement", "$1").replace("$1", r"\1"))
    return labels


def test_pod_monitor_labels_series_by_variant_under_the_model():
    manifests, _, _ = _render("gateway-canary")
    (monitor,) = _of(manifests, "PodMonitor")
    endpoint = next(e for e in monitor["spec"]["podMetricsEndpoints"] if e["port"] == PORT_NAME)  # a Deployment's port
    by_deployment = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in _of(manifests, "Deployment")
    }

    def target(deployment):  # the discovery labels Prometheus gives a pod of that Deployment
        return _relabel(
            endpoint["relabelings"],
            {
                "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v
                for k, v in by_deployment[deployment].items()
            },
        )

    assert (target("split")["model"], target("split")["variant"]) == ("split", "stable")
    assert (target("split-canary")["model"], target("split-canary")["variant"]) == ("split", "canary")


def test_dashboard_compares_the_variants():
    from llmstack_k8s.observability import metrics
    from llmstack_k8s.observability.observability import dashboard_queries, dashboards

    exprs = dashboard_queries(dashboards()["vllm.json"])
    for metric in (metrics.VLLM_REQUEST_SUCCESS, metrics.VLLM_TTFT_BUCKET):
        assert any(metric in e and "variant)" in e for e in exprs), metric
