"""The connections between our objects and the objects of the charts we install, checked over the
whole expanded cluster of each stack (tests/support/chart_connections.py), each with a test that breaks
it on purpose (a label, a port, a namespace, a chart value) and sees the check fail.

A break on the chart side re-renders the real chart with changed values; a break on our side
edits our rendered object. Either side changing breaks ``make test``."""

import copy
import dataclasses
import functools

import pytest

from conftest import STACKS, rendered_stack
from stack.test_charts import expanded
from stacks.tools import charts
from support import chart_connections as cc


def _objects(cluster: charts.Cluster) -> list[dict]:
    return cluster.objects


def broken(stack: str, edit) -> charts.Cluster:
    """A copy of the stack's cluster with ``edit(cluster)`` applied to it."""
    cluster = copy.deepcopy(expanded(stack))
    edit(cluster)
    return cluster


def rerendered(stack: str, chart: str, values: dict | None = None, namespace: str | None = None) -> charts.Cluster:
    """The stack's cluster with one release's values deep-merged with ``values`` (or moved to
    ``namespace``), rendered again with the real chart."""
    rendered = rendered_stack(stack)

    def merge(a, b):
        return {**a, **{k: merge(a.get(k) or {}, v) if isinstance(v, dict) and v else v for k, v in b.items()}}

    releases = [dict(r) for r in rendered.helm_releases]
    release = next(r for r in releases if r["chart"] == chart)
    release["values"] = merge(release.get("values") or {}, values or {})
    if namespace:
        release["namespace"] = namespace
    fake = dataclasses.make_dataclass("R", ["stack", "objects", "helm_releases"])(stack, rendered.objects, releases)
    return charts.expand(fake)


