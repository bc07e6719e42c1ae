"""Team: one tenant of a shared GPU cluster — its namespace, quota, container defaults, API key and
network boundary. The team's models are ordinary serving components placed in ``namespace`` with
``api_key``; :func:`quota_problems` tells, at preview, whether they fit the quota at their most.
"""

from dataclasses import dataclass
from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from typing_extensions import NotRequired

from .._core.package import MANAGED_BY, type_token
from .._core.validation import validate_args
from .scheduling import WHOLE_GPU_RESOURCE

#: Label on a team's namespace: what the network boundary and the cross-object checks look for.
TEAM_LABEL = "llmstack.dev/team"
#: Requests and limits a container gets when it states none (a quota on requests.cpu/memory
#: refuses a pod without them; the LimitRange fills them in instead).
DEFAULT_CONTAINER_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_CONTAINER_LIMITS = {"memory": "512Mi"}


class TeamQuotaArgs(TypedDict):
    """What a team's namespace may request in total (a key left out is not limited)."""

    gpus: NotRequired[int]
    """GPUs (``requests.<gpu resource name>``: whole GPUs, or shared/MIG slices under their resource name)."""
    cpu: NotRequired[pulumi.Input[str]]
    """CPU requests, a Kubernetes quantity (``64``)."""
    memory: NotRequired[pulumi.Input[str]]
    """Memory requests, a Kubernetes quantity (``512Gi``)."""
    storage: NotRequired[pulumi.Input[str]]
    """Requested storage of all PersistentVolumeClaims (``2Ti``)."""


class TeamArgs(TypedDict):
    """Arguments of a Team."""

    namespace: str
    """The team's namespace, created and owned by the Team (plain: it names the objects at preview)."""
    quota: TeamQuotaArgs
    """The team's ResourceQuota."""
    gpu_resource_name: NotRequired[str]
    """Extended resource the quota counts GPUs in (``GpuNodePool``'s resource name; default ``nvidia.com/gpu``).
    Plain: it is part of the quota's key."""
    api_key: NotRequired[pulumi.Input[str]]
    """API key of the team's models; generated (pulumi-random) when not given."""


class Team(pulumi.ComponentResource):
    """A team's namespace with its ResourceQuota, LimitRange, API key and a NetworkPolicy that
    admits nothing from other namespaces unless a model's own policy names the caller."""

    namespace: pulumi.Output[str]
    """Name of the team's namespace (models go there)."""
    api_key: pulumi.Output[str]
    """The team's API key (secret): pass it to the team's serving components."""
    quota_name: pulumi.Output[str]
    """Name of the ResourceQuota."""

    def __init__(self, name: str, args: TeamArgs, opts: pulumi.ResourceOptions | None = None):
        args = validate_args("Team", name, args, TeamArgs)
        super().__init__(type_token("Team"), name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        team_labels = {**MANAGED_BY, TEAM_LABEL: name}
        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={
                "name": args["namespace"],
                "labels": {**team_labels, "pod-security.kubernetes.io/enforce": "restricted"},
            },
            opts=child,
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        namespace = ns.metadata["name"]
        q = args["quota"]
        hard: dict = {}
        if q.get("gpus") is not None:
            hard[f"requests.{args.get('gpu_resource_name') or WHOLE_GPU_RESOURCE}"] = str(q["gpus"])
        for key, quota_key in (("cpu", "requests.cpu"), ("memory", "requests.memory"), ("storage", "requests.storage")):
            value = q.get(key)
            if value is not None:
                hard[quota_key] = value
        quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata={"name": name, "namespace": namespace, "labels": team_labels},
            spec={"hard": hard},
            opts=in_ns,
        )
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata={"name": name, "namespace": namespace, "labels": team_labels},
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "defaultRequest": DEFAULT_CONTAINER_REQUESTS,
                        "default": DEFAULT_CONTAINER_LIMITS,
                    }
                ]
            },
            opts=in_ns,
        )
        # The boundary: every pod of the team is isolated for ingress and reachable from its own
        # namespace; a model's own NetworkPolicy adds its declared callers and scrapers.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-boundary",
            metadata={"name": f"{name}-boundary", "namespace": namespace, "labels": team_labels},
            spec={"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]},
            opts=in_ns,
        )
        if args.get("api_key") is not None:
            api_key = pulumi.Output.secret(args["api_key"])
        else:
            api_key = pulumi.Output.secret(
                random.RandomPassword(f"{name}-api-key", length=48, special=False, opts=child).result
            )
        self.namespace = namespace
        self.api_key = api_key
        self.quota_name = quota.metadata["name"]
        self.register_outputs({"namespace": self.namespace, "api_key": self.api_key, "quota_name": self.quota_name})


@dataclass(frozen=True)
class Footprint:
    """What one model of a team may request at its most: ``pods`` pods of ``gpus``/``cpu``/``memory`` each."""

    name: str
    pods: int
    gpus: int
    cpu_cores: float
    memory_gib: float
    storage_gib: float


def quota_problems(quota: dict, footprints: list[Footprint]) -> list[str]:
    """Each quota resource the models overflow, with the figures (``quota`` in GPUs, cores, GiB)."""
    problems = []
    for key, unit, per in (
        ("gpus", "GPU(s)", lambda f: f.pods * f.gpus),
        ("cpu", "CPU cores", lambda f: f.pods * f.cpu_cores),
        ("memory", "GiB memory", lambda f: f.pods * f.memory_gib),
        ("storage", "GiB storage", lambda f: f.storage_gib),
    ):
        limit = quota.get(key)
        if limit is None:
            continue
        need = sum(per(f) for f in footprints)
        if need > limit + 1e-9:
            parts = " + ".join(
                f"{f.name} {f.storage_gib:g}" if key == "storage" else f"{f.name} {f.pods} pod(s) x {per(f) / f.pods:g}"
                for f in footprints
            )
            problems.append(f"{key}: the models need {need:g} {unit} ({parts}) but the quota allows {limit:g}")
    return problems
