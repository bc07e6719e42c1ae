"""The GPU nodes: device plugin or GPU operator, sharing, taints, classes, Karpenter; their
scheduling contract every serving component takes. And the image pre-pull on those nodes."""

import pulumi

from llmstack_k8s.cluster.gpu_node_pool import GpuNodePool
from llmstack_k8s.serving.image_prepull import ImagePrePull
from llmstack_k8s.versions import VLLM_IMAGE
from stacks.config import StackConfig

from .cluster import Cluster


def gpu_pool(cfg: StackConfig, cluster: Cluster) -> GpuNodePool:
    """The pool (created before the models), and, when asked, every model's image on each GPU node."""
    pool = GpuNodePool("gpu", {**cfg.gpu_pool.args(cfg.namespace), **cluster.charts}, opts=cluster.on_cluster)
    if cfg.image_pre_pull.enabled:  # cold start: every model's image already on each GPU node
        images: list[pulumi.Input[str]] = [*sorted({m.image or VLLM_IMAGE for m in cfg.models})]
        ImagePrePull(
            "image-prepull",
            {
                "namespace": cluster.ns,
                "images": images,
                "scheduling": pool.contract,
            },
            opts=cluster.in_ns,
        )
    return pool
