"""Observability: Prometheus, Grafana, the DCGM exporter, and alerts and dashboards for one model."""

import pulumi

from llmstack_k8s import Observability

monitoring = Observability("obs", {
    "models": [{"name": "qwen", "namespace": "llm", "served_model_name": "qwen2.5-0.5b-instruct", "ttft_p95_seconds": 2.0}],
    "serving_namespaces": ["llm"],
    "thresholds": {"queue_waiting_requests": 10, "kv_cache_usage_ratio": 0.9},
})
pulumi.export("grafana", monitoring.grafana_url)
