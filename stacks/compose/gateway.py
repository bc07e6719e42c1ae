"""The serving edge: each exposed model's route on the shared host (an HTTPRoute by model name, or an
Ingress), its InferencePools when the Endpoint Picker chooses the replica, and the body-based router
beside the user's Gateway."""

import pulumi

from llmstack_k8s._core.package import selector_labels
from llmstack_k8s.edge.body_router import BodyRouter
from llmstack_k8s.edge.inference_pool import InferencePool
from llmstack_k8s.edge.model_route import ModelRoute
from stacks.config import ModelConfig, StackConfig
from stacks.config.gateway import is_exposed, kv_cache_aware, prioritized_names, request_budget

from .cluster import Cluster


def edge_args(gw) -> dict:
    """ModelRoute args every route of the stack shares: the host, the Gateway or the Ingress settings."""
    ing = gw.ingress
    return {
        **({"hostnames": [gw.hostname]} if gw.hostname else {}),
        **(
            {
                "gateway": {
                    "name": gw.gateway_ref.name,
                    "namespace": gw.gateway_ref.namespace,
                    **({"section_name": gw.gateway_ref.section_name} if gw.gateway_ref.section_name else {}),
                }
            }
            if gw.gateway_ref
            else {}
        ),
        **(
            {
                "ingress": {
                    k: v
                    for k, v in {
                        "class_name": ing.class_name,
                        "tls_secret_name": ing.tls_secret_name,
                        "cluster_issuer": ing.cluster_issuer,
                        "max_body_size": ing.max_body_size,
                    }.items()
                    if v is not None
                }
            }
            if ing
            else {}
        ),
    }


def _url(cfg: StackConfig, route: ModelRoute) -> pulumi.Output | None:
    """The model's URL on the gateway's host (none without a hostname)."""
    return pulumi.Output.concat(cfg.gateway.base_url, route.path_prefix) if cfg.gateway.base_url else None


def _inference_pool(cfg: StackConfig, cluster: Cluster, name: str, ns, m: ModelConfig, server, objectives: bool):
    """An InferencePool over the pods of ``name`` (the model's server, or its canary's), whose Endpoint
    Picker chooses the replica for every request; ``objectives``: the served names' priorities too."""
    return InferencePool(
        name,
        {
            "namespace": ns,
            "pod_selector": selector_labels(name),  # the server's pods (VllmService's selector)
            "gateway_namespace": cfg.gateway.edge_namespace,
            "monitoring_namespaces": list(cfg.network.monitoring_namespaces),
            "serves_lora": bool(m.lora_adapters),
            # priorities per served name: InferenceObjectives of this pool
            **(
                {"objectives": [{"served_model_name": s, "priority": p} for _, s, p in prioritized_names(m)]}
                if objectives and prioritized_names(m)
                else {}
            ),
        },
        opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=[server]),
    )


def route_model(cfg: StackConfig, cluster: Cluster, m: ModelConfig, ns, server, canary_server) -> pulumi.Output | None:
    """An exposed model's /v1 on the shared host, split by weight with its canary; returns its URL
    (None when not exposed, or the gateway names no host)."""
    if not is_exposed(cfg.gateway, m):
        return None
    gw = cfg.gateway
    pool = _inference_pool(cfg, cluster, m.name, ns, m, server, objectives=True) if kv_cache_aware(gw, m) else None
    canary_pool = None
    if pool is not None and canary_server is not None:  # the canary's replicas get a picker of their own
        canary_pool = _inference_pool(cfg, cluster, f"{m.name}-canary", ns, m, canary_server, objectives=False)
    route = ModelRoute(
        m.name,
        {
            "namespace": ns,
            "service_name": server.service_name,
            "served_model_names": [m.served_name, *(a.name for a in m.lora_adapters)],  # adapters by name too
            "kind": gw.kind,
            "request_timeout_seconds": request_budget(gw, m),
            **({"inference_pool_name": pool.pool_name} if pool is not None else {}),
            **(
                {
                    "canary": {
                        "service_name": canary_server.service_name,
                        "weight": m.canary.weight,
                        **({"inference_pool_name": canary_pool.pool_name} if canary_pool is not None else {}),
                    }
                }
                if canary_server is not None
                else {}
            ),
            **edge_args(gw),
        },
        opts=pulumi.ResourceOptions(
            provider=cluster.provider, depends_on=[server, *([canary_server] if canary_server else [])]
        ),
    )
    return _url(cfg, route)


def knative_route_args(cfg: StackConfig, m: ModelConfig, ns, kserver) -> dict:
    """ModelRoute args of an exposed Knative model: one backend, Knative's cluster-local ingress, which
    picks the Knative Service by Host (a Knative canary is split there)."""
    gw, local = cfg.gateway, cfg.knative.effective_local_gateway
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
    if not is_exposed(cfg.gateway, m):
        return None
    route = ModelRoute(
        m.name,
        knative_route_args(cfg, m, ns, kserver),
        opts=pulumi.ResourceOptions(
            provider=cluster.provider, depends_on=[kserver, *([knative_install] if knative_install else [])]
        ),
    )
    return _url(cfg, route)


def body_based_router(cfg: StackConfig, cluster: Cluster) -> None:
    """Beside the user's Gateway, the router that makes the body's model the routes' header."""
    bbr = cfg.gateway.body_based_routing if cfg.gateway is not None else None
    if bbr is not None and bbr.install:
        ref = cfg.gateway.gateway_ref
        BodyRouter(
            "body-based-router",
            {"namespace": ref.namespace, "gateway_name": ref.name, "provider": bbr.provider, "replicas": bbr.replicas},
            opts=cluster.on_cluster,
        )
