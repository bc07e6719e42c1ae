"""Models across nodes: the LeaderWorkerSet controller, and a group's args from a server's."""

from typing import cast

from llmstack_k8s.cluster.multi_node_controller import LeaderWorkerSetController
from llmstack_k8s.serving.multi_node import MultiNodeVllmServiceArgs
from llmstack_k8s.serving.vllm_service import VllmServiceArgs
from stacks.config import ModelConfig, StackConfig
from stacks.config.multi_node import MultiNodeConfig, gpus_per_node, is_multi_node

from .cluster import Cluster


def lws_controller(cfg: StackConfig, cluster: Cluster) -> LeaderWorkerSetController | None:
    """The LeaderWorkerSet controller, when a model spans nodes and the stack installs it."""
    if cfg.leader_worker_set.install and any(is_multi_node(cfg, m) for m in cfg.models):
        return LeaderWorkerSetController(
            "lws", {"namespace": cfg.leader_worker_set.namespace, **cluster.charts}, opts=cluster.on_cluster
        )
    return None


def multi_node_args(cfg: StackConfig, m: ModelConfig, server_args: VllmServiceArgs) -> MultiNodeVllmServiceArgs:
    """``MultiNodeVllmServiceArgs`` from the args the stack gives a VllmService (same engine, cache,
    key, network, figures): the one-pod-only keys dropped, the group's own added."""
    # The keys both Args declare, of the same types (a multi-node model reads the weights from its cache:
    # model_path and cache_claim_name are there); mypy cannot follow a filter by the target's keys.
    args = cast(
        MultiNodeVllmServiceArgs,
        {k: v for k, v in server_args.items() if k in MultiNodeVllmServiceArgs.__annotations__},
    )
    rollout = server_args.get("rollout") or {}
    per_node = gpus_per_node(cfg)
    if per_node is not None:  # always known for a model across nodes (is_multi_node)
        args["gpus_per_node"] = per_node
    args["max_surge"] = rollout.get("max_surge", 0)
    args["max_unavailable"] = rollout.get("max_unavailable", 1)
    mn = m.multi_node or MultiNodeConfig()
    args["group_topology_key"] = mn.group_topology_key
    if mn.rdma is not None:
        args["rdma"] = {"resource_name": mn.rdma.resource_name, "per_pod": mn.rdma.per_pod}
    return args
