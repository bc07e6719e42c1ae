"""Reusable Pulumi components for LLM inference on Kubernetes with NVIDIA GPUs.

Installed as the distribution ``llmstack-k8s``, imported as ``llmstack_k8s`` (the repository keeps
the sources in ``components/``; the import name is ours so a consumer's own ``components``
package never shadows it). Import a component from here (``from llmstack_k8s import VllmService``)
or from its module (``llmstack_k8s.serving.vllm_service``; the folders are by concern: serving,
cluster, edge, scaling, observability, sizing, rules). The classes listed here are the package's
public components (``llmstack:index:*``).
"""

__version__ = "0.2.0"

from .cluster.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from .cluster.knative_serving import KnativeServing, KnativeServingArgs
from .cluster.multi_node_controller import LeaderWorkerSetController, LeaderWorkerSetControllerArgs
from .cluster.team import Team, TeamArgs
from .serving.model_cache import ModelCache, ModelCacheArgs
from .serving.vllm_service import VllmService, VllmServiceArgs
from .serving.knative_vllm_service import KnativeVllmService, KnativeVllmServiceArgs
from .serving.multi_node import MultiNodeVllmService, MultiNodeVllmServiceArgs
from .serving.image_prepull import ImagePrePull, ImagePrePullArgs
from .edge.model_route import ModelRoute, ModelRouteArgs
from .edge.inference_pool import InferencePool, InferencePoolArgs
from .edge.body_router import BodyRouter, BodyRouterArgs
from .scaling.gpu_autoscaling import GpuAutoscaling, GpuAutoscalingArgs
from .observability.observability import Observability, ObservabilityArgs

# The enums the args take, importable from here (listed in __all__, so type checkers treat them as public).
from .cluster.gpu_node_pool import ConsolidationPolicy, GpuInstall, MigStrategy, SharingStrategy
from .serving.model_cache import AccessMode
from .serving.vllm_pod import Dtype, Quantization
from .edge.inference_pool import FailureMode
from .edge.body_router import BodyRouterProvider
from .edge.model_route import RouteKind
from .scaling.gpu_autoscaling import AutoscalingMetric

__all__ = ["BodyRouter", "BodyRouterArgs", "GpuAutoscaling", "GpuAutoscalingArgs", "GpuNodePool", "GpuNodePoolArgs", "ImagePrePull", "ImagePrePullArgs", "InferencePool", "InferencePoolArgs", "KnativeServing", "KnativeServingArgs", "KnativeVllmService", "KnativeVllmServiceArgs", "LeaderWorkerSetController", "LeaderWorkerSetControllerArgs", "ModelCache", "ModelCacheArgs", "MultiNodeVllmService", "MultiNodeVllmServiceArgs", "ModelRoute", "ModelRouteArgs", "Observability", "ObservabilityArgs", "Team", "TeamArgs", "VllmService", "VllmServiceArgs",
           "AccessMode", "AutoscalingMetric", "BodyRouterProvider", "ConsolidationPolicy", "Dtype", "FailureMode", "GpuInstall", "MigStrategy", "Quantization",
           "RouteKind", "SharingStrategy"]
