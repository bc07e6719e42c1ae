"""ModelCache: one pinned model revision, downloaded once into a volume every replica reads."""

import pulumi

from llmstack_k8s import AccessMode, ModelCache

cache = ModelCache("qwen", {
    "namespace": "llm",
    "model": "Qwen/Qwen2.5-0.5B-Instruct",
    "revision": "7ae557604adf67be50417f59c2c2f167def9a775",
    "size": "10Gi",
    "access_mode": AccessMode.READ_WRITE_MANY,
})
pulumi.export("claim", cache.claim_name)
