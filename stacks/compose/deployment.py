"""A model served by always-on servers: its VllmService (a Deployment; a LeaderWorkerSet group of
whole nodes per replica when it spans nodes), a canary beside it under the same served name, and its
route through the gateway."""

import pulumi

from llmstack_k8s.cluster.gpu_node_pool import GpuNodePool
from llmstack_k8s.cluster.multi_node_controller import LeaderWorkerSetController
from llmstack_k8s.serving.model_cache import ModelCache
from llmstack_k8s.serving.multi_node import MultiNodeVllmService
from llmstack_k8s.serving.vllm_service import VllmService, VllmServiceArgs
from stacks.config import ModelConfig, StackConfig
from stacks.config.gateway import is_exposed
from stacks.config.multi_node import is_multi_node

from .cluster import Cluster, Placement
from .gateway import route_model
from .multi_node import multi_node_args
from .serving import ServedModel, cache_args, engine_args, source_args, weights_arg


def server_args(
    cfg: StackConfig, m: ModelConfig, place: Placement, cache: ModelCache | None, gpu_pool: GpuNodePool
) -> VllmServiceArgs:
    """VllmService args of the model: engine, weights, replicas, resources, cold-start figures, key, network."""
    team = place.team
    client_namespaces: list[pulumi.Input[str]] = [
        *cfg.network.client_namespaces,
        *(team.client_namespaces if team else []),  # teams: its own callers, no other team's
        # scale-to-zero: clients come through the KEDA HTTP add-on's interceptor
        *([cfg.autoscaling.keda_namespace] if m.scaling is not None and m.scaling.min_replicas == 0 else []),
        # gateway: only an exposed model admits the Gateway's (or ingress controller's) pods
        *([cfg.gateway.edge_namespace] if is_exposed(cfg.gateway, m) else []),
    ]
    args: VllmServiceArgs = {
        "namespace": place.ns,
        "engine": engine_args(m, cache),
        **source_args(cfg, m, cache),
        "replicas": m.replicas,
        "autoscaled": m.autoscaling is not None,
        "resources": {"cpu": m.resources.cpu, "memory": m.resources.memory},
        "startup_budget_seconds": m.startup_budget,
        "scheduling_seconds": m.cold_start_budget.scheduling_seconds,  # node + image, stated figures
        "api_key": place.api_key,
        "extra_env": dict(m.extra_env),
        "scheduling": gpu_pool.contract,  # gpu pool
        **weights_arg(m),
        "rollout": {"max_surge": m.rollout.max_surge, "max_unavailable": m.rollout.max_unavailable},
        "network": {
            "client_namespaces": client_namespaces,
            "monitoring_namespaces": list(cfg.network.monitoring_namespaces),
        },
    }
    if m.autoscaling is not None:
        args["max_replicas"] = m.autoscaling.max_replicas
    if m.image:
        args["image"] = m.image
    if m.shm_size:
        args["shm_size"] = m.shm_size
    return args


def _canary(
    cfg: StackConfig,
    cluster: Cluster,
    m: ModelConfig,
    place: Placement,
    cache: ModelCache | None,
    gpu_pool: GpuNodePool,
    args: VllmServiceArgs,
    caches: list,
) -> VllmService | None:
    """A second server under the same served name (the route splits the traffic by weight); a canary
    of other weights gets its own volume and download, added to ``caches``."""
    cv = m.canary_variant
    if cv is None:
        return None
    canary_name = f"{m.name}-canary"
    canary_cache = cache
    if cv.revision is not None and cv.revision != m.revision:  # other weights: their own volume and download
        canary_cache = ModelCache(  # (same adapters)
            canary_name, {**cache_args(cfg, m, place.ns), "revision": cv.revision}, opts=cluster.in_ns
        )
        caches.append(canary_cache)
    canary_args: VllmServiceArgs = {
        **args,
        "engine": engine_args(cv, canary_cache),
        **source_args(cfg, cv, canary_cache),
        "replicas": cv.replicas,
        "canary_of": m.name,
    }
    # The model's own image and autoscaling are not the canary's (it runs its replicas).
    canary_args.pop("image", None)
    canary_args.pop("autoscaled", None)
    canary_args.pop("max_replicas", None)
    if cv.image:
        canary_args["image"] = cv.image
    return VllmService(
        canary_name,
        canary_args,
        opts=pulumi.ResourceOptions(
            provider=cluster.provider, depends_on=[place.namespace, *([canary_cache] if canary_cache else []), gpu_pool]
        ),
    )


def serve(
    cfg: StackConfig,
    cluster: Cluster,
    m: ModelConfig,
    place: Placement,
    cache: ModelCache | None,
    gpu_pool: GpuNodePool,
    lws: LeaderWorkerSetController | None,
) -> ServedModel:
    """The model's servers (and canary) in its namespace, and its route through the gateway."""
    args = server_args(cfg, m, place, cache, gpu_pool)
    # The Job must have completed (weights in the cache) before servers start.
    opts = pulumi.ResourceOptions(
        provider=cluster.provider, depends_on=[place.namespace, *([cache] if cache else []), gpu_pool]
    )
    server: VllmService | MultiNodeVllmService
    if is_multi_node(cfg, m):  # multi-node: a group of whole nodes per replica, after the LWS webhook is up
        server = MultiNodeVllmService(
            m.name,
            multi_node_args(cfg, m, args),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[*([lws] if lws else [])])),
        )
    else:
        server = VllmService(m.name, args, opts=opts)
    served = ServedModel(
        {"endpoint": server.endpoint, "servedModelName": server.served_model_name},
        caches=[cache] if cache else [],
        server=server,
    )
    canary = _canary(cfg, cluster, m, place, cache, gpu_pool, args, served.caches)
    if canary is not None and m.canary is not None:
        served.outputs["canary"] = {"endpoint": canary.endpoint, "weight": m.canary.weight}
    url = route_model(cfg, cluster, m, place.ns, server, canary)
    if url is not None:
        served.outputs["url"] = url
    return served
