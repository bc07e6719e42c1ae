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

from typing import Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .api_key import api_key_secret
from .awaits import SCHEDULING_SECONDS, WAIT_FOR_ANNOTATION, deployment_await_seconds, skip_await_annotation, startup_probe_seconds, timeout_annotation
from .gpu_fit import check_serving_fit, multi_node_problems
from .package import SERVER_APP, SERVER_COMPONENT, labels, selector_labels, type_token
from .scheduling import SchedulingContractArgs, default_contract
from .validation import ComponentArgsError, validate_args
from .vllm_flags import check_extra_args
from .vllm_pod import (
    API_KEY_SECRET_KEY,
    HTTP_PORT,
    PORT_NAME,
    ResourcesArgs,
    VllmEngineArgs,
    container_resources,
    default_shm_size,
    gpus_per_replica,
    serving_pod_inputs,
    vllm_pod_spec,
)
from .vllm_service import NetworkArgs, namespace_selector
from .wiring import ServerFacts, register_server

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


class MultiNodeVllmServiceArgs(TypedDict):
    """Arguments of a MultiNodeVllmService."""

    namespace: pulumi.Input[str]
    """Namespace of every object."""
    engine: VllmEngineArgs
    """vLLM engine options; tensor x pipeline parallel size spans several nodes."""
    model_path: pulumi.Input[str]
    """Path of the weights inside the cache volume (``ModelCache.model_path``); every node reads it."""
    cache_claim_name: pulumi.Input[str]
    """PersistentVolumeClaim holding the weights; must be ReadWriteMany (every pod of a group mounts it)."""
    gpus_per_node: NotRequired[int]
    """GPUs each pod takes, all of its node's (default: ``scheduling.gpu_capacity.gpu.per_node``)."""
    replicas: NotRequired[int]
    """Groups (replicas of the model), each of tensor x pipeline / gpus_per_node pods (default 1)."""
    image: NotRequired[pulumi.Input[str]]
    """vLLM image (default: the pinned, verified one)."""
    resources: NotRequired[ResourcesArgs]
    """CPU and memory of each pod's server container."""
    scheduling: NotRequired[SchedulingContractArgs]
    """GPU scheduling contract from a GpuNodePool; its ``gpu_capacity`` turns on the fit checks."""
    weights_gib: NotRequired[float]
    """Size of the weights in GPU memory, GiB (the fit check divides it over every GPU of a group)."""
    startup_budget_seconds: NotRequired[int]
    """Seconds the leader may take to load before it is restarted (and with it the group)."""
    warmup: NotRequired[bool]
    """The leader answers one real completion before it is Ready (default true)."""
    scheduling_seconds: NotRequired[int]
    """Seconds before a new pod's container starts (node provisioning and image pull; default 600)."""
    shm_size: NotRequired[str]
    """Size of each pod's memory-backed /dev/shm (default from the GPUs per pod)."""
    api_key: NotRequired[pulumi.Input[str]]
    """API key clients must send; generated (pulumi-random) when not given."""
    extra_env: NotRequired[dict[str, pulumi.Input[str]]]
    """Escape hatch: further environment variables of every pod (NCCL settings, e.g. ``NCCL_SOCKET_IFNAME``)."""
    max_unavailable: NotRequired[int]
    """Groups down at once in a rolling update (default 1)."""
    max_surge: NotRequired[int]
    """Extra groups during a rolling update (default 0: a surge is whole spare nodes)."""
    group_topology_key: NotRequired[str]
    """Node label whose value a group's pods share (default ``topology.kubernetes.io/zone``; ``""``: anywhere)."""
    rdma: NotRequired[RdmaArgs]
    """RDMA device per pod for NCCL between nodes (default: none, NCCL uses TCP sockets)."""
    network: NotRequired[NetworkArgs]
    """Who may call the leader's API and scrape it."""
    pod_annotations: NotRequired[dict[str, pulumi.Input[str]]]
    """Annotations on every pod."""


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
            component, name, "engine.pipeline_parallel_size",
            f"{gpus} GPUs per replica fit on one node of {per_node}: serve it with VllmService (one pod), "
            "a group of nodes only adds network hops",
        )
    return gpus // per_node, per_node


def multi_node_flags(nodes: int, leader: bool) -> list[str]:
    """vLLM's multiprocessing multi-node flags; rank and leader address come from the LWS env."""
    return [
        "--nnodes", str(nodes),
        "--node-rank", "0" if leader else f"$({WORKER_INDEX_ENV})",
        "--master-addr", f"$({LEADER_ADDRESS_ENV})",
        "--master-port", str(MASTER_PORT),
        *([] if leader else ["--headless"]),
    ]


def group_pod_selector(name: str) -> dict:
    """Every pod of the set, leaders and workers (not the download Job's, which has another name)."""
    return {
        "matchLabels": {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": SERVER_COMPONENT},
        "matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": [SERVER_APP, WORKER_APP]}],
    }


