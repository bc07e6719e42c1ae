"""Reusable Pulumi components for LLM inference on Kubernetes with NVIDIA GPUs.

Installed as the distribution ``llmstack-k8s``, imported as ``llmstack_k8s`` (the repository keeps
the sources in ``components/``; the import name is ours so a consumer's own ``components``
package never shadows it). Import a component from here (``from llmstack_k8s import VllmService``)
or from its module (``llmstack_k8s.serving.vllm_service``; the folders are by concern: serving,
cluster, edge, scaling, observability, sizing, rules). The classes listed here are the package's
public components (``llmstack:index:*``).
"""

__version__ = "0.2.0"

# The enums the args take, importable from here (listed in __all__, so type checkers treat them as public).
from .cluster.gpu_node_pool import (
    ConsolidationPolicy,
    GpuInstall,
    GpuNodePool,
    GpuNodePoolArgs,
    MigStrategy,
    SharingStrategy,
)
from .cluster.knative_serving import KnativeServing, KnativeServingArgs
from .cluster.multi_node_controller import LeaderWorkerSetController, LeaderWorkerSetControllerArgs
from .cluster.team import Team, TeamArgs
from .edge.body_router import BodyRouter, BodyRouterArgs, BodyRouterProvider
from .edge.inference_pool import FailureMode, InferencePool, InferencePoolArgs
from .edge.model_route import ModelRoute, ModelRouteArgs, RouteKind
from .observability.observability import Observability, ObservabilityArgs
from .scaling.gpu_autoscaling import AutoscalingMetric, GpuAutoscaling, GpuAutoscalingArgs
from .serving.image_prepull import ImagePrePull, ImagePrePullArgs
from .serving.knative_vllm_service import KnativeVllmService, KnativeVllmServiceArgs
from .serving.model_cache import AccessMode, ModelCache, ModelCacheArgs
from .serving.multi_node import MultiNodeVllmService, MultiNodeVllmServiceArgs
from .serving.vllm_pod import Dtype, Quantization
from .serving.vllm_service import VllmService, VllmServiceArgs

__all__ = [
    "AccessMode",
    "AutoscalingMetric",
    "BodyRouter",
    "BodyRouterArgs",
    "BodyRouterProvider",
    "ConsolidationPolicy",
    "Dtype",
    "FailureMode",
    "GpuAutoscaling",
    "GpuAutoscalingArgs",
    "GpuInstall",
    "GpuNodePool",
    "GpuNodePoolArgs",
    "ImagePrePull",
    "ImagePrePullArgs",
    "InferencePool",
    "InferencePoolArgs",
    "KnativeServing",
    "KnativeServingArgs",
    "KnativeVllmService",
    "KnativeVllmServiceArgs",
    "LeaderWorkerSetController",
    "LeaderWorkerSetControllerArgs",
    "MigStrategy",
    "ModelCache",
    "ModelCacheArgs",
    "ModelRoute",
    "ModelRouteArgs",
    "MultiNodeVllmService",
    "MultiNodeVllmServiceArgs",
    "Observability",
    "ObservabilityArgs",
    "Quantization",
    "RouteKind",
    "SharingStrategy",
    "Team",
    "TeamArgs",
    "VllmService",
    "VllmServiceArgs",
]
