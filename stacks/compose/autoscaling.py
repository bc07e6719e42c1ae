"""Autoscaling: KEDA and one ScaledObject per autoscaled model, on vLLM's own load signals."""

import pulumi

from llmstack_k8s._core.wiring import scaled_workload
from llmstack_k8s.observability.observability import Observability
from llmstack_k8s.scaling.gpu_autoscaling import GpuAutoscaling
from stacks.config import ModelConfig, StackConfig

from .cluster import Cluster
from .serving import ServedModel


def workload(m: ModelConfig, server) -> dict:
    """The ScaledObject's settings of an autoscaled model (its ``autoscaling`` with a Deployment's defaults).
    Names, served name and startup budget come from the server; an unset target takes GpuAutoscaling's default."""
    a, s = m.keda_autoscaling, m.scaling
    return scaled_workload(
        server,
        s.max_replicas,
        min_replicas=s.min_replicas,
        metric=s.keda_metric,
        target=a.target,
        cooldown_seconds=m.cooldown_seconds,
        polling_interval_seconds=a.polling_interval_seconds,
        kv_cache_target=a.kv_cache_target,
        ttft_p95_seconds=a.ttft_p95_seconds,
        **({"schedules": [s.args() for s in a.schedules]} if a.schedules else {}),  # warm capacity
    )


def autoscaling(cfg: StackConfig, cluster: Cluster, monitoring: Observability, served: dict[str, ServedModel]) -> dict:
    """KEDA scaling every autoscaled model; returns the ``autoscaling`` output (nothing when no model is)."""
    scaled = [m for m in cfg.models if m.keda_autoscaling is not None]  # Knative models scale themselves
    if not scaled:
        return {}
    servers = [served[m.name].server for m in scaled]
    keda = GpuAutoscaling(
        "autoscaling",
        {
            "workloads": [workload(m, server) for m, server in zip(scaled, servers, strict=True)],
            "install_keda": cfg.autoscaling.install_keda,
            "http_add_on": cfg.autoscaling.http_add_on,
            "keda_namespace": cfg.autoscaling.keda_namespace,
            "prometheus_url": cfg.autoscaling.prometheus_url,
            # kube-prometheus-stack's default ServiceMonitor selector
            "service_monitor_labels": {"release": "kube-prometheus-stack"},
            # KEDA's ServiceMonitors need the Prometheus Operator's CRDs: install KEDA after them.
            "prometheus_operator_api": monitoring.prometheus_operator_api,
            **cluster.charts,
        },
        opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=[cluster.namespace, *servers]),
    )
    camel_bounds = keda.bounds.apply(
        lambda b: {
            k: {
                "minReplicas": v["min_replicas"],
                "maxReplicas": v["max_replicas"],
                "cooldownSeconds": v["cooldown_seconds"],
                "scaleToZero": v["scale_to_zero"],
            }
            for k, v in b.items()
        }
    )
    return {"autoscaling": {"bounds": camel_bounds, "bufferedEndpoints": keda.buffered_endpoints}}
