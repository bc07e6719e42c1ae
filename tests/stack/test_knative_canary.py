"""Canary releases of Knative models: stable and canary are two revisions of ONE Knative
Service, named for their content, split by Knative's traffic targets (``llmstack_k8s.serving.knative_canary``);
the PodMonitor labels the canary revision's series ``variant="canary"`` by its revision name, so the
canary alerts and dashboards work unchanged, and a promotion reuses the canary's revision."""

import copy
import json
import re

import pytest
import yaml

from conftest import assert_refused, render_with, stack_example
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.observability import metrics
from llmstack_k8s.rules import check_all, knative_traffic
from llmstack_k8s.serving import knative_canary as kc
from llmstack_k8s.serving.knative_vllm_service import KNATIVE_SERVING_API, KnativeVllmService
from llmstack_k8s.serving.model_cache import model_dir
from stack.test_canary import _relabel
from stack.test_cross_objects import BASE, H100_POOL, declared_for, manifests_of, model, render_with_config
from stacks.tools import render as render_mod
from support.schemas import validate_object
from unit.test_alert_rules import _promtool

OTHER_REVISION = "fedcba9876543210fedcba9876543210fedcba98"
NEW_IMAGE = "docker.io/vllm/vllm-openai:v0.31.0"
#: One canary per thing it may change: other weights, another image, other engine args.
CANARIES = {
    "revision": {"revision": OTHER_REVISION},
    "image": {"image": NEW_IMAGE},
    "extraArgs": {"extraArgs": ["--max-num-batched-tokens", "2048"]},
}


def kn_model(canary=None, **over) -> dict:
    m = model(
        "kn",
        **{
            "serving": "knative",
            "autoscaling": {"minReplicas": 0, "maxReplicas": 2},
            "cache": {"size": "20Gi"},
            **over,
        },
    )
    if canary is not None:
        m["canary"] = canary
    return m


def stack(m: dict) -> dict:
    return {**BASE, "gpuPool": H100_POOL, "models": [m]}


def ksvc(manifests, name="kn") -> dict:
    (svc,) = [
        o
        for o in manifests
        if o["kind"] == "Service" and o["apiVersion"] == KNATIVE_SERVING_API and o["metadata"]["name"] == name
    ]
    return svc


def render(m: dict):
    rendered, cfg = render_with_config(lambda: render_with(stack(m)))
    return manifests_of(rendered), cfg


def template_name(manifests) -> str:
    return ksvc(manifests)["spec"]["template"]["metadata"]["name"]


def promoted(m: dict) -> dict:
    """The README's promotion: the canary's revision/image/extraArgs copied onto the model, canary deleted."""
    out = copy.deepcopy(m)
    canary = out.pop("canary")
    out.update({k: v for k, v in canary.items() if k in ("revision", "image", "extraArgs")})
    return out


@pytest.mark.parametrize("kind", sorted(CANARIES))
def test_split_names_both_revisions_and_promotion_reuses_the_canarys(kind):
    stable_only, _ = render(kn_model())
    with_canary, cfg = render(kn_model({"weight": 15, **CANARIES[kind]}))
    svc = ksvc(with_canary)
    traffic = svc["spec"]["traffic"]
    stable_rev, canary_rev = (t["revisionName"] for t in traffic)
    # Weights sum to 100, each variant has its tag (its own URL), no target floats to "latest".
    assert [(t["percent"], t["tag"]) for t in traffic] == [(85, "stable"), (15, "canary")]
    assert sum(t["percent"] for t in traffic) == 100 and not any("latestRevision" in t for t in traffic)
    # The template is the canary's: the one revision this pulumi up creates.
    assert template_name(with_canary) == canary_rev != stable_rev
    # The stable target is exactly the revision the model made before its canary was added.
    assert template_name(stable_only) == stable_rev
    assert all(re.fullmatch(rf"kn-[0-9a-f]{{{kc.DIGEST_CHARS}}}", r) for r in (stable_rev, canary_rev))
    # Both variants answer the same served name.
    served = svc["spec"]["template"]["spec"]["containers"][0]["args"]
    assert served[served.index("--served-model-name") + 1] == "kn"
    # Names are stable across renders.
    assert ksvc(render(kn_model({"weight": 15, **CANARIES[kind]}))[0])["spec"] == svc["spec"]
    # Promotion renders the canary's revision as it is: Knative reuses it, nothing cold-starts.
    after, _ = render(promoted(kn_model({"weight": 15, **CANARIES[kind]})))
    assert template_name(after) == canary_rev
    assert ksvc(after)["spec"]["template"] == {**svc["spec"]["template"]}
    assert "traffic" not in ksvc(after)["spec"]  # Knative's default again: all to the latest ready revision
    # Rolling back (canary deleted, model unchanged) renders the stable revision again.
    assert template_name(render(kn_model())[0]) == stable_rev
    validate_object(svc)
    problems = check_all(with_canary, declared_for(cfg))
    assert not problems, "\n".join(problems)


