"""MultiNodeVllmService: one model replica spread over several GPU nodes, as a LeaderWorkerSet.

A replica whose GPUs (tensor x pipeline parallel size) exceed one node is a *group* of pods, one per
node, run by the LeaderWorkerSet controller (kubernetes-sigs/lws, ``versions.LWS``). The pods are the
shared vLLM pod (``vllm_pod.vllm_pod_spec``) with vLLM's own multi-node flags added:

- leader (``LWS_WORKER_INDEX`` 0): the OpenAI server, ``--nnodes N --node-rank 0 --master-addr
  $(LWS_LEADER_ADDRESS) --master-port 29501``; it serves, so it alone has the port and the probes;
- workers: ``vllm serve ... --headless --node-rank $(LWS_WORKER_INDEX)``: vLLM's multiprocessing
  executor joins the leader's torch.distributed group and runs that node's ranks; no HTTP server, so
  no port and no HTTP probe (one could never pass).

Why vLLM's multiprocessing backend and not the Ray recipe of vLLM's LWS page
(``examples/online_serving/multi-node-serving.sh``): both commands are plain ``vllm`` invocations
that vLLM's own parser checks (tests/e2e), nothing outside the pinned image runs (the script is not
in the image), and there is no Ray head to keep alive beside the server. ``$(VAR)`` references are
expanded by the kubelet from the env the LWS webhook injects into every container.

Tensor parallelism stays within a node (it all-reduces every layer); pipeline stages cross nodes.
"""

from collections.abc import Mapping
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .._core.awaits import (
    SCHEDULING_SECONDS,
    WAIT_FOR_ANNOTATION,
    deployment_await_seconds,
    startup_probe_seconds,
    timeout_annotation,
)
from .._core.package import SERVER_APP, SERVER_COMPONENT, labels
from .._core.validation import ComponentArgsError, validate_args
from .._core.wiring import register_server
from ..cluster.scheduling import default_contract
from ..sizing.gpu_fit import check_serving_fit, multi_node_problems
from .base import ServingArgs, ServingComponent, api_ingress
from .vllm_flags import check_extra_args
from .vllm_pod import (
    VllmEngineArgs,
    container_resources,
    default_shm_size,
    gpus_per_replica,
    serving_pod_inputs,
    vllm_pod_spec,
)

LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
LWS_KIND = "LeaderWorkerSet"
#: Labels and env the LWS controller/webhook put on every pod of a set (api/leaderworkerset/v1).
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_GROUP_KEY_LABEL = "leaderworkerset.sigs.k8s.io/group-key"
LEADER_ADDRESS_ENV = "LWS_LEADER_ADDRESS"
WORKER_INDEX_ENV = "LWS_WORKER_INDEX"
#: vLLM's torch.distributed master port for multi-node multiprocessing (``ParallelConfig.master_port``).
MASTER_PORT = 29501
#: ``app.kubernetes.io/name`` of worker pods: not ``vllm``, so the PodMonitor (it scrapes ``vllm``
#: pods) and the client Service select leaders only; workers serve no HTTP.
WORKER_APP = "vllm-worker"
#: Where a group's pods must share a domain (the default: one zone; pipeline traffic between zones is
#: slow and billed). A finer label (rack, NVLink or InfiniBand domain) keeps a group closer.
DEFAULT_GROUP_TOPOLOGY_KEY = "topology.kubernetes.io/zone"
#: Module the worker runs: vLLM's CLI (``vllm serve``), the one entrypoint that honours ``--headless``.
WORKER_COMMAND = ["python3", "-m", "vllm.entrypoints.cli.main", "serve"]


class RdmaArgs(TypedDict):
    """An RDMA device for the NCCL traffic between a group's nodes (InfiniBand / RoCE)."""

    resource_name: str
    """Extended resource the RDMA device plugin advertises (e.g. ``rdma/ib``, ``nvidia.com/hostdev``)."""
    per_pod: NotRequired[int]
    """Devices each pod requests (default 1)."""


