"""GpuAutoscaling: KEDA scaling of vLLM servers on the signals that predict LLM latency.

GPU utilisation sits near 100% under a single LLM request, so it says nothing about load.
What does: requests waiting in vLLM's queue (burst signal), KV-cache use (how full the
running batch is; holds capacity while the queue is empty) and, optionally, TTFT p95.
Every query selects its model by ``model_name`` (a label vLLM itself puts on every series)
and by the ``namespace`` label the Prometheus Operator's monitors attach to every target.

Scale-to-zero is only built where it is safe: a Deployment at zero replicas exports no vLLM
metrics and nothing would hold the first request, so ``min_replicas: 0`` needs the KEDA HTTP
add-on: its interceptor buffers requests while a pod starts and its external scaler gives
KEDA a signal that exists at zero. Models served by Knative scale to zero on their own.

Replica counts belong to the HPA that KEDA creates: a VllmService that is autoscaled must be
created with ``autoscaled: True`` so its Deployment leaves ``spec.replicas`` unset.
"""

import math
from enum import Enum
from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .. import versions
from .._core.helm import ChartSourceArgs, check_chart_source, pinned_release, release_namespace
from .._core.package import MANAGED_BY, type_token
from .._core.validation import args_error, validate_args
from .._core.wiring import server_facts
from ..observability import metrics
from ..serving.vllm_pod import HTTP_PORT, STARTUP_UNKNOWN_SIZE_SECONDS
from ..sizing.cold_start import DEFAULT_SCHEDULING_SECONDS
from .cron import cron_problem, timezone_problem

#: Prometheus of the Observability component (kube-prometheus-stack, release in ``monitoring``).
DEFAULT_PROMETHEUS_URL = "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
DEFAULT_KEDA_NAMESPACE = "keda"
#: Label the Prometheus Operator (ServiceMonitor/PodMonitor) puts on every scraped series.
NAMESPACE_LABEL = "namespace"
#: Names the keda-add-ons-http chart gives its Services (from the chart name, not the release).
HTTP_INTERCEPTOR_SERVICE = "keda-add-ons-http-interceptor-proxy"
HTTP_INTERCEPTOR_PORT = 8080
HTTP_EXTERNAL_SCALER_SERVICE = "keda-add-ons-http-external-scaler"
HTTP_EXTERNAL_SCALER_PORT = 9090
#: The add-on skips creating its own ScaledObject; ours carries its trigger next to vLLM's.
SKIP_SCALEDOBJECT_ANNOTATION = "httpscaledobject.keda.sh/skip-scaledobject-creation"
#: Window of the TTFT p95 query (rate over histogram buckets).
TTFT_WINDOW = "2m"

# HPA behaviour tuned for GPU pods that take minutes to start (see README: autoscaling).
SCALE_UP_STABILIZATION_SECONDS = 60
SCALE_UP_PERIOD_SECONDS = 60
SCALE_UP_MAX_PODS = 2
SCALE_UP_MAX_PERCENT = 100
SCALE_DOWN_PERIOD_SECONDS = 120
SCALE_DOWN_MAX_PODS = 1


class AutoscalingMetric(str, Enum):
    """The primary signal a model scales on."""

    QUEUE_DEPTH = "queueDepth"
    """Requests waiting in vLLM's queue, per replica (``vllm:num_requests_waiting``)."""
    KV_CACHE_USAGE = "kvCacheUsage"
    """KV-cache use per replica, a 0..1 fraction (``vllm:kv_cache_usage_perc``)."""
    TTFT_P95 = "ttftP95"
    """95th percentile time to first token in seconds, over the model's replicas."""


class CronScheduleArgs(TypedDict):
    """A window of warm capacity: KEDA's cron scaler keeps at least ``min_replicas`` replicas from
    ``start`` to ``end`` (business hours, a known peak), whatever the load says."""

    start: str
    """Cron expression (five fields) when the window opens, e.g. ``0 8 * * 1-5``; plain: checked at preview."""
    end: str
    """Cron expression when the window closes, e.g. ``0 18 * * 1-5``."""
    min_replicas: int
    """Replicas kept during the window (the cron scaler's ``desiredReplicas``); at most ``max_replicas``."""
    timezone: NotRequired[str]
    """IANA time zone of the expressions (default ``UTC``)."""


