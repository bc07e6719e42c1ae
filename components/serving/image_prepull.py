"""ImagePrePull: keep the vLLM image on every GPU node before a replica needs it.

A cold replica on a node without the image waits minutes for a ~10 GB pull. A DaemonSet on the
GPU pool's nodes pulls each image once per node (an init container that exits at once) and then
idles in a pause container with tiny requests, so the image stays in the node's cache and the
kubelet's image garbage collector never removes it while the pod runs.
"""

from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .. import versions
from .._core.awaits import pod_ready_seconds, startup_probe_seconds, timeout_annotation
from .._core.package import labels, selector_labels, type_token
from .._core.validation import validate_args
from ..cluster.scheduling import SchedulingContractArgs, default_contract
from .vllm_pod import CONTAINER_SECURITY_CONTEXT

#: ``app.kubernetes.io/name`` of the pre-pull pods: nothing of the servers selects them.
PREPULL_APP = "image-prepull"
#: What the pause container and each pull may use: they do nothing but exist.
TINY_RESOURCES = {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}


class ImagePrePullArgs(TypedDict):
    """Arguments of an ImagePrePull."""

    namespace: pulumi.Input[str]
    """Namespace of the DaemonSet (the serving namespace: its pods meet the restricted Pod Security Standard)."""
    images: NotRequired[list[pulumi.Input[str]]]
    """Images to keep on every GPU node (default: the pinned vLLM image). Each needs ``sh``."""
    scheduling: NotRequired[SchedulingContractArgs]
    """GPU scheduling contract from a GpuNodePool: the DaemonSet runs on the pool's nodes (its node
    selector) and tolerates their taints; it requests no GPU (default: nodes tainted ``nvidia.com/gpu``)."""


class ImagePrePull(pulumi.ComponentResource):
    """A DaemonSet on the GPU nodes that pulls the serving images ahead of the replicas."""

    daemon_set_name: pulumi.Output[str]
    """Name of the pre-pull DaemonSet."""

    def __init__(self, name: str, args: ImagePrePullArgs, opts: pulumi.ResourceOptions | None = None):
        args = validate_args("ImagePrePull", name, args, ImagePrePullArgs)
        super().__init__(type_token("ImagePrePull"), name, {}, opts)
        images = list(args.get("images") or [versions.VLLM_IMAGE])
        contract = args.get("scheduling") or default_contract()
        meta_labels = labels(name, "image-prepull", PREPULL_APP)
        pod_spec: dict = {
            # One init container per image: the kubelet pulls it, the container exits at once.
            "initContainers": [
                {
                    "name": f"pull-{i}",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "exit 0"],
                    "resources": TINY_RESOURCES,
                    "securityContext": CONTAINER_SECURITY_CONTEXT,
                }
                for i, image in enumerate(images)
            ],
            "containers": [
                {
                    "name": "pause",
                    "image": versions.PAUSE_IMAGE,
                    "resources": TINY_RESOURCES,
                    "securityContext": CONTAINER_SECURITY_CONTEXT,
                }
            ],
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
        }
        # Placement only: no GPU request, no runtime class, no serving priority (never preempts a model).
        if contract.get("node_selector") is not None:
            pod_spec["nodeSelector"] = contract["node_selector"]
        if contract.get("tolerations") is not None:
            pod_spec["tolerations"] = contract["tolerations"]
        ds = k8s.apps.v1.DaemonSet(
            f"{name}-ds",
            metadata={
                "name": name,
                "namespace": args["namespace"],
                "labels": meta_labels,
                # Every node pulls at once (maxUnavailable 100%), so one pod start bounds the wait.
                "annotations": timeout_annotation(pod_ready_seconds(startup_probe_seconds(pod_spec))),
            },
            spec={
                "selector": {"matchLabels": selector_labels(name, PREPULL_APP)},
                # A new image version is pulled on every node at once: no serving pod depends on these.
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
                "template": {"metadata": {"labels": meta_labels}, "spec": pod_spec},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.daemon_set_name = ds.metadata["name"]
        self.register_outputs({"daemon_set_name": self.daemon_set_name})
