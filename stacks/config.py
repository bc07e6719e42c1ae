"""Everything a stack file (``Pulumi.<stack>.yaml``) can say, validated before anything is created.

Keys are camelCase under the project's namespace (``llmstack:models``). Unknown keys are
refused, so a typo ends in an error naming the key instead of a silently ignored setting.
"""

import re
from enum import Enum
from typing import Annotated, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from llmstack_k8s.gpu_autoscaling import DEFAULT_KEDA_NAMESPACE, DEFAULT_PROMETHEUS_URL, AutoscalingMetric
from llmstack_k8s.alerts import DEFAULT_THRESHOLDS
from llmstack_k8s.model_cache import AccessMode
from llmstack_k8s import knative_vllm_service as knative  # knative
from llmstack_k8s.vllm_pod import Dtype, Quantization, startup_budget_seconds

from .gpu_pool import GpuPoolConfig, check_models_fit

DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_BINARY_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi)?$")
_CPU_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]{1,3})?|[0-9]+m)$")
# Flags the stack renders itself; setting them again in extraArgs would silently fight the config.
MANAGED_FLAGS = {
    "--model", "--served-model-name", "--host", "--port", "--tensor-parallel-size", "-tp",
    "--pipeline-parallel-size", "-pp", "--gpu-memory-utilization", "--dtype", "--max-model-len",
    "--quantization", "-q", "--enable-prefix-caching", "--no-enable-prefix-caching", "--max-num-seqs",
    "--api-key", "--revision",
}
UNPINNED_REVISIONS = {"", "main", "master", "latest", "head"}


def _binary_quantity(v: str) -> str:
    if not _BINARY_QUANTITY.match(v):
        hint = ""
        m = re.match(r"^([0-9.]+)([KMGTP])B?$", v, re.IGNORECASE)
        if m:
            hint = f" (did you mean {m.group(1)}{m.group(2).upper()}i?)"
        raise ValueError(f"{v!r} is not a size in binary units; write e.g. 40Gi or 512Mi{hint}")
    return v


def _cpu_quantity(v: str) -> str:
    if not _CPU_QUANTITY.match(str(v)):
        raise ValueError(f"{v!r} is not a CPU quantity; write e.g. 4, 0.5 or 500m")
    return str(v)


def _pinned_revision(v: str) -> str:
    if v.strip().lower() in UNPINNED_REVISIONS:
        raise ValueError(f"revision {v!r} is a moving branch; pin a commit sha or release tag")
    return v


