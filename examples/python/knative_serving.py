"""KnativeServing: the Knative Operator and a KnativeServing (Kourier) for scale-to-zero models."""

import pulumi

from llmstack_k8s import KnativeServing

knative = KnativeServing("knative", {
    "max_revision_timeout_seconds": 3600,
    "allow_zero_initial_scale": True,
})
pulumi.export("knative_namespace", knative.namespace)