def test_any_change_to_the_template_gives_a_new_revision_name():
    """Knative refuses a changed template under an unchanged name (VerifyNameChange): labels,
    annotations and spec all count."""
    base = template_name(render(kn_model())[0])
    for over in (
        {"autoscaling": {"minReplicas": 0, "maxReplicas": 3}},
        {"resources": {"cpu": "3", "memory": "16Gi"}},
        {"extraEnv": {"VLLM_LOGGING_LEVEL": "DEBUG"}},
        {"maxModelLen": 2048},
    ):
        assert template_name(render(kn_model(**over))[0]) != base, over


def test_a_canary_of_other_weights_downloads_them_beside_the_models():
    manifests, _ = render(kn_model({"weight": 10, "revision": OTHER_REVISION}))
    jobs = [o for o in manifests if o["kind"] == "Job"]
    assert [j["metadata"]["name"] for j in jobs] == ["kn-download"]  # one volume, one Job
    env = {e["name"]: e.get("value") for e in jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert [a["revision"] for a in json.loads(env["ADAPTERS"])] == [OTHER_REVISION]
    assert not [o for o in manifests if o["kind"] == "PersistentVolumeClaim" and "canary" in o["metadata"]["name"]]
    pod = ksvc(manifests)["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--model") + 1] == model_dir("org/kn", OTHER_REVISION)
    assert model_dir("org/kn", OTHER_REVISION) in " ".join(
        pod["initContainers"][0]["command"]
    )  # waits for those weights


