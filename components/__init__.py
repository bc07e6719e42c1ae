"""Reusable Pulumi components for LLM inference on Kubernetes with NVIDIA GPUs.

Installed as the distribution ``llmstack-k8s``, imported as ``llmstack_k8s`` (the repository keeps
the sources in ``components/``; the import name is ours so a consumer's own ``components``
package never shadows it). Import a component from here (``from llmstack_k8s import VllmService``)
or from its module. The classes listed here are the package's public components
(``llmstack:index:*``).
"""

__version__ = "0.2.0"

from .gpu_autoscaling import GpuAutoscaling, GpuAutoscalingArgs
from .gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from .image_prepull import ImagePrePull, ImagePrePullArgs
from .knative_serving import KnativeServing, KnativeServingArgs
from .knative_vllm_service import KnativeVllmService, KnativeVllmServiceArgs
from .model_cache import ModelCache, ModelCacheArgs
from .multi_node import MultiNodeVllmService, MultiNodeVllmServiceArgs
from .multi_node_controller import LeaderWorkerSetController, LeaderWorkerSetControllerArgs
from .inference_pool import InferencePool, InferencePoolArgs
from .body_router import BodyRouter, BodyRouterArgs
from .model_route import ModelRoute, ModelRouteArgs
from .observability import Observability, ObservabilityArgs
from .team import Team, TeamArgs
from .vllm_service import VllmService, VllmServiceArgs

# The enums the args take, importable from here (listed in __all__, so type checkers treat them as public).
from .gpu_autoscaling import AutoscalingMetric
from .gpu_node_pool import ConsolidationPolicy, GpuInstall, MigStrategy, SharingStrategy
from .model_cache import AccessMode
from .inference_pool import FailureMode
from .body_router import BodyRouterProvider
from .model_route import RouteKind
from .vllm_pod import Dtype, Quantization

__all__ = ["BodyRouter", "BodyRouterArgs", "GpuAutoscaling", "GpuAutoscalingArgs", "GpuNodePool", "GpuNodePoolArgs", "ImagePrePull", "ImagePrePullArgs", "InferencePool", "InferencePoolArgs", "KnativeServing", "KnativeServingArgs", "KnativeVllmService", "KnativeVllmServiceArgs", "LeaderWorkerSetController", "LeaderWorkerSetControllerArgs", "ModelCache", "ModelCacheArgs", "MultiNodeVllmService", "MultiNodeVllmServiceArgs", "ModelRoute", "ModelRouteArgs", "Observability", "ObservabilityArgs", "Team", "TeamArgs", "VllmService", "VllmServiceArgs",
           "AccessMode", "AutoscalingMetric", "BodyRouterProvider", "ConsolidationPolicy", "Dtype", "FailureMode", "GpuInstall", "MigStrategy", "Quantization",
           "RouteKind", "SharingStrategy"]
