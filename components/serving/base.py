"""What the three serving components share: the args, the outputs and the children.

``VllmService`` (a Deployment), ``KnativeVllmService`` (a Knative Service) and
``MultiNodeVllmService`` (a LeaderWorkerSet) serve one model from the same vLLM pod
(``vllm_pod``). Here is what they have in common, declared once:

- ``ServingArgs``: the args every one of them takes; ``SinglePodServingArgs`` adds the weights
  source of the two whose replica is one pod (a cache volume, or a bucket the pod streams from);
- ``ServingComponent``: the outputs every one of them has, and the children every one of them
  builds (the API-key Secret, the ClusterIP Service, the PodDisruptionBudget, the NetworkPolicy),
  each under the name and parent it has always had, so no URN moves.

Each component keeps its own type token, args TypedDict (deriving from these), checks, workload
and ``register_outputs``. Pulumi's analyzer reads a field's docstring only from the source of the
class it analyzes, so the provider host copies an inherited field's docstring into the schema
(``provider_host.field_docs``).
"""

from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .._core.awaits import skip_await_annotation
from .._core.package import SERVER_COMPONENT, labels, selector_labels, type_token
from .._core.wiring import ServerFacts
from ..cluster.scheduling import SchedulingContractArgs
from .api_key import api_key_secret
from .object_storage import ObjectStorageArgs, ObjectStoragePod, object_storage_access
from .vllm_pod import API_KEY_SECRET_KEY, HTTP_PORT, PORT_NAME, ResourcesArgs, VllmEngineArgs


class NetworkArgs(TypedDict):
    """Who may reach the server's port (API and /metrics share it; ``--api-key`` guards /v1 only)."""

    client_namespaces: NotRequired[list[pulumi.Input[str]]]
    """Namespaces whose pods may call the API (the gateway's, the apps'); the server's own namespace
    is always allowed."""
    monitoring_namespaces: NotRequired[list[pulumi.Input[str]]]
    """Namespaces whose pods may scrape /metrics (Prometheus, e.g. ``Observability.namespace``)."""


class ServingArgs(TypedDict):
    """The args every serving component takes."""

    namespace: pulumi.Input[str]
    """Namespace of every object."""
    engine: VllmEngineArgs
    """vLLM engine options (served name, parallelism, context length, ...); on a MultiNodeVllmService
    tensor x pipeline parallel size spans several nodes."""
    image: NotRequired[pulumi.Input[str]]
    """vLLM image (default: the pinned, verified one)."""
    resources: NotRequired[ResourcesArgs]
    """CPU and memory of the server container (of each pod's, on a MultiNodeVllmService)."""
    scheduling: NotRequired[SchedulingContractArgs]
    """GPU scheduling contract from a GpuNodePool (default: whole ``nvidia.com/gpu`` with its taint);
    its ``gpu_capacity`` turns on the GPU fit checks."""
    weights_gib: NotRequired[float]
    """Size of the weights in GPU memory, GiB (plain: checked at preview). With the contract's
    ``gpu_capacity`` the service refuses weights that leave no room for a KV cache (a MultiNodeVllmService
    divides them over every GPU of a group); for a catalogued model
    ``llmstack_k8s.model_catalog.estimated_weights_gib(model_id)`` estimates it."""
    startup_budget_seconds: NotRequired[int]
    """Seconds the server may take to load before it is restarted (default 1800; on a
    MultiNodeVllmService the leader, and with it the group)."""
    warmup: NotRequired[bool]
    """A new replica answers one real completion (one token, its own API key) before it is Ready:
    the startup probe sends it, so readiness waits for it (default true; false: ``/health`` only)."""
    shm_size: NotRequired[str]
    """Size of each pod's memory-backed /dev/shm (default from the GPUs per pod: the parallelism, or
    ``gpus_per_node`` on a MultiNodeVllmService)."""
    api_key: NotRequired[pulumi.Input[str]]
    """API key clients must send; generated (pulumi-random) when not given."""
    extra_env: NotRequired[dict[str, pulumi.Input[str]]]
    """Escape hatch: further environment variables of the server, in every pod (NCCL settings such as
    ``NCCL_SOCKET_IFNAME`` for a group over nodes; on Knative not Knative's own: PORT, K_SERVICE, ...)."""
    network: NotRequired[NetworkArgs]
    """NetworkPolicy settings: who may call the API and scrape /metrics. On Knative requests come
    through its data plane (``knative_namespaces``), so only ``monitoring_namespaces`` applies."""
    pod_annotations: NotRequired[dict[str, pulumi.Input[str]]]
    """Annotations on the server's pods (every pod of a group; on Knative, beside its autoscaling ones)."""


class SinglePodServingArgs(ServingArgs):
    """The args of a serving component whose replica is one pod (VllmService, KnativeVllmService)."""

    model_path: NotRequired[pulumi.Input[str]]
    """Path of the weights inside the cache volume (``ModelCache.model_path``); with ``cache_claim_name``,
    unless the weights are in ``object_storage``."""
    cache_claim_name: NotRequired[pulumi.Input[str]]
    """PersistentVolumeClaim holding the weights (``ModelCache.claim_name``)."""
    object_storage: NotRequired[ObjectStorageArgs]
    """Weights in a bucket instead of a cache volume: every replica streams them with vLLM's Run:ai
    model streamer (no ModelCache, no wait for a download; credentials and endpoint here)."""


def namespace_selector(names: list[pulumi.Input[str]]) -> dict:
    """A NetworkPolicy peer admitting pods of these namespaces (sorted, deduplicated; Outputs resolved)."""
    values = pulumi.Output.all(*names).apply(lambda ns: sorted(set(ns)))
    return {
        "namespaceSelector": {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": values}]
        }
    }


