"""A program the policy pack must stop at preview: a server whose image is a moving tag."""

import pulumi_kubernetes as k8s

k8s.apps.v1.Deployment(
    "server",
    metadata={"name": "server", "namespace": "default"},
    spec={
        "selector": {"matchLabels": {"app": "server"}},
        "template": {
            "metadata": {"labels": {"app": "server"}},
            "spec": {"containers": [{"name": "vllm", "image": "docker.io/vllm/vllm-openai:latest"}]},
        },
    },
)
