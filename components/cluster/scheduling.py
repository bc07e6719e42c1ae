"""The GPU scheduling contract: how a serving pod lands on a GPU node.

GpuNodePool produces it; every serving component consumes it, so no serving component
hard-codes a node selector, toleration or GPU resource name.
"""

from typing import TypedDict

import pulumi
from typing_extensions import NotRequired

from ..sizing.gpu_fit import GpuCapacityArgs

#: The extended resource the NVIDIA device plugin advertises for a whole GPU.
WHOLE_GPU_RESOURCE = "nvidia.com/gpu"


class TolerationArgs(TypedDict):
    """A Kubernetes toleration."""

    key: pulumi.Input[str]
    """The taint key the toleration matches."""
    operator: NotRequired[pulumi.Input[str]]
    """``Exists`` or ``Equal`` (default ``Exists``)."""
    value: NotRequired[pulumi.Input[str]]
    """The taint value, with ``operator: Equal``."""
    effect: NotRequired[pulumi.Input[str]]
    """``NoSchedule``, ``PreferNoSchedule`` or ``NoExecute``; empty matches all effects."""


class SchedulingContractArgs(TypedDict):
    """Where GPU pods must run and what they must request there."""

    gpu_resource_name: pulumi.Input[str]
    """Extended resource a pod requests per GPU (``nvidia.com/gpu``, or the renamed shared/MIG resource)."""
    gpu_capacity: NotRequired[GpuCapacityArgs]
    """What a pod can get from the pool (``GpuNodePool.capacity``), plain on purpose: with it the
    serving components refuse, at preview, a model that cannot fit (``llmstack_k8s.gpu_fit``)."""
    node_selector: NotRequired[pulumi.Input[dict[str, pulumi.Input[str]]]]
    """Node labels a GPU pod must match."""
    tolerations: NotRequired[pulumi.Input[list[pulumi.Input[TolerationArgs]]]]
    """Tolerations for the GPU nodes' taints."""
    runtime_class_name: NotRequired[pulumi.Input[str]]
    """RuntimeClass for GPU pods (``nvidia`` where containerd needs the NVIDIA runtime selected)."""
    priority_class_name: NotRequired[pulumi.Input[str]]
    """PriorityClass for serving pods."""
    gpu_shared: NotRequired[bool]
    """Pods share physical GPUs (time-slicing or MPS): the device plugin hands each one a replica
    of a GPU (device id ``<uuid>::<n>``), which the DCGM exporter must be told to map to pods."""


def default_contract() -> SchedulingContractArgs:
    """Whole GPUs on nodes tainted ``nvidia.com/gpu:NoSchedule`` (the managed-cluster default)."""
    return {
        "gpu_resource_name": WHOLE_GPU_RESOURCE,
        "tolerations": [{"key": WHOLE_GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
    }


def apply_contract(pod_spec: dict, contract: SchedulingContractArgs | None) -> dict:
    """Copy the contract's placement fields into a pod spec (resources are set by the caller)."""
    c = contract or default_contract()
    for src, dst in (
        ("node_selector", "nodeSelector"),
        ("tolerations", "tolerations"),
        ("runtime_class_name", "runtimeClassName"),
        ("priority_class_name", "priorityClassName"),
    ):
        value = c.get(src)
        if value is not None:
            pod_spec[dst] = value
    return pod_spec