Size = Annotated[str, AfterValidator(_binary_quantity)]
Cpu = Annotated[str, AfterValidator(_cpu_quantity)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class KubernetesConfig(_Model):
    """How to reach the cluster (default: the ambient kubeconfig and its current context)."""

    kubeconfig: Optional[str] = Field(None, description="Path to a kubeconfig file.")
    context: Optional[str] = Field(None, description="kubeconfig context to use.")


class CacheDefaults(_Model):
    """Defaults for every model's weight cache."""

    storage_class: Optional[str] = Field(None, description="StorageClass of cache volumes (default: the cluster's default).")
    access_mode: AccessMode = Field(AccessMode.READ_WRITE_MANY, description="ReadWriteMany (replicas on several nodes) or ReadWriteOnce.")
    download_retries: int = Field(4, ge=0, le=20, description="Retries of the download Job.")
    download_deadline_seconds: int = Field(3600, ge=300, description="Deadline of the whole download.")


class NetworkConfig(_Model):
    """Who may reach the vLLM servers."""

    client_namespaces: list[str] = Field(default_factory=list, description="Namespaces allowed to call the API.")
    monitoring_namespaces: list[str] = Field(default_factory=lambda: ["monitoring"], description="Namespaces allowed to scrape /metrics.")


class ModelCacheConfig(_Model):
    """Per-model cache settings (override the stack's cache defaults)."""

    size: Size = Field(description="Volume size, binary units (e.g. 20Gi); weights plus room for a second revision.")
    storage_class: Optional[str] = Field(None, description="StorageClass of this model's cache volume.")
    access_mode: Optional[AccessMode] = Field(None, description="Access mode of this model's cache volume.")


class ResourcesConfig(_Model):
    """CPU and memory of a vLLM server container."""

    cpu: Cpu = Field("4", description="CPU request.")
    memory: Size = Field("32Gi", description="Memory request and limit; must exceed shmSize.")


class RolloutConfig(_Model):
    """Rollout on scarce GPUs."""

    max_surge: int = Field(0, ge=0, description="Extra pods during a rollout (0: no spare GPU needed).")
    max_unavailable: int = Field(1, ge=0, description="Pods down at once during a rollout or drain.")

    @model_validator(mode="after")
    def _can_progress(self):
        if self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError("maxSurge and maxUnavailable are both 0: a rollout could never make progress")
        return self


# --- autoscaling (GpuAutoscaling) -------------------------------------------------------------
#: Default target of each primary signal: waiting requests per replica, KV-cache fraction, TTFT p95 s.
AUTOSCALING_DEFAULT_TARGETS = {AutoscalingMetric.QUEUE_DEPTH: 4.0, AutoscalingMetric.KV_CACHE_USAGE: 0.8, AutoscalingMetric.TTFT_P95: 2.0}
AUTOSCALING_MIN_COOLDOWN = 600


class ModelAutoscalingConfig(_Model):
    """KEDA autoscaling of one model on vLLM's own load signals (replaces `replicas`)."""

    metric: AutoscalingMetric = Field(AutoscalingMetric.QUEUE_DEPTH, description="Primary signal: queueDepth (waiting requests per replica), kvCacheUsage (0..1 per replica) or ttftP95 (seconds).")
    target: Optional[float] = Field(None, gt=0, description="Target of the primary signal (default: 4 waiting requests, 0.8 KV-cache use, 2 s TTFT p95).")
    min_replicas: int = Field(1, ge=0, le=64, description="Fewest replicas; 0 scales to zero (needs autoscaling.httpAddOn).")
    max_replicas: int = Field(ge=1, le=64, description="Most replicas.")
    cooldown_seconds: Optional[int] = Field(None, ge=60, le=86400, description="Low-load seconds before scaling down; at least the startup budget (default: the larger of 600 and the budget).")
    kv_cache_target: Optional[float] = Field(None, gt=0, le=1, description="Also scale up when KV-cache use per replica exceeds this (0..1).")
    ttft_p95_seconds: Optional[float] = Field(None, gt=0, description="Also scale up when TTFT p95 exceeds this many seconds.")
    polling_interval_seconds: int = Field(15, ge=5, le=300, description="How often KEDA evaluates the triggers.")

    @property
    def effective_target(self) -> float:
        return self.target if self.target is not None else AUTOSCALING_DEFAULT_TARGETS[self.metric]

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} exceeds maxReplicas {self.max_replicas}")
        if self.metric == AutoscalingMetric.KV_CACHE_USAGE and self.target is not None and self.target > 1:
            raise ValueError(f"target {self.target} for kvCacheUsage is a 0..1 fraction (e.g. 0.8)")
        if self.metric == AutoscalingMetric.KV_CACHE_USAGE and self.kv_cache_target is not None:
            raise ValueError("kvCacheTarget repeats the primary metric kvCacheUsage; set target instead")
        if self.metric == AutoscalingMetric.TTFT_P95 and self.ttft_p95_seconds is not None:
            raise ValueError("ttftP95Seconds repeats the primary metric ttftP95; set target instead")
        return self


class AutoscalingConfig(_Model):
    """Stack-wide KEDA settings (used when any model has `autoscaling`)."""

    install_keda: bool = Field(True, description="Install the KEDA operator chart (false: use the cluster's KEDA).")
    http_add_on: bool = Field(False, description="Use the KEDA HTTP add-on (buffers requests while a replica starts); needed for minReplicas 0.")
    keda_namespace: str = Field(DEFAULT_KEDA_NAMESPACE, pattern=DNS_LABEL, max_length=63, description="Namespace of KEDA and the HTTP add-on.")
    prometheus_url: str = Field(DEFAULT_PROMETHEUS_URL, pattern=r"^https?://", description="Prometheus that KEDA queries (default: the stack's kube-prometheus-stack).")


# --- knative (KnativeVllmService) ------------------------------------------------------------
def _duration(v: str) -> str:
    knative.duration_seconds(v)
    return v


Duration = Annotated[str, AfterValidator(_duration)]


