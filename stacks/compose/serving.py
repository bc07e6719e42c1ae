"""What every served model is made of, whichever way it is served: its weight cache (a ModelCache
that downloads them; none for object storage) and the engine, weights and source args of its servers."""

from dataclasses import dataclass, field
from typing import Any

import pulumi

from llmstack_k8s.serving.model_cache import ModelCache
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


def engine_args(m: ModelConfig, cache=None) -> dict:
    """The typed vLLM engine args of a model (the pod builder renders them); its LoRA adapters
    are read from ``cache`` (the ModelCache that downloads them)."""
    engine = {
        "served_model_name": m.served_name,
        "tensor_parallel_size": m.tensor_parallel_size,
        "pipeline_parallel_size": m.pipeline_parallel_size,
        "gpu_memory_utilization": m.gpu_memory_utilization,
        "dtype": m.dtype,
        "enable_prefix_caching": m.enable_prefix_caching,
        "extra_args": list(m.extra_args),
    }
    for key in ("max_model_len", "quantization", "max_num_seqs"):
        if getattr(m, key) is not None:
            engine[key] = getattr(m, key)
    if m.lora_adapters and cache is not None:  # lora: each adapter's directory from the cache's outputs
        engine["lora_adapters"] = [
            {"name": a.name, "path": cache.adapter_paths.apply(lambda ps, i=i: ps[i]), "rank": a.rank}
            for i, a in enumerate(m.lora_adapters)
        ]
        if m.max_loras is not None:
            engine["max_loras"] = m.max_loras
    return engine


def source_args(cfg: StackConfig, m: ModelConfig, cache) -> dict:
    """Where a serving component reads the weights: the ModelCache's volume, or (``cache`` None) the
    bucket the model's URL names, streamed by every replica."""
    if cache is None:
        return {"object_storage": model_object_storage_args(cfg, m)}
    return {"model_path": cache.model_path, "cache_claim_name": cache.claim_name}


def weights_arg(m: ModelConfig) -> dict:
    """The serving component's ``weights_gib``: the size the stack's fit check used, so the
    component's own fit check measures the same model."""
    weights = fit_weights(m)
    return {"weights_gib": weights[0]} if weights else {}


def cache_args(cfg: StackConfig, m: ModelConfig, ns) -> dict:
    """ModelCache args of a model from the Hub: its weights and adapters, downloaded into a volume in ``ns``."""
    return {
        "namespace": ns,
        "model": m.model,
        "revision": m.revision,
        "size": m.cache.size,
        "access_mode": m.cache.access_mode or cfg.cache.access_mode,
        "storage_class_name": m.cache.storage_class or cfg.cache.storage_class,
        "backoff_limit": cfg.cache.download_retries,
        "active_deadline_seconds": cfg.cache.download_deadline_seconds,
        **(
            {"hf_token": pulumi.Output.secret(cfg.huggingface_token)}
            if m.gated or any(a.gated for a in m.lora_adapters)
            else {}
        ),
        **(
            {"adapters": [{"model": a.model, "revision": a.revision} for a in m.lora_adapters]}
            if m.lora_adapters
            else {}
        ),
    }


def model_cache(cfg: StackConfig, cluster: Cluster, m: ModelConfig, place: Placement) -> ModelCache | None:
    """The volume the model's servers read the weights from, filled by a download Job; None for a
    model in object storage (no volume and no download: each replica streams the weights itself)."""
    if m.is_object_storage:
        return None
    args = cache_args(cfg, m, place.ns)
    cv = m.canary_variant
    if m.serving == "knative" and cv is not None and cv.revision != m.revision:
        # A Knative canary's other weights go into the model's own volume beside its revision (one
        # directory each): its revision then equals what the promoted model renders (knative_canary).
        args["adapters"] = [*args.get("adapters", []), {"model": m.model, "revision": cv.revision}]
    return ModelCache(m.name, args, opts=cluster.in_ns)
