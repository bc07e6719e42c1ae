"""The serving edge: each exposed model's route on the shared host (an HTTPRoute by model name, or an
Ingress), its InferencePools when the Endpoint Picker chooses the replica, and the body-based router
beside the user's Gateway."""

from typing import TypedDict

import pulumi

from llmstack_k8s._core.package import selector_labels
from llmstack_k8s.edge.body_router import BodyRouter
from llmstack_k8s.edge.inference_pool import InferencePool, InferencePoolArgs
from llmstack_k8s.edge.model_route import CanaryBackendArgs, IngressArgs, ModelRoute, ModelRouteArgs, ParentRefArgs
from stacks.config import ModelConfig, StackConfig
from stacks.config.gateway import GatewayConfig, is_exposed, kv_cache_aware, prioritized_names, request_budget

from .cluster import Cluster


class EdgeArgs(TypedDict, total=False):
    """The ModelRoute args every route of the stack shares."""

    hostnames: list[pulumi.Input[str]]
    gateway: ParentRefArgs
    ingress: IngressArgs


def edge_args(gw: GatewayConfig) -> EdgeArgs:
    """ModelRoute args every route of the stack shares: the host, the Gateway or the Ingress settings."""
    out: EdgeArgs = {}
    if gw.hostname:
        out["hostnames"] = [gw.hostname]
    ref = gw.gateway_ref
    if ref:
        parent: ParentRefArgs = {"name": ref.name, "namespace": ref.namespace}
        if ref.section_name:
            parent["section_name"] = ref.section_name
        out["gateway"] = parent
    ing = gw.ingress
    if ing:
        ingress: IngressArgs = {"class_name": ing.class_name}
        if ing.tls_secret_name is not None:
            ingress["tls_secret_name"] = ing.tls_secret_name
        if ing.cluster_issuer is not None:
            ingress["cluster_issuer"] = ing.cluster_issuer
        ingress["max_body_size"] = ing.max_body_size
        out["ingress"] = ingress
    return out


def _url(gw: GatewayConfig, route: ModelRoute) -> pulumi.Output | None:
    """The model's URL on the gateway's host (none without a hostname)."""
    return pulumi.Output.concat(gw.base_url, route.path_prefix) if gw.base_url else None


def _inference_pool(
    gw: GatewayConfig, cfg: StackConfig, cluster: Cluster, name: str, ns, m: ModelConfig, server, objectives: bool
) -> InferencePool:
    """An InferencePool over the pods of ``name`` (the model's server, or its canary's), whose Endpoint
    Picker chooses the replica for every request; ``objectives``: the served names' priorities too."""
    pod_selector: dict[str, pulumi.Input[str]] = {**selector_labels(name)}  # the server's pods (VllmService's)
    args: InferencePoolArgs = {
        "namespace": ns,
        "pod_selector": pod_selector,
        "gateway_namespace": gw.edge_namespace,
        "monitoring_namespaces": list(cfg.network.monitoring_namespaces),
        "serves_lora": bool(m.lora_adapters),
    }
    if objectives and prioritized_names(m):  # priorities per served name: InferenceObjectives of this pool
        args["objectives"] = [{"served_model_name": s, "priority": p} for _, s, p in prioritized_names(m)]
    return InferencePool(name, args, opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=[server]))


def route_model(cfg: StackConfig, cluster: Cluster, m: ModelConfig, ns, server, canary_server) -> pulumi.Output | None:
    """An exposed model's /v1 on the shared host, split by weight with its canary; returns its URL
    (None when not exposed, or the gateway names no host)."""
    gw = cfg.gateway
    if not is_exposed(gw, m):
        return None
    pool = _inference_pool(gw, cfg, cluster, m.name, ns, m, server, objectives=True) if kv_cache_aware(gw, m) else None
    canary_pool = None
    if pool is not None and canary_server is not None:  # the canary's replicas get a picker of their own
        canary_pool = _inference_pool(gw, cfg, cluster, f"{m.name}-canary", ns, m, canary_server, objectives=False)
    args: ModelRouteArgs = {
        "namespace": ns,
        "service_name": server.service_name,
        "served_model_names": [m.served_name, *(a.name for a in m.lora_adapters)],  # adapters by name too
        "kind": gw.kind,
        "request_timeout_seconds": request_budget(gw, m),
    }
    if pool is not None:
        args["inference_pool_name"] = pool.pool_name
    if canary_server is not None:
        if m.canary is None:
            raise ValueError(f"model {m.name}: a canary server without a canary")
        canary: CanaryBackendArgs = {"service_name": canary_server.service_name, "weight": m.canary.weight}
        if canary_pool is not None:
            canary["inference_pool_name"] = canary_pool.pool_name
        args["canary"] = canary
    args.update(edge_args(gw))
    route = ModelRoute(
        m.name,
        args,
        opts=pulumi.ResourceOptions(
            provider=cluster.provider, depends_on=[server, *([canary_server] if canary_server else [])]
        ),
    )
    return _url(gw, route)


def knative_route_args(gw: GatewayConfig, cfg: StackConfig, m: ModelConfig, ns, kserver) -> ModelRouteArgs:
    """ModelRoute args of an exposed Knative model: one backend, Knative's cluster-local ingress, which
    picks the Knative Service by Host (a Knative canary is split there)."""
    local = cfg.knative.effective_local_gateway
    return {
        "namespace": ns,
        "service_name": kserver.service_name,
        "served_model_names": [m.served_name, *(a.name for a in m.lora_adapters)],
        "kind": gw.kind,
        "request_timeout_seconds": request_budget(gw, m),
        "knative": {
            "host": kserver.url.apply(lambda u: u.split("://", 1)[1]),
            "local_gateway_name": local.name,
            "local_gateway_namespace": local.namespace,
            "local_gateway_port": local.port,
            "cold_start_seconds": m.cold_start_budget.total_seconds,
        },
        **edge_args(gw),
    }


def route_knative_model(
    cfg: StackConfig, cluster: Cluster, m: ModelConfig, ns, kserver, knative_install
) -> pulumi.Output | None:
    """An exposed Knative model's route, through Knative's ingress (activator, traffic split); returns
    its URL (None when not exposed, or the gateway names no host)."""
    gw = cfg.gateway
    if not is_exposed(gw, m):
        return None
    route = ModelRoute(
        m.name,
        knative_route_args(gw, cfg, m, ns, kserver),
        opts=pulumi.ResourceOptions(
            provider=cluster.provider, depends_on=[kserver, *([knative_install] if knative_install else [])]
        ),
    )
    return _url(gw, route)


def body_based_router(cfg: StackConfig, cluster: Cluster) -> None:
    """Beside the user's Gateway, the router that makes the body's model the routes' header."""
    gw = cfg.gateway
    bbr = gw.body_based_routing if gw is not None else None
    if gw is not None and bbr is not None and bbr.install:
        ref, provider = gw.gateway_ref, bbr.provider
        if ref is None or provider is None:  # the config refuses the router without them
            raise ValueError("gateway.bodyBasedRouting.install needs gateway.gatewayRef and a provider")
        BodyRouter(
            "body-based-router",
            {"namespace": ref.namespace, "gateway_name": ref.name, "provider": provider, "replicas": bbr.replicas},
            opts=cluster.on_cluster,
        )