class ScaledWorkloadArgs(TypedDict):
    """One vLLM Deployment to scale, and how."""

    name: str
    """Key of the workload (the model's short name); names the ScaledObject. Plain, not an Input:
    it names child resources, which must be known at preview."""
    namespace: pulumi.Input[str]
    """Namespace of the Deployment and its Service."""
    deployment_name: pulumi.Input[str]
    """Deployment to scale (``VllmService.deployment_name``)."""
    service_name: pulumi.Input[str]
    """Service in front of the Deployment (``VllmService.service_name``); the HTTP add-on routes to it."""
    served_model_name: pulumi.Input[str]
    """The ``model_name`` label value vLLM exports: the served model name (``VllmService.served_model_name``)."""
    startup_budget_seconds: NotRequired[int]
    """Seconds a replica may take to load (the startup probe's budget); cooldowns must cover it
    (default: the VllmService's own budget when ``deployment_name`` is its output, else 1800)."""
    scheduling_seconds: NotRequired[int]
    """Seconds before a new replica's container starts (a node, then the image; default: the
    VllmService's own figure when ``deployment_name`` is its output, else the default figures). At
    zero the HTTP add-on holds the first request through them and the load."""
    min_replicas: NotRequired[int]
    """Fewest replicas (default 1); 0 (scale to zero) needs ``http_add_on``."""
    max_replicas: int
    """Most replicas."""
    metric: NotRequired[AutoscalingMetric]
    """Primary signal (default queueDepth)."""
    target: NotRequired[float]
    """Target of the primary signal per replica (default: 4 waiting requests, 0.8 KV-cache use,
    or 2 s of TTFT p95)."""
    cooldown_seconds: NotRequired[int]
    """Seconds of low load before scaling down (HPA scale-down stabilisation; KEDA cooldown before
    1 -> 0); at least the startup budget (default: the larger of 600 and the budget)."""
    kv_cache_target: NotRequired[float]
    """Secondary trigger: KV-cache use per replica (0..1) that adds replicas even with an empty queue."""
    ttft_p95_seconds: NotRequired[float]
    """Secondary trigger: TTFT p95 in seconds above which replicas are added."""
    schedules: NotRequired[list[CronScheduleArgs]]
    """Warm capacity: windows with a higher replica floor (KEDA cron triggers), started before the
    traffic so the replicas have loaded by then."""
    polling_interval_seconds: NotRequired[int]
    """How often KEDA evaluates the triggers (default 15)."""
    http_concurrency_target: NotRequired[int]
    """Scale-to-zero only: in-flight requests per replica for the HTTP add-on's trigger (default 100)."""


#: Default target of each primary signal: waiting requests per replica, KV-cache fraction, TTFT p95 s.
DEFAULT_TARGETS = {
    AutoscalingMetric.QUEUE_DEPTH: 4.0,
    AutoscalingMetric.KV_CACHE_USAGE: 0.8,
    AutoscalingMetric.TTFT_P95: 2.0,
}
#: Shortest default cooldown: a lull between bursts should not throw away a loaded model.
MIN_COOLDOWN_SECONDS = 600
DEFAULT_POLLING_INTERVAL_SECONDS = 15


def default_cooldown_seconds(startup_budget_seconds: int) -> int:
    """Cooldown when none is given: never shorter than a replica takes to load, nor than MIN_COOLDOWN_SECONDS."""
    return max(MIN_COOLDOWN_SECONDS, startup_budget_seconds)


DEFAULT_KEDA_RELEASE = "keda"
DEFAULT_KEDA_HTTP_RELEASE = "keda-add-ons-http"