class MultiNodeVllmServiceArgs(ServingArgs):
    """Arguments of a MultiNodeVllmService: those of every serving component (``serving.base``) and its own."""

    model_path: pulumi.Input[str]
    """Path of the weights inside the cache volume (``ModelCache.model_path``); every node reads it."""
    cache_claim_name: pulumi.Input[str]
    """PersistentVolumeClaim holding the weights; must be ReadWriteMany (every pod of a group mounts it)."""
    gpus_per_node: NotRequired[int]
    """GPUs each pod takes, all of its node's (default: ``scheduling.gpu_capacity.gpu.per_node``)."""
    replicas: NotRequired[int]
    """Groups (replicas of the model), each of tensor x pipeline / gpus_per_node pods (default 1)."""
    scheduling_seconds: NotRequired[int]
    """Seconds before a new pod's container starts (node provisioning and image pull; default 600)."""
    max_unavailable: NotRequired[int]
    """Groups down at once in a rolling update (default 1)."""
    max_surge: NotRequired[int]
    """Extra groups during a rolling update (default 0: a surge is whole spare nodes)."""
    group_topology_key: NotRequired[str]
    """Node label whose value a group's pods share (default ``topology.kubernetes.io/zone``; ``""``: anywhere)."""
    rdma: NotRequired[RdmaArgs]
    """RDMA device per pod for NCCL between nodes (default: none, NCCL uses TCP sockets)."""


def group_shape(component: str, name: str, engine: VllmEngineArgs, per_node: int) -> tuple[int, int]:
    """(pods per group, GPUs per pod) of a replica spread over nodes of ``per_node`` GPUs; refuses a
    shape that does not fill whole nodes with whole tensor-parallel groups, or fits on one node."""
    tp, pp = engine.get("tensor_parallel_size", 1), engine.get("pipeline_parallel_size", 1)
    problems = multi_node_problems(per_node, tp, pp)
    if problems:
        raise ComponentArgsError(component, name, problems[0].arg, problems[0].message)
    gpus = gpus_per_replica(engine)
    if gpus <= per_node:
        raise ComponentArgsError(
            component,
            name,
            "engine.pipeline_parallel_size",
            f"{gpus} GPUs per replica fit on one node of {per_node}: serve it with VllmService (one pod), "
            "a group of nodes only adds network hops",
        )
    return gpus // per_node, per_node


def multi_node_flags(nodes: int, leader: bool) -> list[str]:
    """vLLM's multiprocessing multi-node flags; rank and leader address come from the LWS env."""
    return [
        "--nnodes",
        str(nodes),
        "--node-rank",
        "0" if leader else f"$({WORKER_INDEX_ENV})",
        "--master-addr",
        f"$({LEADER_ADDRESS_ENV})",
        "--master-port",
        str(MASTER_PORT),
        *([] if leader else ["--headless"]),
    ]


def group_pod_selector(name: str) -> dict:
    """Every pod of the set, leaders and workers (not the download Job's, which has another name)."""
    return {
        "matchLabels": {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": SERVER_COMPONENT},
        "matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": [SERVER_APP, WORKER_APP]}],
    }


