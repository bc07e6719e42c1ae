"""Knative: Knative Serving (installed by the stack, or the cluster's), and the models it serves
(``serving: knative``): the same vLLM pod as a Knative Service that scales to zero when idle."""

from dataclasses import dataclass

import pulumi

from llmstack_k8s.cluster.gpu_node_pool import GpuNodePool
from llmstack_k8s.cluster.knative_serving import DATA_PLANE_NAMESPACES as KNATIVE_INSTALLED_NAMESPACES
from llmstack_k8s.cluster.knative_serving import KnativeServing
from llmstack_k8s.serving.knative_canary import KnativeCanaryArgs
from llmstack_k8s.serving.knative_vllm_service import ALL_POD_FEATURES as KNATIVE_INSTALLED_FEATURES
from llmstack_k8s.serving.knative_vllm_service import KnativeScalingArgs, KnativeVllmService, KnativeVllmServiceArgs
from llmstack_k8s.serving.model_cache import ModelCache
from stacks.config import ModelConfig, StackConfig
from stacks.config.autoscaling import knative_duration
from stacks.config.gateway import knative_request_timeout

from .cluster import Cluster, Placement
from .gateway import route_knative_model
from .serving import ServedModel, engine_args, source_args, weights_arg


@dataclass(frozen=True)
class Knative:
    """The Knative Serving the models run on."""

    #: The stack's install (None: the cluster's Knative, or no Knative model).
    install: KnativeServing | None
    #: config-features flags enabled, and the namespaces of its activator, autoscaler and ingress.
    features: list
    namespaces: list


def knative_serving(cfg: StackConfig, cluster: Cluster) -> Knative:
    """Knative Serving for models with serving: knative: installed, or the cluster's as described."""
    if any(m.serving == "knative" for m in cfg.models) and cfg.knative.install:
        install = KnativeServing("knative", {**cluster.charts}, opts=cluster.on_cluster)
        # The operator runs Kourier beside the activator; namespaces named in the stack file are added.
        explicit = list(cfg.knative.namespaces) if "namespaces" in cfg.knative.model_fields_set else []
        return Knative(
            install, sorted(KNATIVE_INSTALLED_FEATURES), sorted(set(KNATIVE_INSTALLED_NAMESPACES) | set(explicit))
        )
    return Knative(None, list(cfg.knative.features), list(cfg.knative.namespaces))


def knative_canary_args(m: ModelConfig, cache: ModelCache | None) -> KnativeCanaryArgs:
    """The canary of a Knative model (KnativeVllmService's ``canary``): its engine args and image, and
    its weights' directory in the model's cache when they are another revision (the last download)."""
    c, cv = m.canary, m.canary_variant
    if c is None or cv is None:
        raise ValueError(f"model {m.name}: no canary")
    out: KnativeCanaryArgs = {"weight": c.weight, "engine": engine_args(cv, cache)}
    if cv.image:
        out["image"] = cv.image
    if cv.revision != m.revision:
        if cache is None:  # the config refuses a canary of other weights for a model in object storage
            raise ValueError(f"model {m.name}: a canary of other weights needs the model's cache")
        out["model_path"] = cache.adapter_paths.apply(lambda ps: ps[-1])
    return out


def _scaling_args(m: ModelConfig) -> KnativeScalingArgs:
    """KnativeScalingArgs: the model's ``autoscaling`` (bounds, concurrency target, cooldown as the
    scale-down delay) and its Knative-only knobs."""
    s, k = m.scaling, m.knative_scaling
    if s is None:  # a Knative model always has its scaling (Knative's defaults)
        raise ValueError(f"model {m.name}: no scaling")
    return {
        "min_scale": s.min_replicas,
        "max_scale": s.max_replicas,
        "initial_scale": k.initial_scale,
        "target_concurrency": int(s.target),
        "container_concurrency": k.container_concurrency,
        "scale_down_delay": knative_duration(s.cooldown_seconds),
        "stable_window": k.stable_window,
        "panic_window_percentage": k.panic_window_percentage,
    }


def serve(
    cfg: StackConfig,
    cluster: Cluster,
    m: ModelConfig,
    place: Placement,
    cache: ModelCache | None,
    gpu_pool: GpuNodePool,
    knative: Knative,
) -> ServedModel:
    """The model as a Knative Service (its canary a second revision), and its route through Knative's ingress."""
    canary = m.canary_variant is not None
    args: KnativeVllmServiceArgs = {
        "namespace": place.ns,
        "engine": engine_args(m, cache),
        **source_args(cfg, m, cache),
        "resources": {"cpu": m.resources.cpu, "memory": m.resources.memory},
        "startup_budget_seconds": m.startup_budget,
        "api_key": place.api_key,
        "extra_env": dict(m.extra_env),
        "scheduling": gpu_pool.contract,
        **weights_arg(m),
        "scaling": _scaling_args(m),
        "request_timeout_seconds": knative_request_timeout(cfg.gateway, m),  # covers its route's
        "enabled_features": knative.features,
        "knative_namespaces": knative.namespaces,
        "network": {"monitoring_namespaces": list(cfg.network.monitoring_namespaces)},
    }
    deadline = m.knative_scaling.progress_deadline_seconds  # always set: the cold-start budget by default
    if deadline is not None:
        args["progress_deadline_seconds"] = deadline
    if m.image:
        args["image"] = m.image
    if m.shm_size:
        args["shm_size"] = m.shm_size
    if canary:
        args["canary"] = knative_canary_args(m, cache)
    kserver = KnativeVllmService(
        m.name,
        args,
        opts=pulumi.ResourceOptions(
            provider=cluster.provider,
            depends_on=[
                place.namespace,
                *([cache] if cache else []),
                gpu_pool,
                *([knative.install] if knative.install else []),
            ],
        ),
    )
    served = ServedModel(
        {"endpoint": kserver.endpoint, "servedModelName": kserver.served_model_name}, caches=[cache] if cache else []
    )
    if m.canary is not None and canary:  # Knative splits the model's URL; the canary's tagged URL reaches it alone
        served.outputs["canary"] = {
            "url": kserver.canary_url,
            "weight": m.canary.weight,
            "revision": kserver.canary_revision_name,
            "stableRevision": kserver.revision_name,
        }
        served.knative_canary_revision = kserver.canary_revision_name
    url = route_knative_model(cfg, cluster, m, place.ns, kserver, knative.install)
    if url is not None:
        served.outputs["url"] = url
    return served
