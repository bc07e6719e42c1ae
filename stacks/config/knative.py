"""The stack file's Knative keys: how a model is served, and Knative Serving (installed or existing)."""

from enum import Enum
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator
from pydantic.alias_generators import to_camel

from llmstack_k8s.cluster.knative_serving import DATA_PLANE_NAMESPACES as INSTALLED_DATA_PLANE_NAMESPACES
from llmstack_k8s.cluster.knative_serving import (
    DEFAULT_MAX_REVISION_TIMEOUT_SECONDS,
    LOCAL_GATEWAY_PORT,
    LOCAL_GATEWAY_SERVICE,
    RELEASE_KOURIER_NAMESPACE,
    SERVING_NAMESPACE,
)
from llmstack_k8s.serving import knative_vllm_service as knative

from .base import StackModel as _Model
from .quantities import Duration, dns_label

DnsLabel = Annotated[str, AfterValidator(dns_label)]


class ServingMode(str, Enum):
    """How a model is served."""

    DEPLOYMENT = "deployment"
    """Always-on Deployment (VllmService); KEDA may scale it."""
    KNATIVE = "knative"
    """Knative Service (KnativeVllmService): scales to zero when idle, starts on the first request."""


class KnativeModelConfig(_Model):
    """Knative-only knobs of a model with `serving: knative` (its bounds, target and cooldown are `autoscaling`'s)."""

    initial_scale: int = Field(
        knative.DEFAULT_INITIAL_SCALE,
        ge=0,
        le=64,
        description=(
            "Pods a new revision starts with (1 proves the model loads at deploy time); at most "
            "autoscaling.maxReplicas."
        ),
    )
    container_concurrency: int = Field(
        0,
        ge=0,
        description=(
            "Hard limit of requests per pod, excess waits in the activator (0: none; vLLM queues); at least "
            "autoscaling.target."
        ),
    )
    stable_window: Duration = Field(
        knative.DEFAULT_STABLE_WINDOW, description="Window Knative averages concurrency over before scaling (6s to 1h)."
    )
    panic_window_percentage: float = Field(
        knative.DEFAULT_PANIC_WINDOW_PERCENTAGE, ge=1, le=100, description="Panic window, % of the stable window."
    )
    progress_deadline_seconds: int | None = Field(
        None,
        ge=60,
        description="Time a new revision may take to be ready; at least the startup budget (default budget + 600).",
    )
    request_timeout_seconds: int | None = Field(
        None, ge=30, description="Longest request, including waiting out a cold start (default budget + 600)."
    )

    @model_validator(mode="after")
    def _bounds(self):
        if not 6 <= knative.duration_seconds(self.stable_window) <= 3600:
            raise ValueError(f"stableWindow {self.stable_window!r} must be between 6s and 1h")
        return self


class LocalGatewayConfig(_Model):
    """An existing Knative's cluster-local ingress Service: where llmstack:gateway routes a Knative model."""

    name: DnsLabel = Field(
        LOCAL_GATEWAY_SERVICE, description="The Service (Kourier: kourier-internal; net-istio: knative-local-gateway)."
    )
    namespace: DnsLabel = Field(
        RELEASE_KOURIER_NAMESPACE,
        description="Its namespace (Kourier from Knative's release YAMLs: kourier-system; net-istio: istio-system).",
    )
    port: int = Field(LOCAL_GATEWAY_PORT, ge=1, le=65535, description="Its HTTP port.")


