"""GpuAutoscaling: KEDA ScaledObjects on vLLM's queue depth / KV-cache use, safe scale-to-zero."""

import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import render_with, rendered_stack
from llmstack_k8s import versions
from llmstack_k8s.observability import metrics
from llmstack_k8s.scaling.gpu_autoscaling import AutoscalingMetric, validate_workload
from llmstack_k8s.serving.vllm_pod import startup_budget_seconds
from llmstack_k8s.sizing.cold_start import DEFAULT_SCHEDULING_SECONDS, cold_start_budget
from stacks.config.loader import StackConfigError
from support.hpa_sim import Hpa, burst_table
from support.schemas import FIXTURES, crd_schemas, validate_custom
from unit.test_metrics import exported_wire_names

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def stack_file(stack: str) -> dict:
    return {
        k.split(":", 1)[1]: v for k, v in yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"].items()
    }


def autoscaled_models(stack: str) -> dict[str, dict]:
    """The models KEDA scales: a Deployment's autoscaling (a Knative model's is Knative's own)."""
    return {
        m["name"]: m
        for m in stack_file(stack)["models"]
        if "autoscaling" in m and m.get("serving", "deployment") == "deployment"
    }


def scaled_objects(stack: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in rendered_stack(stack).of_kind("ScaledObject")}


def prom_triggers(so: dict) -> list[dict]:
    return [t for t in so["spec"]["triggers"] if t["type"] == "prometheus"]


def all_queries() -> list[tuple[str, str, dict]]:
    return [
        (stack, so["metadata"]["name"], t)
        for stack in ("dev", "prod")
        for so in scaled_objects(stack).values()
        for t in prom_triggers(so)
    ]


def base_model(**autoscaling) -> dict:
    model = {
        "name": "m",
        "model": "org/m",
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "servedModelName": "m-served",
        "weightsGiB": 10,
        "cache": {"size": "20Gi"},
    }
    if autoscaling:
        model["autoscaling"] = autoscaling
    return model


