"""The stack file's autoscaling keys: KEDA install (stack-wide) and each model's ScaledObject."""

from typing import Optional

from pydantic import Field, model_validator

from llmstack_k8s.gpu_autoscaling import (
    DEFAULT_KEDA_NAMESPACE,
    DEFAULT_POLLING_INTERVAL_SECONDS,
    DEFAULT_PROMETHEUS_URL,
    DEFAULT_TARGETS as AUTOSCALING_DEFAULT_TARGETS,
    MIN_COOLDOWN_SECONDS as AUTOSCALING_MIN_COOLDOWN,
    AutoscalingMetric,
)

from .base import ConfigProblem, StackModel as _Model
from .warm import WarmScheduleConfig
from .quantities import DNS_LABEL, TTFT_MAX_SECONDS, ttft_unit_message

# The defaults are GpuAutoscaling's (one source); the names above stay importable from stacks.config.


class ModelAutoscalingConfig(_Model):
    """KEDA autoscaling of one model on vLLM's own load signals (replaces `replicas`)."""

    metric: AutoscalingMetric = Field(AutoscalingMetric.QUEUE_DEPTH, description="Primary signal: queueDepth (waiting requests per replica), kvCacheUsage (0..1 per replica) or ttftP95 (seconds).")
    target: Optional[float] = Field(None, gt=0, description="Target of the primary signal (default: 4 waiting requests, 0.8 KV-cache use, 2 s TTFT p95).")
    min_replicas: int = Field(1, ge=0, le=64, description="Fewest replicas; 0 scales to zero (needs autoscaling.httpAddOn).")
    max_replicas: int = Field(ge=1, le=64, description="Most replicas.")
    cooldown_seconds: Optional[int] = Field(None, ge=60, le=86400, description="Low-load seconds before scaling down; at least the startup budget (default: the larger of 600 and the budget).")
    kv_cache_target: Optional[float] = Field(None, gt=0, le=1, description="Also scale up when KV-cache use per replica exceeds this (0..1).")
    ttft_p95_seconds: Optional[float] = Field(None, gt=0, description="Also scale up when TTFT p95 exceeds this many seconds.")
    polling_interval_seconds: int = Field(DEFAULT_POLLING_INTERVAL_SECONDS, ge=5, le=300, description="How often KEDA evaluates the triggers.")
    schedules: list[WarmScheduleConfig] = Field(default_factory=list, description="Warm capacity: cron windows (KEDA cron scaler) with a higher replica floor, e.g. business hours.")

    @property
    def effective_target(self) -> float:
        return self.target if self.target is not None else AUTOSCALING_DEFAULT_TARGETS[self.metric]

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} exceeds maxReplicas {self.max_replicas}")
        for i, s in enumerate(self.schedules):
            if s.min_replicas > self.max_replicas:
                raise ConfigProblem(f"schedules[{i}].minReplicas", f"{s.min_replicas} exceeds maxReplicas {self.max_replicas}")
        if self.metric == AutoscalingMetric.KV_CACHE_USAGE and self.target is not None and self.target > 1:
            raise ValueError(f"target {self.target} for kvCacheUsage is a 0..1 fraction (e.g. 0.8)")
        if self.metric == AutoscalingMetric.KV_CACHE_USAGE and self.kv_cache_target is not None:
            raise ValueError("kvCacheTarget repeats the primary metric kvCacheUsage; set target instead")
        if self.metric == AutoscalingMetric.TTFT_P95 and self.ttft_p95_seconds is not None:
            raise ValueError("ttftP95Seconds repeats the primary metric ttftP95; set target instead")
        if self.metric == AutoscalingMetric.TTFT_P95 and self.target is not None and self.target > TTFT_MAX_SECONDS:
            raise ConfigProblem("target", ttft_unit_message(self.target))
        if self.ttft_p95_seconds is not None and self.ttft_p95_seconds > TTFT_MAX_SECONDS:
            raise ConfigProblem("ttftP95Seconds", ttft_unit_message(self.ttft_p95_seconds))
        return self


class AutoscalingConfig(_Model):
    """Stack-wide KEDA settings (used when any model has `autoscaling`)."""

    install_keda: bool = Field(True, description="Install the KEDA operator chart (false: use the cluster's KEDA).")
    http_add_on: bool = Field(False, description="Use the KEDA HTTP add-on (buffers requests while a replica starts); needed for minReplicas 0.")
    keda_namespace: str = Field(DEFAULT_KEDA_NAMESPACE, pattern=DNS_LABEL, max_length=63, description="Namespace of KEDA and the HTTP add-on.")
    prometheus_url: str = Field(DEFAULT_PROMETHEUS_URL, pattern=r"^https?://", description="Prometheus that KEDA queries (default: the stack's kube-prometheus-stack).")

