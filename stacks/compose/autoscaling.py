"""Autoscaling: KEDA and one ScaledObject per autoscaled model, on vLLM's own load signals."""

from typing import cast

import pulumi

from llmstack_k8s._core.wiring import scaled_workload
from llmstack_k8s.observability.observability import Observability
from llmstack_k8s.scaling.gpu_autoscaling import (
    CronScheduleArgs,
    GpuAutoscaling,
    GpuAutoscalingArgs,
    ScaledWorkloadArgs,
)
from llmstack_k8s.serving.vllm_service import VllmService
from stacks.config import ModelConfig, StackConfig

from .cluster import Cluster
from .serving import ServedModel


def workload(m: ModelConfig, server: VllmService) -> ScaledWorkloadArgs:
    """The ScaledObject's settings of an autoscaled model (its ``autoscaling`` with a Deployment's defaults).
    Names, served name and startup budget come from the server; an unset target takes GpuAutoscaling's default."""
    a, s = m.keda_autoscaling, m.scaling
    if a is None or s is None:
        raise ValueError(f"model {m.name}: not autoscaled by KEDA")
    # scaled_workload returns ScaledWorkloadArgs as a plain dict (the library's helper is not typed).
    w = cast(ScaledWorkloadArgs, scaled_workload(server, s.max_replicas))
    w["min_replicas"] = s.min_replicas
    w["metric"] = s.keda_metric
    if a.target is not None:
        w["target"] = a.target
    if m.cooldown_seconds is not None:
        w["cooldown_seconds"] = m.cooldown_seconds
    if a.polling_interval_seconds is not None:
        w["polling_interval_seconds"] = a.polling_interval_seconds
    if a.kv_cache_target is not None:
        w["kv_cache_target"] = a.kv_cache_target
    if a.ttft_p95_seconds is not None:
        w["ttft_p95_seconds"] = a.ttft_p95_seconds
    if a.schedules:  # warm capacity
        w["schedules"] = [
            CronScheduleArgs(start=c.start, end=c.end, min_replicas=c.min_replicas, timezone=c.timezone)
            for c in a.schedules
        ]
    return w


def autoscaling(cfg: StackConfig, cluster: Cluster, monitoring: Observability, served: dict[str, ServedModel]) -> dict:
    """KEDA scaling every autoscaled model; returns the ``autoscaling`` output (nothing when no model is)."""
    scaled = [m for m in cfg.models if m.keda_autoscaling is not None]  # Knative models scale themselves
    if not scaled:
        return {}
    servers = [s for s in (served[m.name].server for m in scaled) if s is not None]  # each a Deployment's server
    args: GpuAutoscalingArgs = {
        "workloads": [workload(m, server) for m, server in zip(scaled, servers, strict=True)],
        "install_keda": cfg.autoscaling.install_keda,
        "http_add_on": cfg.autoscaling.http_add_on,
        "keda_namespace": cfg.autoscaling.keda_namespace,
        "prometheus_url": cfg.autoscaling.prometheus_url,
        # kube-prometheus-stack's default ServiceMonitor selector
        "service_monitor_labels": {"release": "kube-prometheus-stack"},
        # KEDA's ServiceMonitors need the Prometheus Operator's CRDs: install KEDA after them.
        "prometheus_operator_api": monitoring.prometheus_operator_api,
    }
    if cluster.chart_source:
        args["chart_source"] = cluster.chart_source
    keda = GpuAutoscaling(
        "autoscaling",
        args,
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
