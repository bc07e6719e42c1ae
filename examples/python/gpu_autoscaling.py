"""GpuAutoscaling: KEDA, and a ScaledObject that scales a VllmService on its queue depth."""

import pulumi

from llmstack_k8s import AutoscalingMetric, GpuAutoscaling, VllmService

server = VllmService("qwen", {
    "namespace": "llm",
    "engine": {"served_model_name": "qwen2.5-0.5b-instruct"},
    "model_path": "/models/Qwen--Qwen2.5-0.5B-Instruct/7ae557604adf67be50417f59c2c2f167def9a775",
    "cache_claim_name": "qwen-weights",
    "autoscaled": True,
})
scaling = GpuAutoscaling("autoscaling", {
    "workloads": [{
        "name": "qwen",
        "namespace": "llm",
        "deployment_name": server.deployment_name,
        "service_name": server.service_name,
        "served_model_name": server.served_model_name,
        "startup_budget_seconds": 900,
        "min_replicas": 1,
        "max_replicas": 4,
        "metric": AutoscalingMetric.QUEUE_DEPTH,
        "target": 5.0,
        "cooldown_seconds": 1200,
    }],
})
pulumi.export("scaled_objects", scaling.scaled_object_names)
