"""Everything a stack file (``Pulumi.<stack>.yaml``) can say, validated before anything is created.

Keys are camelCase under the project's namespace (``llmstack:models``). Unknown keys are
refused, so a typo ends in an error naming the key instead of a silently ignored setting.
The keys of each feature live in their own module (models, autoscaling, knative, observability,
gpu_pool, cluster); this one holds the whole file and the checks that span features.
"""

from typing import Optional

from pydantic import Field, model_validator

from llmstack_k8s import knative_vllm_service as knative  # knative
from llmstack_k8s.model_cache import AccessMode

from .autoscaling import AUTOSCALING_DEFAULT_TARGETS, AUTOSCALING_MIN_COOLDOWN, AutoscalingConfig, ModelAutoscalingConfig  # noqa: F401
from .base import StackModel as _Model
from .cluster import KubernetesConfig, NetworkConfig
from .gpu_pool import GpuPoolConfig, check_models_fit
from .knative import KnativeConfig, KnativeModelConfig, ServingMode  # noqa: F401
from .models import MANAGED_FLAGS, UNPINNED_REVISIONS, CacheDefaults, ModelCacheConfig, ModelConfig, ResourcesConfig, RolloutConfig  # noqa: F401
from .observability import AlertsConfig, ObservabilityConfig, PrometheusConfig  # noqa: F401
from .quantities import DNS_LABEL, Cpu, Duration, Size  # noqa: F401

# Re-exported: importers of stacks.config keep working after the split per feature.
__all__ = [
    "AUTOSCALING_DEFAULT_TARGETS", "AUTOSCALING_MIN_COOLDOWN", "AlertsConfig", "AutoscalingConfig", "CacheDefaults",
    "Cpu", "DNS_LABEL", "Duration", "GpuPoolConfig", "KnativeConfig", "KnativeModelConfig", "KubernetesConfig",
    "MANAGED_FLAGS", "ModelAutoscalingConfig", "ModelCacheConfig", "ModelConfig", "NetworkConfig",
    "ObservabilityConfig", "PrometheusConfig", "ResourcesConfig", "RolloutConfig", "ServingMode", "Size",
    "StackConfig", "UNPINNED_REVISIONS",
]


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
