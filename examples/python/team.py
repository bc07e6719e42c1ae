"""Team: a tenant's namespace with its GPU/CPU/memory/storage quota, container defaults, API key and
network boundary; its models are serving components placed in ``team.namespace`` with ``team.api_key``."""

import pulumi

from llmstack_k8s import Team

team = Team("research", {
    "namespace": "research",
    "quota": {"gpus": 8, "cpu": "64", "memory": "512Gi", "storage": "2Ti"},
    "gpu_resource_name": "nvidia.com/gpu",  # GpuNodePool's resource name (shared GPUs have their own)
})
pulumi.export("namespace", team.namespace)
pulumi.export("apiKey", team.api_key)
