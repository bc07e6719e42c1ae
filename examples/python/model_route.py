"""ModelRoute: a VllmService's /v1 on a shared Gateway host, routed by the request's model name."""

import pulumi

from llmstack_k8s import ModelCache, ModelRoute, VllmService

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
    # The Gateway's proxies call the server: its namespace must be admitted.
    "network": {"client_namespaces": ["gateway"], "monitoring_namespaces": ["monitoring"]},
}, opts=pulumi.ResourceOptions(depends_on=[cache]))
route = ModelRoute("qwen", {
    "namespace": "llm",
    "service_name": server.service_name,
    "served_model_names": [server.served_model_name],
    "gateway": {"name": "inference-gateway", "namespace": "gateway"},
    "hostnames": ["llm.example.com"],
    "request_timeout_seconds": 900,
}, opts=pulumi.ResourceOptions(depends_on=[server]))
pulumi.export("path", route.path_prefix)
