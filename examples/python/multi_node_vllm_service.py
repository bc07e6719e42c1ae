"""MultiNodeVllmService: one model replica over two 8-GPU nodes (a LeaderWorkerSet group: tensor
parallel within a node, pipeline parallel across the two), weights from a ReadWriteMany ModelCache."""

import pulumi

from llmstack_k8s import AccessMode, LeaderWorkerSetController, ModelCache, MultiNodeVllmService

lws = LeaderWorkerSetController("lws", {})  # the CRD and controller; skip where the cluster has them
cache = ModelCache("llama-405b", {
    "namespace": "llm",
    "model": "meta-llama/Llama-3.1-405B-Instruct-FP8",
    "revision": "0000000000000000000000000000000000000000",  # pin the commit you tested (a full SHA)
    "size": "500Gi",
    "access_mode": AccessMode.READ_WRITE_MANY,  # every node of a group reads the weights
    "storage_class_name": "efs-sc",
})
server = MultiNodeVllmService("llama-405b", {
    "namespace": "llm",
    "engine": {"served_model_name": "llama-3.1-405b", "tensor_parallel_size": 8, "pipeline_parallel_size": 2,
               "max_model_len": 16384},
    "model_path": cache.model_path,
    "cache_claim_name": cache.claim_name,
    "gpus_per_node": 8,
    "weights_gib": 380,
    "rdma": {"resource_name": "vpc.amazonaws.com/efa", "per_pod": 32},
    "network": {"client_namespaces": ["apps"], "monitoring_namespaces": ["monitoring"]},
}, opts=pulumi.ResourceOptions(depends_on=[cache, lws]))
pulumi.export("endpoint", server.endpoint)
pulumi.export("group_size", server.group_size)
