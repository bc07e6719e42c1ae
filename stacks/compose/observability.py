"""Observability: Prometheus and Grafana (kube-prometheus-stack, or an existing install), the DCGM
exporter, vLLM scraping, alerts per model and dashboards."""

from llmstack_k8s.cluster.gpu_node_pool import GpuNodePool
from llmstack_k8s.observability.alerts import AlertThresholdsArgs, MonitoredModelArgs
from llmstack_k8s.observability.observability import Observability, ObservabilityArgs, PrometheusArgs
from stacks.config import ModelConfig, StackConfig
from stacks.config.observability import AlertsConfig

from .cluster import Cluster
from .serving import ServedModel


def _monitored(cfg: StackConfig, m: ModelConfig, caches: list) -> MonitoredModelArgs:
    """What the alerts watch of one model: where it runs, whether it is always on, its downloads, its SLO."""
    team = cfg.team_of(m.name)
    out: MonitoredModelArgs = {
        "name": m.name,
        "namespace": team.effective_namespace if team else cfg.namespace,  # teams
        "served_model_name": m.served_name,
        "always_on": m.scaling is None or m.scaling.min_replicas > 0,  # KEDA or Knative: scaled to zero when idle
    }
    if caches:  # none: object storage
        out["download_job_name"] = caches[0].job_name
    out["download_job_names"] = [c.job_name for c in caches[1:]]  # a canary's own cache
    if m.slo_ttft_p95_seconds:
        out["ttft_p95_seconds"] = m.slo_ttft_p95_seconds
    return out


def _thresholds(a: AlertsConfig) -> AlertThresholdsArgs:
    """The alerts' thresholds, every one as the stack file (or its default) sets it."""
    return {
        "no_ready_replica_minutes": a.no_ready_replica_minutes,
        "queue_waiting_requests": a.queue_waiting_requests,
        "queue_minutes": a.queue_minutes,
        "kv_cache_usage_ratio": a.kv_cache_usage_ratio,
        "kv_cache_minutes": a.kv_cache_minutes,
        "preemptions_per_minute": a.preemptions_per_minute,
        "ttft_p95_seconds": a.ttft_p95_seconds,
        "slo_minutes": a.slo_minutes,
        "error_ratio": a.error_ratio,
        "pod_restarts_per_hour": a.pod_restarts_per_hour,
        "gpu_memory_ratio": a.gpu_memory_ratio,
        "gpu_temperature_celsius": a.gpu_temperature_celsius,
    }


def _prometheus_args(cfg: StackConfig) -> PrometheusArgs | None:
    """Retention, resources and storage of the installed Prometheus (nothing for an existing one)."""
    o = cfg.observability
    if not o.install_prometheus_stack:
        return None
    p = o.prometheus
    out: PrometheusArgs = {"retention": p.retention, "cpu": p.cpu, "memory": p.memory}
    if p.effective_retention_size:
        out["retention_size"] = p.effective_retention_size
    if p.storage_size:
        out["storage_size"] = p.storage_size
    if p.storage_class:
        out["storage_class_name"] = p.storage_class
    return out


def observability(
    cfg: StackConfig, cluster: Cluster, gpu_pool: GpuNodePool, served: dict[str, ServedModel]
) -> Observability:
    o = cfg.observability
    knative_canaries = [s.knative_canary_revision for s in served.values() if s.knative_canary_revision is not None]
    args: ObservabilityArgs = {
        "models": [_monitored(cfg, m, served[m.name].caches) for m in cfg.models],
        "serving_namespaces": [cfg.namespace, *(t.effective_namespace for t in cfg.teams)],
        # The stack keeps the names its clusters already have (the component derives them from its name).
        "names": {
            "pod_monitor": "vllm",
            "prometheus_rule": "llmstack-alerts",
            "dashboard_prefix": "llmstack-dashboard",
            "grafana_admin_secret": "grafana-admin",
        },
        "namespace": o.namespace,
        "install_prometheus_stack": o.install_prometheus_stack,
        "install_dcgm_exporter": o.dcgm_exporter,
        "dcgm_exporter_namespace": o.dcgm_exporter_namespace,  # created privileged beside an existing Prometheus
        "scheduling": gpu_pool.contract,  # the DCGM exporter runs where the GPU pods run
        "scrape_interval": o.scrape_interval,
        "thresholds": _thresholds(o.alerts),
    }
    if knative_canaries:
        args["knative_canary_revisions"] = knative_canaries
    if cluster.chart_source:
        args["chart_source"] = cluster.chart_source
    if o.monitor_labels is not None:
        args["monitor_labels"] = dict(o.monitor_labels)
    if o.prometheus_url:
        args["prometheus_url"] = o.prometheus_url
    if o.grafana_url:
        args["grafana_url"] = o.grafana_url
    prometheus = _prometheus_args(cfg)
    if prometheus is not None:
        args["prometheus"] = prometheus
    return Observability("observability", args, opts=cluster.on_cluster)


def observability_outputs(cfg: StackConfig, monitoring: Observability) -> dict:
    """Prometheus' and Grafana's URLs, and Grafana's admin password when the stack installs it."""
    outputs: dict = {"prometheusUrl": monitoring.prometheus_url, "grafanaUrl": monitoring.grafana_url}
    if cfg.observability.install_prometheus_stack:
        outputs["grafanaAdminPassword"] = monitoring.grafana_admin_password
    return outputs
