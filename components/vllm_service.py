"""VllmService: an always-on vLLM OpenAI-compatible server (Deployment + Service and guards)."""

from typing import Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .api_key import api_key_secret
from .awaits import SCHEDULING_SECONDS, deployment_await_seconds, pod_ready_seconds, skip_await_annotation, startup_probe_seconds, timeout_annotation
from .package import CANARY_VARIANT, VARIANT_OF_POD_LABEL, VARIANT_POD_LABEL, labels, selector_labels, server_pod_selector, type_token
from .validation import validate_args
from .gpu_fit import check_serving_fit
from .vllm_flags import check_extra_args
from .object_storage import ObjectStorageArgs, check_weights_source, object_storage_access
from .vllm_pod import API_KEY_SECRET_KEY
from .wiring import ServerFacts, register_server
from .scheduling import SchedulingContractArgs
from .vllm_pod import (
    serving_pod_inputs,
    HTTP_PORT,
    PORT_NAME,
    ResourcesArgs,
    VllmEngineArgs,
    vllm_pod_spec,
)


class RolloutArgs(TypedDict):
    """How a new version replaces the old one on scarce GPUs."""

    max_surge: NotRequired[int]
    """Extra pods during a rollout (default 0: a rollout never needs a spare GPU node)."""
    max_unavailable: NotRequired[int]
    """Pods that may be down during a rollout or voluntary disruption (default 1)."""


class NetworkArgs(TypedDict):
    """Who may reach the server's port (API and /metrics share it; ``--api-key`` guards /v1 only)."""

    client_namespaces: NotRequired[list[pulumi.Input[str]]]
    """Namespaces whose pods may call the API (the gateway's, the apps'); the server's own namespace is always allowed."""
    monitoring_namespaces: NotRequired[list[pulumi.Input[str]]]
    """Namespaces whose pods may scrape /metrics (Prometheus, e.g. ``Observability.namespace``)."""