def _discovered(manifests, revision: str) -> dict:
    """Prometheus' discovery labels of a pod of that revision (Knative copies the template's labels)."""
    labels = {**ksvc(manifests)["spec"]["template"]["metadata"]["labels"], kc.REVISION_POD_LABEL: revision}
    return {"__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in labels.items()}


def _series_labels(manifests, revision: str) -> dict:
    (monitor,) = [o for o in manifests if o["kind"] == "PodMonitor"]
    validate_object(monitor)
    endpoint = next(
        e for e in monitor["spec"]["podMetricsEndpoints"] if e["port"] == "user-port"
    )  # Knative's port name
    out = _relabel(endpoint["relabelings"], _discovered(manifests, revision))
    return {k: v for k, v in out.items() if not k.startswith("__")}


def test_pod_monitor_labels_the_canary_revision_and_forgets_it_after_promotion():
    canary = kn_model({"weight": 10, "image": NEW_IMAGE})
    manifests, _ = render(canary)
    stable_rev, canary_rev = (t["revisionName"] for t in ksvc(manifests)["spec"]["traffic"])
    assert _series_labels(manifests, canary_rev) == {"model": "kn", "job": "vllm", "variant": "canary"}
    assert _series_labels(manifests, stable_rev)["variant"] == "stable"
    # The promoted model runs the same revision (same pods, same labels): its series now say stable.
    after, _ = render(promoted(canary))
    assert template_name(after) == canary_rev
    assert _series_labels(after, canary_rev)["variant"] == "stable"


def _series(labels: dict, pod: str, namespace: str, served: str) -> str:
    inner = ", ".join(
        f'{k}="{v}"' for k, v in {**labels, "namespace": namespace, "pod": pod, "model_name": served}.items()
    )
    return inner


def test_canary_alert_fires_on_a_knative_canarys_series(tmp_path):
    """The rendered rules, fed the series a Knative canary's pods produce (labels from the rendered
    PodMonitor), fire VllmCanaryErrorsAboveStable; after promotion the same pods are the stable variant."""
    canary = kn_model({"weight": 10, "image": NEW_IMAGE})
    manifests, _ = render(canary)
    stable_rev, canary_rev = (t["revisionName"] for t in ksvc(manifests)["spec"]["traffic"])
    (rule,) = [o for o in manifests if o["kind"] == "PrometheusRule"]
    groups = copy.deepcopy(rule["spec"]["groups"])
    for g in groups:
        for r in g["rules"]:
            r.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))

    def series(revision, reason, values, manifests=manifests):
        sel = _series(_series_labels(manifests, revision), f"{revision}-deployment-a", "llm", "kn")
        return {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{sel}, finished_reason="{reason}"}}', "values": values}

    bad = [
        series(canary_rev, "error", "0+2x30"),
        series(canary_rev, "stop", "0+8x30"),
        series(stable_rev, "stop", "0+90x30"),
    ]
    after, _ = render(promoted(canary))  # the canary's revision promoted: no canary series any more
    promoted_series = [series(canary_rev, "error", "0+2x30", after), series(canary_rev, "stop", "0+8x30", after)]
    expected = [{"exp_labels": {"severity": "warning", "namespace": "llm", "model": "kn", "model_name": "kn"}}]
    tests = [
        {
            "interval": "1m",
            "input_series": bad,
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "VllmCanaryErrorsAboveStable", "exp_alerts": expected}
            ],
        },
        {
            "interval": "1m",
            "input_series": promoted_series,
            "alert_rule_test": [{"eval_time": "20m", "alertname": "VllmCanaryErrorsAboveStable", "exp_alerts": []}],
        },
    ]
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False)
    )
    res = _promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_component_outputs_name_both_revisions_and_the_canarys_url():
    import pulumi

    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    seen = {}

    @pulumi.runtime.test
    def program():
        k = KnativeVllmService("m", _component_args(weight=10, image=NEW_IMAGE))
        return pulumi.Output.all(k.url, k.canary_url, k.revision_name, k.canary_revision_name).apply(
            lambda v: seen.setdefault("v", v)
        )

    program()
    url, canary_url, stable_rev, canary_rev = seen["v"]
    (svc,) = [o for o in mocks.objects() if o["kind"] == "Service" and o["apiVersion"] == KNATIVE_SERVING_API]
    assert [t["revisionName"] for t in svc["spec"]["traffic"]] == [stable_rev, canary_rev]
    assert svc["spec"]["template"]["metadata"]["name"] == canary_rev
    assert url == "http://m.llm.svc.cluster.local"  # the split: every in-cluster caller of the model's URL
    assert canary_url == "http://canary-m.llm.svc.cluster.local"  # Knative's tag template <tag>-<service>
    validate_object(svc)


@pytest.mark.parametrize(
    "canary, over, expected",
    [
        ({"weight": 10, "replicas": 2, "image": NEW_IMAGE}, {}, "canary.replicas: applies to serving: deployment"),
        (
            {"weight": 10, "revision": OTHER_REVISION},
            {"cache": {"size": "3Gi"}},
            "cache.size: 3Gi cannot hold two revisions",
        ),
        ({"weight": 10}, {}, "canary: differs from the model in nothing"),
        ({"weight": 100, "image": NEW_IMAGE}, {}, "canary.weight"),
        ({"weight": 10, "extraArgs": ["--no-such-flag"]}, {}, "canary.extraArgs"),
        ({"weight": 10, "image": "vllm/vllm-openai:latest"}, {}, "canary.image"),
    ],
)
def test_bad_knative_canaries_are_refused(canary, over, expected):
    assert_refused(stack(kn_model(canary, **over)), expected)


