"""What every served model is made of, whichever way it is served: its weight cache (a ModelCache
that downloads them; none for object storage) and the engine, weights and source args of its servers."""

from dataclasses import dataclass, field
from typing import Any, TypedDict

import pulumi

from llmstack_k8s.serving.model_cache import ModelCache, ModelCacheArgs
from llmstack_k8s.serving.object_storage import ObjectStorageArgs
from llmstack_k8s.serving.vllm_pod import VllmEngineArgs
from stacks.config import ModelConfig, StackConfig
from stacks.config.gpu_pool import fit_weights

from .cluster import Cluster, Placement
from .object_storage import model_object_storage_args


@dataclass
class ServedModel:
    """One model's part of the stack, as the later parts (observability, autoscaling) and the outputs need it."""

    #: The model's entry of the ``models`` output (endpoint, served name, canary, url).
    outputs: dict
    #: Every download of the model (ModelCache): its own first, then its canary's; none for object storage.
    caches: list = field(default_factory=list)
    #: The server of a model served by a Deployment (what KEDA scales); None for Knative.
    server: Any | None = None
    #: The canary revision of a Knative model (the PodMonitor labels it).
    knative_canary_revision: Any | None = None


class SourceArgs(TypedDict, total=False):
    """Where a serving component reads the weights (``SinglePodServingArgs``' source keys)."""

    model_path: pulumi.Input[str]
    cache_claim_name: pulumi.Input[str]
    object_storage: ObjectStorageArgs


class WeightsArgs(TypedDict, total=False):
    """The serving component's ``weights_gib``, when the stack knows the size."""

    weights_gib: float


def _nth(paths: pulumi.Output[list[str]], i: int) -> pulumi.Output[str]:
    return paths.apply(lambda ps: ps[i])


def engine_args(m: ModelConfig, cache: ModelCache | None = None) -> VllmEngineArgs:
    """The typed vLLM engine args of a model (the pod builder renders them); its LoRA adapters
    are read from ``cache`` (the ModelCache that downloads them)."""
    engine: VllmEngineArgs = {
        "served_model_name": m.served_name,
        "tensor_parallel_size": m.tensor_parallel_size,
        "pipeline_parallel_size": m.pipeline_parallel_size,
        "gpu_memory_utilization": m.gpu_memory_utilization,
        "dtype": m.dtype,
        "enable_prefix_caching": m.enable_prefix_caching,
        "extra_args": list(m.extra_args),
    }
    if m.max_model_len is not None:
        engine["max_model_len"] = m.max_model_len
    if m.quantization is not None:
        engine["quantization"] = m.quantization
    if m.max_num_seqs is not None:
        engine["max_num_seqs"] = m.max_num_seqs
    if m.lora_adapters and cache is not None:  # lora: each adapter's directory from the cache's outputs
        engine["lora_adapters"] = [
            {"name": a.name, "path": _nth(cache.adapter_paths, i), "rank": a.rank}
            for i, a in enumerate(m.lora_adapters)
        ]
        if m.max_loras is not None:
            engine["max_loras"] = m.max_loras
    return engine


def source_args(cfg: StackConfig, m: ModelConfig, cache: ModelCache | None) -> SourceArgs:
    """Where a serving component reads the weights: the ModelCache's volume, or (``cache`` None) the
    bucket the model's URL names, streamed by every replica."""
    if cache is None:
        return {"object_storage": model_object_storage_args(cfg, m)}
    return {"model_path": cache.model_path, "cache_claim_name": cache.claim_name}


def weights_arg(m: ModelConfig) -> WeightsArgs:
    """The serving component's ``weights_gib``: the size the stack's fit check used, so the
    component's own fit check measures the same model."""
    weights = fit_weights(m)
    return {"weights_gib": weights[0]} if weights else {}


def cache_args(cfg: StackConfig, m: ModelConfig, ns: pulumi.Input[str]) -> ModelCacheArgs:
    """ModelCache args of a model from the Hub: its weights and adapters, downloaded into a volume in ``ns``."""
    cache, revision = m.cache, m.revision
    if cache is None or revision is None:  # the config refuses a Hub model without them
        raise ValueError(f"model {m.name}: a model from the Hub needs a cache and a pinned revision")
    args: ModelCacheArgs = {
        "namespace": ns,
        "model": m.model,
        "revision": revision,
        "size": cache.size,
        "access_mode": cache.access_mode or cfg.cache.access_mode,
        "backoff_limit": cfg.cache.download_retries,
        "active_deadline_seconds": cfg.cache.download_deadline_seconds,
    }
    storage_class = cache.storage_class or cfg.cache.storage_class
    if storage_class is not None:
        args["storage_class_name"] = storage_class
    if m.gated or any(a.gated for a in m.lora_adapters):
        if cfg.huggingface_token is None:  # the config refuses a gated model without it
            raise ValueError(f"model {m.name}: gated, and no huggingfaceToken")
        args["hf_token"] = pulumi.Output.secret(cfg.huggingface_token)
    if m.lora_adapters:
        args["adapters"] = [{"model": a.model, "revision": a.revision} for a in m.lora_adapters]
    return args


def model_cache(cfg: StackConfig, cluster: Cluster, m: ModelConfig, place: Placement) -> ModelCache | None:
    """The volume the model's servers read the weights from, filled by a download Job; None for a
    model in object storage (no volume and no download: each replica streams the weights itself)."""
    if m.is_object_storage:
        return None
    args = cache_args(cfg, m, place.ns)
    cv = m.canary_variant
    if m.serving == "knative" and cv is not None and cv.revision is not None and cv.revision != m.revision:
        # A Knative canary's other weights go into the model's own volume beside its revision (one
        # directory each): its revision then equals what the promoted model renders (knative_canary).
        args["adapters"] = [*args.get("adapters", []), {"model": m.model, "revision": cv.revision}]
    return ModelCache(m.name, args, opts=cluster.in_ns)