def namespace_selector(names: list[pulumi.Input[str]]) -> dict:
    """A NetworkPolicy peer admitting pods of these namespaces (sorted, deduplicated; Outputs resolved)."""
    values = pulumi.Output.all(*names).apply(lambda ns: sorted(set(ns)))
    return {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": values}]}}


class VllmServiceArgs(TypedDict):
    """Arguments of a VllmService."""

    namespace: pulumi.Input[str]
    """Namespace of every object."""
    engine: VllmEngineArgs
    """vLLM engine options (served name, parallelism, context length, ...)."""
    model_path: NotRequired[pulumi.Input[str]]
    """Path of the weights inside the cache volume (``ModelCache.model_path``); with ``cache_claim_name``,
    unless the weights are in ``object_storage``."""
    cache_claim_name: NotRequired[pulumi.Input[str]]
    """PersistentVolumeClaim holding the weights (``ModelCache.claim_name``)."""
    object_storage: NotRequired[ObjectStorageArgs]
    """Weights in a bucket instead of a cache volume: every replica streams them with vLLM's Run:ai
    model streamer (no ModelCache, no wait for a download; credentials and endpoint here)."""
    replicas: NotRequired[int]
    """Replicas (default 1). Ignored when ``autoscaled``."""
    autoscaled: NotRequired[bool]
    """An autoscaler (KEDA's HPA) owns the replica count: ``spec.replicas`` is left unset, so a
    later ``pulumi up`` never resets what the autoscaler chose (default false). Plain, not an
    Input: it decides the Deployment's shape, and GpuAutoscaling checks it, at preview."""
    max_replicas: NotRequired[int]
    """With ``autoscaled``: the most replicas the autoscaler may run (default ``replicas``); a
    rollout replaces them in waves, and ``pulumi up`` waits for all of them."""
    image: NotRequired[pulumi.Input[str]]
    """vLLM image (default: the pinned, verified one)."""
    resources: NotRequired[ResourcesArgs]
    """CPU and memory of the server container."""
    scheduling: NotRequired[SchedulingContractArgs]
    """GPU scheduling contract from a GpuNodePool (default: whole ``nvidia.com/gpu`` with its taint);
    its ``gpu_capacity`` turns on the GPU fit checks."""
    weights_gib: NotRequired[float]
    """Size of the weights in GPU memory, GiB (plain: checked at preview). With the contract's
    ``gpu_capacity`` the service refuses weights that leave no room for a KV cache; for a catalogued
    model ``llmstack_k8s.model_catalog.estimated_weights_gib(model_id)`` estimates it."""
    startup_budget_seconds: NotRequired[int]
    """Seconds the server may take to load before it is restarted (default 1800)."""
    warmup: NotRequired[bool]
    """A new replica answers one real completion (one token, its own API key) before it is Ready:
    the startup probe sends it, so readiness waits for it (default true; false: ``/health`` only)."""
    scheduling_seconds: NotRequired[int]
    """Seconds before a new pod's container starts: node provisioning and image pull
    (``llmstack_k8s.cold_start.cold_start_budget(...).scheduling_seconds``); the progress deadline
    and ``pulumi up``'s wait add it to the startup budget (default: the cold-start defaults, 600)."""
    shm_size: NotRequired[str]
    """Size of the memory-backed /dev/shm (default from the parallelism)."""
    api_key: NotRequired[pulumi.Input[str]]
    """API key clients must send; generated (pulumi-random) when not given."""
    extra_env: NotRequired[dict[str, pulumi.Input[str]]]
    """Escape hatch: further environment variables of the server."""
    rollout: NotRequired[RolloutArgs]
    """Rollout and disruption settings."""
    network: NotRequired[NetworkArgs]
    """NetworkPolicy settings."""
    pod_annotations: NotRequired[dict[str, pulumi.Input[str]]]
    """Annotations on the pods."""
    canary_of: NotRequired[str]
    """This server is the canary variant of that model (its name): its pods carry
    ``llmstack.dev/variant: canary`` and ``llmstack.dev/variant-of: <model>``, which the PodMonitor
    turns into the series' ``variant`` and model labels. Its own name (selectors) stays its own."""


class VllmService(pulumi.ComponentResource):
    """A vLLM server as a Deployment behind a ClusterIP Service, with its API-key Secret,
    PodDisruptionBudget and NetworkPolicy."""

    service_name: pulumi.Output[str]
    """Name of the ClusterIP Service."""
    deployment_name: pulumi.Output[str]
    """Name of the Deployment (the autoscaling target)."""
    endpoint: pulumi.Output[str]
    """In-cluster base URL of the OpenAI-compatible API (``.../v1``)."""
    served_model_name: pulumi.Output[str]
    """Model name clients send."""
    api_key: pulumi.Output[str]
    """The API key (secret)."""
    selector_labels: pulumi.Output[dict[str, str]]
    """Labels selecting this server's pods."""
    namespace: pulumi.Output[str]
    """Namespace of the server's objects."""
    api_key_secret_name: pulumi.Output[str]
    """Name of the Secret holding the API key (for clients' ``secretKeyRef``)."""
    api_key_secret_key: pulumi.Output[str]
    """Key of the API key inside that Secret."""

    def __init__(self, name: str, args: VllmServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("VllmService", name, args, VllmServiceArgs)
        check_extra_args("VllmService", name, args["engine"])
        source = check_weights_source("VllmService", name, args)  # cache volume or object storage
        check_serving_fit("VllmService", name, args)
        super().__init__(type_token("VllmService"), name, {}, opts)
        ns = args["namespace"]
        engine = args["engine"]
        sel = selector_labels(name)
        meta_labels = labels(name, "server")
        child = pulumi.ResourceOptions(parent=self)

        key_secret, api_key = api_key_secret(name, ns, meta_labels, args.get("api_key"), parent=self)

        streaming = object_storage_access(name, ns, meta_labels, source, parent=self) if source else None
        pod_spec = vllm_pod_spec(serving_pod_inputs(args, key_secret.metadata["name"], args.get("startup_budget_seconds"), streaming))
        # Spread replicas over GPU nodes, but never leave a pod pending for it (GPUs are scarce).
        pod_spec["topologySpreadConstraints"] = [
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": sel}}
        ]
        rollout = args.get("rollout") or {}
        max_unavailable = rollout.get("max_unavailable", 1)
        max_surge = rollout.get("max_surge", 0)
        budget = startup_probe_seconds(pod_spec)  # the startup probe's budget, as the pod carries it
        variant_labels = {VARIANT_POD_LABEL: CANARY_VARIANT, VARIANT_OF_POD_LABEL: args["canary_of"]} if args.get("canary_of") else {}
        most_replicas = args.get("max_replicas", args.get("replicas", 1)) if args.get("autoscaled") else args.get("replicas", 1)
        scheduling = args.get("scheduling_seconds", SCHEDULING_SECONDS)

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deploy",
            metadata={
                "name": name,
                "namespace": ns,
                "labels": meta_labels,
                # pulumi up waits for the rollout: every wave may need a node, the image and the whole startup budget.
                "annotations": timeout_annotation(deployment_await_seconds(budget, most_replicas, max_surge, max_unavailable, scheduling)),
            },
            spec={
                **({} if args.get("autoscaled") else {"replicas": args.get("replicas", 1)}),
                "selector": {"matchLabels": sel},
                # maxSurge 0: the new pod takes the old one's GPU, so a rollout never waits for a spare GPU.
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable},
                },
                # A new pod may wait for a node and the image before its startup budget even starts.
                "progressDeadlineSeconds": pod_ready_seconds(budget, scheduling),
                "template": {
                    "metadata": {"labels": {**meta_labels, **variant_labels}, "annotations": args.get("pod_annotations") or {}},
                    "spec": pod_spec,
                },
            },
            opts=child,
        )

        service = k8s.core.v1.Service(
            f"{name}-svc",
            # Not awaited: the Deployment's await already proves the pods ready, and a Service of a
            # model scaled to zero has no endpoint to wait for.
            metadata={"name": name, "namespace": ns, "labels": meta_labels, "annotations": skip_await_annotation()},
            spec={
                "type": "ClusterIP",
                "selector": sel,
                "ports": [{"name": PORT_NAME, "port": HTTP_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
            },
            opts=child,
        )

        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": name, "namespace": ns, "labels": meta_labels},
            # Server pods only: a selector that also matched the download Job's pods would leave
            # the disruption controller without a scale to count, allowing no eviction at all.
            spec={"maxUnavailable": max_unavailable, "selector": {"matchLabels": server_pod_selector(name)}},
            opts=child,
        )

        net = args.get("network") or {}
        allowed = [*net.get("client_namespaces", []), *net.get("monitoring_namespaces", [])]
        sources: list = [{"podSelector": {}}]  # the server's own namespace
        if allowed:
            sources.append(namespace_selector(allowed))
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={"name": name, "namespace": ns, "labels": meta_labels},
            spec={
                "podSelector": {"matchLabels": sel},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": sources, "ports": [{"port": HTTP_PORT, "protocol": "TCP"}]}],
            },
            opts=child,
        )

        self.service_name = service.metadata["name"]
        self.deployment_name = deployment.metadata["name"]
        # Plain facts (known at preview, not outputs) for GpuAutoscaling and the wiring helpers.
        self.facts = ServerFacts.of("VllmService", name, args)
        register_server(self.deployment_name, self.facts)
        self.endpoint = pulumi.Output.concat("http://", service.metadata["name"], ".", ns, ".svc.cluster.local:", str(HTTP_PORT), "/v1")
        self.served_model_name = pulumi.Output.from_input(engine["served_model_name"])
        self.api_key = api_key
        self.selector_labels = pulumi.Output.from_input(sel)
        self.namespace = pulumi.Output.from_input(ns)
        self.api_key_secret_name = key_secret.metadata["name"]
        self.api_key_secret_key = pulumi.Output.from_input(API_KEY_SECRET_KEY)
        self.register_outputs(
            {
                "service_name": self.service_name,
                "deployment_name": self.deployment_name,
                "endpoint": self.endpoint,
                "served_model_name": self.served_model_name,
                "api_key": self.api_key,
                "selector_labels": self.selector_labels,
                "namespace": self.namespace,
                "api_key_secret_name": self.api_key_secret_name,
                "api_key_secret_key": self.api_key_secret_key,
            }
        )