def test_a_knative_canary_needs_no_gateway_and_may_be_exposed():
    """Knative splits its own URL (in-cluster callers get the split); exposed through the gateway, the
    route has one backend (Knative's ingress) and the split stays Knative's (tests/stack/test_knative_route.py)."""
    gw = {"gatewayRef": {"name": "gw", "namespace": "gateway"}}
    rendered, _ = render_with_config(
        lambda: render_with({**stack(kn_model({"weight": 10, "image": NEW_IMAGE})), "gateway": gw})
    )
    manifests = manifests_of(rendered)
    (route,) = [o for o in manifests if o["kind"] == "HTTPRoute"]
    assert all(
        len(rule["backendRefs"]) == 1 and "weight" not in rule["backendRefs"][0] for rule in route["spec"]["rules"]
    )
    assert [t["percent"] for t in ksvc(manifests)["spec"]["traffic"]] == [90, 10]


# --- the component ------------------------------------------------------------------------------


def _component_args(**canary) -> dict:
    return {
        "namespace": "llm",
        "engine": {"served_model_name": "m"},
        "model_path": "/models/m",
        "cache_claim_name": "m-cache",
        **({"canary": canary} if canary else {}),
    }


@pytest.mark.parametrize(
    "name, canary, path",
    [
        ("m", {"weight": 0, "image": NEW_IMAGE}, "canary.weight"),
        ("m", {"weight": 10}, "canary"),
        ("m", {"weight": 10, "engine": {"served_model_name": "other"}}, "canary.engine.served_model_name"),
        (
            "m",
            {"weight": 10, "engine": {"served_model_name": "m", "extra_args": ["--no-such-flag"]}},
            "canary.engine.extra_args",
        ),
        ("x" * (kc.MAX_SERVICE_NAME + 1), None, "args: name"),
    ],
)
def test_component_refuses_bad_canary_args(name, canary, path):
    import pulumi

    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    with pytest.raises(ComponentArgsError, match=re.escape(path)):
        KnativeVllmService(name, _component_args(**(canary or {})))
    assert mocks.registrations == []


# --- the cross-object rule ----------------------------------------------------------------------


def test_traffic_rule_catches_targets_that_point_nowhere():
    manifests, _ = render(kn_model({"weight": 10, "image": NEW_IMAGE}))
    svc = ksvc(manifests)
    assert knative_traffic(svc) == []
    stable_rev, _canary_rev = (t["revisionName"] for t in svc["spec"]["traffic"])

    def broken(**change):
        bad = copy.deepcopy(svc)
        for i, t in change.get("targets", {}).items():
            bad["spec"]["traffic"][i].update(t)
        return knative_traffic(bad)

    assert "is not a revision of this Service" in broken(targets={0: {"revisionName": "other-0123456789"}})[0]
    assert "sum to 95" in broken(targets={1: {"percent": 5}})[0]
    assert "repeated or not a DNS label" in broken(targets={1: {"tag": "stable"}})[0]
    assert "latestRevision: true" in broken(targets={0: {"latestRevision": True}})[0]
    assert "is in no traffic target" in broken(targets={1: {"revisionName": stable_rev, "tag": "old"}})[-1]


# --- dev: the commented example ---------------------------------------------------------------


def _dev_canary_block() -> dict:
    """The commented canary example of Pulumi.dev.yaml (on the Knative model), from its fixture file."""
    return stack_example("dev-knative-canary.yaml")["canary"]