def group_pod_specs(
    name: str,
    lws_name: str,
    args: Mapping[str, Any],
    api_key_secret_name: pulumi.Input[str],
    nodes: int,
    gpus_per_pod: int,
) -> tuple[dict, dict]:
    """(leader pod spec, worker pod spec): the shared vLLM pod with the multi-node flags, GPUs per pod,
    one pod per node and a group kept in one ``group_topology_key`` domain."""
    inputs = serving_pod_inputs(args, api_key_secret_name, args.get("startup_budget_seconds"))
    # /dev/shm carries NCCL between the GPUs of one pod: size it for that pod's GPUs.
    inputs["shm_size"] = args.get("shm_size") or default_shm_size(
        {"served_model_name": "", "tensor_parallel_size": gpus_per_pod}
    )
    contract = args.get("scheduling") or default_contract()
    rdma = args.get("rdma")
    rdma_devices = {rdma["resource_name"]: str(rdma.get("per_pod", 1))} if rdma else {}

    def build(leader: bool) -> dict:
        spec = vllm_pod_spec(inputs)
        c = spec["containers"][0]
        # Each pod takes every GPU of its node; vLLM's local world size is gpus / nodes (the same number).
        c["resources"] = container_resources(
            inputs.get("resources") or {}, contract["gpu_resource_name"], gpus_per_pod, rdma_devices
        )
        c["args"] = [*c["args"], *multi_node_flags(nodes, leader)]
        if not leader:
            c["command"] = list(WORKER_COMMAND)
            # No HTTP server: no port, no probes, nothing to drain; a dead worker restarts the group.
            for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
                c.pop(key, None)
            c["env"] = [e for e in c["env"] if e.get("name") != "VLLM_API_KEY"]
        same_set = {"matchLabels": {LWS_NAME_LABEL: lws_name}}
        affinity: dict = {
            # One pod per node: a pod's GPUs are its node's.
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": same_set, "topologyKey": "kubernetes.io/hostname"}
                ]
            },
        }
        topology = args.get("group_topology_key", DEFAULT_GROUP_TOPOLOGY_KEY)
        if topology:
            # A group together: beside the pods with its own group key (the API server fills the key's
            # value from the pod's labels, which the LWS webhook sets before scheduling).
            affinity["podAffinity"] = {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": same_set, "matchLabelKeys": [LWS_GROUP_KEY_LABEL], "topologyKey": topology}
                ]
            }
        spec["affinity"] = affinity
        return spec

    return build(True), build(False)


def checked_group(name: str, args: MultiNodeVllmServiceArgs) -> tuple[int, int]:
    """(pods per group, GPUs per pod), or ``ComponentArgsError`` for a group that cannot be built: no
    known GPUs per node, other GPUs per node than the pool's, a shape that does not fill whole nodes,
    or a rolling update that could never start."""
    scheduling: Mapping[str, Any] = args.get("scheduling") or {}
    capacity_gpu = (scheduling.get("gpu_capacity") or {}).get("gpu") or {}
    per_node = args.get("gpus_per_node") or capacity_gpu.get("per_node")
    if per_node is None:
        raise ComponentArgsError(
            "MultiNodeVllmService",
            name,
            "gpus_per_node",
            "not given and scheduling.gpu_capacity.gpu does not say a node's GPUs: a group needs it to know its size",
        )
    if capacity_gpu.get("per_node") is not None and per_node != capacity_gpu["per_node"]:
        raise ComponentArgsError(
            "MultiNodeVllmService",
            name,
            "gpus_per_node",
            f"{per_node} but the pool's nodes have {capacity_gpu['per_node']} GPUs "
            "(scheduling.gpu_capacity.gpu.per_node): a pod takes every GPU of its node",
        )
    nodes, gpus_per_pod = group_shape("MultiNodeVllmService", name, args["engine"], int(per_node))
    if args.get("max_unavailable", 1) < 1 and args.get("max_surge", 0) < 1:
        raise ComponentArgsError(
            "MultiNodeVllmService",
            name,
            "max_unavailable",
            "and max_surge are both 0: a rolling update could never start (LWS refuses it)",
        )
    return nodes, gpus_per_pod


