"""VllmService: an always-on vLLM OpenAI-compatible server (Deployment + Service and guards)."""

from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .._core.awaits import (
    SCHEDULING_SECONDS,
    deployment_await_seconds,
    pod_ready_seconds,
    startup_probe_seconds,
    timeout_annotation,
)
from .._core.package import CANARY_VARIANT, VARIANT_OF_POD_LABEL, VARIANT_POD_LABEL, server_pod_selector
from .._core.validation import validate_args
from .._core.wiring import register_server
from ..sizing.gpu_fit import check_serving_fit

# Importable from here as they were before the serving base held them.
from .base import NetworkArgs as NetworkArgs
from .base import ServingComponent, SinglePodServingArgs, api_ingress
from .base import namespace_selector as namespace_selector
from .object_storage import check_weights_source
from .vllm_flags import check_extra_args
from .vllm_pod import serving_pod_inputs, vllm_pod_spec


class RolloutArgs(TypedDict):
    """How a new version replaces the old one on scarce GPUs."""

    max_surge: NotRequired[int]
    """Extra pods during a rollout (default 0: a rollout never needs a spare GPU node)."""
    max_unavailable: NotRequired[int]
    """Pods that may be down during a rollout or voluntary disruption (default 1)."""


class VllmServiceArgs(SinglePodServingArgs):
    """Arguments of a VllmService: those of every serving component (``serving.base``) and its own."""

    replicas: NotRequired[int]
    """Replicas (default 1). Ignored when ``autoscaled``."""
    autoscaled: NotRequired[bool]
    """An autoscaler (KEDA's HPA) owns the replica count: ``spec.replicas`` is left unset, so a
    later ``pulumi up`` never resets what the autoscaler chose (default false). Plain, not an
    Input: it decides the Deployment's shape, and GpuAutoscaling checks it, at preview."""
    max_replicas: NotRequired[int]
    """With ``autoscaled``: the most replicas the autoscaler may run (default ``replicas``); a
    rollout replaces them in waves, and ``pulumi up`` waits for all of them."""
    scheduling_seconds: NotRequired[int]
    """Seconds before a new pod's container starts: node provisioning and image pull
    (``llmstack_k8s.cold_start.cold_start_budget(...).scheduling_seconds``); the progress deadline
    and ``pulumi up``'s wait add it to the startup budget (default: the cold-start defaults, 600)."""
    rollout: NotRequired[RolloutArgs]
    """Rollout and disruption settings."""
    canary_of: NotRequired[str]
    """This server is the canary variant of that model (its name): its pods carry
    ``llmstack.dev/variant: canary`` and ``llmstack.dev/variant-of: <model>``, which the PodMonitor
    turns into the series' ``variant`` and model labels. Its own name (selectors) stays its own."""


class VllmService(ServingComponent):
    """A vLLM server as a Deployment behind a ClusterIP Service, with its API-key Secret,
    PodDisruptionBudget and NetworkPolicy."""

    deployment_name: pulumi.Output[str]
    """Name of the Deployment (the autoscaling target)."""

    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("VllmService", name, args, VllmServiceArgs)
        check_extra_args("VllmService", name, args["engine"])
        source = check_weights_source("VllmService", name, args)  # cache volume or object storage
        check_serving_fit("VllmService", name, args)
        super().__init__("VllmService", name, args, opts)  # and the API-key Secret
        ns = args["namespace"]
        sel, meta_labels = self._server_selector, self._server_labels
        streaming = self.weights_streaming(source)
        pod_spec = vllm_pod_spec(
            serving_pod_inputs(args, self.api_key_secret_name, args.get("startup_budget_seconds"), streaming)
        )
        # Spread replicas over GPU nodes, but never leave a pod pending for it (GPUs are scarce).
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": sel},
            }
        ]
        rollout = args.get("rollout") or {}
        max_unavailable = rollout.get("max_unavailable", 1)
        max_surge = rollout.get("max_surge", 0)
        budget = startup_probe_seconds(pod_spec)  # the startup probe's budget, as the pod carries it
        variant_labels = (
            {VARIANT_POD_LABEL: CANARY_VARIANT, VARIANT_OF_POD_LABEL: args["canary_of"]}
            if args.get("canary_of")
            else {}
        )
        most_replicas = (
            args.get("max_replicas", args.get("replicas", 1)) if args.get("autoscaled") else args.get("replicas", 1)
        )
        scheduling = args.get("scheduling_seconds", SCHEDULING_SECONDS)

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deploy",
            metadata={
                "name": name,
                "namespace": ns,
                "labels": meta_labels,
                # pulumi up waits for the rollout: every wave may need a node, the image and the whole startup budget.
                "annotations": timeout_annotation(
                    deployment_await_seconds(budget, most_replicas, max_surge, max_unavailable, scheduling)
                ),
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
                    "metadata": {
                        "labels": {**meta_labels, **variant_labels},
                        "annotations": args.get("pod_annotations") or {},
                    },
                    "spec": pod_spec,
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.client_service()
        # Server pods only: a selector that also matched the download Job's pods would leave
        # the disruption controller without a scale to count, allowing no eviction at all.
        self.disruption_budget(max_unavailable, {"matchLabels": server_pod_selector(name)})
        self.network_policy(api_ingress(args.get("network")))

        self.deployment_name = deployment.metadata["name"]
        register_server(self.deployment_name, self.facts)
        self.register_outputs({**self.serving_outputs(), "deployment_name": self.deployment_name})