class ServingMode(str, Enum):
    """How a model is served."""

    DEPLOYMENT = "deployment"
    """Always-on Deployment (VllmService); KEDA may scale it."""
    KNATIVE = "knative"
    """Knative Service (KnativeVllmService): scales to zero when idle, starts on the first request."""


class KnativeModelConfig(_Model):
    """Knative autoscaling of a model with `serving: knative`."""

    min_scale: int = Field(0, ge=0, le=64, description="Fewest pods; 0 scales to zero when idle.")
    max_scale: int = Field(knative.DEFAULT_MAX_SCALE, ge=1, le=64, description="Most pods.")
    initial_scale: int = Field(knative.DEFAULT_INITIAL_SCALE, ge=0, le=64, description="Pods a new revision starts with (1 proves the model loads at deploy time).")
    target_concurrency: Optional[int] = Field(None, ge=1, description="In-flight requests per pod Knative aims for (default: half of maxNumSeqs, else 32).")
    container_concurrency: int = Field(0, ge=0, description="Hard limit of requests per pod (0: none; vLLM queues).")
    scale_down_delay: Duration = Field(knative.DEFAULT_SCALE_DOWN_DELAY, description="Idle time before a pod is removed (up to 1h), e.g. 10m.")
    stable_window: Duration = Field(knative.DEFAULT_STABLE_WINDOW, description="Window concurrency is averaged over (6s to 1h).")
    panic_window_percentage: float = Field(knative.DEFAULT_PANIC_WINDOW_PERCENTAGE, ge=1, le=100, description="Panic window, % of the stable window.")
    progress_deadline_seconds: Optional[int] = Field(None, ge=60, description="Time a new revision may take to be ready; at least the startup budget (default budget + 600).")
    request_timeout_seconds: Optional[int] = Field(None, ge=30, description="Longest request, including waiting out a cold start (default budget + 600).")

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_scale > self.max_scale:
            raise ValueError(f"minScale {self.min_scale} exceeds maxScale {self.max_scale}")
        if self.initial_scale > self.max_scale:
            raise ValueError(f"initialScale {self.initial_scale} exceeds maxScale {self.max_scale}")
        if not 6 <= knative.duration_seconds(self.stable_window) <= 3600:
            raise ValueError(f"stableWindow {self.stable_window!r} must be between 6s and 1h")
        if knative.duration_seconds(self.scale_down_delay) > 3600:
            raise ValueError(f"scaleDownDelay {self.scale_down_delay!r} must be at most 1h")
        if self.container_concurrency and self.target_concurrency and self.target_concurrency > self.container_concurrency:
            raise ValueError(
                f"targetConcurrency {self.target_concurrency} exceeds containerConcurrency {self.container_concurrency}: "
                "Knative could never reach its target"
            )
        return self


class KnativeConfig(_Model):
    """Knative Serving, for models with `serving: knative`."""

    install: bool = Field(True, description="Install the Knative Operator chart and a KnativeServing with Kourier (false: use the cluster's Knative Serving).")
    features: list[str] = Field(default_factory=list, description="With install false: the config-features flags your Knative has enabled (the vLLM pod needs kubernetes.podspec-* flags).")
    max_revision_timeout_seconds: int = Field(600, ge=30, description="With install false: your config-defaults max-revision-timeout-seconds (Knative's default 600).")
    allow_zero_initial_scale: bool = Field(False, description="With install false: whether your config-autoscaler allows initial-scale 0.")
    namespaces: list[str] = Field(default_factory=lambda: list(knative.DEFAULT_KNATIVE_NAMESPACES), description="Namespaces of Knative's activator, autoscaler and ingress gateway (admitted by the NetworkPolicy).")

    @model_validator(mode="after")
    def _install_or_describe(self):
        described = sorted({"features", "max_revision_timeout_seconds", "allow_zero_initial_scale"} & self.model_fields_set)
        if self.install and described:
            raise ValueError(
                f"{to_camel(described[0])} describes an existing Knative, but install is true (the stack then "
                "configures Knative itself); remove it or set install: false"
            )
        return self

    @property
    def effective_max_revision_timeout(self) -> int:
        from llmstack_k8s.knative_serving import DEFAULT_MAX_REVISION_TIMEOUT_SECONDS

        return DEFAULT_MAX_REVISION_TIMEOUT_SECONDS if self.install else self.max_revision_timeout_seconds

    @property
    def effective_allow_zero_initial_scale(self) -> bool:
        return True if self.install else self.allow_zero_initial_scale
