"""Reusable Pulumi components for LLM inference on Kubernetes with NVIDIA GPUs.

Import a component from its module (``from components.vllm_service import VllmService``) or
from here. The classes listed here are the package's public components (``llmstack:index:*``).
"""

from .model_cache import ModelCache, ModelCacheArgs
from .vllm_service import VllmService, VllmServiceArgs

__all__ = ["ModelCache", "ModelCacheArgs", "VllmService", "VllmServiceArgs"]
