"""What a cluster runs once for every model: the GPU node pool and the scheduling contract it
hands the serving pods, the Knative Serving install, the LeaderWorkerSet controller, and teams
(a tenant's namespace, quota and network boundary)."""