# --- what each stack gets ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_one_scaled_object_per_autoscaled_model_targeting_its_deployment(stack):
    models = autoscaled_models(stack)
    sos = scaled_objects(stack)
    assert set(sos) == set(models)
    deployments = {d["metadata"]["name"]: d for d in rendered_stack(stack).of_kind("Deployment")}
    for name, so in sos.items():
        a = models[name]["autoscaling"]
        ref = so["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["apiVersion"]) == ("Deployment", "apps/v1") and ref["name"] in deployments
        assert so["metadata"]["namespace"] == deployments[ref["name"]]["metadata"]["namespace"]
        assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (a["minReplicas"], a["maxReplicas"])
        # The HPA owns the count: the Deployment leaves spec.replicas to it (no fight on the next `pulumi up`).
        assert "replicas" not in deployments[ref["name"]]["spec"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_scaled_objects_validate_against_the_keda_crd(stack):
    sos = scaled_objects(stack)
    assert sos and ("keda.sh/v1alpha1", "ScaledObject") in crd_schemas()
    for so in sos.values():
        validate_custom(so)
    broken = {**next(iter(sos.values()))}
    broken["spec"] = {**broken["spec"], "minReplicas": 1}  # KEDA's key is minReplicaCount
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(broken)


def test_prod_scales_2_to_n_on_queue_depth_with_gpu_tuned_behaviour():
    for name, m in autoscaled_models("prod").items():
        so = scaled_objects("prod")[name]
        assert so["spec"]["minReplicaCount"] == 2 and so["spec"]["maxReplicaCount"] > 2
        first = prom_triggers(so)[0]
        assert metrics.VLLM_REQUESTS_WAITING in first["metadata"]["query"] and first["metricType"] == "AverageValue"
        behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        budget = startup_budget_seconds(m.get("weightsGiB"), m.get("startupTimeoutSeconds"))
        # scale-down only after a cooldown that covers a replica's startup, one pod at a time
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= budget
        assert so["spec"]["cooldownPeriod"] >= budget
        assert [p["value"] for p in behavior["scaleDown"]["policies"] if p["type"] == "Pods"] == [1]
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] > 0 and behavior["scaleUp"]["selectPolicy"] == "Max"


def test_keda_is_installed_from_the_pinned_chart_with_its_metrics_scraped(rendered):
    releases = {r["chart"]: r for r in rendered.helm_releases}
    keda = releases["keda"]
    assert (keda["version"], keda["repository"] if "repository" in keda else keda["repositoryOpts"]["repo"]) == (
        "2.20.2",
        "https://kedacore.github.io/charts",
    )
    for part in ("operator", "metricServer", "webhooks"):
        assert keda["values"]["prometheus"][part]["enabled"] is True
        assert keda["values"]["prometheus"][part]["serviceMonitor"]["enabled"] is True


# --- scale to zero, only where it is safe ----------------------------------------------------


def test_dev_scales_to_zero_through_the_http_add_on_buffer():
    r = rendered_stack("dev")
    [(name, so)] = [(n, s) for n, s in scaled_objects("dev").items() if s["spec"]["minReplicaCount"] == 0]
    model = autoscaled_models("dev")[name]
    [http] = [t for t in so["spec"]["triggers"] if t["type"] == "external-push"]
    assert http["metadata"]["scalerAddress"].startswith("keda-add-ons-http-external-scaler.keda:")
    httpsos = {o["metadata"]["name"]: o for o in r.of_kind("HTTPScaledObject")}
    httpso = httpsos[http["metadata"]["httpScaledObject"]]
    assert httpso["metadata"]["name"] != so["metadata"]["name"]  # else the add-on would delete ours
    assert httpso["metadata"]["namespace"] == so["metadata"]["namespace"]
    assert httpso["metadata"]["annotations"]["httpscaledobject.keda.sh/skip-scaledobject-creation"] == "true"
    assert httpso["spec"]["scaleTargetRef"]["name"] == so["spec"]["scaleTargetRef"]["name"]
    # exactly one of port / portName (the CRD's CEL rule, which jsonschema does not evaluate)
    assert ("port" in httpso["spec"]["scaleTargetRef"]) != ("portName" in httpso["spec"]["scaleTargetRef"])
    # the interceptor holds the first request at least as long as a replica may take to come up from
    # zero: a node and the image (dev states no coldStart figures: the defaults), then the load
    budget = startup_budget_seconds(model.get("weightsGiB"), model.get("startupTimeoutSeconds"))
    assert int(httpso["spec"]["timeouts"]["conditionWait"].removesuffix("s")) >= DEFAULT_SCHEDULING_SECONDS + budget
    assert so["spec"]["initialCooldownPeriod"] >= budget
    validate_custom(httpso)
    assert "keda-add-ons-http" in {rel["chart"] for rel in r.helm_releases}
    # the interceptor (keda namespace) may reach the server; clients reach the interceptor by the alias
    [netpol] = [p for p in r.of_kind("NetworkPolicy") if p["metadata"]["name"] == so["spec"]["scaleTargetRef"]["name"]]
    allowed = netpol["spec"]["ingress"][0]["from"][1]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert "keda" in allowed
    alias = {s["metadata"]["name"]: s for s in r.of_kind("Service")}[f"{name}-buffered"]
    assert alias["spec"]["externalName"].startswith("keda-add-ons-http-interceptor-proxy.keda.")
    assert f"{name}-buffered.{alias['metadata']['namespace']}.svc.cluster.local" in httpso["spec"]["hosts"]


def test_http_scaled_object_crd_fixture_refuses_unknown_fields():
    so = rendered_stack("dev").of_kind("HTTPScaledObject")[0]
    bad = {**so, "spec": {**so["spec"], "minReplicas": 0}}
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(bad)


def test_refuses_scale_to_zero_on_a_deployment_without_a_buffer():
    with pytest.raises(StackConfigError) as err:
        render_with({"models": [base_model(minReplicas=0, maxReplicas=2)]}, stack="t0")
    msg = str(err.value)
    assert "Pulumi.t0.yaml" in msg and "models[0] (name: m).autoscaling.minReplicas is 0" in msg and "httpAddOn" in msg


def test_scale_to_zero_is_accepted_with_the_buffer():
    r = render_with({"autoscaling": {"httpAddOn": True}, "models": [base_model(minReplicas=0, maxReplicas=2)]})
    [so] = r.of_kind("ScaledObject")
    assert so["spec"]["minReplicaCount"] == 0
    assert any(t["type"] == "external-push" for t in so["spec"]["triggers"])


def test_refuses_a_cooldown_shorter_than_the_startup_budget():
    budget = startup_budget_seconds(10)  # weightsGiB 10 -> 400 s
    with pytest.raises(StackConfigError) as err:
        render_with({"models": [base_model(minReplicas=1, maxReplicas=2, cooldownSeconds=budget - 100)]}, stack="t1")
    msg = str(err.value)
    assert "Pulumi.t1.yaml" in msg and "models[0] (name: m)" in msg and "autoscaling.cooldownSeconds 300" in msg
    assert f"startup budget ({budget} s" in msg


def test_default_cooldown_covers_the_whole_cold_start():
    """A replica removed sooner than a new one takes to come back (node, image, weights, engine) flaps."""
    model = base_model(minReplicas=1, maxReplicas=2)
    model["weightsGiB"] = 140  # startup budget 1700 s; node 420 s + image 180 s before it
    model["cache"]["size"] = "300Gi"  # room for the weights (refused otherwise)
    [so] = render_with({"models": [model]}).of_kind("ScaledObject")
    assert startup_budget_seconds(140) == 1700
    assert so["spec"]["cooldownPeriod"] == cold_start_budget(140).total_seconds == 2300


def test_refuses_replicas_next_to_autoscaling_and_rwo_cache_with_several_replicas():
    model = {**base_model(minReplicas=1, maxReplicas=2), "replicas": 2}
    with pytest.raises(StackConfigError, match=r"models\[0\] \(name: m\).*replicas and autoscaling are both set"):
        render_with({"models": [model]})
    rwo = base_model(minReplicas=1, maxReplicas=2)
    rwo["cache"]["accessMode"] = "ReadWriteOnce"
    with pytest.raises(
        StackConfigError, match=r"models\[0\] \(name: m\)\.autoscaling\.maxReplicas is 2 .*ReadWriteOnce"
    ):
        render_with({"models": [rwo]})


def test_component_refuses_unsafe_workloads_for_library_users():
    w = {
        "name": "x",
        "namespace": "n",
        "deployment_name": "x",
        "service_name": "x",
        "served_model_name": "x",
        "startup_budget_seconds": 600,
        "min_replicas": 0,
        "max_replicas": 2,
        "metric": AutoscalingMetric.QUEUE_DEPTH,
        "target": 4,
        "cooldown_seconds": 900,
    }
    with pytest.raises(ValueError, match=r"'x'.*min_replicas 0 .*http_add_on"):
        validate_workload(w, http_add_on=False)
    validate_workload(w, http_add_on=True)
    with pytest.raises(ValueError, match=r"'x'.*cooldown_seconds 300 is shorter than the startup budget 600"):
        validate_workload({**w, "cooldown_seconds": 300}, http_add_on=True)


# --- the queries --------------------------------------------------------------------------------


def test_every_query_is_valid_promql(tmp_path):
    queries = all_queries()
    assert len(queries) >= 5
    rules = {
        "groups": [
            {
                "name": "keda-triggers",
                "rules": [
                    {
                        "record": f"llmstack:keda:{stack}_{so}_{t['name']}".replace("-", "_"),
                        "expr": t["metadata"]["query"],
                    }
                    for stack, so, t in queries
                ],
            }
        ]
    }
    path = tmp_path / "keda-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # promtool is not a rubber stamp
    path.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {"name": "g", "rules": [{"record": "x:y", "expr": "sum(vllm:num_requests_waiting{model_name=})"}]}
                ]
            }
        )
    )
    assert subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True).returncode != 0


