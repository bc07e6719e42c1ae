"""ImagePrePull: the vLLM image pulled onto every GPU node before a replica needs it."""

import pulumi

from llmstack_k8s import ImagePrePull

prepull = ImagePrePull("image-prepull", {
    "namespace": "llm",
    "images": ["docker.io/vllm/vllm-openai:v0.32.0"],
    # The GPU pool's placement (GpuNodePool.contract): its node selector and taints.
    "scheduling": {
        "gpu_resource_name": "nvidia.com/gpu",
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
})
pulumi.export("daemonSet", prepull.daemon_set_name)
