"""LeaderWorkerSetController: the LeaderWorkerSet CRD and controller (the pinned lws chart) that
MultiNodeVllmService's groups need; give it as a dependency of every multi-node model."""

import pulumi

from llmstack_k8s import LeaderWorkerSetController

lws = LeaderWorkerSetController("lws", {"namespace": "lws-system"})
pulumi.export("namespace", lws.namespace)
pulumi.export("version", lws.version)