# --- end knative ---


class ModelConfig(_Model):
    """One model served by vLLM."""

    name: str = Field(pattern=DNS_LABEL, max_length=40, description="Short DNS-label name; prefixes every object of this model.")
    model: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", description="Hugging Face repository id (org/name).")
    revision: Annotated[str, AfterValidator(_pinned_revision)] = Field(description="Pinned revision to serve: a commit sha (preferred) or a release tag; never a branch.")
    served_model_name: Optional[str] = Field(None, description="Name clients send as `model` (default: the model id).")
    gated: bool = Field(False, description="The repository needs a Hugging Face token (set huggingfaceToken as a secret).")
    replicas: int = Field(1, ge=1, le=64, description="Always-on replicas.")
    gpus: Optional[int] = Field(None, ge=1, description="GPUs per replica; if given must equal tensor x pipeline parallel size.")
    tensor_parallel_size: int = Field(1, ge=1, le=16, description="Tensor parallel size.")
    pipeline_parallel_size: int = Field(1, ge=1, le=16, description="Pipeline parallel size.")
    max_model_len: Optional[int] = Field(None, ge=128, description="Context length (default: the model's).")
    gpu_memory_utilization: float = Field(0.9, gt=0.1, le=0.98, description="Fraction of GPU memory vLLM may use.")
    dtype: Dtype = Field(Dtype.AUTO, description="auto, bfloat16, float16 or float32.")
    quantization: Optional[Quantization] = Field(None, description="Quantization method of the checkpoint.")
    enable_prefix_caching: bool = Field(True, description="Reuse KV cache across shared prompt prefixes.")
    max_num_seqs: Optional[int] = Field(None, ge=1, description="Most sequences batched at once.")
    weights_gib: Optional[float] = Field(None, gt=0, alias="weightsGiB", description="Size of the weights in GiB; sizes the startup budget.")
    parameters_billions: Optional[float] = Field(None, gt=0, le=10000, description="Parameters in billions; with dtype/quantization estimates the weights for the GPU fit check when weightsGiB is not given.")
    startup_timeout_seconds: Optional[int] = Field(None, ge=60, le=7200, description="Override of the derived startup budget.")
    cache: ModelCacheConfig = Field(description="Weight cache volume.")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="CPU and memory.")
    shm_size: Optional[Size] = Field(None, description="Size of /dev/shm (default from the parallelism).")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Rollout settings.")
    extra_args: list[str] = Field(default_factory=list, description="Further vLLM flags (not ones the stack manages).")
    extra_env: dict[str, str] = Field(default_factory=dict, description="Further environment variables (no secrets).")
    image: Optional[str] = Field(None, description="vLLM image override (pinned tag or digest).")
    slo_ttft_p95_seconds: Optional[float] = Field(None, gt=0, le=600, description="Time-to-first-token p95 SLO in seconds; alerts when breached (default: observability.alerts.ttftP95Seconds).")
    autoscaling: Optional[ModelAutoscalingConfig] = Field(None, description="Scale replicas with KEDA on vLLM's queue depth / KV-cache use (replaces replicas).")
    serving: ServingMode = Field(ServingMode.DEPLOYMENT, description="deployment (always on) or knative (scales to zero when idle; settings under knative).")
    knative: Optional[KnativeModelConfig] = Field(None, description="Knative autoscaling, with serving: knative.")

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model

    @property
    def startup_budget(self) -> int:
        return startup_budget_seconds(self.weights_gib, self.startup_timeout_seconds)

    @property
    def cooldown_seconds(self) -> Optional[int]:
        """Effective autoscaling cooldown (None when not autoscaled)."""
        a = self.autoscaling
        if a is None:
            return None
        return a.cooldown_seconds if a.cooldown_seconds is not None else max(AUTOSCALING_MIN_COOLDOWN, self.startup_budget)

    # --- knative ---
    @property
    def knative_scaling(self) -> KnativeModelConfig:
        """Effective Knative settings (defaults filled in); only meaningful with serving: knative."""
        k = self.knative or KnativeModelConfig()
        budget = self.startup_budget
        return k.model_copy(update={
            "target_concurrency": k.target_concurrency or knative.default_target_concurrency(self.max_num_seqs),
            "progress_deadline_seconds": k.progress_deadline_seconds or knative.default_progress_deadline(budget),
            "request_timeout_seconds": k.request_timeout_seconds or knative.default_request_timeout(budget),
        })

    @model_validator(mode="after")
    def _knative_consistent(self):
        if self.serving != ServingMode.KNATIVE:
            if self.knative is not None:
                raise ValueError("knative is set but serving is deployment; set serving: knative or remove knative")
            return self
        if self.autoscaling is not None:
            raise ValueError(
                "serving is knative, which scales the model itself (Knative's autoscaler); KEDA autoscaling "
                "cannot also own it: remove autoscaling, or use serving: deployment with autoscaling"
            )
        for key in ("replicas", "rollout"):
            if key in self.model_fields_set:
                raise ValueError(f"{key} applies to serving: deployment; with serving: knative use knative.minScale/maxScale")
        reserved = knative.KNATIVE_RESERVED_ENV & set(self.extra_env)
        if reserved:
            raise ValueError(f"extraEnv sets {sorted(reserved)[0]}, which Knative sets itself and refuses in a revision")
        k, budget = self.knative_scaling, self.startup_budget
        if self.max_num_seqs and k.target_concurrency > self.max_num_seqs:
            raise ValueError(
                f"knative.targetConcurrency {k.target_concurrency} exceeds maxNumSeqs {self.max_num_seqs}: requests "
                "would queue inside vLLM before Knative adds a pod"
            )
        if k.progress_deadline_seconds < budget:
            raise ValueError(
                f"knative.progressDeadlineSeconds {k.progress_deadline_seconds} is shorter than the startup budget "
                f"({budget} s, from weightsGiB/startupTimeoutSeconds): Knative would fail the revision while the model loads"
            )
        if k.min_scale == 0 and k.request_timeout_seconds < budget:
            raise ValueError(
                f"knative.requestTimeoutSeconds {k.request_timeout_seconds} is shorter than the startup budget ({budget} s): "
                "the first request after scaling to zero would time out while the model loads"
            )
        return self
    # --- end knative ---

    @model_validator(mode="after")
    def _autoscaling_consistent(self):
        a = self.autoscaling
        if a is None:
            return self
        if "replicas" in self.model_fields_set:
            raise ValueError("replicas and autoscaling are both set; with autoscaling, autoscaling.minReplicas/maxReplicas own the count")
        if a.cooldown_seconds is not None and a.cooldown_seconds < self.startup_budget:
            raise ValueError(
                f"autoscaling.cooldownSeconds {a.cooldown_seconds} is shorter than the model's startup budget "
                f"({self.startup_budget} s, from weightsGiB/startupTimeoutSeconds): a replica removed sooner than one "
                "takes to start makes the model flap; raise cooldownSeconds"
            )
        return self

    @model_validator(mode="after")
    def _consistent(self):
        if self.gpus is not None and self.gpus != self.gpus_per_replica:
            raise ValueError(
                f"gpus is {self.gpus} but tensorParallelSize x pipelineParallelSize is "
                f"{self.tensor_parallel_size} x {self.pipeline_parallel_size} = {self.gpus_per_replica}; vLLM uses exactly that many"
            )
        for arg in self.extra_args:
            flag = arg.split("=", 1)[0]
            if flag in MANAGED_FLAGS:
                raise ValueError(f"extraArgs sets {flag}, which the stack renders from its own key; set that key instead")
        for key in self.extra_env:
            if key in {"VLLM_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}:
                raise ValueError(f"extraEnv sets {key}: secrets come from Pulumi secrets, never plain config")
        if self.image and (self.image.endswith(":latest") or (":" not in self.image.rsplit("/", 1)[-1] and "@" not in self.image)):
            raise ValueError(f"image {self.image!r} is not pinned; give a version tag or digest")
        if self.cache.access_mode == AccessMode.READ_WRITE_ONCE and self.replicas > 1:
            raise ValueError("cache.accessMode ReadWriteOnce cannot serve several replicas across nodes; use ReadWriteMany")
        return self


# --- observability (Observability) -----------------------------------------------------------
_T = DEFAULT_THRESHOLDS
_BYTES_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_BYTES_PROM = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40, "PB": 2**50}  # Prometheus' units are base 2


