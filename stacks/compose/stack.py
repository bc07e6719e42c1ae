"""The whole stack from a validated StackConfig: every part in the order it is registered."""

from typing import Any

import pulumi

from llmstack_k8s.cluster.gpu_node_pool import GpuNodePool
from llmstack_k8s.cluster.multi_node_controller import LeaderWorkerSetController
from llmstack_k8s.serving.model_cache import ModelCache
from stacks.config import ModelConfig, ServingMode, StackConfig

from . import deployment, knative
from .autoscaling import autoscaling
from .cluster import Cluster, Placement, connect
from .gateway import body_based_router
from .gpu_pool import gpu_pool
from .knative import Knative, knative_serving
from .multi_node import lws_controller
from .observability import observability, observability_outputs
from .serving import ServedModel, model_cache
from .teams import teams


def serve(
    cfg: StackConfig,
    cluster: Cluster,
    m: ModelConfig,
    place: Placement,
    pool: GpuNodePool,
    kn: Knative,
    lws: LeaderWorkerSetController | None,
) -> ServedModel:
    """One model in its namespace: its weight cache, then its servers, by Knative or always on."""
    cache: ModelCache | None = model_cache(cfg, cluster, m, place)
    if m.serving == ServingMode.KNATIVE:
        return knative.serve(cfg, cluster, m, place, cache, pool, kn)
    return deployment.serve(cfg, cluster, m, place, cache, pool, lws)


def build(cfg: StackConfig) -> dict:
    """Register every resource of the stack; returns the stack outputs."""
    cluster = connect(cfg)  # the provider, the serving namespace, the API key
    pool = gpu_pool(cfg, cluster)  # before the models: its scheduling contract places them
    kn = knative_serving(cfg, cluster)
    tenants = teams(cfg, cluster)
    lws = lws_controller(cfg, cluster)
    served = {m.name: serve(cfg, cluster, m, tenants.placement(m.name, cluster), pool, kn, lws) for m in cfg.models}
    body_based_router(cfg, cluster)
    monitoring = observability(cfg, cluster, pool, served)

    outputs: dict[str, Any] = {
        "namespace": cluster.ns,
        "models": {name: s.outputs for name, s in served.items()},
        "apiKey": pulumi.Output.secret(cluster.api_key.result),
    }
    if tenants.outputs:
        outputs["teams"] = tenants.outputs
    # What a cold replica of each model costs, from the stated figures (llmstack_k8s.cold_start).
    outputs["coldStart"] = {m.name: m.cold_start_budget.as_output() for m in cfg.models}
    outputs.update(observability_outputs(cfg, monitoring))
    outputs.update(autoscaling(cfg, cluster, monitoring, served))  # KEDA, registered last
    return outputs