def test_dev_canary_example_renders_and_passes_the_cross_checks():
    project, config, secrets = render_mod.stack_config_env("dev")
    models = json.loads(config[f"{project}:models"])
    (knative,) = [m for m in models if m.get("serving") == "knative"]
    assert "canary" not in knative  # dev deploys without it (a canary needs the stable revision live first)
    knative["canary"] = _dev_canary_block()
    config[f"{project}:models"] = json.dumps(models)
    rendered, cfg = render_with_config(lambda: render_mod.run_program(project, "dev", config, secrets))
    manifests = manifests_of(rendered)
    svc = ksvc(manifests, knative["name"])
    validate_object(svc)
    assert [t["percent"] for t in svc["spec"]["traffic"]] == [
        100 - knative["canary"]["weight"],
        knative["canary"]["weight"],
    ]
    # its stable target is the revision dev runs today
    assert svc["spec"]["traffic"][0]["revisionName"] == template_name_of(render_mod.render("dev"), knative["name"])
    problems = check_all(manifests, declared_for(cfg))
    assert not problems, "\n".join(problems)


def template_name_of(rendered, name: str) -> str:
    return ksvc(manifests_of(rendered), name)["spec"]["template"]["metadata"]["name"]


def test_a_teams_quota_counts_a_knative_canarys_revision_but_no_second_volume():
    """The canary revision scales to autoscaling.maxReplicas like the model (its GPUs count); its weights are in
    the model's volume (no storage counted twice)."""
    m = kn_model({"weight": 10, "revision": OTHER_REVISION})  # maxReplicas 2, 1 GPU per pod, cache 20Gi

    def team(quota):
        return {**stack(copy.deepcopy(m)), "teams": [{"name": "alpha", "models": ["kn"], "quota": quota}]}

    assert render_with(team({"gpus": 4, "storage": "20Gi"})).of_kind("ResourceQuota")
    assert "gpus: the models need 4 GPU(s)" in assert_refused(team({"gpus": 2, "storage": "20Gi"}), "quota")


def test_karpenter_floor_counts_the_canary_revisions_pods():
    """Each revision starts with knative.initialScale pods: with a canary the model needs twice the GPUs
    at deploy time (a Karpenter limit that fits one revision would leave the canary Pending)."""
    m = kn_model(tensorParallelSize=4, resources={"cpu": "2", "memory": "64Gi"})
    pool = {
        **H100_POOL,
        "gpu": {**H100_POOL["gpu"], "perNode": 4},
        "karpenter": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
            "gpuLimit": 4,
        },
    }
    assert render_with({**stack(m), "gpuPool": pool}).of_kind("NodePool")
    m["canary"] = {"weight": 10, "image": NEW_IMAGE}
    assert_refused({**stack(m), "gpuPool": pool}, "below the 8 GPUs the models need")


def test_a_knative_canary_of_a_model_in_object_storage_streams_like_it():
    """Weights in a bucket have no revision (canary.revision is refused there); an image/args canary of
    such a model streams the same weights, and its promotion reuses its revision too."""
    from stack.test_object_storage import KEYS, MODEL, SECURE

    def s3_stack(m):
        return {"models": [m], "objectStorage": {"region": "eu-west-1"}, **KEYS}

    m = {**MODEL, "serving": "knative", "canary": {"weight": 20, "extraArgs": ["--max-num-batched-tokens", "4096"]}}
    manifests = manifests_of(render_with(s3_stack(m), secret_keys=SECURE))
    svc = ksvc(manifests, "llama-8b")
    stable_rev, canary_rev = (t["revisionName"] for t in svc["spec"]["traffic"])
    args = svc["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model") + 1] == MODEL["model"] and "--max-num-batched-tokens" in args
    assert not [o for o in manifests if o["kind"] in ("PersistentVolumeClaim", "Job")]
    after = {**MODEL, "serving": "knative", "extraArgs": ["--max-num-batched-tokens", "4096"]}
    assert (
        ksvc(manifests_of(render_with(s3_stack(after), secret_keys=SECURE)), "llama-8b")["spec"]["template"][
            "metadata"
        ]["name"]
        == canary_rev
    )
    before = {**MODEL, "serving": "knative"}
    assert (
        ksvc(manifests_of(render_with(s3_stack(before), secret_keys=SECURE)), "llama-8b")["spec"]["template"][
            "metadata"
        ]["name"]
        == stable_rev
    )