class AlertsConfig(_Model):
    """When the alerts fire (stack-wide; per-model TTFT SLO is models[].sloTtftP95Seconds)."""

    no_ready_replica_minutes: int = Field(_T["no_ready_replica_minutes"], ge=1, le=240, description="Minutes with no replica of an always-on model serving before VllmModelDown.")
    queue_waiting_requests: int = Field(_T["queue_waiting_requests"], ge=1, description="Waiting requests per model that count as a queue.")
    queue_minutes: int = Field(_T["queue_minutes"], ge=1, le=240, description="Minutes the queue must last before VllmQueueBuildingUp.")
    kv_cache_usage_ratio: float = Field(_T["kv_cache_usage_ratio"], gt=0, le=1, description="KV-cache use (0..1) of a replica for VllmKvCacheNearlyFull.")
    kv_cache_minutes: int = Field(_T["kv_cache_minutes"], ge=1, le=240, description="Minutes above that ratio before it fires.")
    preemptions_per_minute: float = Field(_T["preemptions_per_minute"], ge=0, description="Preemptions per minute per model for VllmPreemptionsRising.")
    ttft_p95_seconds: float = Field(_T["ttft_p95_seconds"], gt=0, le=600, description="Default TTFT p95 SLO (seconds) for models without sloTtftP95Seconds.")
    slo_minutes: int = Field(_T["slo_minutes"], ge=1, le=240, description="Minutes an SLO must be breached before it alerts.")
    error_ratio: float = Field(_T["error_ratio"], gt=0, le=1, description="Fraction of requests ending in error for VllmHighErrorRate.")
    pod_restarts_per_hour: int = Field(_T["pod_restarts_per_hour"], ge=1, description="Container restarts per hour for VllmPodRestarting.")
    gpu_memory_ratio: float = Field(_T["gpu_memory_ratio"], gt=0, le=1, description="GPU memory use (0..1) for GpuMemoryNearlyFull; above every model's gpuMemoryUtilization.")
    gpu_temperature_celsius: int = Field(_T["gpu_temperature_celsius"], ge=50, le=120, description="GPU temperature for GpuTemperatureHigh.")