def with_defaults(w: ScaledWorkloadArgs) -> ScaledWorkloadArgs:
    """A workload with every default filled in; the startup budget comes from the VllmService
    whose ``deployment_name`` output it is, when it is one."""
    facts = server_facts(w["deployment_name"])
    budget = w.get("startup_budget_seconds") or (
        facts.startup_budget_seconds if facts else STARTUP_UNKNOWN_SIZE_SECONDS
    )
    metric = AutoscalingMetric(w.get("metric", AutoscalingMetric.QUEUE_DEPTH))
    return {
        **w,
        "startup_budget_seconds": budget,
        "scheduling_seconds": w.get("scheduling_seconds")
        or (facts.scheduling_seconds if facts else DEFAULT_SCHEDULING_SECONDS),
        "min_replicas": w.get("min_replicas", 1),
        "metric": metric,
        "target": w.get("target", DEFAULT_TARGETS[metric]),
        "cooldown_seconds": w.get("cooldown_seconds", default_cooldown_seconds(budget)),
        "polling_interval_seconds": w.get("polling_interval_seconds", DEFAULT_POLLING_INTERVAL_SECONDS),
    }


def checked_workloads(name: str, args: "GpuAutoscalingArgs") -> list[ScaledWorkloadArgs]:
    """The workloads with defaults, refused (naming the component and the key) when they would
    drop requests, flap, or fight Pulumi over replicas."""
    out: list[ScaledWorkloadArgs] = []
    seen: set[str] = set()
    for i, raw in enumerate(args["workloads"]):
        w = with_defaults(raw)
        if w["name"] in seen:
            raise args_error("GpuAutoscaling", name, f"workloads[{i}].name", f"{w['name']!r} appears twice")
        seen.add(w["name"])
        facts = server_facts(w["deployment_name"])
        if facts is not None and not facts.autoscaled:
            raise args_error(
                "GpuAutoscaling",
                name,
                f"workloads[{i}].deployment_name",
                f"VllmService {facts.name!r} was not created with autoscaled=True: Pulumi would reset "
                "spec.replicas on every update while the HPA sets it, and the two fight over replicas; create it "
                "with autoscaled=True",
            )
        try:
            validate_workload(w, args.get("http_add_on", False))
        except ValueError as e:
            raise args_error("GpuAutoscaling", name, f"workloads[{i}]", str(e)) from None
        out.append(w)
    return out


class GpuAutoscalingArgs(TypedDict):
    """Arguments of a GpuAutoscaling."""

    workloads: list[ScaledWorkloadArgs]
    """Deployments to scale, one ScaledObject each."""
    install_keda: NotRequired[bool]
    """Install the KEDA operator chart (default true; false: use the cluster's KEDA)."""
    keda_namespace: NotRequired[str]
    """Namespace of KEDA and the HTTP add-on (default ``keda``). Plain, not an Input: the interceptor's
    and external scaler's in-cluster addresses are composed from it at preview."""
    keda_release_name: NotRequired[str]
    """Helm release name of KEDA (default ``keda``; one KEDA per cluster: its CRDs and webhooks are cluster-wide)."""
    http_add_on_release_name: NotRequired[str]
    """Helm release name of the HTTP add-on (default ``keda-add-ons-http``)."""
    http_add_on: NotRequired[bool]
    """Use the KEDA HTTP add-on (installed with KEDA) so Deployments can scale to zero safely."""
    prometheus_url: NotRequired[pulumi.Input[str]]
    """Prometheus KEDA queries (default: the Observability component's)."""
    service_monitor_labels: NotRequired[dict[str, pulumi.Input[str]]]
    """Labels on KEDA's own ServiceMonitors so the stack's Prometheus selects them."""
    prometheus_operator_api: NotRequired[pulumi.Input[str]]
    """``Observability.prometheus_operator_api``: KEDA's chart creates ServiceMonitors, so it is
    installed only once this is known (the Prometheus Operator's CRDs are installed)."""
    chart_source: NotRequired[ChartSourceArgs]
    """Where the KEDA and HTTP add-on charts come from: a directory of packaged charts or a private
    mirror (default: the pins' upstream repository)."""


def autoscaling_charts(args: GpuAutoscalingArgs) -> list[versions.Chart]:
    """The pinned charts a GpuAutoscaling with these args installs."""
    if not args.get("install_keda", True):
        return []
    return [versions.KEDA, *([versions.KEDA_HTTP_ADDON] if args.get("http_add_on", False) else [])]


class ReplicaBounds(TypedDict):
    """The bounds a workload is scaled within."""

    min_replicas: int
    """Fewest replicas (0: scales to zero through the HTTP add-on)."""
    max_replicas: int
    """Most replicas."""
    cooldown_seconds: int
    """Seconds of low load before a replica is removed."""
    scale_to_zero: bool
    """Whether the workload scales to zero when idle."""


