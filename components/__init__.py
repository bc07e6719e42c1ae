"""Reusable Pulumi components for LLM inference on Kubernetes with NVIDIA GPUs.

Import a component from its module (``from components.vllm_service import VllmService``) or
from here. The classes listed here are the package's public components (``llmstack:index:*``).
"""

from .gpu_autoscaling import GpuAutoscaling, GpuAutoscalingArgs
from .gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from .knative_serving import KnativeServing, KnativeServingArgs
from .knative_vllm_service import KnativeVllmService, KnativeVllmServiceArgs
from .model_cache import ModelCache, ModelCacheArgs
from .observability import Observability, ObservabilityArgs
from .vllm_service import VllmService, VllmServiceArgs

__all__ = ["GpuAutoscaling", "GpuAutoscalingArgs", "GpuNodePool", "GpuNodePoolArgs", "KnativeServing", "KnativeServingArgs", "KnativeVllmService", "KnativeVllmServiceArgs", "ModelCache", "ModelCacheArgs", "Observability", "ObservabilityArgs", "VllmService", "VllmServiceArgs"]