class PrometheusConfig(_Model):
    """Prometheus of the kube-prometheus-stack install."""

    retention: str = Field("7d", pattern=r"^[0-9]+(ms|s|m|h|d|w|y)$", description="How long samples are kept (e.g. 15d).")
    retention_size: Optional[str] = Field(None, pattern=r"^[0-9]+(B|KB|MB|GB|TB|PB)$", description="Most disk the TSDB may use (e.g. 85GB; default 85% of storageSize).")
    storage_size: Optional[Size] = Field(None, description="Persistent volume for the TSDB (e.g. 100Gi); without it, data is lost when the pod moves.")
    storage_class: Optional[str] = Field(None, description="StorageClass of that volume.")
    cpu: Cpu = Field("500m", description="CPU request.")
    memory: Size = Field("2Gi", description="Memory request and limit.")

    @model_validator(mode="after")
    def _fits(self):
        if self.retention_size and not self.storage_size:
            raise ValueError("retentionSize is set without storageSize: the TSDB lives in an emptyDir; set storageSize")
        if self.retention_size and self.storage_size:
            num, unit = re.match(r"^([0-9]+)([A-Z]+)$", self.retention_size).groups()
            snum, sunit = re.match(r"^([0-9.]+)([KMGTP]i)?$", self.storage_size).groups()
            if int(num) * _BYTES_PROM[unit] >= float(snum) * _BYTES_BINARY.get(sunit, 1):
                raise ValueError(f"retentionSize {self.retention_size} does not fit in storageSize {self.storage_size}; keep it ~15% below (WAL and compaction need room)")
        return self

    @property
    def effective_retention_size(self) -> Optional[str]:
        if self.retention_size or not self.storage_size:
            return self.retention_size
        snum, sunit = re.match(r"^([0-9.]+)([KMGTP]i)?$", self.storage_size).groups()
        mib = int(float(snum) * _BYTES_BINARY.get(sunit, 1) * 0.85) // 2**20
        return f"{mib // 1024}GB" if mib % 1024 == 0 else f"{mib}MB"