def hpa_behavior(cooldown_seconds: int) -> dict:
    """HPA ``behavior`` for GPU pods that take minutes to start.

    Up: ignore a single-poll spike (60 s window), then at most double or add 2 pods per
    minute, whichever is more. Down: only after ``cooldown_seconds`` of lower recommendations,
    one pod per 2 minutes, so a lull between bursts does not throw away a loaded model."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": SCALE_UP_STABILIZATION_SECONDS,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": SCALE_UP_MAX_PODS, "periodSeconds": SCALE_UP_PERIOD_SECONDS},
                {"type": "Percent", "value": SCALE_UP_MAX_PERCENT, "periodSeconds": SCALE_UP_PERIOD_SECONDS},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": cooldown_seconds,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": SCALE_DOWN_MAX_PODS, "periodSeconds": SCALE_DOWN_PERIOD_SECONDS}],
        },
    }


def _selector(served_model_name: str, namespace: str) -> str:
    return f'{metrics.VLLM_MODEL_LABEL}="{served_model_name}",{NAMESPACE_LABEL}="{namespace}"'


def prometheus_query(metric: AutoscalingMetric, served_model_name: str, namespace: str) -> str:
    """The PromQL of a trigger. Sums are divided per replica by the HPA (AverageValue);
    TTFT p95 is one value for the model (Value)."""
    sel = _selector(served_model_name, namespace)
    if metric == AutoscalingMetric.QUEUE_DEPTH:
        return f"sum({metrics.VLLM_REQUESTS_WAITING}{{{sel}}})"
    if metric == AutoscalingMetric.KV_CACHE_USAGE:
        return f"sum({metrics.VLLM_KV_CACHE_USAGE}{{{sel}}})"
    if metric == AutoscalingMetric.TTFT_P95:
        return f"histogram_quantile(0.95, sum by (le) (rate({metrics.VLLM_TTFT_BUCKET}{{{sel}}}[{TTFT_WINDOW}])))"
    raise ValueError(f"metric: unknown {metric!r}")


def _format_target(value: float) -> str:
    return f"{value:g}"


def validate_workload(w: ScaledWorkloadArgs, http_add_on: bool) -> None:
    """Refuse settings that would drop requests or flap; names the workload and argument."""
    name = w["name"]
    if w["min_replicas"] < 0 or w["max_replicas"] < 1:
        raise ValueError(f"workload {name!r}: min_replicas must be >= 0 and max_replicas >= 1")
    if w["min_replicas"] > w["max_replicas"]:
        raise ValueError(
            f"workload {name!r}: min_replicas {w['min_replicas']} exceeds max_replicas {w['max_replicas']}"
        )
    if w["min_replicas"] == 0 and not http_add_on:
        raise ValueError(
            f"workload {name!r}: min_replicas 0 on a Deployment needs http_add_on: at zero replicas vLLM exports no "
            "metrics and nothing holds the first request"
        )
    if w["cooldown_seconds"] < w["startup_budget_seconds"]:
        raise ValueError(
            f"workload {name!r}: cooldown_seconds {w['cooldown_seconds']} is shorter than the startup budget "
            f"{w['startup_budget_seconds']} s; a replica removed sooner than one takes to start makes the model flap"
        )
    if w["target"] <= 0:
        raise ValueError(f"workload {name!r}: target must be > 0")
    for i, s in enumerate(w.get("schedules") or []):
        problem = cron_problem(s["start"]) or cron_problem(s["end"]) or timezone_problem(s.get("timezone", "UTC"))
        if problem:
            raise ValueError(f"workload {name!r}: schedules[{i}]: {problem}")
        if not 1 <= s["min_replicas"] <= w["max_replicas"]:
            raise ValueError(
                f"workload {name!r}: schedules[{i}].min_replicas {s['min_replicas']} must be 1..max_replicas "
                f"({w['max_replicas']})"
            )


def scaled_triggers(w: ScaledWorkloadArgs, namespace: str, prometheus_url: str, served_model_name: str) -> list[dict]:
    """The Prometheus triggers of one workload (plain strings; namespace, URL and served name resolved)."""
    wanted = [(w["metric"], w["target"])]
    if w.get("kv_cache_target") is not None and w["metric"] != AutoscalingMetric.KV_CACHE_USAGE:
        wanted.append((AutoscalingMetric.KV_CACHE_USAGE, w["kv_cache_target"]))
    if w.get("ttft_p95_seconds") is not None and w["metric"] != AutoscalingMetric.TTFT_P95:
        wanted.append((AutoscalingMetric.TTFT_P95, w["ttft_p95_seconds"]))
    triggers = []
    for metric, target in wanted:
        per_replica = metric != AutoscalingMetric.TTFT_P95
        triggers.append(
            {
                "type": "prometheus",
                "name": metric.value.lower(),
                # AverageValue: desired = ceil(sum / target). Value: desired = ceil(current * value / target).
                "metricType": "AverageValue" if per_replica else "Value",
                "metadata": {
                    "serverAddress": prometheus_url,
                    "query": prometheus_query(metric, served_model_name, namespace),
                    "threshold": _format_target(target),
                    # A model at zero (or not yet scraped) has no series: that is "no load", not an error.
                    "ignoreNullValues": "true",
                },
            }
        )
    for i, s in enumerate(w.get("schedules") or []):
        # Warm capacity: during the window the cron scaler asks for min_replicas; the HPA takes the
        # largest of all triggers, so load can still add replicas on top.
        triggers.append(
            {
                "type": "cron",
                "name": f"warm-{i}",
                "metadata": {
                    "timezone": s.get("timezone", "UTC"),
                    "start": s["start"],
                    "end": s["end"],
                    "desiredReplicas": str(s["min_replicas"]),
                },
            }
        )
    return triggers


class GpuAutoscaling(pulumi.ComponentResource):
    """The KEDA operator (pinned chart, metrics scraped) and one ScaledObject per vLLM
    Deployment on queue depth / KV-cache use / TTFT p95, with HPA behaviour for slow-starting
    GPU pods; scale-to-zero through the KEDA HTTP add-on where asked for."""

    scaled_object_names: pulumi.Output[dict[str, str]]
    """ScaledObject name per workload."""
    bounds: pulumi.Output[dict[str, ReplicaBounds]]
    """Effective bounds per workload."""
    buffered_endpoints: pulumi.Output[dict[str, str]]
    """Scale-to-zero workloads: the in-cluster API URL through the HTTP add-on's interceptor
    (requests sent there are held while a replica starts)."""

    def __init__(self, name: str, args: GpuAutoscalingArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("GpuAutoscaling", name, args, GpuAutoscalingArgs)
        workloads = checked_workloads(name, args)
        check_chart_source("GpuAutoscaling", name, args.get("chart_source"), autoscaling_charts(args))
        super().__init__(type_token("GpuAutoscaling"), name, {}, opts)
        keda_ns = args.get("keda_namespace") or DEFAULT_KEDA_NAMESPACE
        prom_url = args.get("prometheus_url") or DEFAULT_PROMETHEUS_URL

        installs = self._install_keda(name, args, keda_ns) if args.get("install_keda", True) else []
        after_install = pulumi.ResourceOptions(parent=self, depends_on=installs)

        names: dict[str, pulumi.Output] = {}
        bounds: dict[str, ReplicaBounds] = {}
        buffered: dict[str, pulumi.Output] = {}
        for w in workloads:
            wname = w["name"]
            ns = pulumi.Output.from_input(w["namespace"])
            to_zero = w["min_replicas"] == 0
            triggers = pulumi.Output.all(ns, prom_url, w["served_model_name"]).apply(
                lambda a, w=w: scaled_triggers(w, *a)  # type: ignore[misc]  # mypy cannot type a lambda with a default (it binds the loop's value)
            )
            labels = _workload_labels(wname)
            if to_zero:
                triggers, buffered[wname] = self._buffer_from_zero(
                    name, w, ns, labels, keda_ns, triggers, after_install
                )
            so = self._scaled_object(name, w, ns, labels, triggers, after_install)
            names[wname] = so.metadata["name"]  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime
            bounds[wname] = {
                "min_replicas": w["min_replicas"],
                "max_replicas": w["max_replicas"],
                "cooldown_seconds": w["cooldown_seconds"],
                "scale_to_zero": to_zero,
            }

        self.scaled_object_names = pulumi.Output.all(**names) if names else pulumi.Output.from_input({})
        self.bounds = pulumi.Output.from_input(bounds)
        self.buffered_endpoints = pulumi.Output.all(**buffered) if buffered else pulumi.Output.from_input({})
        self.register_outputs(
            {
                "scaled_object_names": self.scaled_object_names,
                "bounds": self.bounds,
                "buffered_endpoints": self.buffered_endpoints,
            }
        )

    def _install_keda(self, name: str, args: GpuAutoscalingArgs, keda_ns: str) -> list[pulumi.Resource]:
        """The KEDA operator's release (its namespace first) and, where asked for, the HTTP add-on's."""
        installs: list[pulumi.Resource] = []
        # Ordered after the Prometheus Operator's CRDs explicitly: the output carries that dependency.
        crds = args.get("prometheus_operator_api")
        after_crds = [pulumi.Output.from_input(crds).apply(lambda _: None)] if crds is not None else []
        keda_namespace = release_namespace(f"{name}-keda-ns", keda_ns, self)
        sm = {"enabled": True, "additionalLabels": dict(args.get("service_monitor_labels") or {})}
        keda = pinned_release(
            f"{name}-keda",
            versions.KEDA,
            args.get("keda_release_name") or DEFAULT_KEDA_RELEASE,
            keda_ns,
            atomic=True,
            values={
                # KEDA's own health: operator, metrics API server and webhooks, scraped by Prometheus.
                "prometheus": {
                    "operator": {"enabled": True, "serviceMonitor": sm},
                    "metricServer": {"enabled": True, "serviceMonitor": sm},
                    "webhooks": {"enabled": True, "serviceMonitor": sm},
                },
            },
            chart_source=args.get("chart_source"),
            # An Output in depends_on waits for the resources it depends on; the SDK's type says Output[Resource].
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*after_crds, keda_namespace]),  # type: ignore[list-item]
        )
        installs.append(keda)
        if args.get("http_add_on", False):
            # Request timeouts are set per HTTPScaledObject (they depend on each model's startup budget).
            installs.append(
                pinned_release(
                    f"{name}-keda-http",
                    versions.KEDA_HTTP_ADDON,
                    args.get("http_add_on_release_name") or DEFAULT_KEDA_HTTP_RELEASE,
                    keda_ns,
                    atomic=True,
                    chart_source=args.get("chart_source"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[keda]),
                )
            )
        return installs

    def _buffer_from_zero(
        self,
        name: str,
        w: ScaledWorkloadArgs,
        ns: pulumi.Output,
        labels: dict,
        keda_ns: str,
        triggers: pulumi.Output,
        after_install: pulumi.ResourceOptions,
    ) -> tuple[pulumi.Output, pulumi.Output]:
        """Scale-to-zero through the HTTP add-on: the buffered entry Service and the
        HTTPScaledObject; returns the triggers with the add-on's and the buffered API URL."""
        wname = w["name"]
        httpso_name = f"{wname}-http"
        # Clients call <model>-buffered.<ns>: a DNS alias of the interceptor, which routes on that Host.
        entry = k8s.core.v1.Service(
            f"{name}-{wname}-buffered",
            metadata={"name": f"{wname}-buffered", "namespace": ns, "labels": labels},
            spec={
                "type": "ExternalName",
                "externalName": f"{HTTP_INTERCEPTOR_SERVICE}.{keda_ns}.svc.cluster.local",
                "ports": [{"name": "http", "port": HTTP_INTERCEPTOR_PORT, "protocol": "TCP"}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-{wname}-http",
            api_version="http.keda.sh/v1alpha1",
            kind="HTTPScaledObject",
            metadata={
                "name": httpso_name,
                "namespace": ns,
                "labels": labels,
                # Our ScaledObject scales the Deployment; the add-on only buffers and reports.
                "annotations": {SKIP_SCALEDOBJECT_ANNOTATION: "true"},
            },
            spec=_http_scaled_object_spec(w, ns),
            opts=after_install,
        )
        scaler_address = f"{HTTP_EXTERNAL_SCALER_SERVICE}.{keda_ns}:{HTTP_EXTERNAL_SCALER_PORT}"
        triggers = triggers.apply(
            lambda t: [
                *t,
                {
                    "type": "external-push",
                    "name": "http-requests",
                    "metadata": {"scalerAddress": scaler_address, "httpScaledObject": httpso_name},
                },
            ]
        )
        url = pulumi.Output.concat(
            "http://", entry.metadata["name"], ".", ns, ".svc.cluster.local:", str(HTTP_INTERCEPTOR_PORT), "/v1"
        )
        return triggers, url

    def _scaled_object(
        self,
        name: str,
        w: ScaledWorkloadArgs,
        ns: pulumi.Output,
        labels: dict,
        triggers: pulumi.Output,
        after_install: pulumi.ResourceOptions,
    ) -> k8s.apiextensions.CustomResource:
        """The workload's KEDA ScaledObject (its HPA's behaviour for slow-starting GPU pods)."""
        wname = w["name"]
        spec = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": w["deployment_name"]},
            "minReplicaCount": w["min_replicas"],
            "maxReplicaCount": w["max_replicas"],
            "pollingInterval": w.get("polling_interval_seconds", 15),
            # KEDA's cooldown governs 1 -> 0 only; HPA behaviour (below) governs N -> min.
            "cooldownPeriod": w["cooldown_seconds"],
            # A new Deployment is loading its model: never scale it to zero before it could serve.
            "initialCooldownPeriod": w["startup_budget_seconds"],
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "name": f"{wname}-keda",
                    "behavior": hpa_behavior(w["cooldown_seconds"]),
                },
            },
            "triggers": triggers,
        }
        all_average = w["metric"] != AutoscalingMetric.TTFT_P95 and w.get("ttft_p95_seconds") is None
        if all_average:
            # Prometheus unreachable: keep what runs (never drop a loaded replica for lack of data).
            spec["fallback"] = {
                "failureThreshold": 3,
                "replicas": max(w["min_replicas"], 1),
                "behavior": "currentReplicasIfHigher",
            }
        return k8s.apiextensions.CustomResource(
            f"{name}-{wname}",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata={"name": wname, "namespace": ns, "labels": labels},
            spec=spec,
            opts=after_install,
        )


