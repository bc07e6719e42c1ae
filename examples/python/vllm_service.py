"""VllmService: an always-on vLLM server reading its weights from a ModelCache."""

import pulumi

from llmstack_k8s import Dtype, ModelCache, VllmService

cache = ModelCache("qwen", {
    "namespace": "llm",
    "model": "Qwen/Qwen2.5-0.5B-Instruct",
    "revision": "7ae557604adf67be50417f59c2c2f167def9a775",
    "size": "10Gi",
})
server = VllmService("qwen", {
    "namespace": "llm",
    "engine": {"served_model_name": "qwen2.5-0.5b-instruct", "max_model_len": 8192, "dtype": Dtype.BFLOAT16},
    "model_path": cache.model_path,
    "cache_claim_name": cache.claim_name,
    "replicas": 2,
    "network": {"client_namespaces": ["apps"], "monitoring_namespaces": ["monitoring"]},
}, opts=pulumi.ResourceOptions(depends_on=[cache]))
pulumi.export("endpoint", server.endpoint)
pulumi.export("api_key", server.api_key)