def test_queries_use_metrics_the_pinned_vllm_exports():
    exported = exported_wire_names()
    for stack, so, t in all_queries():
        names = set(re.findall(r"vllm:[a-z_:]+", t["metadata"]["query"]))
        assert names, t
        assert names <= metrics.VLLM_METRICS, (
            f"{stack}/{so}: not from components/observability/metrics.py: {names - metrics.VLLM_METRICS}"
        )
        assert names <= exported, f"{stack}/{so}: not exported by vLLM 0.32: {names - exported}"


def test_each_query_selects_its_own_model_by_a_label_vllm_exports():
    header = (FIXTURES / "vllm-0.32.0-metrics.txt").read_text().splitlines()[1]
    assert "Label set:" in header and metrics.VLLM_MODEL_LABEL in header.split("Label set:", 1)[1]
    for stack in ("dev", "prod"):
        models = autoscaled_models(stack)
        seen = set()
        for name, so in scaled_objects(stack).items():
            ns = so["metadata"]["namespace"]  # the model's own (a team's model lives in the team's namespace)
            for t in prom_triggers(so):
                q = t["metadata"]["query"]
                assert f'{metrics.VLLM_MODEL_LABEL}="{models[name]["servedModelName"]}"' in q
                assert f'namespace="{ns}"' in q
                seen.add(q)
        # prod: two models, each scaled on its own load
        assert len(seen) == sum(len(prom_triggers(so)) for so in scaled_objects(stack).values())


