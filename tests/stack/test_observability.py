"""Observability: what Prometheus, Grafana and the DCGM exporter get, per stack and per option."""

import json

import pulumi
import pytest

from conftest import render_with
from llmstack_k8s.observability import metrics
from llmstack_k8s.observability.observability import KNATIVE_USER_PORT, Observability, dashboards
from llmstack_k8s.versions import DCGM_EXPORTER, KUBE_PROMETHEUS_STACK
from stacks.config.loader import StackConfigError

MODEL = {
    "name": "tiny",
    "model": "Qwen/Qwen2.5-0.5B-Instruct",
    "revision": "7ae557604adf67be50417f59c2c2f167def9a775",
    "servedModelName": "tiny-instruct",
    "cache": {"size": "10Gi"},
}


def _release(rendered, chart: str) -> dict:
    found = [r for r in rendered.helm_releases if r["chart"] == chart]
    assert len(found) == 1, f"{rendered.stack}: {len(found)} releases of {chart}"
    return found[0]


def _one(rendered, kind: str, name: str) -> dict:
    found = [o for o in rendered.of_kind(kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{rendered.stack}: {kind}/{name} x{len(found)}"
    return found[0]


def test_kube_prometheus_stack_is_pinned_at_the_fixed_address(rendered):
    r = _release(rendered, "kube-prometheus-stack")
    assert r["version"] == KUBE_PROMETHEUS_STACK.version and r["version"].startswith("88.5.")
    assert (r["name"], r["namespace"]) == ("kube-prometheus-stack", "monitoring")
    assert r["values"]["fullnameOverride"] == "kube-prometheus-stack"
    spec = r["values"]["prometheus"]["prometheusSpec"]
    # monitors and rules from outside the chart must be picked up
    for key in (
        "ruleSelectorNilUsesHelmValues",
        "serviceMonitorSelectorNilUsesHelmValues",
        "podMonitorSelectorNilUsesHelmValues",
    ):
        assert spec[key] is False
    assert spec["resources"]["limits"]["memory"] == spec["resources"]["requests"]["memory"]
    sidecar = r["values"]["grafana"]["sidecar"]["dashboards"]
    assert sidecar["enabled"] is True and (sidecar["label"], sidecar["labelValue"]) == ("grafana_dashboard", "1")
    # Grafana's admin password is generated and kept in a Secret, never the chart's default
    admin = r["values"]["grafana"]["admin"]
    secret = _one(rendered, "Secret", admin["existingSecret"])
    assert set(secret["stringData"]) == {admin["userKey"], admin["passwordKey"]}


def test_prometheus_retention_and_storage_per_environment(rendered):
    spec = _release(rendered, "kube-prometheus-stack")["values"]["prometheus"]["prometheusSpec"]
    if rendered.stack == "dev":
        assert spec["retention"] == "3d" and "storageSpec" not in spec
    else:
        claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
        assert spec["retention"] == "15d" and claim["resources"]["requests"]["storage"] == "100Gi"
        assert spec["retentionSize"] == "85GB"


def _servers(deployments: list[dict]) -> list[dict]:
    """The vLLM server Deployments (not, e.g., an InferencePool's endpoint picker, which needs no GPU)."""
    return [d for d in deployments if d["metadata"]["labels"].get("app.kubernetes.io/component") == "server"]


def test_dcgm_exporter_runs_on_gpu_nodes_only(rendered):
    r = _release(rendered, "dcgm-exporter")
    assert r["version"] == DCGM_EXPORTER.version and r["version"].startswith("4.8.")
    v = r["values"]
    assert v["nodeSelector"], "without a node selector the exporter lands (and crashes) on CPU nodes"
    for d in _servers(rendered.of_kind("Deployment")):  # same nodes as the GPU pods (the pool's contract)
        assert d["spec"]["template"]["spec"].get("nodeSelector") == v["nodeSelector"], d["metadata"]["name"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in v["tolerations"]
    assert v["serviceMonitor"]["enabled"] is True


def test_every_vllm_pod_is_scraped_with_its_model_name_kept(rendered):
    pm = _one(rendered, "PodMonitor", "vllm")
    endpoints = {e["port"] for e in pm["spec"]["podMetricsEndpoints"]}
    servers = _servers(rendered.of_kind("Deployment")) + [
        s for s in rendered.of_kind("Service") if s["apiVersion"].startswith("serving.knative.dev/")
    ]
    assert servers
    for d in servers:
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        assert all(pod_labels.get(k) == v for k, v in pm["spec"]["selector"]["matchLabels"].items()), d["metadata"][
            "name"
        ]
        assert d["metadata"]["namespace"] in pm["spec"]["namespaceSelector"]["matchNames"]
        if d["kind"] == "Deployment":
            ports = {p["name"] for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            assert ports & endpoints, d["metadata"]["name"]
        else:  # Knative renames the user container's port to "user-port" in the pods it creates
            assert KNATIVE_USER_PORT in endpoints
    for e in pm["spec"]["podMetricsEndpoints"]:
        assert e["path"] == "/metrics"
        for rl in e.get("relabelings", []) + e.get("metricRelabelings", []):
            assert rl.get("action", "replace") == "replace" and rl["targetLabel"] != metrics.VLLM_MODEL_LABEL
    # the monitoring namespace may scrape: the servers' NetworkPolicy admits it
    for np in rendered.of_kind("NetworkPolicy"):
        if "llmstack.dev/team" in np["metadata"].get("labels", {}):
            continue  # a team's boundary admits its own namespace only; the model's own policy admits Prometheus
        if np["metadata"]["labels"].get("app.kubernetes.io/component") == "body-based-router":
            continue  # nothing scrapes the router (no monitor selects it): its policy admits the Gateway alone
        allowed = [
            v
            for rule in np["spec"]["ingress"]
            for s in rule["from"]
            for e in s.get("namespaceSelector", {}).get("matchExpressions", [])
            for v in e["values"]
        ]
        assert "monitoring" in allowed, np["metadata"]["name"]


def test_alerts_cover_every_model(rendered):
    rule = _one(rendered, "PrometheusRule", "llmstack-alerts")
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {
        "VllmQueueBuildingUp",
        "VllmKvCacheNearlyFull",
        "VllmPreemptionsRising",
        "VllmTtftSloBreached",
        "VllmHighErrorRate",
        "VllmPodCrashLooping",
        "ModelDownloadFailed",
        "GpuXidError",
        "GpuMemoryNearlyFull",
    } <= names
    # one TTFT SLO rule per model; a "model down" rule for every model that should never be at zero
    ttft = " ".join(r["expr"] for r in rules if r["alert"] == "VllmTtftSloBreached")
    down = {r["labels"]["model"] for r in rules if r["alert"] == "VllmModelDown"}
    if rendered.stack == "prod":
        assert 'model_name="llama-3.1-8b-instruct"}[5m]))) > 1.5' in ttft
        assert 'model_name="llama-3.1-70b-instruct"}[5m]))) > 4' in ttft
        assert down == {"llama-8b", "llama-70b"}
    else:  # both dev models scale to zero: being at zero is not an outage
        assert 'model_name="qwen2.5-0.5b-instruct"}[5m]))) > 3' in ttft
        assert down == set()
    jobs = {j["metadata"]["name"] for j in rendered.of_kind("Job")}
    failed = " ".join(r["expr"] for r in rules if r["alert"] == "ModelDownloadFailed")
    assert jobs and all(j in failed for j in jobs)


def test_dashboards_ship_as_configmaps_for_the_sidecar(rendered):
    cms = [c for c in rendered.of_kind("ConfigMap") if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert len(cms) == len(dashboards()) >= 2
    titles = set()
    for cm in cms:
        assert cm["metadata"]["namespace"] == "monitoring"
        (text,) = cm["data"].values()
        assert "{{metric:" not in text
        titles.add(json.loads(text)["title"])
    assert titles == {d["title"] for d in dashboards().values()}


def test_per_model_ttft_slo_and_stack_thresholds_reach_the_rules():
    r = render_with(
        {
            "models": [{**MODEL, "sloTtftP95Seconds": 0.75}],
            "observability": {"alerts": {"kvCacheUsageRatio": 0.8, "queueWaitingRequests": 25}},
        }
    )
    rules = {x["alert"]: x for g in _one(r, "PrometheusRule", "llmstack-alerts")["spec"]["groups"] for x in g["rules"]}
    assert (
        rules["VllmTtftSloBreached"]["expr"].endswith("> 0.75")
        and 'model_name="tiny-instruct"' in rules["VllmTtftSloBreached"]["expr"]
    )
    assert rules["VllmKvCacheNearlyFull"]["expr"].endswith("> 0.8")
    assert rules["VllmQueueBuildingUp"]["expr"].endswith("> 25")


def test_existing_prometheus_operator_instead_of_the_chart():
    r = render_with(
        {
            "models": [MODEL],
            "network": {"monitoringNamespaces": ["observability"]},
            "observability": {
                "namespace": "observability",
                "installPrometheusStack": False,
                "prometheusUrl": "http://prometheus-operated.observability.svc:9090",
                "monitorLabels": {"prometheus": "main"},
            },
        }
    )
    assert [x["chart"] for x in r.helm_releases if x["chart"] == "kube-prometheus-stack"] == []
    assert not [n for n in r.of_kind("Namespace") if n["metadata"]["name"] == "observability"], (
        "an existing namespace is not created"
    )
    for kind in ("PodMonitor", "PrometheusRule"):
        for o in r.of_kind(kind):
            assert o["metadata"]["labels"]["prometheus"] == "main" and o["metadata"]["namespace"] == "observability"
    assert _release(r, "dcgm-exporter")["values"]["serviceMonitor"]["additionalLabels"] == {"prometheus": "main"}


@pytest.mark.parametrize(
    "observability, network, message",
    [
        ({"namespace": "metrics"}, None, "observability.namespace 'metrics' is not in network.monitoringNamespaces"),
        (
            {"alerts": {"gpuMemoryRatio": 0.85}},
            None,
            "gpuMemoryRatio 0.85 is not above models[0] (name: tiny).gpuMemoryUtilization",
        ),
        (
            {"prometheus": {"storageSize": "50Gi", "retentionSize": "60GB"}},
            None,
            "retentionSize 60GB does not fit in storageSize 50Gi",
        ),
        ({"prometheusUrl": "http://p:9090"}, None, "set installPrometheusStack: false"),
        ({"installPrometheusStack": False}, None, "set prometheusUrl"),
        ({"alerts": {"kvCacheUsageRatio": 90}}, None, "llmstack:observability.alerts.kvCacheUsageRatio"),
        (
            {"alerts": {"queueWaitingRequest": 5}},
            None,
            "llmstack:observability.alerts.queueWaitingRequest: unknown key",
        ),
    ],
)
def test_bad_observability_config_is_refused_with_the_key(observability, network, message):
    cfg = {"models": [MODEL], "observability": observability}
    if network:
        cfg["network"] = network
    with pytest.raises(StackConfigError) as err:
        render_with(cfg)
    assert message in str(err.value) and "Pulumi.test.yaml" in str(err.value)


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        state = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = "pw"
        if args.typ.startswith("kubernetes:"):
            state.setdefault("metadata", {}).setdefault("name", args.name)
        return [f"{args.name}-id", state]

    def call(self, args):
        return {}


def test_outputs_give_the_fixed_prometheus_and_grafana_addresses():
    pulumi.runtime.set_mocks(_Mocks(), preview=False)

    @pulumi.runtime.test
    def check():
        obs = Observability(
            "obs",
            {"models": [{"name": "m", "namespace": "llm", "served_model_name": "m"}], "serving_namespaces": ["llm"]},
        )

        def verify(args):
            prom, grafana = args
            assert prom == "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
            assert grafana == "http://kube-prometheus-stack-grafana.monitoring.svc.cluster.local"

        return pulumi.Output.all(obs.prometheus_url, obs.grafana_url).apply(verify)

    check()
