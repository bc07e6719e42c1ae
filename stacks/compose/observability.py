"""Observability: Prometheus and Grafana (kube-prometheus-stack, or an existing install), the DCGM
exporter, vLLM scraping, alerts per model and dashboards."""

from llmstack_k8s.cluster.gpu_node_pool import GpuNodePool
from llmstack_k8s.observability.alerts import MonitoredModelArgs
from llmstack_k8s.observability.observability import Observability
from stacks.config import ModelConfig, StackConfig

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


def _prometheus_args(cfg: StackConfig) -> dict:
    """Retention, resources and storage of the installed Prometheus (nothing for an existing one)."""
    o = cfg.observability
    if not o.install_prometheus_stack:
        return {}
    p = o.prometheus
    return {
        "prometheus": {
            "retention": p.retention,
            "cpu": p.cpu,
            "memory": p.memory,
            **({"retention_size": p.effective_retention_size} if p.effective_retention_size else {}),
            **({"storage_size": p.storage_size} if p.storage_size else {}),
            **({"storage_class_name": p.storage_class} if p.storage_class else {}),
        }
    }


def observability(
    cfg: StackConfig, cluster: Cluster, gpu_pool: GpuNodePool, served: dict[str, ServedModel]
) -> Observability:
    o = cfg.observability
    knative_canaries = [s.knative_canary_revision for s in served.values() if s.knative_canary_revision is not None]
    return Observability(
        "observability",
        {
            "models": [_monitored(cfg, m, served[m.name].caches) for m in cfg.models],
            "serving_namespaces": [cfg.namespace, *(t.effective_namespace for t in cfg.teams)],
            **({"knative_canary_revisions": knative_canaries} if knative_canaries else {}),
            # The stack keeps the names its clusters already have (the component derives them from its name).
            "names": {
                "pod_monitor": "vllm",
                "prometheus_rule": "llmstack-alerts",
                "dashboard_prefix": "llmstack-dashboard",
                "grafana_admin_secret": "grafana-admin",
            },
            **cluster.charts,
            "namespace": o.namespace,
            "install_prometheus_stack": o.install_prometheus_stack,
            "install_dcgm_exporter": o.dcgm_exporter,
            "dcgm_exporter_namespace": o.dcgm_exporter_namespace,  # created privileged beside an existing Prometheus
            "scheduling": gpu_pool.contract,  # the DCGM exporter runs where the GPU pods run
            "scrape_interval": o.scrape_interval,
            "thresholds": o.alerts.model_dump(),
            **({"monitor_labels": dict(o.monitor_labels)} if o.monitor_labels is not None else {}),
            **({"prometheus_url": o.prometheus_url} if o.prometheus_url else {}),
            **({"grafana_url": o.grafana_url} if o.grafana_url else {}),
            **_prometheus_args(cfg),
        },
        opts=cluster.on_cluster,
    )


def observability_outputs(cfg: StackConfig, monitoring: Observability) -> dict:
    """Prometheus' and Grafana's URLs, and Grafana's admin password when the stack installs it."""
    outputs: dict = {"prometheusUrl": monitoring.prometheus_url, "grafanaUrl": monitoring.grafana_url}
    if cfg.observability.install_prometheus_stack:
        outputs["grafanaAdminPassword"] = monitoring.grafana_admin_password
    return outputs