def test_the_namespace_label_is_attached_by_the_vllm_monitor(rendered):
    """``namespace`` is not a vLLM label: the Prometheus Operator adds it to every target of a
    PodMonitor/ServiceMonitor; the stack's vLLM monitor must select the models' namespace and
    must not drop or rewrite ``namespace`` or ``model_name``."""
    ns = stack_file(rendered.stack).get("namespace", "llm")
    monitors = [
        m
        for m in rendered.of_kind("PodMonitor") + rendered.of_kind("ServiceMonitor")
        if m["spec"].get("selector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "vllm"
    ]
    if not monitors:
        pytest.skip("no vLLM monitor in this stack (Observability not composed)")
    for mon in monitors:
        assert ns in mon["spec"]["namespaceSelector"].get("matchNames", [ns]) or mon["spec"]["namespaceSelector"].get(
            "any"
        )
        endpoints = mon["spec"].get("podMetricsEndpoints") or mon["spec"].get("endpoints")
        for ep in endpoints:
            for rl in ep.get("relabelings", []) + ep.get("metricRelabelings", []):
                assert rl.get("targetLabel") not in ("namespace", metrics.VLLM_MODEL_LABEL), rl
                assert rl.get("action", "replace") not in ("labeldrop", "labelkeep") or "namespace" in rl.get(
                    "regex", ""
                ), rl


# --- the README's worked example ---------------------------------------------------------------


def test_readme_worked_example_is_what_the_prod_settings_yield():
    spec = scaled_objects("prod")["llama-8b"]["spec"]
    table = burst_table(spec)
    readme = (ROOT / "README.md").read_text()
    assert table in readme, "README's burst table is stale; regenerate with `.venv/bin/python tests/support/hpa_sim.py`"
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    replicas = [int(r[3]) for r in rows]
    assert max(replicas) == spec["maxReplicaCount"] and replicas[-1] == spec["minReplicaCount"]


def test_hpa_model_applies_windows_and_policies():
    spec = scaled_objects("prod")["llama-8b"]["spec"]
    hpa = Hpa(spec, replicas=2)
    trig = prom_triggers({"spec": spec})[0]["name"]
    for t in range(-600, 0, 15):
        hpa.step(t, {trig: 0})
    assert hpa.replicas == 2
    hpa.step(0, {trig: 400})
    assert hpa.replicas == 2  # a single spike is inside the scale-up stabilisation window
    for t in range(15, 61, 15):
        hpa.step(t, {trig: 400})
    assert hpa.replicas == 4  # +100% per minute from 2, not straight to 100


def test_a_knative_models_autoscaling_is_carried_out_by_knative_not_keda():
    """The same block on a Knative model scales it through Knative's autoscaler: no ScaledObject, no KEDA;
    a signal only KEDA has is refused on it."""
    model = {**base_model(minReplicas=0, maxReplicas=2), "serving": "knative"}
    r = render_with({"autoscaling": {"httpAddOn": True}, "models": [model]})
    assert not r.of_kind("ScaledObject") and not r.of_kind("HTTPScaledObject")
    assert not [h for h in r.helm_releases if h["chart"] in (versions.KEDA.chart, versions.KEDA_HTTP_ADDON.chart)]
    model["autoscaling"] = {**model["autoscaling"], "metric": "queueDepth"}
    with pytest.raises(
        StackConfigError, match=r"models\[0\] \(name: m\)\.autoscaling\.metric: queueDepth is a vLLM metric KEDA reads"
    ):
        render_with({"autoscaling": {"httpAddOn": True}, "models": [model]})


def test_outputs_are_the_effective_bounds_per_model():
    import pulumi

    from llmstack_k8s.scaling.gpu_autoscaling import GpuAutoscaling

    registered = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            registered.append((args.typ, args.name))
            state = dict(args.inputs)
            if args.typ.startswith("kubernetes:"):
                state.setdefault("metadata", {}).setdefault("name", args.name)
            return [args.name, state]

        def call(self, args):
            return {}

    pulumi.runtime.set_mocks(Mocks(), project="p", stack="s", preview=False)
    common = {
        "namespace": "llm",
        "served_model_name": "s",
        "startup_budget_seconds": 400,
        "metric": AutoscalingMetric.QUEUE_DEPTH,
        "target": 4,
        "cooldown_seconds": 600,
    }
    workloads = [
        {**common, "name": "a", "deployment_name": "a", "service_name": "a", "min_replicas": 2, "max_replicas": 6},
        {**common, "name": "b", "deployment_name": "b", "service_name": "b", "min_replicas": 0, "max_replicas": 1},
    ]

    @pulumi.runtime.test
    def run():
        c = GpuAutoscaling("as", {"workloads": workloads, "http_add_on": True})

        def check(args):
            bounds, endpoints, names = args
            assert bounds == {
                "a": {"min_replicas": 2, "max_replicas": 6, "cooldown_seconds": 600, "scale_to_zero": False},
                "b": {"min_replicas": 0, "max_replicas": 1, "cooldown_seconds": 600, "scale_to_zero": True},
            }
            assert endpoints == {"b": "http://b-buffered.llm.svc.cluster.local:8080/v1"}
            assert names == {"a": "a", "b": "b"}

        return pulumi.Output.all(c.bounds, c.buffered_endpoints, c.scaled_object_names).apply(check)

    run()
    kinds = [t for t, _ in registered]
    assert kinds.count("kubernetes:keda.sh/v1alpha1:ScaledObject") == 2
    assert kinds.count("kubernetes:http.keda.sh/v1alpha1:HTTPScaledObject") == 1
    assert kinds.count("kubernetes:helm.sh/v3:Release") == 2
