"""InferenceObjective: the priority of one served name's requests in its model's InferencePool.

The Gateway API Inference Extension's ``InferenceObjective`` (``inference.networking.x-k8s.io/v1alpha2``,
the version the pinned Endpoint Picker v1.5.0 reads) gives the requests that name it a ``priority``
within one pool. Upstream's meaning (CRD and picker source at v1.5.0): higher is served first when
requests queue; requests without an objective run at 0; a negative priority is *sheddable*: the
picker refuses such a request outright while the pool is saturated. Priorities compare only requests
of the same pool, so per served name they order a model's base name and its LoRA adapters; on a
model with one served name only the sign matters (negative: shed under saturation).

What selects it: the picker looks the objective up by ``metadata.name`` from the request header
``x-gateway-inference-objective``, among the objectives whose ``poolRef`` names its own pool. The
stack names each objective after its served name, and the body-based router (``BodyRouter``) copies
the body's ``model`` into that header, so a client sends nothing but the body. Hence a served name
with a priority must be a Kubernetes object name (lower case, digits, ``-`` and ``.``).
"""

import re
from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s

from .._core.package import labels

OBJECTIVE_API = "inference.networking.x-k8s.io/v1alpha2"
#: Header the Endpoint Picker reads to find the request's InferenceObjective (by its name).
OBJECTIVE_HEADER = "x-gateway-inference-objective"
#: The picker only loads objectives whose poolRef names its pool in this group.
POOL_GROUP = "inference.networking.k8s.io"
#: A Kubernetes object name (DNS subdomain), what an objective's name must be.
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: The CRD's ``priority`` is any int; priorities are levels (upstream's examples: 10, 0, -10), and a
#: bound keeps a typo (an extra digit, a timestamp) from passing as one.
PRIORITY_RANGE = (-1000, 1000)


class InferenceObjectiveArgs(TypedDict):
    """The priority of one served name's requests in the pool."""

    served_model_name: str
    """The ``model`` clients send (base model or LoRA adapter); names the objective. Plain: it names an object."""
    priority: int
    """Higher is served first when requests queue; negative is shed while the pool is saturated.
    Plain: checked at preview."""


def objective_name_problem(served_name: str) -> str | None:
    """Why a served name cannot name an InferenceObjective, or None."""
    if len(served_name) > 253 or not _OBJECT_NAME.match(served_name):
        return (
            f"{served_name!r} cannot name an InferenceObjective (the picker finds a request's priority by the "
            "objective's name, which the body-based router takes from the body's model): use lower case letters, "
            "digits, '-' and '.' only"
        )
    return None


def priority_problem(priority: int) -> str | None:
    low, high = PRIORITY_RANGE
    if not low <= priority <= high:
        return f"{priority} is outside {low}..{high}"
    return None


def inference_objective(
    resource_name: str,
    instance: str,
    namespace: pulumi.Input[str],
    pool_name: pulumi.Input[str],
    objective: InferenceObjectiveArgs,
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """One InferenceObjective named after its served name, pointing at the pool (same namespace);
    ``instance`` is the pool component's name (its label)."""
    served = objective["served_model_name"]
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=OBJECTIVE_API,
        kind="InferenceObjective",
        metadata={
            "name": served,
            "namespace": namespace,
            "labels": labels(instance, "inference-objective", app="inference-objective"),
        },
        spec={
            "priority": objective["priority"],
            "poolRef": {"group": POOL_GROUP, "kind": "InferencePool", "name": pool_name},
        },
        opts=opts,
    )