class ObservabilityConfig(_Model):
    """Prometheus, Grafana, DCGM exporter, alerts and dashboards."""

    namespace: str = Field("monitoring", pattern=DNS_LABEL, max_length=63, description="Namespace of Prometheus, Grafana and the monitoring objects.")
    install_prometheus_stack: bool = Field(True, description="Install kube-prometheus-stack; false: use an existing Prometheus Operator.")
    prometheus_url: Optional[str] = Field(None, pattern=r"^https?://", description="In-cluster URL of an existing Prometheus (installPrometheusStack: false).")
    grafana_url: Optional[str] = Field(None, pattern=r"^https?://", description="URL of an existing Grafana (installPrometheusStack: false).")
    monitor_labels: Optional[dict[str, str]] = Field(None, description="Labels on monitors and rules that the Prometheus' selectors match (default release: kube-prometheus-stack).")
    dcgm_exporter: bool = Field(True, description="Install the DCGM exporter (false where the GPU Operator runs one).")
    scrape_interval: str = Field("15s", pattern=r"^[0-9]+(s|m)$", description="Scrape interval of vLLM pods and GPUs.")
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig, description="Prometheus retention, storage, resources.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alert thresholds.")

    @model_validator(mode="after")
    def _existing_or_installed(self):
        if self.install_prometheus_stack and (self.prometheus_url or self.grafana_url):
            raise ValueError("prometheusUrl/grafanaUrl name an existing install; set installPrometheusStack: false to use them")
        if not self.install_prometheus_stack and not self.prometheus_url:
            raise ValueError("installPrometheusStack is false: set prometheusUrl to the existing Prometheus' in-cluster URL")
        if not self.install_prometheus_stack and "prometheus" in self.model_fields_set:
            raise ValueError("prometheus settings apply only when installPrometheusStack is true")
        return self