def api_ingress(network: NetworkArgs | None) -> list[dict]:
    """Who may reach vLLM's port (the API and /metrics): the server's own namespace, and the
    client and monitoring namespaces of ``network``."""
    net = network or {}
    allowed = [*net.get("client_namespaces", []), *net.get("monitoring_namespaces", [])]
    sources: list = [{"podSelector": {}}]  # the server's own namespace
    if allowed:
        sources.append(namespace_selector(allowed))
    return [{"from": sources, "ports": [{"port": HTTP_PORT, "protocol": "TCP"}]}]


class ServingComponent(pulumi.ComponentResource):
    """Base of the serving components: their common outputs and children. Not a component itself
    (no type token of its own, not exported): each subclass registers under its own."""

    service_name: pulumi.Output[str]
    """Name of the Service clients call: a ClusterIP Service (of the leaders, on a
    MultiNodeVllmService) or the Knative Service."""
    endpoint: pulumi.Output[str]
    """In-cluster base URL of the OpenAI-compatible API (``.../v1``)."""
    served_model_name: pulumi.Output[str]
    """Model name clients send."""
    api_key: pulumi.Output[str]
    """The API key (secret)."""
    selector_labels: pulumi.Output[dict[str, str]]
    """Labels selecting the pods that serve (on a MultiNodeVllmService, the leaders)."""
    namespace: pulumi.Output[str]
    """Namespace of the server's objects."""
    api_key_secret_name: pulumi.Output[str]
    """Name of the Secret holding the API key (for clients' ``secretKeyRef``)."""
    api_key_secret_key: pulumi.Output[str]
    """Key of the API key inside that Secret."""

    def __init__(self, component: str, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None):
        """Register as ``llmstack:index:<component>`` and create the first child of every server, its
        API-key Secret. ``args``: already validated (``validation.validate_args``)."""
        super().__init__(type_token(component), name, {}, opts)
        # What every child shares; private (not outputs: the analyzer takes annotated attributes only).
        self._server_name = name
        self._server_namespace = args["namespace"]
        self._server_labels = labels(name, SERVER_COMPONENT)
        self._server_selector = selector_labels(name)
        self._child_opts = pulumi.ResourceOptions(parent=self)

        key_secret, api_key = api_key_secret(
            name, args["namespace"], self._server_labels, args.get("api_key"), parent=self
        )
        # Plain facts (known at preview, not outputs) for GpuAutoscaling and the wiring helpers.
        self.facts = ServerFacts.of(component, name, args)
        self.served_model_name = pulumi.Output.from_input(args["engine"]["served_model_name"])
        self.api_key = api_key
        self.selector_labels = pulumi.Output.from_input(self._server_selector)
        self.namespace = pulumi.Output.from_input(args["namespace"])
        self.api_key_secret_name = key_secret.metadata["name"]
        self.api_key_secret_key = pulumi.Output.from_input(API_KEY_SECRET_KEY)

    def weights_streaming(self, source: ObjectStorageArgs | None) -> ObjectStoragePod | None:
        """The pod's access to weights in a bucket (credentials Secret and env), or None for a cache volume."""
        if not source:
            return None
        return object_storage_access(
            self._server_name, self._server_namespace, self._server_labels, source, parent=self
        )

    def client_service(self) -> k8s.core.v1.Service:
        """``<name>-svc``: the ClusterIP Service of the serving pods; sets ``service_name`` and ``endpoint``."""
        name, ns = self._server_name, self._server_namespace
        service = k8s.core.v1.Service(
            f"{name}-svc",
            # Not awaited: the workload's await already proves the pods ready, and a Service of a
            # model scaled to zero has no endpoint to wait for.
            metadata={
                "name": name,
                "namespace": ns,
                "labels": self._server_labels,
                "annotations": skip_await_annotation(),
            },
            spec={
                "type": "ClusterIP",
                "selector": self._server_selector,
                "ports": [{"name": PORT_NAME, "port": HTTP_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
            },
            opts=self._child_opts,
        )
        self.service_name = service.metadata["name"]
        self.endpoint = pulumi.Output.concat(
            "http://", service.metadata["name"], ".", ns, ".svc.cluster.local:", str(HTTP_PORT), "/v1"
        )
        return service

    def disruption_budget(self, max_unavailable: int, selector: dict) -> k8s.policy.v1.PodDisruptionBudget:
        """``<name>-pdb`` over the pods ``selector`` picks (the caller says why those)."""
        return k8s.policy.v1.PodDisruptionBudget(
            f"{self._server_name}-pdb",
            metadata={"name": self._server_name, "namespace": self._server_namespace, "labels": self._server_labels},
            spec={"maxUnavailable": max_unavailable, "selector": selector},
            opts=self._child_opts,
        )

    def network_policy(self, ingress: list[dict]) -> k8s.networking.v1.NetworkPolicy:
        """``<name>-netpol``: the serving pods admit ``ingress`` only."""
        return k8s.networking.v1.NetworkPolicy(
            f"{self._server_name}-netpol",
            metadata={"name": self._server_name, "namespace": self._server_namespace, "labels": self._server_labels},
            spec={
                "podSelector": {"matchLabels": self._server_selector},
                "policyTypes": ["Ingress"],
                "ingress": ingress,
            },
            opts=self._child_opts,
        )

    def serving_outputs(self) -> dict[str, pulumi.Output]:
        """The outputs every serving component registers (its own are added to them)."""
        return {
            "service_name": self.service_name,
            "endpoint": self.endpoint,
            "served_model_name": self.served_model_name,
            "api_key": self.api_key,
            "selector_labels": self.selector_labels,
            "namespace": self.namespace,
            "api_key_secret_name": self.api_key_secret_name,
            "api_key_secret_key": self.api_key_secret_key,
        }
