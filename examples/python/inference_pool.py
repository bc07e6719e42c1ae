"""InferencePool: KV-cache-aware routing to a VllmService's replicas, behind a ModelRoute."""

import pulumi

from llmstack_k8s import InferencePool, ModelCache, ModelRoute, VllmService

cache = ModelCache("qwen", {
    "namespace": "llm",
    "model": "Qwen/Qwen2.5-0.5B-Instruct",
    "revision": "7ae557604adf67be50417f59c2c2f167def9a775",
    "size": "10Gi",
})
server = VllmService("qwen", {
    "namespace": "llm",
    "engine": {"served_model_name": "qwen2.5-0.5b-instruct"},
    "model_path": cache.model_path,
    "cache_claim_name": cache.claim_name,
    "replicas": 3,
    "network": {"client_namespaces": ["gateway"], "monitoring_namespaces": ["monitoring"]},
}, opts=pulumi.ResourceOptions(depends_on=[cache]))
pool = InferencePool("qwen", {
    "namespace": "llm",
    "pod_selector": {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "qwen"},  # server.selector_labels
    "gateway_namespace": "gateway",
    "monitoring_namespaces": ["monitoring"],
    # queued requests for this name go first (the body-based router puts the name in the objective header)
    "objectives": [{"served_model_name": "qwen2.5-0.5b-instruct", "priority": 10}],
}, opts=pulumi.ResourceOptions(depends_on=[server]))
ModelRoute("qwen", {
    "namespace": "llm",
    "service_name": server.service_name,
    "served_model_names": [server.served_model_name],
    "gateway": {"name": "inference-gateway", "namespace": "gateway"},
    "inference_pool_name": pool.pool_name,
})
pulumi.export("pool", pool.pool_name)