class MultiNodeVllmService(ServingComponent):
    """A vLLM server whose replicas each span several GPU nodes: a LeaderWorkerSet of leader and
    worker pods, a ClusterIP Service of the leaders, the API-key Secret, a PodDisruptionBudget over
    the set's pods and NetworkPolicies (callers to the leaders' API, a group's pods to each other)."""

    leader_worker_set_name: pulumi.Output[str]
    """Name of the LeaderWorkerSet (also the name of the headless Service its controller creates)."""
    group_size: pulumi.Output[int]
    """Pods (= nodes) per replica."""

    def __init__(self, name: str, args: MultiNodeVllmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        args = validate_args("MultiNodeVllmService", name, args, MultiNodeVllmServiceArgs)
        check_extra_args("MultiNodeVllmService", name, args["engine"])
        check_serving_fit("MultiNodeVllmService", name, args, multi_node=True)
        nodes, gpus_per_pod = checked_group(name, args)
        super().__init__("MultiNodeVllmService", name, args, opts)  # and the API-key Secret
        lws = self._leader_worker_set(name, args, nodes, gpus_per_pod)
        self.client_service()  # app.kubernetes.io/name: vllm -> leaders only

        # One budget over every pod of the set, one pod at a time: evicting any pod takes its whole group
        # down (RecreateGroupOnPodRestart), and the recreated group's unready pods then hold further
        # evictions until it serves again. A budget per group would let a drain take one pod of every
        # group at once: all replicas down. (The pods belong to StatefulSets the disruption controller counts.)
        self.disruption_budget(1, group_pod_selector(name))
        self.network_policy(api_ingress(args.get("network")))
        # A group's pods to each other, on every port: the master port is fixed, but vLLM's message
        # queues (get_open_port) and NCCL/Gloo listen on ephemeral ports, which no policy can list.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-group-netpol",
            metadata={"name": f"{name}-group", "namespace": args["namespace"], "labels": self._server_labels},
            spec={
                "podSelector": group_pod_selector(name),
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": group_pod_selector(name)}]}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.leader_worker_set_name = lws.metadata["name"]  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime
        register_server(self.leader_worker_set_name, self.facts)
        self.group_size = pulumi.Output.from_input(nodes)
        self.register_outputs(
            {
                **self.serving_outputs(),
                "leader_worker_set_name": self.leader_worker_set_name,
                "group_size": self.group_size,
            }
        )

    def _leader_worker_set(
        self, name: str, args: MultiNodeVllmServiceArgs, nodes: int, gpus_per_pod: int
    ) -> k8s.apiextensions.CustomResource:
        """``<name>-lws``: ``replicas`` groups of ``nodes`` pods, the leader serving."""
        lws_name = f"{name}-lws"  # not ``name``: the controller creates a headless Service of the set's name
        meta_labels = self._server_labels
        leader_labels = labels(name, SERVER_COMPONENT)
        worker_labels = labels(name, SERVER_COMPONENT, app=WORKER_APP)
        leader_spec, worker_spec = group_pod_specs(name, lws_name, args, self.api_key_secret_name, nodes, gpus_per_pod)

        replicas = args.get("replicas", 1)
        max_unavailable = args.get("max_unavailable", 1)
        max_surge = args.get("max_surge", 0)
        budget = startup_probe_seconds(leader_spec)
        scheduling = args.get("scheduling_seconds", SCHEDULING_SECONDS)
        pod_annotations = args.get("pod_annotations") or {}
        return k8s.apiextensions.CustomResource(
            f"{name}-lws",
            api_version=LWS_API_VERSION,
            kind=LWS_KIND,
            metadata={
                "name": lws_name,
                "namespace": args["namespace"],
                "labels": meta_labels,
                # Custom resources are awaited only when asked: until every group is ready (the
                # controller's Available condition, reason AllGroupsReady), each wave a whole start.
                "annotations": {
                    WAIT_FOR_ANNOTATION: "condition=Available",
                    **timeout_annotation(
                        deployment_await_seconds(budget, replicas, max_surge, max_unavailable, scheduling)
                    ),
                },
            },
            spec={
                "replicas": replicas,
                # Workers start with the leader: the leader is Ready only once they joined it, so
                # LeaderReady (workers after a Ready leader) would never start them.
                "startupPolicy": "LeaderCreated",
                "rolloutStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdateConfiguration": {"maxUnavailable": max_unavailable, "maxSurge": max_surge},
                },
                "leaderWorkerTemplate": {
                    "size": nodes,
                    # A pipeline with a stage gone is dead: one failed pod or container restarts the group.
                    "restartPolicy": "RecreateGroupOnPodRestart",
                    "leaderTemplate": {
                        "metadata": {"labels": leader_labels, "annotations": pod_annotations},
                        "spec": leader_spec,
                    },
                    "workerTemplate": {
                        "metadata": {"labels": worker_labels, "annotations": pod_annotations},
                        "spec": worker_spec,
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
