"""GpuNodePool: the NVIDIA device plugin with time-slicing; its scheduling contract places a server."""

import pulumi

from llmstack_k8s import GpuInstall, GpuNodePool, SharingStrategy, VllmService

pool = GpuNodePool("gpu", {
    "install": GpuInstall.DEVICE_PLUGIN,
    "sharing": {"strategy": SharingStrategy.TIME_SLICING, "replicas": 2},
    "node_selector": {"nvidia.com/gpu.present": "true"},
    "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
})
server = VllmService("qwen", {
    "namespace": "llm",
    "engine": {"served_model_name": "qwen2.5-0.5b-instruct", "gpu_memory_utilization": 0.45},
    "model_path": "/models/Qwen--Qwen2.5-0.5B-Instruct/7ae557604adf67be50417f59c2c2f167def9a775",
    "cache_claim_name": "qwen-weights",
    "scheduling": pool.contract,  # node selector, tolerations, shared GPU resource name
})
pulumi.export("gpu_resource", pool.gpu_resource_name)