def group_pod_specs(name: str, lws_name: str, args: dict, api_key_secret_name: pulumi.Input[str],
                    nodes: int, gpus_per_pod: int) -> tuple[dict, dict]:
    """(leader pod spec, worker pod spec): the shared vLLM pod with the multi-node flags, GPUs per pod,
    one pod per node and a group kept in one ``group_topology_key`` domain."""
    inputs = serving_pod_inputs(args, api_key_secret_name, args.get("startup_budget_seconds"))
    # /dev/shm carries NCCL between the GPUs of one pod: size it for that pod's GPUs.
    inputs["shm_size"] = args.get("shm_size") or default_shm_size({"served_model_name": "", "tensor_parallel_size": gpus_per_pod})
    contract = args.get("scheduling") or default_contract()
    rdma = args.get("rdma")
    rdma_devices = {rdma["resource_name"]: str(rdma.get("per_pod", 1))} if rdma else {}

    def build(leader: bool) -> dict:
        spec = vllm_pod_spec(inputs)
        c = spec["containers"][0]
        # Each pod takes every GPU of its node; vLLM's local world size is gpus / nodes (the same number).
        c["resources"] = container_resources(inputs.get("resources") or {}, contract["gpu_resource_name"], gpus_per_pod, rdma_devices)
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
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": same_set, "topologyKey": "kubernetes.io/hostname"}]},
        }
        topology = args.get("group_topology_key", DEFAULT_GROUP_TOPOLOGY_KEY)
        if topology:
            # A group together: beside the pods with its own group key (the API server fills the key's
            # value from the pod's labels, which the LWS webhook sets before scheduling).
            affinity["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": same_set, "matchLabelKeys": [LWS_GROUP_KEY_LABEL], "topologyKey": topology}]}
        spec["affinity"] = affinity
        return spec

    return build(True), build(False)


