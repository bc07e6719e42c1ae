"""KnativeVllmService: the same vLLM container as a Knative Service that scales to zero."""

import pulumi

from llmstack_k8s import KnativeServing, KnativeVllmService, ModelCache

knative = KnativeServing("knative", {"max_revision_timeout_seconds": 3600})
cache = ModelCache("qwen", {
    "namespace": "llm",
    "model": "Qwen/Qwen2.5-0.5B-Instruct",
    "revision": "7ae557604adf67be50417f59c2c2f167def9a775",
    "size": "10Gi",
})
server = KnativeVllmService("qwen", {
    "namespace": "llm",
    "engine": {"served_model_name": "qwen2.5-0.5b-instruct", "max_model_len": 8192},
    "model_path": cache.model_path,
    "cache_claim_name": cache.claim_name,
    "scaling": {"min_scale": 0, "max_scale": 2, "target_concurrency": 8},
}, opts=pulumi.ResourceOptions(depends_on=[cache, knative]))
pulumi.export("url", server.url)