class KnativeConfig(_Model):
    """Knative Serving, for models with `serving: knative`."""

    install: bool = Field(
        True,
        description=(
            "Install the Knative Operator chart and a KnativeServing with Kourier (false: use the cluster's "
            "Knative Serving)."
        ),
    )
    features: list[str] = Field(
        default_factory=list,
        description=(
            "With install false: the config-features flags your Knative has enabled (the vLLM pod needs "
            "kubernetes.podspec-* flags)."
        ),
    )
    max_revision_timeout_seconds: int = Field(
        600,
        ge=30,
        description="With install false: your config-defaults max-revision-timeout-seconds (Knative's default 600).",
    )
    allow_zero_initial_scale: bool = Field(
        False, description="With install false: whether your config-autoscaler allows initial-scale 0."
    )
    namespaces: list[DnsLabel] = Field(
        default_factory=lambda: list(knative.DEFAULT_KNATIVE_NAMESPACES),
        description=(
            "Namespaces of Knative's activator, autoscaler and ingress gateway (admitted by the NetworkPolicy). With "
            f"install true: {', '.join(INSTALLED_DATA_PLANE_NAMESPACES)} (the operator runs Kourier beside the "
            "activator), plus any listed here; with install false: your Knative's (default "
            f"{', '.join(knative.DEFAULT_KNATIVE_NAMESPACES)})."
        ),
    )
    local_gateway: LocalGatewayConfig | None = Field(
        None,
        description=(
            "With install false: your Knative ingress's cluster-local Service, which llmstack:gateway routes an "
            f"exposed Knative model to (default {LOCAL_GATEWAY_SERVICE} in {RELEASE_KOURIER_NAMESPACE}, port "
            f"{LOCAL_GATEWAY_PORT}); with install true it is {LOCAL_GATEWAY_SERVICE} in {SERVING_NAMESPACE}."
        ),
    )

    @model_validator(mode="after")
    def _install_or_describe(self):
        described = sorted(
            {"features", "max_revision_timeout_seconds", "allow_zero_initial_scale", "local_gateway"}
            & self.model_fields_set
        )
        if self.install and described:
            raise ValueError(
                f"{to_camel(described[0])} describes an existing Knative, but install is true (the stack then "
                "configures Knative itself); remove it or set install: false"
            )
        local = self.effective_local_gateway
        if not self.install and self.local_gateway is not None and local.namespace not in self.namespaces:
            raise ValueError(
                f"localGateway.namespace {local.namespace!r} is not in namespaces ({', '.join(self.namespaces)}): the "
                "Knative ingress's pods there call the models' pods, whose NetworkPolicy admits only the namespaces "
                "listed; add it"
            )
        return self

    @property
    def effective_local_gateway(self) -> LocalGatewayConfig:
        """Knative ingress's cluster-local Service (the stack's Kourier, or the one described)."""
        if self.install:
            return LocalGatewayConfig(namespace=SERVING_NAMESPACE)
        return self.local_gateway or LocalGatewayConfig()

    @property
    def effective_max_revision_timeout(self) -> int:
        return DEFAULT_MAX_REVISION_TIMEOUT_SECONDS if self.install else self.max_revision_timeout_seconds

    @property
    def effective_allow_zero_initial_scale(self) -> bool:
        return True if self.install else self.allow_zero_initial_scale


def knative_pod_features(cfg) -> set[str]:
    """config-features flags the vLLM pod needs, given the GPU pool's placement settings."""
    needed = knative.pod_features(None)
    pool = cfg.gpu_pool
    if not getattr(pool, "taints", True):  # untainted GPU nodes: no tolerations
        needed.discard(knative.FIELD_FEATURES["tolerations"])
    if getattr(pool, "node_selector", None):
        needed.add(knative.FIELD_FEATURES["nodeSelector"])
    if getattr(pool, "runtime_class", None) is not None:
        needed.add(knative.FIELD_FEATURES["runtimeClassName"])
    if getattr(pool, "priority_class", None) is not None:
        needed.add(knative.FIELD_FEATURES["priorityClassName"])
    return needed


def check_knative_models(cfg) -> None:
    """Every model with serving: knative runs on the stack's Knative (timeouts, initial scale, the
    config-features flags an existing Knative has enabled; the cache's access mode is checked with
    every model's autoscaling bounds)."""
    kn = cfg.knative
    for i, m in enumerate(cfg.models):
        if m.serving != ServingMode.KNATIVE:
            continue
        where = f"models[{i}] (name: {m.name}).knative"
        k = m.knative_scaling
        if k.request_timeout_seconds > kn.effective_max_revision_timeout:
            raise ValueError(
                f"{where}.requestTimeoutSeconds is {k.request_timeout_seconds} (default: cold start + 600) but "
                f"Knative allows at most {kn.effective_max_revision_timeout} (knative.maxRevisionTimeoutSeconds); "
                "raise max-revision-timeout-seconds in Knative's config-defaults and say so here, or lower the timeout"
            )
        if k.initial_scale == 0 and not kn.effective_allow_zero_initial_scale:
            raise ValueError(
                f"{where}.initialScale is 0 but knative.allowZeroInitialScale is false: Knative refuses it unless "
                "config-autoscaler allow-zero-initial-scale is true"
            )
        if not kn.install:
            missing = sorted(knative_pod_features(cfg) - set(kn.features))
            if missing:
                raise ValueError(
                    f"model {m.name!r} is served by Knative, whose vLLM pod needs config-features flags that "
                    f"knative.features does not list as enabled: {', '.join(missing)}; enable them in the "
                    "knative-serving/config-features ConfigMap and list them here, or set knative.install: true"
                )
