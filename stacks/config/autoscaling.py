"""The stack file's scaling keys: one vocabulary for every model, however it is served.

A model's ``autoscaling`` block says the same thing whether KEDA scales a Deployment
(``serving: deployment``) or Knative's autoscaler scales a Knative Service (``serving: knative``),
as KServe's ``minReplicas``/``maxReplicas``/``scaleMetric``/``scaleTarget`` do for raw Deployments
and Knative alike:

=====================  =====================================  =====================================
key                    Deployment (KEDA ScaledObject, HPA)    Knative (revision annotations)
=====================  =====================================  =====================================
``minReplicas``        ``minReplicaCount``                    ``autoscaling.knative.dev/min-scale``
``maxReplicas``        ``maxReplicaCount``                    ``autoscaling.knative.dev/max-scale``
``metric``/``target``  the Prometheus trigger and threshold   ``autoscaling.knative.dev/metric``/``target``
``cooldownSeconds``    HPA scale-down window, KEDA cooldown   ``autoscaling.knative.dev/scale-down-delay``
=====================  =====================================  =====================================

- Scale to zero is ``minReplicas: 0`` (no second key says it): a Deployment needs the KEDA HTTP
  add-on (``llmstack:autoscaling.httpAddOn``) to hold the first request, Knative's activator holds it.
- ``metric`` names the signal ``target`` is per replica of: ``queueDepth``, ``kvCacheUsage`` and
  ``ttftP95`` are vLLM's metrics, which KEDA reads (Deployment only); ``concurrency`` is in-flight
  requests per pod, which Knative's autoscaler measures itself (Knative only). The default is the
  one each can do: ``queueDepth`` for a Deployment, ``concurrency`` for Knative.
- Defaults: ``minReplicas`` 1 for a Deployment, 0 for Knative (what serving it by Knative is for);
  ``maxReplicas`` is required in the block (a Knative model without the block scales 0..1);
  ``cooldownSeconds`` the larger of 600 and the model's cold start, for both (Knative's own ceiling
  of 1 h caps it there), and never below the startup budget.
- KEDA-only keys (extra triggers ``kvCacheTarget``/``ttftP95Seconds``, ``pollingIntervalSeconds``,
  warm ``schedules``) are refused on a Knative model; Knative-only knobs (initial scale, container
  concurrency, the stable and panic windows, a revision's progress deadline and request timeout)
  live under ``models[].knative`` (``knative.py``).

``llmstack:autoscaling`` (stack-wide) installs KEDA for the Deployment models it scales.
"""

from dataclasses import dataclass
from enum import Enum

from pydantic import Field, model_validator

from llmstack_k8s.scaling.gpu_autoscaling import (
    DEFAULT_KEDA_NAMESPACE,
    DEFAULT_POLLING_INTERVAL_SECONDS,
    DEFAULT_PROMETHEUS_URL,
    AutoscalingMetric,
    default_cooldown_seconds,
)
from llmstack_k8s.scaling.gpu_autoscaling import (
    DEFAULT_TARGETS as AUTOSCALING_DEFAULT_TARGETS,
)
from llmstack_k8s.scaling.gpu_autoscaling import (
    MIN_COOLDOWN_SECONDS as AUTOSCALING_MIN_COOLDOWN,
)
from llmstack_k8s.serving import knative_vllm_service as knative

from .base import ConfigProblem
from .base import StackModel as _Model
from .quantities import DNS_LABEL, TTFT_MAX_SECONDS, ttft_unit_message
from .warm import WarmScheduleConfig

# The defaults are GpuAutoscaling's and KnativeVllmService's (one source); the names above stay importable
# from stacks.config.

#: Longest scale-down delay Knative accepts (its autoscaler refuses more than 1 h).
KNATIVE_MAX_COOLDOWN_SECONDS = 3600


class ScalingMetric(str, Enum):
    """The signal ``target`` is per replica of."""

    QUEUE_DEPTH = "queueDepth"
    """Requests waiting in vLLM's queue per replica (Deployment: KEDA)."""
    KV_CACHE_USAGE = "kvCacheUsage"
    """vLLM's KV-cache use per replica, 0..1 (Deployment: KEDA)."""
    TTFT_P95 = "ttftP95"
    """Time to first token p95 over the replicas, seconds (Deployment: KEDA)."""
    CONCURRENCY = "concurrency"
    """In-flight requests per pod, as Knative's queue-proxy counts them (Knative)."""