class MultiNodeVllmService(pulumi.ComponentResource):
    """A vLLM server whose replicas each span several GPU nodes: a LeaderWorkerSet of leader and
    worker pods, a ClusterIP Service of the leaders, the API-key Secret, a PodDisruptionBudget over
    the set's pods and NetworkPolicies (callers to the leaders' API, a group's pods to each other)."""

    service_name: pulumi.Output[str]
    """Name of the ClusterIP Service (leaders only)."""
    leader_worker_set_name: pulumi.Output[str]
    """Name of the LeaderWorkerSet (also the name of the headless Service its controller creates)."""
    endpoint: pulumi.Output[str]
    """In-cluster base URL of the OpenAI-compatible API (``.../v1``)."""
    served_model_name: pulumi.Output[str]
    """Model name clients send."""
    api_key: pulumi.Output[str]
    """The API key (secret)."""
    selector_labels: pulumi.Output[dict[str, str]]
    """Labels selecting the leader pods (the ones that serve)."""
    namespace: pulumi.Output[str]
    """Namespace of the server's objects."""
    api_key_secret_name: pulumi.Output[str]
    """Name of the Secret holding the API key."""
    api_key_secret_key: pulumi.Output[str]
    """Key of the API key inside that Secret."""
    group_size: pulumi.Output[int]
    """Pods (= nodes) per replica."""

    def __init__(self, name: str, args: MultiNodeVllmServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        args = validate_args("MultiNodeVllmService", name, args, MultiNodeVllmServiceArgs)
        check_extra_args("MultiNodeVllmService", name, args["engine"])
        check_serving_fit("MultiNodeVllmService", name, args, multi_node=True)
        capacity_gpu = ((args.get("scheduling") or {}).get("gpu_capacity") or {}).get("gpu") or {}
        per_node = args.get("gpus_per_node") or capacity_gpu.get("per_node")
        if per_node is None:
            raise ComponentArgsError(
                "MultiNodeVllmService", name, "gpus_per_node",
                "not given and scheduling.gpu_capacity.gpu does not say a node's GPUs: a group needs it to know its size")
        if capacity_gpu.get("per_node") is not None and per_node != capacity_gpu["per_node"]:
            raise ComponentArgsError(
                "MultiNodeVllmService", name, "gpus_per_node",
                f"{per_node} but the pool's nodes have {capacity_gpu['per_node']} GPUs (scheduling.gpu_capacity.gpu.per_node): "
                "a pod takes every GPU of its node")
        nodes, gpus_per_pod = group_shape("MultiNodeVllmService", name, args["engine"], int(per_node))
        if args.get("max_unavailable", 1) < 1 and args.get("max_surge", 0) < 1:
            raise ComponentArgsError("MultiNodeVllmService", name, "max_unavailable",
                                     "and max_surge are both 0: a rolling update could never start (LWS refuses it)")
        super().__init__(type_token("MultiNodeVllmService"), name, {}, opts)
        ns = args["namespace"]
        engine = args["engine"]
        child = pulumi.ResourceOptions(parent=self)
        lws_name = f"{name}-lws"  # not ``name``: the controller creates a headless Service of the set's name
        meta_labels = labels(name, SERVER_COMPONENT)
        leader_labels = labels(name, SERVER_COMPONENT)
        worker_labels = labels(name, SERVER_COMPONENT, app=WORKER_APP)
        key_secret, api_key = api_key_secret(name, ns, meta_labels, args.get("api_key"), parent=self)
        leader_spec, worker_spec = group_pod_specs(name, lws_name, args, key_secret.metadata["name"], nodes, gpus_per_pod)

        replicas = args.get("replicas", 1)
        max_unavailable = args.get("max_unavailable", 1)
        max_surge = args.get("max_surge", 0)
        budget = startup_probe_seconds(leader_spec)
        scheduling = args.get("scheduling_seconds", SCHEDULING_SECONDS)
        pod_annotations = args.get("pod_annotations") or {}
        lws = k8s.apiextensions.CustomResource(
            f"{name}-lws",
            api_version=LWS_API_VERSION,
            kind=LWS_KIND,
            metadata={
                "name": lws_name,
                "namespace": ns,
                "labels": meta_labels,
                # Custom resources are awaited only when asked: until every group is ready (the
                # controller's Available condition, reason AllGroupsReady), each wave a whole start.
                "annotations": {
                    WAIT_FOR_ANNOTATION: "condition=Available",
                    **timeout_annotation(deployment_await_seconds(budget, replicas, max_surge, max_unavailable, scheduling)),
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
                    "leaderTemplate": {"metadata": {"labels": leader_labels, "annotations": pod_annotations}, "spec": leader_spec},
                    "workerTemplate": {"metadata": {"labels": worker_labels, "annotations": pod_annotations}, "spec": worker_spec},
                },
            },
            opts=child,
        )

        sel = selector_labels(name)  # app.kubernetes.io/name: vllm -> leaders only
        service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": name, "namespace": ns, "labels": meta_labels, "annotations": skip_await_annotation()},
            spec={"type": "ClusterIP", "selector": sel,
                  "ports": [{"name": PORT_NAME, "port": HTTP_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}]},
            opts=child,
        )

        # One budget over every pod of the set, one pod at a time: evicting any pod takes its whole group
        # down (RecreateGroupOnPodRestart), and the recreated group's unready pods then hold further
        # evictions until it serves again. A budget per group would let a drain take one pod of every
        # group at once: all replicas down. (The pods belong to StatefulSets the disruption controller counts.)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": name, "namespace": ns, "labels": meta_labels},
            spec={"maxUnavailable": 1, "selector": group_pod_selector(name)},
            opts=child,
        )

        net = args.get("network") or {}
        allowed = [*net.get("client_namespaces", []), *net.get("monitoring_namespaces", [])]
        sources: list = [{"podSelector": {}}]
        if allowed:
            sources.append(namespace_selector(allowed))
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={"name": name, "namespace": ns, "labels": meta_labels},
            spec={"podSelector": {"matchLabels": sel}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": sources, "ports": [{"port": HTTP_PORT, "protocol": "TCP"}]}]},
            opts=child,
        )
        # A group's pods to each other, on every port: the master port is fixed, but vLLM's message
        # queues (get_open_port) and NCCL/Gloo listen on ephemeral ports, which no policy can list.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-group-netpol",
            metadata={"name": f"{name}-group", "namespace": ns, "labels": meta_labels},
            spec={"podSelector": group_pod_selector(name), "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"podSelector": group_pod_selector(name)}]}]},
            opts=child,
        )

        self.service_name = service.metadata["name"]
        self.leader_worker_set_name = lws.metadata["name"]
        self.facts = ServerFacts.of("MultiNodeVllmService", name, args)
        register_server(self.leader_worker_set_name, self.facts)
        self.endpoint = pulumi.Output.concat("http://", service.metadata["name"], ".", ns, ".svc.cluster.local:", str(HTTP_PORT), "/v1")
        self.served_model_name = pulumi.Output.from_input(engine["served_model_name"])
        self.api_key = api_key
        self.selector_labels = pulumi.Output.from_input(sel)
        self.namespace = pulumi.Output.from_input(ns)
        self.api_key_secret_name = key_secret.metadata["name"]
        self.api_key_secret_key = pulumi.Output.from_input(API_KEY_SECRET_KEY)
        self.group_size = pulumi.Output.from_input(nodes)
        self.register_outputs({
            "service_name": self.service_name,
            "leader_worker_set_name": self.leader_worker_set_name,
            "endpoint": self.endpoint,
            "served_model_name": self.served_model_name,
            "api_key": self.api_key,
            "selector_labels": self.selector_labels,
            "namespace": self.namespace,
            "api_key_secret_name": self.api_key_secret_name,
            "api_key_secret_key": self.api_key_secret_key,
            "group_size": self.group_size,
        })
