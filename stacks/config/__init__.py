"""Everything a stack file (``Pulumi.<stack>.yaml``) can say, validated before anything is created.

Keys are camelCase under the project's namespace (``llmstack:models``). Unknown keys are
refused, so a typo ends in an error naming the key instead of a silently ignored setting.
This module holds the whole file (``StackConfig``) and the checks that span features; the keys
of each feature live in a module of their own beside it:

- ``models``: one entry of ``models`` (cache, resources, rollout, canary), with ``engine`` (vLLM
  flags, architecture), ``lora``, ``pinning`` (revisions, images) and ``secrets`` (``extraEnv``)
- ``gpu_pool`` (and ``mig_profiles``), ``multi_node``, ``autoscaling`` (and ``warm``),
  ``knative``, ``gateway``, ``observability``, ``teams``, ``object_storage``, ``cold_start``,
  ``chart_source``, ``cluster`` (provider keys, namespaces, network)
- ``base`` (the model every key model derives from), ``quantities`` (sizes, CPU, durations)
- ``loader``: reads the stack's config from Pulumi (the only module of the program that does) and
  words every refusal with ``messages``
"""

from pydantic import Field, model_validator

from llmstack_k8s.cluster.gpu_node_pool import DEVICE_PLUGIN_NAMESPACE, GPU_OPERATOR_NAMESPACE, GpuInstall
from llmstack_k8s.cluster.knative_serving import (
    DEFAULT_OPERATOR_NAMESPACE as KNATIVE_OPERATOR_NAMESPACE,
)
from llmstack_k8s.cluster.knative_serving import (
    SERVING_NAMESPACE as KNATIVE_SERVING_NAMESPACE,
)
from llmstack_k8s.serving.model_cache import AccessMode

from .autoscaling import (
    AUTOSCALING_DEFAULT_TARGETS,
    AUTOSCALING_MIN_COOLDOWN,
    AutoscalingConfig,
    ModelAutoscalingConfig,
)
from .base import ConfigProblem
from .base import StackModel as _Model
from .chart_source import ChartsConfig
from .chart_source import check_packages as check_chart_packages
from .cluster import RESERVED_NAMESPACES, SYSTEM_NAMESPACES, DnsLabel, KubernetesConfig, NetworkConfig
from .cold_start import ColdStartConfig, ImagePrePullConfig
from .gateway import GatewayConfig, exposure_problem
from .gpu_pool import GpuPoolConfig, check_karpenter_floor, check_models_fit
from .knative import KnativeConfig, KnativeModelConfig, ServingMode, check_knative_models
from .models import (
    DOWNLOAD_START_SECONDS,
    MANAGED_FLAGS,
    UNPINNED_REVISIONS,
    CacheDefaults,
    ModelCacheConfig,
    ModelConfig,
    ResourcesConfig,
    RolloutConfig,
)
from .multi_node import LeaderWorkerSetConfig, check_multi_node, is_multi_node
from .object_storage import ObjectStorageConfig
from .object_storage import check_stack as check_object_storage
from .observability import AlertsConfig, ObservabilityConfig, PrometheusConfig
from .quantities import DNS_LABEL, Cpu, Duration, Size
from .teams import TeamConfig, check_teams

# Re-exported: the feature modules' models, importable from stacks.config.
__all__ = [
    "AUTOSCALING_DEFAULT_TARGETS",
    "AUTOSCALING_MIN_COOLDOWN",
    "DNS_LABEL",
    "MANAGED_FLAGS",
    "UNPINNED_REVISIONS",
    "AlertsConfig",
    "AutoscalingConfig",
    "CacheDefaults",
    "ChartsConfig",
    "Cpu",
    "Duration",
    "GpuPoolConfig",
    "KnativeConfig",
    "KnativeModelConfig",
    "KubernetesConfig",
    "ModelAutoscalingConfig",
    "ModelCacheConfig",
    "ModelConfig",
    "NetworkConfig",
    "ObservabilityConfig",
    "PrometheusConfig",
    "ResourcesConfig",
    "RolloutConfig",
    "ServingMode",
    "Size",
    "StackConfig",
]


