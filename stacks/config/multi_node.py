"""Multi-node models: a model whose GPUs per replica (tensorParallelSize x pipelineParallelSize) exceed
one node's (``gpuPool.gpu.perNode``) runs as a LeaderWorkerSet (``llmstack_k8s.serving.multi_node``).

Nothing to switch on: the shape decides. ``models[].multiNode`` tunes such a model (group placement,
RDMA); ``leaderWorkerSet`` says whether the stack installs the LeaderWorkerSet controller. Everything
a group cannot do is refused here, at preview, with the key that asks for it.
"""

from __future__ import annotations

from pydantic import Field

from llmstack_k8s.cluster.gpu_node_pool import SharingStrategy
from llmstack_k8s.cluster.multi_node_controller import DEFAULT_NAMESPACE
from llmstack_k8s.serving.model_cache import AccessMode
from llmstack_k8s.serving.multi_node import DEFAULT_GROUP_TOPOLOGY_KEY
from llmstack_k8s.sizing import model_catalog

from .base import ConfigProblem
from .base import StackModel as _Model
from .cluster import DnsLabel


class RdmaConfig(_Model):
    """An RDMA device per pod for NCCL between a group's nodes."""

    resource_name: str = Field(
        pattern=r"^[a-z0-9.-]+/[A-Za-z0-9._-]+$",
        description="Extended resource of the RDMA device plugin (e.g. rdma/ib).",
    )
    per_pod: int = Field(1, ge=1, le=64, description="Devices each pod requests (an EFA-enabled p5.48xlarge has 32).")


class MultiNodeConfig(_Model):
    """Settings of a model that spans several nodes (its GPUs per replica exceed gpuPool.gpu.perNode)."""

    group_topology_key: str = Field(
        DEFAULT_GROUP_TOPOLOGY_KEY,
        description=(
            "Node label whose value a replica's pods share (a zone, rack or NVLink domain label; empty: anywhere)."
        ),
    )
    rdma: RdmaConfig | None = Field(
        None, description="RDMA device per pod for NCCL (InfiniBand/RoCE); default: TCP sockets."
    )


class LeaderWorkerSetConfig(_Model):
    """The LeaderWorkerSet controller that runs multi-node models."""

    install: bool = Field(
        True, description="Install the pinned lws chart when a model spans nodes (false: the cluster runs one)."
    )
    namespace: DnsLabel = Field(DEFAULT_NAMESPACE, description="Namespace of the installed controller.")


def gpus_per_node(cfg) -> int | None:
    gpu = cfg.gpu_pool.gpu
    return gpu.per_node if gpu is not None else None


def is_multi_node(cfg, m) -> bool:
    """The model's replica needs more GPUs than one node has (known only with gpuPool.gpu)."""
    per_node = gpus_per_node(cfg)
    return per_node is not None and m.gpus_per_replica > per_node


def group_size(cfg, m) -> int:
    """Pods (nodes) per replica: 1 for a model on one node."""
    return m.gpus_per_replica // gpus_per_node(cfg) if is_multi_node(cfg, m) else 1


def _layers(m) -> int | None:
    arch = m.architecture.architecture() if m.architecture is not None else model_catalog.known(m.model)
    return arch.layers if arch is not None else None


def check_multi_node(cfg) -> None:
    """Refuse what a model spread over nodes cannot do (the shape itself is gpu_fit's, in the pool check)."""
    for i, m in enumerate(cfg.models):
        where = f"models[{i}] (name: {m.name})"
        if not is_multi_node(cfg, m):
            if m.multi_node is not None:
                raise ConfigProblem(
                    f"{where}.multiNode",
                    (
                        f"is set, but a replica of {m.gpus_per_replica} GPU(s) fits on one node (gpuPool.gpu.perNode "
                        f"{gpus_per_node(cfg)}): it runs as one pod; remove multiNode"
                        if gpus_per_node(cfg)
                        else (
                            "is set, but gpuPool.gpu (perNode) is not, so no model can be known to span nodes; state "
                            "gpuPool.gpu"
                        )
                    ),
                )
            continue
        nodes = group_size(cfg, m)
        what = f"a replica spans {nodes} nodes ({m.gpus_per_replica} GPUs, gpuPool.gpu.perNode {gpus_per_node(cfg)})"
        if cfg.gpu_pool.sharing.strategy != SharingStrategy.NONE:
            continue  # the pool check refuses several GPUs on shared GPUs, with its own words
        if m.serving == "knative":
            raise ConfigProblem(
                f"{where}.serving",
                (
                    f"knative cannot run this model: {what}, and a Knative revision is one pod per replica; "
                    "use serving: deployment (the stack runs it as a LeaderWorkerSet)"
                ),
            )
        if m.autoscaling is not None:
            raise ConfigProblem(
                f"{where}.autoscaling",
                (
                    f"is not supported for a model across nodes: {what}; each step would add or remove {nodes} whole "
                    "nodes and a cold group takes the whole cold start on each; set replicas instead"
                ),
            )
        if m.canary is not None:
            raise ConfigProblem(
                f"{where}.canary",
                (
                    f"is not supported for a model across nodes ({what}): a canary would be another group of {nodes} "
                    "nodes; roll the new version out directly"
                ),
            )
        if getattr(m, "is_object_storage", False):
            raise ConfigProblem(
                f"{where}.model",
                (
                    f"object storage is not supported for a model across nodes yet ({what}): serve it from a "
                    "Hub repository through a ReadWriteMany cache volume"
                ),
            )
        mode = m.cache.access_mode or cfg.cache.access_mode
        if mode == AccessMode.READ_WRITE_ONCE:
            key = f"{where}.cache.accessMode" if m.cache.access_mode else "cache.accessMode"
            raise ConfigProblem(
                key,
                (
                    f"ReadWriteOnce cannot serve {m.name}: {what}, and every node of a replica reads the weights; "
                    "use ReadWriteMany"
                ),
            )
        layers = _layers(m)
        pp = m.pipeline_parallel_size
        if layers is not None and pp > 1 and layers % pp and "VLLM_PP_LAYER_PARTITION" not in m.extra_env:
            fits = [d for d in range(2, min(layers, 16) + 1) if layers % d == 0]
            raise ConfigProblem(
                f"{where}.pipelineParallelSize",
                (
                    f"{pp} pipeline stages do not divide the model's {layers} layers: vLLM would give some stages a "
                    "layer more, the GPU fit check (even shards) would under-count their memory, and the fullest stage "
                    f"sets every stage's KV cache; use {' or '.join(map(str, fits)) or 'a divisor of the layers'} "
                    "stages, or set extraEnv.VLLM_PP_LAYER_PARTITION to the layers per stage"
                ),
            )