#: Signals KEDA reads from vLLM (a Deployment model's); the rest Knative measures itself.
KEDA_METRICS = frozenset({ScalingMetric.QUEUE_DEPTH, ScalingMetric.KV_CACHE_USAGE, ScalingMetric.TTFT_P95})
#: Keys of the block that only KEDA has (refused on a Knative model).
KEDA_ONLY_KEYS = {
    "kv_cache_target": "kvCacheTarget",
    "ttft_p95_seconds": "ttftP95Seconds",
    "polling_interval_seconds": "pollingIntervalSeconds",
    "schedules": "schedules",
}


class ModelAutoscalingConfig(_Model):
    """How a model scales, in the same words for a Deployment (KEDA) and a Knative Service (Knative's autoscaler)."""

    min_replicas: int | None = Field(
        None,
        ge=0,
        le=64,
        description=(
            "Fewest replicas; 0 scales to zero (a Deployment needs llmstack:autoscaling.httpAddOn, Knative's "
            "activator holds the first request). Default: 1 for a Deployment, 0 for Knative."
        ),
    )
    max_replicas: int = Field(ge=1, le=64, description="Most replicas.")
    metric: ScalingMetric | None = Field(
        None,
        description=(
            "Signal target is per replica of: queueDepth (waiting requests), kvCacheUsage (0..1) or ttftP95 "
            "(seconds) for a Deployment (KEDA on vLLM's metrics); concurrency (in-flight requests per pod) for "
            "Knative. Default: queueDepth for a Deployment, concurrency for Knative."
        ),
    )
    target: float | None = Field(
        None,
        gt=0,
        description=(
            "Target of the metric per replica (default: 4 waiting requests, 0.8 KV-cache use, 2 s TTFT p95; "
            "concurrency half of maxNumSeqs, else 32)."
        ),
    )
    cooldown_seconds: int | None = Field(
        None,
        ge=60,
        le=86400,
        description=(
            "Seconds of low load before a replica is removed (to zero too); at least the startup budget, at "
            "most 3600 for Knative (default: the larger of 600 and the model's cold start)."
        ),
    )
    kv_cache_target: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Deployment only: also scale up when KV-cache use per replica exceeds this (0..1).",
    )
    ttft_p95_seconds: float | None = Field(
        None, gt=0, description="Deployment only: also scale up when TTFT p95 exceeds this many seconds."
    )
    polling_interval_seconds: int = Field(
        DEFAULT_POLLING_INTERVAL_SECONDS,
        ge=5,
        le=300,
        description="Deployment only: how often KEDA evaluates the triggers.",
    )
    schedules: list[WarmScheduleConfig] = Field(
        default_factory=list,
        description=(
            "Deployment only: warm capacity, cron windows (KEDA cron scaler) with a higher replica floor, e.g. "
            "business hours."
        ),
    )

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} exceeds maxReplicas {self.max_replicas}")
        for i, s in enumerate(self.schedules):
            if s.min_replicas > self.max_replicas:
                raise ConfigProblem(
                    f"schedules[{i}].minReplicas", f"{s.min_replicas} exceeds maxReplicas {self.max_replicas}"
                )
        self._target_fits_metric()
        if self.ttft_p95_seconds is not None and self.ttft_p95_seconds > TTFT_MAX_SECONDS:
            raise ConfigProblem("ttftP95Seconds", ttft_unit_message(self.ttft_p95_seconds))
        return self

    def _target_fits_metric(self) -> None:
        metric, target = self.metric, self.target
        if metric == ScalingMetric.KV_CACHE_USAGE and target is not None and target > 1:
            raise ValueError(f"target {target} for kvCacheUsage is a 0..1 fraction (e.g. 0.8)")
        if metric == ScalingMetric.KV_CACHE_USAGE and self.kv_cache_target is not None:
            raise ValueError("kvCacheTarget repeats the primary metric kvCacheUsage; set target instead")
        if metric == ScalingMetric.TTFT_P95 and self.ttft_p95_seconds is not None:
            raise ValueError("ttftP95Seconds repeats the primary metric ttftP95; set target instead")
        if metric == ScalingMetric.TTFT_P95 and target is not None and target > TTFT_MAX_SECONDS:
            raise ConfigProblem("target", ttft_unit_message(target))


