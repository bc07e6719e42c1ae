"""Compose the components into a stack from a validated StackConfig."""

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.model_cache import ModelCache, model_dir
from components.package import MANAGED_BY
from components.vllm_pod import startup_budget_seconds
from components.vllm_service import VllmService

from .config import ModelConfig, StackConfig


def engine_args(m: ModelConfig) -> dict:
    """The typed vLLM engine args of a model (the pod builder renders them)."""
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
    return engine


def build(cfg: StackConfig) -> dict:
    """Register every resource of the stack; returns the stack outputs."""
    provider = k8s.Provider(
        "k8s",
        kubeconfig=cfg.kubernetes.kubeconfig,
        context=cfg.kubernetes.context,
        enable_server_side_apply=True,
    )
    on_cluster = pulumi.ResourceOptions(provider=provider)

    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata={
            "name": cfg.namespace,
            # Every pod the stack runs meets the restricted Pod Security Standard.
            "labels": {**MANAGED_BY, "pod-security.kubernetes.io/enforce": "restricted"},
        },
        opts=on_cluster,
    )
    ns = namespace.metadata["name"]
    api_key = random.RandomPassword("api-key", length=48, special=False)
    in_ns = pulumi.ResourceOptions(provider=provider, depends_on=[namespace])

    models = {}
    for m in cfg.models:
        cache = ModelCache(
            m.name,
            {
                "namespace": ns,
                "model": m.model,
                "revision": m.revision,
                "size": m.cache.size,
                "access_mode": m.cache.access_mode or cfg.cache.access_mode,
                "storage_class_name": m.cache.storage_class or cfg.cache.storage_class,
                "backoff_limit": cfg.cache.download_retries,
                "active_deadline_seconds": cfg.cache.download_deadline_seconds,
                **({"hf_token": pulumi.Output.secret(cfg.huggingface_token)} if m.gated else {}),
            },
            opts=in_ns,
        )
        server = VllmService(
            m.name,
            {
                "namespace": ns,
                "engine": engine_args(m),
                "model_path": model_dir(m.model, m.revision),
                "cache_claim_name": cache.claim_name,
                "replicas": m.replicas,
                "resources": {"cpu": m.resources.cpu, "memory": m.resources.memory},
                "startup_budget_seconds": startup_budget_seconds(m.weights_gib, m.startup_timeout_seconds),
                "api_key": api_key.result,
                "extra_env": dict(m.extra_env),
                "rollout": {"max_surge": m.rollout.max_surge, "max_unavailable": m.rollout.max_unavailable},
                "network": {
                    "client_namespaces": list(cfg.network.client_namespaces),
                    "monitoring_namespaces": list(cfg.network.monitoring_namespaces),
                },
                **({"image": m.image} if m.image else {}),
                **({"shm_size": m.shm_size} if m.shm_size else {}),
            },
            # The Job must have completed (weights in the cache) before servers start.
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace, cache]),
        )
        models[m.name] = {"endpoint": server.endpoint, "servedModelName": server.served_model_name}

    return {"namespace": ns, "models": models, "apiKey": pulumi.Output.secret(api_key.result)}