def _workload_labels(wname: str) -> dict:
    return {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": wname,
        "app.kubernetes.io/component": "autoscaling",
        **MANAGED_BY,
    }


def _http_scaled_object_spec(w: ScaledWorkloadArgs, ns: pulumi.Output) -> dict:
    """The HTTPScaledObject's spec: the buffered Service's host names, the target and its timeouts."""
    wname = w["name"]
    return {
        "hosts": ns.apply(
            lambda n: [
                f"{wname}-buffered.{n}.svc.cluster.local",
                f"{wname}-buffered.{n}.svc",
                f"{wname}-buffered.{n}",
            ]
        ),
        "scaleTargetRef": {
            "name": w["deployment_name"],
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "service": w["service_name"],
            "port": HTTP_PORT,
        },
        "replicas": {"min": 0, "max": w["max_replicas"]},
        "scaledownPeriod": w["cooldown_seconds"],
        "scalingMetric": {"concurrency": {"targetValue": w.get("http_concurrency_target", 100)}},
        "timeouts": {
            # Hold the first request for as long as a replica may take to come up
            # from zero: a node, the image, the load (+ a minute's margin).
            "conditionWait": f"{w['scheduling_seconds'] + w['startup_budget_seconds'] + 60}s",
            # Non-streamed completions send headers only when done.
            "responseHeader": "600s",
        },
    }


def hpa_desired(current: int, value: float, target: float, metric_type: str, tolerance: float = 0.1) -> int:
    """The HPA formula for one external metric (``desired = ceil(current * ratio)``; for
    AverageValue the ratio is ``value / (target * current)``); within the tolerance, no change."""
    if metric_type == "AverageValue":
        ratio = value / (target * current) if current else math.inf
    else:
        ratio = value / target
    if abs(ratio - 1.0) <= tolerance:
        return current
    if metric_type == "AverageValue":
        return math.ceil(value / target)
    return math.ceil(current * ratio)