class StackConfig(_Model):
    """The whole stack file."""

    namespace: str = Field("llm", pattern=DNS_LABEL, max_length=63, description="Namespace of the vLLM servers and caches.")
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig, description="Cluster access.")
    huggingface_token: Optional[str] = Field(None, description="Hugging Face token (set with --secret).")
    cache: CacheDefaults = Field(default_factory=CacheDefaults, description="Cache defaults.")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="Network policy.")
    models: list[ModelConfig] = Field(min_length=1, description="Models to serve.")
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig, description="KEDA install and scale-to-zero buffering.")
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig, description="Prometheus, Grafana, DCGM exporter, alerts, dashboards.")
    gpu_pool: GpuPoolConfig = Field(default_factory=GpuPoolConfig, description="GPU nodes: device plugin, sharing, taints, Karpenter; models are checked to fit them.")
    knative: KnativeConfig = Field(default_factory=KnativeConfig, description="Knative Serving (install or use existing) for models with serving: knative.")

    # --- knative ---
    def knative_pod_features(self) -> set[str]:
        """config-features flags the vLLM pod needs, given the GPU pool's placement settings."""
        needed = knative.pod_features(None)
        pool = self.gpu_pool
        if not getattr(pool, "taints", True):  # untainted GPU nodes: no tolerations
            needed.discard(knative.FIELD_FEATURES["tolerations"])
        if getattr(pool, "node_selector", None):
            needed.add(knative.FIELD_FEATURES["nodeSelector"])
        if getattr(pool, "runtime_class", None) is not None:
            needed.add(knative.FIELD_FEATURES["runtimeClassName"])
        if getattr(pool, "priority_class", None) is not None:
            needed.add(knative.FIELD_FEATURES["priorityClassName"])
        return needed

    @model_validator(mode="after")
    def _knative_runnable(self):
        kn = self.knative
        for i, m in enumerate(self.models):
            if m.serving != ServingMode.KNATIVE:
                continue
            where = f"models[{i}] (name: {m.name}).knative"
            k = m.knative_scaling
            if k.request_timeout_seconds > kn.effective_max_revision_timeout:
                raise ValueError(
                    f"{where}.requestTimeoutSeconds is {k.request_timeout_seconds} (default: startup budget + 600) but "
                    f"Knative allows at most {kn.effective_max_revision_timeout} (knative.maxRevisionTimeoutSeconds); "
                    "raise max-revision-timeout-seconds in Knative's config-defaults and say so here, or lower the timeout"
                )
            if k.initial_scale == 0 and not kn.effective_allow_zero_initial_scale:
                raise ValueError(
                    f"{where}.initialScale is 0 but knative.allowZeroInitialScale is false: Knative refuses it unless "
                    "config-autoscaler allow-zero-initial-scale is true"
                )
            mode = m.cache.access_mode or self.cache.access_mode
            if mode == AccessMode.READ_WRITE_ONCE and k.max_scale > 1:
                raise ValueError(f"{where}.maxScale is {k.max_scale} but the cache accessMode is ReadWriteOnce; use ReadWriteMany or maxScale 1")
            if not kn.install:
                missing = sorted(self.knative_pod_features() - set(kn.features))
                if missing:
                    raise ValueError(
                        f"model {m.name!r} is served by Knative, whose vLLM pod needs config-features flags that "
                        f"knative.features does not list as enabled: {', '.join(missing)}; enable them in the "
                        "knative-serving/config-features ConfigMap and list them here, or set knative.install: true"
                    )
        return self
    # --- end knative ---

    @model_validator(mode="after")
    def _models_fit_gpu_pool(self):
        check_models_fit(self.gpu_pool, self.models)
        return self

    @model_validator(mode="after")
    def _observability_fits(self):
        o = self.observability
        if o.namespace not in self.network.monitoring_namespaces:
            raise ValueError(
                f"observability.namespace {o.namespace!r} is not in network.monitoringNamespaces "
                f"{self.network.monitoring_namespaces}: the NetworkPolicy would block Prometheus from scraping vLLM"
            )
        for i, m in enumerate(self.models):
            if m.gpu_memory_utilization >= o.alerts.gpu_memory_ratio:
                raise ValueError(
                    f"observability.alerts.gpuMemoryRatio {o.alerts.gpu_memory_ratio} is not above models[{i}] (name: {m.name}).gpuMemoryUtilization "
                    f"{m.gpu_memory_utilization}: vLLM pre-allocates that much GPU memory, so GpuMemoryNearlyFull would always fire"
                )
        return self

    @model_validator(mode="after")
    def _autoscaling_safe(self):
        for i, m in enumerate(self.models):
            a = m.autoscaling
            if a is None:
                continue
            where = f"models[{i}] (name: {m.name}).autoscaling"
            if a.min_replicas == 0 and not self.autoscaling.http_add_on:
                raise ValueError(
                    f"{where}.minReplicas is 0 but autoscaling.httpAddOn is false: a Deployment at zero replicas "
                    "exports no vLLM metrics and nothing holds the first request, so it would be dropped; set "
                    "autoscaling.httpAddOn: true (the KEDA HTTP add-on buffers requests while a replica starts), "
                    "minReplicas >= 1, or serve the model with serving: knative"
                )
            mode = m.cache.access_mode or self.cache.access_mode
            if mode == AccessMode.READ_WRITE_ONCE and a.max_replicas > 1:
                raise ValueError(
                    f"{where}.maxReplicas is {a.max_replicas} but the cache accessMode is ReadWriteOnce, which "
                    "cannot serve replicas across nodes; use ReadWriteMany or maxReplicas 1"
                )
        return self

    @model_validator(mode="after")
    def _cross_model(self):
        seen: dict[str, str] = {}
        for m in self.models:
            if m.name in seen:
                raise ValueError(f"two models are named {m.name!r}; names must be unique")
            seen[m.name] = m.name
        served = [m.served_name for m in self.models]
        dup = {s for s in served if served.count(s) > 1}
        if dup:
            raise ValueError(f"servedModelName {sorted(dup)[0]!r} is used by two models")
        gated = [m.name for m in self.models if m.gated]
        if gated and not self.huggingface_token:
            raise ValueError(
                f"model {gated[0]!r} is gated but huggingfaceToken is not set; "
                "run `pulumi config set --secret huggingfaceToken hf_...`"
            )
        for m in self.models:
            mode = m.cache.access_mode or self.cache.access_mode
            if mode == AccessMode.READ_WRITE_ONCE and m.replicas > 1:
                raise ValueError(f"model {m.name!r}: cache accessMode ReadWriteOnce cannot serve {m.replicas} replicas; use ReadWriteMany")
        return self