def ours(cluster, kind, name=None) -> list[dict]:
    return [o for o in cluster.ours if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def from_chart(cluster, chart, kind) -> list[dict]:
    return [o for o in cluster.release(chart).objects if o["kind"] == kind] if cluster.release(chart) else []


# --- 1. Prometheus selects our PodMonitor, our PrometheusRule, the DCGM and KEDA ServiceMonitors --


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_selects_our_monitors_rules_and_the_dcgm_and_keda_servicemonitors(stack):
    cluster = expanded(stack)
    objects = _objects(cluster)
    assert not cc.prometheus_selects_monitors(objects)
    wanted = (
        ours(cluster, "PodMonitor")
        + ours(cluster, "PrometheusRule")
        + from_chart(cluster, "dcgm-exporter", "ServiceMonitor")
        + from_chart(cluster, "keda", "ServiceMonitor")
    )
    kinds = {(o["kind"], charts.owner(o)) for o in wanted}
    assert {
        ("PodMonitor", None),
        ("PrometheusRule", None),
        ("ServiceMonitor", "dcgm-exporter"),
        ("ServiceMonitor", "keda"),
    } <= kinds, kinds
    for o in wanted:
        assert cc.prometheus_selecting(objects, o), f"{o['kind']} {o['metadata']['name']} not selected"
    assert not cc.monitors_reach_targets(objects)


@pytest.mark.parametrize(
    "selector, victim",
    [
        ("podMonitorSelector", "PodMonitor monitoring/"),
        ("ruleSelector", "PrometheusRule monitoring/"),
        ("serviceMonitorSelector", "ServiceMonitor monitoring/dcgm-exporter"),
    ],
)
def test_break_prometheus_selector_in_the_chart_values(selector, victim):
    cluster = rerendered(
        "dev",
        "kube-prometheus-stack",
        {"prometheus": {"prometheusSpec": {selector: {"matchLabels": {"team": "someone-else"}}}}},
    )
    problems = cc.prometheus_selects_monitors(_objects(cluster))
    assert any(p.startswith(victim) for p in problems), problems


def test_break_prometheus_namespace_selector_leaves_keda_monitors_out():
    cluster = rerendered(
        "prod",
        "kube-prometheus-stack",
        {"prometheus": {"prometheusSpec": {"serviceMonitorNamespaceSelector": {"matchLabels": {"monitored": "true"}}}}},
    )
    problems = cc.prometheus_selects_monitors(_objects(cluster))
    assert any(p.startswith("ServiceMonitor keda/keda-operator ") for p in problems), problems


def test_break_dcgm_servicemonitor_port():
    def edit(c):
        sm = from_chart(c, "dcgm-exporter", "ServiceMonitor")[0]
        sm["spec"]["endpoints"][0]["port"] = "metricz"

    problems = cc.monitors_reach_targets(_objects(broken("prod", edit)))
    assert any("dcgm-exporter" in p and "metricz" in p for p in problems), problems


# --- 2. KEDA's Prometheus serverAddress is a Service the chart creates, on a port it opens --------


@pytest.mark.parametrize("stack", STACKS)
def test_keda_server_address_is_the_charts_prometheus_service(stack):
    cluster = expanded(stack)
    objects = _objects(cluster)
    assert not cc.keda_prometheus_address_resolves(objects)
    addresses = {
        t["metadata"]["serverAddress"]
        for so in ours(cluster, "ScaledObject")
        for t in so["spec"]["triggers"]
        if t["type"] == "prometheus"
    }
    assert addresses
    for address in addresses:
        svc, _, problem = cc.resolve_service_address(objects, address)
        assert not problem and charts.owner(svc) == "kube-prometheus-stack", address


def test_break_keda_server_address_port():
    def edit(c):
        ours(c, "ScaledObject")[0]["spec"]["triggers"][0]["metadata"]["serverAddress"] = (
            "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9091"
        )

    problems = cc.keda_prometheus_address_resolves(_objects(broken("prod", edit)))
    assert any("does not open port 9091" in p for p in problems), problems


def test_break_prometheus_service_port_in_the_chart_values():
    cluster = rerendered("prod", "kube-prometheus-stack", {"prometheus": {"service": {"port": 9091}}})
    problems = cc.keda_prometheus_address_resolves(_objects(cluster))
    assert any("does not open port 9090" in p for p in problems), problems


def test_break_prometheus_release_namespace():
    cluster = rerendered("prod", "kube-prometheus-stack", namespace="observability")
    problems = cc.keda_prometheus_address_resolves(_objects(cluster))
    assert any("no Service monitoring/kube-prometheus-stack-prometheus" in p for p in problems), problems


# --- 3. Grafana's dashboard sidecar picks up our dashboard ConfigMaps ----------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_sidecar_picks_up_our_dashboards(stack):
    cluster = expanded(stack)
    assert [cm for cm in cluster.ours if cc.is_dashboard(cm)], "no dashboards rendered"
    assert cc.dashboard_sidecars(_objects(cluster)), "no Grafana dashboard sidecar in the chart's output"
    assert not cc.grafana_sidecar_picks_dashboards(cluster.ours, _objects(cluster))


def test_break_grafana_sidecar_label_in_the_chart_values():
    cluster = rerendered(
        "dev", "kube-prometheus-stack", {"grafana": {"sidecar": {"dashboards": {"label": "dashboards_v2"}}}}
    )
    assert len(cc.grafana_sidecar_picks_dashboards(cluster.ours, _objects(cluster))) >= 2


def test_break_grafana_sidecar_namespace_in_the_chart_values():
    cluster = rerendered(
        "dev", "kube-prometheus-stack", {"grafana": {"sidecar": {"dashboards": {"searchNamespace": "grafana"}}}}
    )
    assert cc.grafana_sidecar_picks_dashboards(cluster.ours, _objects(cluster))


def test_break_dashboard_configmap_label():
    def edit(c):
        for cm in c.ours:
            if cc.is_dashboard(cm):
                cm["metadata"]["labels"]["grafana_dashboard"] = "yes"

    cluster = broken("prod", edit)
    assert cc.grafana_sidecar_picks_dashboards(cluster.ours, _objects(cluster))


# --- 4. The device plugin advertises the GPU resource our pods request ---------------------------


@pytest.mark.parametrize("stack, resource", [("dev", "nvidia.com/gpu.shared"), ("prod", "nvidia.com/gpu")])
def test_device_plugin_advertises_the_resource_our_pods_request(stack, resource):
    cluster = expanded(stack)
    configs = cc.device_plugin_configs(_objects(cluster))
    assert configs, "no device plugin DaemonSet in the chart's output"
    assert {r for _, r in cc.gpu_requests_of(cluster.ours)} == {resource}
    assert resource in set().union(*(cc.advertised_resources(c) for _, c in configs))
    assert not cc.device_plugin_advertises_requested_resources(cluster.ours, _objects(cluster))


def test_break_device_plugin_sharing_config_in_the_chart_values():
    """dev time-slices its GPUs (renamed nvidia.com/gpu.shared): a config without sharing leaves
    its pods requesting a resource no node has."""
    cluster = rerendered(
        "dev", "nvidia-device-plugin", {"config": {"map": {"default": "version: v1\nflags:\n  migStrategy: none\n"}}}
    )
    problems = cc.device_plugin_advertises_requested_resources(cluster.ours, _objects(cluster))
    assert any("nvidia.com/gpu.shared" in p for p in problems), problems


def test_break_pod_gpu_resource_name():
    def edit(c):
        limits = ours(c, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        limits["nvidia.com/gpu"] = limits.pop("nvidia.com/gpu.shared")

    cluster = broken("dev", edit)
    problems = cc.device_plugin_advertises_requested_resources(cluster.ours, _objects(cluster))
    assert any("requests nvidia.com/gpu," in p for p in problems), problems


# --- 5. Our NetworkPolicies admit Prometheus, the KEDA interceptor, Knative's data plane ---------


@pytest.mark.parametrize("stack", STACKS)
def test_network_policies_admit_the_charts_callers(stack):
    objects = _objects(expanded(stack))
    callers = {c.owner for c, *_ in cc.chart_callers(objects)}
    assert any(c.startswith("Prometheus monitoring/") for c in callers), callers
    if stack == "dev":  # scale-from-zero Deployment behind the KEDA interceptor, a Knative model
        assert "Deployment keda/keda-add-ons-http-interceptor" in callers, callers
        assert {"activator", "kourier-gateway", "autoscaler"} <= {
            c.split(" ")[1] for c in callers if c.startswith("Knative ")
        }
    assert not cc.network_policies_admit_chart_callers(objects)


@pytest.mark.parametrize(
    "caller, drop",
    [
        ("Prometheus monitoring/", "monitoring"),
        ("Deployment keda/keda-add-ons-http-interceptor", "keda"),
        ("Knative activator", "knative-serving"),
    ],
)
def test_break_network_policy_namespace(caller, drop):
    def edit(c):
        for np in ours(c, "NetworkPolicy"):
            for rule in np["spec"]["ingress"]:
                for peer in rule.get("from") or []:
                    for e in (peer.get("namespaceSelector") or {}).get("matchExpressions") or []:
                        e["values"] = [v for v in e["values"] if v != drop] or ["nowhere"]

    problems = cc.network_policies_admit_chart_callers(_objects(broken("dev", edit)))
    assert any(p.startswith(caller) for p in problems), problems


def test_break_network_policy_port():
    def edit(c):
        for np in ours(c, "NetworkPolicy"):
            for rule in np["spec"]["ingress"]:
                for port in rule.get("ports") or []:
                    if port["port"] == 8012:
                        port["port"] = 8080

    problems = cc.network_policies_admit_chart_callers(_objects(broken("dev", edit)))
    assert any(p.startswith("Knative activator") and "port 8012" in p for p in problems), problems


def test_break_prometheus_release_namespace_is_not_admitted():
    cluster = rerendered("prod", "kube-prometheus-stack", namespace="observability")
    problems = cc.network_policies_admit_chart_callers(_objects(cluster))
    assert any(p.startswith("Prometheus observability/") for p in problems), problems


def test_break_knativeserving_namespace_is_not_admitted():
    def edit(c):
        ours(c, "KnativeServing")[0]["metadata"]["namespace"] = "knative-system"

    problems = cc.network_policies_admit_chart_callers(_objects(broken("dev", edit)))
    assert any(p.startswith("Knative kourier-gateway") for p in problems), problems


@pytest.mark.parametrize("stack", STACKS)
def test_externalname_services_resolve_to_the_charts_services(stack):
    objects = _objects(expanded(stack))
    assert not cc.buffered_services_resolve(objects)


def test_break_buffered_service_port():
    def edit(c):
        svc = next(s for s in ours(c, "Service") if s["spec"].get("type") == "ExternalName")
        svc["spec"]["ports"][0]["port"] = 8081

    problems = cc.buffered_services_resolve(_objects(broken("dev", edit)))
    assert any("interceptor-proxy" in p and "8081" in p for p in problems), problems


# --- 6. Privileged DaemonSets land in namespaces whose Pod Security label allows them -----------

PRIVILEGED_DAEMONSETS = {
    "nvidia-device-plugin": "nvidia-device-plugin",
    "dcgm-exporter": "dcgm-exporter",
    "kube-prometheus-stack": "prometheus-node-exporter",
}


@pytest.mark.parametrize("stack", STACKS)
def test_privileged_daemonsets_land_in_namespaces_that_allow_them(stack):
    cluster = expanded(stack)
    objects = _objects(cluster)
    for chart, name in PRIVILEGED_DAEMONSETS.items():
        ds = [o for o in from_chart(cluster, chart, "DaemonSet") if name in o["metadata"]["name"]]
        assert ds, f"{chart}: no {name} DaemonSet"
        assert cc.pod_security_level(ds[0]["spec"]["template"]["spec"])[0] == "privileged", ds[0]["metadata"]["name"]
        assert cc.namespace_level(objects, ds[0]["metadata"]["namespace"]) == ("privileged", True)
    assert not cc.pods_admitted_by_namespace_pod_security(objects)


def test_break_device_plugin_namespace_label():
    """The device plugin's namespace as Helm's createNamespace makes it (no Pod Security label)."""

    def edit(c):
        c.ours = [
            o for o in c.ours if not (o["kind"] == "Namespace" and o["metadata"]["name"] == "nvidia-device-plugin")
        ]
        c.release("nvidia-device-plugin").create_namespace = True

    problems = cc.pods_admitted_by_namespace_pod_security(_objects(broken("prod", edit)))
    assert any(
        p.startswith("DaemonSet nvidia-device-plugin/nvidia-device-plugin ") and "has no" in p for p in problems
    ), problems


def test_break_monitoring_namespace_level():
    def edit(c):
        ns = ours(c, "Namespace", "monitoring")[0]
        ns["metadata"]["labels"][cc.PSA_ENFORCE] = "baseline"

    problems = cc.pods_admitted_by_namespace_pod_security(_objects(broken("prod", edit)))
    assert any(p.startswith("DaemonSet monitoring/dcgm-exporter ") for p in problems), problems
    assert any(
        p.startswith("DaemonSet monitoring/kube-prometheus-stack-prometheus-node-exporter ") for p in problems
    ), problems


def test_break_restricted_namespace_refuses_a_root_pod():
    def edit(c):
        # a model's server (llm enforces restricted; the router lives in the user's Gateway namespace)
        sc = ours(c, "Deployment", "llama-8b")[0]["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        sc["runAsNonRoot"] = False

    problems = cc.pods_admitted_by_namespace_pod_security(_objects(broken("prod", edit)))
    assert any("needs Pod Security level baseline" in p and "enforces restricted" in p for p in problems), problems


# --- 7. The generated stacks of the cross-object checks (modes dev and prod do not use) -------------

from stack.test_cross_objects import GENERATED  # noqa: E402


@functools.cache
def expanded_generated(name: str) -> charts.Cluster:
    from conftest import render_with

    try:
        return charts.expand(render_with(copy.deepcopy(GENERATED[name])))
    except charts.ChartExpansionError as e:  # a chart the build machines cannot fetch (the GPU operator)
        pytest.skip(str(e))


def _all_connection_problems(cluster: charts.Cluster) -> list[str]:
    objects = _objects(cluster)
    return [
        *cc.prometheus_selects_monitors(objects),
        *cc.monitors_reach_targets(objects),
        *cc.keda_prometheus_address_resolves(objects),
        *cc.grafana_sidecar_picks_dashboards(cluster.ours, objects),
        *cc.device_plugin_advertises_requested_resources(cluster.ours, objects),
        *cc.network_policies_admit_chart_callers(objects),
        *cc.buffered_services_resolve(objects),
        *cc.pods_admitted_by_namespace_pod_security(objects),
    ]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_stacks_connect_to_their_charts(name):
    cluster = expanded_generated(name)
    assert cluster.objects
    problems = _all_connection_problems(cluster)
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def test_dcgm_exporter_beside_an_existing_prometheus_gets_a_privileged_namespace_of_its_own():
    """With installPrometheusStack false the monitoring namespace is the user's (its Pod Security
    level unknown): the exporter runs in a namespace the stack creates, labelled privileged, and its
    ServiceMonitor there carries the labels the user's Prometheus selects."""
    cluster = expanded_generated("fixed-replicas-existing-prometheus")
    objects = _objects(cluster)
    (ds,) = list(from_chart(cluster, "dcgm-exporter", "DaemonSet"))
    ns = ds["metadata"]["namespace"]
    assert ns == "dcgm-exporter" and ours(cluster, "Namespace", ns), ns
    assert cc.namespace_level(objects, ns) == ("privileged", True)
    (sm,) = from_chart(cluster, "dcgm-exporter", "ServiceMonitor")
    assert sm["metadata"]["namespace"] == ns and sm["metadata"]["labels"]["release"] == "prom"
    # The monitors and rules stay in the user's namespace; the stack does not create it.
    assert not ours(cluster, "Namespace", "monitoring")
    assert {o["metadata"]["namespace"] for o in ours(cluster, "PodMonitor") + ours(cluster, "PrometheusRule")} == {
        "monitoring"
    }


def test_break_dcgm_exporter_in_the_existing_monitoring_namespace():
    """Where the exporter used to land: the user's namespace, whose level the stack cannot vouch for."""

    def edit(c):
        for o in c.release("dcgm-exporter").objects:
            if o["metadata"].get("namespace"):
                o["metadata"]["namespace"] = "monitoring"

    cluster = copy.deepcopy(expanded_generated("fixed-replicas-existing-prometheus"))
    edit(cluster)
    problems = cc.pods_admitted_by_namespace_pod_security(_objects(cluster))
    assert any(p.startswith("DaemonSet monitoring/dcgm-exporter ") and "has no" in p for p in problems), problems


def test_refused_dcgm_namespace_the_stack_cannot_own():
    from conftest import assert_refused

    config = copy.deepcopy(GENERATED["fixed-replicas-existing-prometheus"])
    config["observability"]["dcgmExporterNamespace"] = "kube-system"
    assert_refused(config, "observability.dcgmExporterNamespace")