@dataclass(frozen=True)
class Scaling:
    """A model's scaling with every default filled in (the serving mode's)."""

    min_replicas: int
    max_replicas: int
    metric: ScalingMetric
    target: float
    cooldown_seconds: int

    @property
    def keda_metric(self) -> AutoscalingMetric:
        return AutoscalingMetric(self.metric.value)


def effective_scaling(
    a: ModelAutoscalingConfig | None, is_knative: bool, max_num_seqs: int | None, cold_start_seconds: int
) -> Scaling | None:
    """The scaling a model gets: its ``autoscaling`` block over the defaults of its serving mode (None for
    a Deployment without one: it runs ``replicas``). A Knative model always scales (0..1 by default)."""
    if a is None and not is_knative:
        return None
    metric = (a and a.metric) or (ScalingMetric.CONCURRENCY if is_knative else ScalingMetric.QUEUE_DEPTH)
    if a is not None and a.target is not None:
        target = a.target
    elif metric == ScalingMetric.CONCURRENCY:
        target = float(knative.default_target_concurrency(max_num_seqs))
    else:
        target = AUTOSCALING_DEFAULT_TARGETS[AutoscalingMetric(metric.value)]
    cooldown = (
        a.cooldown_seconds
        if a is not None and a.cooldown_seconds is not None
        else default_cooldown_seconds(cold_start_seconds)
    )
    if is_knative and (a is None or a.cooldown_seconds is None):
        cooldown = min(cooldown, KNATIVE_MAX_COOLDOWN_SECONDS)
    low = a.min_replicas if a is not None and a.min_replicas is not None else (0 if is_knative else 1)
    high = a.max_replicas if a is not None else knative.DEFAULT_MAX_SCALE
    return Scaling(min_replicas=low, max_replicas=high, metric=metric, target=target, cooldown_seconds=cooldown)


def serving_problem(a: ModelAutoscalingConfig, is_knative: bool) -> tuple[str, str] | None:
    """(key, problem) when the block asks for what the model's serving mode cannot do; None when it can."""
    if is_knative:
        if a.metric is not None and a.metric in KEDA_METRICS:
            return "autoscaling.metric", (
                f"{a.metric.value} is a vLLM metric KEDA reads for a Deployment model; Knative's autoscaler scales on "
                "concurrency (in-flight requests per pod, its default): remove metric or set concurrency, or serve the "
                "model with serving: deployment"
            )
        for field, key in KEDA_ONLY_KEYS.items():
            if field in a.model_fields_set:
                return f"autoscaling.{key}", (
                    "applies to a Deployment model (KEDA); a Knative model scales on concurrency alone: remove it, or "
                    "serve the model with serving: deployment"
                )
        return None
    if a.metric == ScalingMetric.CONCURRENCY:
        return "autoscaling.metric", (
            "concurrency is what Knative's autoscaler measures (serving: knative); KEDA scales a Deployment on vLLM's "
            "queueDepth, kvCacheUsage or ttftP95: set one of them, or serve the model with serving: knative"
        )
    return None


def knative_duration(seconds: int) -> str:
    """Seconds as a Knative duration annotation: whole hours or minutes where they are (900 -> 15m)."""
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


class AutoscalingConfig(_Model):
    """Stack-wide KEDA settings (used when a Deployment model has `autoscaling`)."""

    install_keda: bool = Field(True, description="Install the KEDA operator chart (false: use the cluster's KEDA).")
    http_add_on: bool = Field(
        False,
        description=(
            "Use the KEDA HTTP add-on (buffers requests while a replica starts); needed for a Deployment "
            "model's minReplicas 0."
        ),
    )
    keda_namespace: str = Field(
        DEFAULT_KEDA_NAMESPACE, pattern=DNS_LABEL, max_length=63, description="Namespace of KEDA and the HTTP add-on."
    )
    prometheus_url: str = Field(
        DEFAULT_PROMETHEUS_URL,
        pattern=r"^https?://",
        description="Prometheus that KEDA queries (default: the stack's kube-prometheus-stack).",
    )


__all__ = [
    "AUTOSCALING_DEFAULT_TARGETS",
    "AUTOSCALING_MIN_COOLDOWN",
    "AutoscalingConfig",
    "ModelAutoscalingConfig",
    "Scaling",
    "ScalingMetric",
    "effective_scaling",
    "knative_duration",
    "serving_problem",
]
