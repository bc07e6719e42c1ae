"""The stack, composed: a validated ``StackConfig`` (``stacks.config``) turned into the components
of ``llmstack_k8s``. ``stack.build`` reads top to bottom, one call per concern:

- ``cluster``: the Kubernetes provider, the serving namespace, the API key, where a model is placed
- ``gpu_pool``: the GPU nodes (device plugin or operator, sharing, Karpenter), image pre-pull
- ``knative``: Knative Serving, and the models it serves (``serving: knative``)
- ``teams``: each team's namespace, quota, API key; ``multi_node``: the LeaderWorkerSet controller
- ``serving``: what every model needs: its weight cache, its engine and weights args (``object_storage``
  for weights streamed from a bucket); ``deployment``: always-on servers (a Deployment, or a
  LeaderWorkerSet group across nodes) and a canary beside them
- ``gateway``: routes, InferencePools and the body-based router
- ``observability``, ``autoscaling``: monitoring and alerts, KEDA
"""