class StackConfig(_Model):
    """The whole stack file."""

    namespace: DnsLabel = Field(
        "llm",
        description=(
            "Namespace of the vLLM servers and caches; the stack creates and owns it (never default or kube-*)."
        ),
    )
    existing_namespace: bool = Field(
        False,
        description=(
            "The namespace exists and is not the stack's: it is read at preview (a missing one fails there), "
            "never created, labelled or deleted."
        ),
    )
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig, description="Cluster access.")
    huggingface_token: str | None = Field(None, description="Hugging Face token (set with --secret).")
    cache: CacheDefaults = Field(default_factory=CacheDefaults, description="Cache defaults.")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="Network policy.")
    models: list[ModelConfig] = Field(min_length=1, description="Models to serve.")
    autoscaling: AutoscalingConfig = Field(
        default_factory=AutoscalingConfig,
        description=(
            "KEDA install and scale-to-zero buffering, for the Deployment models whose autoscaling KEDA carries out."
        ),
    )
    observability: ObservabilityConfig = Field(
        default_factory=ObservabilityConfig, description="Prometheus, Grafana, DCGM exporter, alerts, dashboards."
    )
    gpu_pool: GpuPoolConfig = Field(
        default_factory=GpuPoolConfig,
        description="GPU nodes: device plugin, sharing, taints, Karpenter; models are checked to fit them.",
    )
    knative: KnativeConfig = Field(
        default_factory=KnativeConfig,
        description="Knative Serving (install or use existing) for models with serving: knative.",
    )
    gateway: GatewayConfig | None = Field(
        None,
        description=(
            "One OpenAI endpoint for every model: an HTTPRoute per model on a Gateway (or an Ingress); "
            "timeouts of the request budget."
        ),
    )

    @model_validator(mode="after")
    def _routes_work(self):
        for i, m in enumerate(self.models):
            problem = exposure_problem(self.gateway, m, self.knative)
            if problem:
                raise ConfigProblem(f"models[{i}] (name: {m.name}).{problem[0]}", problem[1])
        return self

    cold_start: ColdStartConfig = Field(
        default_factory=ColdStartConfig,
        description=(
            "Cold-start figures of every model (a model's own coldStart overrides them); the startup probe, "
            "await and cooldown derive from them."
        ),
    )
    image_pre_pull: ImagePrePullConfig = Field(
        default_factory=ImagePrePullConfig, description="Keep the vLLM image on every GPU node (pre-pull DaemonSet)."
    )
    teams: list[TeamConfig] = Field(
        default_factory=list,
        description=(
            "Teams sharing the cluster: each gets a namespace for its models, a ResourceQuota, a LimitRange, "
            "its own API key and a network boundary."
        ),
    )
    object_storage: ObjectStorageConfig | None = Field(
        None,
        description=(
            "Endpoint, region, credentials and streamer settings for models whose `model` is an s3:// or gs:// URL."
        ),
    )
    object_storage_access_key_id: str | None = Field(
        None, description="S3 access key id for models in object storage (set with --secret)."
    )
    object_storage_secret_access_key: str | None = Field(
        None, description="S3 secret access key for models in object storage (set with --secret)."
    )

    @model_validator(mode="after")
    def _object_storage_fits(self):
        check_object_storage(self)
        return self

    leader_worker_set: LeaderWorkerSetConfig = Field(
        default_factory=LeaderWorkerSetConfig,
        description=(
            "The LeaderWorkerSet controller for models whose GPUs per replica exceed gpuPool.gpu.perNode "
            "(install the pinned chart, or use the cluster's)."
        ),
    )

    @model_validator(mode="after")
    def _multi_node_runnable(self):
        check_multi_node(self)
        return self

    charts: ChartsConfig = Field(
        default_factory=ChartsConfig,
        description=(
            "Where the Helm charts come from: each pin's upstream repository (default), a local directory of "
            "packaged charts or a private mirror (air-gapped clusters); names and versions always from the pins."
        ),
    )

    @model_validator(mode="after")
    def _charts_available(self):
        check_chart_packages(self)
        return self

    def team_of(self, model_name: str) -> TeamConfig | None:
        return next((t for t in self.teams if model_name in t.models), None)

    @model_validator(mode="after")
    def _teams_fit(self):
        check_teams(self)
        return self

    @model_validator(mode="before")
    @classmethod
    def _cold_start_defaults(cls, data):
        """The stack-wide coldStart figures under each model's own, so every model check sees its
        whole budget. A stack-wide value that is itself wrong is reported once, at coldStart."""
        if not isinstance(data, dict):
            return data
        key = "coldStart" if "coldStart" in data else "cold_start"
        stack_wide = data.get(key)
        if not isinstance(stack_wide, dict) or not isinstance(data.get("models"), list):
            return data
        try:
            ColdStartConfig.model_validate(stack_wide)
        except ValueError:
            return data
        models = []
        for m in data["models"]:
            if isinstance(m, dict):
                own = "coldStart" if "coldStart" in m else "cold_start"
                mine = m.get(own, {})
                if isinstance(mine, dict):  # anything else: the field reports it
                    m = {**m, own: {**stack_wide, **mine}}
            models.append(m)
        return {**data, "models": models}

    @model_validator(mode="after")
    def _knative_runnable(self):
        check_knative_models(self)
        return self

    @model_validator(mode="after")
    def _models_fit_gpu_pool(self):
        check_models_fit(self.gpu_pool, self.models)
        check_karpenter_floor(self.gpu_pool, self.models)
        return self

    def stack_namespaces(self) -> list[tuple[str, str, str, bool]]:
        """(name, key, what runs there, whether the stack creates a Namespace object for it) of every
        namespace this stack deploys into, as configured."""
        out = [(self.namespace, "namespace", "the vLLM servers", not self.existing_namespace)]
        out += [
            (t.effective_namespace, f"teams[{i}].namespace", f"team {t.name}'s models", True)
            for i, t in enumerate(self.teams)
        ]
        o = self.observability
        out.append(
            (
                o.namespace,
                "observability.namespace",
                "Prometheus and Grafana" if o.install_prometheus_stack else "the monitors and rules",
                o.install_prometheus_stack,
            )
        )
        if o.dcgm_exporter and not o.install_prometheus_stack:
            out.append((o.dcgm_exporter_namespace, "observability.dcgmExporterNamespace", "the DCGM exporter", True))
        if self.autoscaling.install_keda and any(m.keda_autoscaling for m in self.models):
            out.append((self.autoscaling.keda_namespace, "autoscaling.kedaNamespace", "KEDA", False))
        if self.knative.install and any(m.serving == ServingMode.KNATIVE for m in self.models):
            out.append((KNATIVE_SERVING_NAMESPACE, "knative.install", "Knative Serving", True))
            out.append((KNATIVE_OPERATOR_NAMESPACE, "knative.install", "the Knative Operator", False))
        if self.leader_worker_set.install and any(is_multi_node(self, m) for m in self.models):
            out.append(
                (self.leader_worker_set.namespace, "leaderWorkerSet.namespace", "the LeaderWorkerSet controller", False)
            )
        pool = self.gpu_pool
        if pool.install == GpuInstall.GPU_OPERATOR:
            out.append((pool.namespace or GPU_OPERATOR_NAMESPACE, "gpuPool.namespace", "the GPU operator", True))
        elif pool.install == GpuInstall.DEVICE_PLUGIN:
            out.append(
                (pool.namespace or DEVICE_PLUGIN_NAMESPACE, "gpuPool.namespace", "the NVIDIA device plugin", True)
            )
        return out

    @model_validator(mode="after")
    def _namespaces_owned(self):
        """Every namespace the stack deploys into is one it may own, and no two of its parts share one
        they would both create (the second create fails on the cluster: half deployed)."""
        used = self.stack_namespaces()
        for name, key, what, creates in used:
            installs = key == "namespace" or creates or key in ("autoscaling.kedaNamespace", "gpuPool.namespace")
            if name in SYSTEM_NAMESPACES and installs:
                raise ConfigProblem(
                    key, f"{name!r} is the cluster's own namespace; {what} need a namespace of their own"
                )
            if name in RESERVED_NAMESPACES and creates:
                hint = (
                    " or set llmstack:existingNamespace: true to use it without owning it" if key == "namespace" else ""
                )
                raise ConfigProblem(
                    key, f"{name!r} is not a namespace the stack may create, label and delete; choose another{hint}"
                )
        for i, (name, key, what, creates) in enumerate(used):
            for other, okey, owhat, ocreates in used[i + 1 :]:
                if name == other and (creates or ocreates) and key != okey:
                    raise ConfigProblem(
                        key,
                        f"{name!r} is also the namespace of {owhat} ({okey}); the stack creates its namespaces "
                        "separately (each with its own Pod Security level), so the second create would fail on the "
                        f"cluster; give {what} another namespace",
                    )
        return self

    @model_validator(mode="after")
    def _download_fits_deadline(self):
        c = self.cache
        for i, m in enumerate(self.models):
            weights = m.weights_estimate
            if weights is None or m.is_object_storage:  # streamed from the bucket: no download Job
                continue
            gib, source = weights
            need = DOWNLOAD_START_SECONDS + gib * 1024 / c.download_mib_per_second
            if c.download_deadline_seconds < need:
                raise ConfigProblem(
                    "cache.downloadDeadlineSeconds",
                    f"{c.download_deadline_seconds} s cannot download models[{i}] (name: {m.name}) ({source}) at "
                    f"cache.downloadMiBps {c.download_mib_per_second:g} MiB/s: that takes ~{need:.0f} s with "
                    f"{DOWNLOAD_START_SECONDS} s to start the Job, and the Job would be killed at the deadline "
                    f"every time; raise downloadDeadlineSeconds to at least {need:.0f} (or state your measured "
                    "downloadMiBps)",
                )
        return self

    @model_validator(mode="after")
    def _keda_has_a_prometheus(self):
        scaled = [m.name for m in self.models if m.keda_autoscaling is not None]
        if (
            scaled
            and not self.observability.install_prometheus_stack
            and "prometheus_url" not in self.autoscaling.model_fields_set
        ):
            raise ConfigProblem(
                "autoscaling.prometheusUrl",
                f"not set, but observability.installPrometheusStack is false and {scaled[0]!r} is autoscaled: KEDA "
                "would query the stack's own Prometheus, which is not installed; set it to the in-cluster URL of the "
                "Prometheus that scrapes vLLM (usually observability.prometheusUrl)",
            )
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
                    f"observability.alerts.gpuMemoryRatio {o.alerts.gpu_memory_ratio} is not above models[{i}] (name: "
                    f"{m.name}).gpuMemoryUtilization {m.gpu_memory_utilization}: vLLM pre-allocates that much GPU "
                    "memory, so GpuMemoryNearlyFull would always fire"
                )
        return self

    @model_validator(mode="after")
    def _autoscaling_safe(self):
        for i, m in enumerate(self.models):
            s = m.scaling  # the same bounds whether KEDA or Knative carries them out
            if s is None:
                continue
            where = f"models[{i}] (name: {m.name}).autoscaling"
            if not m.is_knative and s.min_replicas == 0 and not self.autoscaling.http_add_on:
                raise ValueError(
                    f"{where}.minReplicas is 0 but autoscaling.httpAddOn is false: a Deployment at zero replicas "
                    "exports no vLLM metrics and nothing holds the first request, so it would be dropped; set "
                    "autoscaling.httpAddOn: true (the KEDA HTTP add-on buffers requests while a replica starts), "
                    "minReplicas >= 1, or serve the model with serving: knative"
                )
            mode = m.cache.access_mode or self.cache.access_mode if m.cache else None  # object storage: no volume
            if mode == AccessMode.READ_WRITE_ONCE and s.max_replicas > 1:
                raise ValueError(
                    f"{where}.maxReplicas is {s.max_replicas} but the cache accessMode is ReadWriteOnce, which "
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
        # lora: an adapter's name is a model name on the same API; one name, one server
        owner = {m.served_name: f"models[{i}] (name: {m.name}).servedModelName" for i, m in enumerate(self.models)}
        for i, m in enumerate(self.models):
            for j, a in enumerate(m.lora_adapters):
                key = f"models[{i}] (name: {m.name}).loraAdapters[{j}].name"
                if a.name in owner and not owner[a.name].startswith(f"models[{i}] "):
                    raise ConfigProblem(
                        key,
                        f"{a.name!r} is also {owner[a.name]}; every model name clients send must be unique in the "
                        "stack",
                    )
                owner.setdefault(a.name, key)
                if a.gated and not self.huggingface_token:
                    raise ConfigProblem(
                        f"models[{i}] (name: {m.name}).loraAdapters[{j}].gated",
                        "the adapter is gated but huggingfaceToken is not set; run `pulumi config set --secret "
                        "huggingfaceToken hf_...`",
                    )
        for i, m in enumerate(self.models):
            if m.gated and not self.huggingface_token:
                raise ConfigProblem(
                    f"models[{i}] (name: {m.name}).gated",
                    f"model {m.name!r} is gated but huggingfaceToken is not set, so its download would be refused "
                    "(401); run `pulumi config set --secret huggingfaceToken hf_...`",
                )
        for m in self.models:
            mode = m.cache.access_mode or self.cache.access_mode if m.cache else None  # object storage: no volume
            if mode == AccessMode.READ_WRITE_ONCE and m.replicas > 1:
                raise ValueError(
                    f"model {m.name!r}: cache accessMode ReadWriteOnce cannot serve {m.replicas} replicas; use "
                    "ReadWriteMany"
                )
        return self
