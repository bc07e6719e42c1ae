"""A rendered stack as the cross-object rules see it: what it declares outside itself, its
workloads (every pod template), which pods a selector or a Service reaches, and what exists."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .._core.testing import RELEASE_TYPE, Rendered, to_manifest
from .manifests import (
    containers,
    is_knative_service,
    is_leader_worker_set,
    matches,
    name_of,
    namespace_of,
    pod_template,
    pod_templates,
)

#: Kinds that live outside any namespace (a namespace on them is ignored by the API server).
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "CSIDriver",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "APIService",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "PriorityLevelConfiguration",
        "FlowSchema",
        "GatewayClass",
        "NodePool",
        "EC2NodeClass",
        "AKSNodeClass",
        "ClusterTriggerAuthentication",
        "VolumeSnapshotClass",
    }
)
KNATIVE_SERVICE_API = "serving.knative.dev/v1"
#: The port name Knative gives the user container's port on the pods it creates.
KNATIVE_USER_PORT = "user-port"
#: Kinds whose pods the rules follow (bare Pods are not rendered by a stack).
_CONTROLLERS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController", "CronJob"}
)


@dataclass(frozen=True)
class Declared:
    """What the stack relies on but does not create, and who it expects to reach its pods."""

    namespaces: frozenset = frozenset()
    """Namespaces that exist already (clients', an existing Prometheus', an existing Knative's)."""
    objects: frozenset = frozenset()
    """``(kind, namespace or None, name)`` of objects created outside the stack (a RuntimeClass the
    GPU operator makes, a Secret the user creates)."""
    scrapers: tuple = ()
    """Namespaces Prometheus scrapes from (every PodMonitor/ServiceMonitor of the stack)."""
    callers: tuple = ()
    """Namespaces whose clients call every Service of the stack on its ports."""
    knative_data_plane: tuple = ()
    """Namespaces of Knative's activator and ingress gateway (they call Knative pods' queue-proxy)."""
    http_interceptors: tuple = ()
    """Namespaces of the KEDA HTTP add-on's interceptor (it calls every HTTPScaledObject's Service)."""
    ingress_controllers: tuple = ()
    """Namespaces of the ingress controller (it calls every Ingress's backend Services)."""
    knative_local_gateways: tuple = ()
    """``(namespace, name)`` of an existing Knative's cluster-local ingress Service (routes to Knative
    models go there); a KnativeServing of the stack brings its own (Kourier's)."""


@dataclass(frozen=True)
class Workload:
    """An object with a pod template."""

    kind: str  # "KnativeService" for serving.knative.dev Services
    namespace: str | None
    name: str
    labels: dict
    pod: dict
    obj: dict

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def manifests_of(rendered: Rendered) -> list[dict]:
    """Every object of a render plus its Helm releases (as ``kind: Release`` manifests)."""
    releases = [to_manifest(r) for r in rendered.registrations if r.type == RELEASE_TYPE]
    return [*rendered.objects, *releases]


def is_ksvc(o: dict) -> bool:
    """A Knative Service (not a bare Configuration): what routes, awaits and the data plane follow."""
    return is_knative_service(o) and o.get("kind") == "Service"


def workloads(manifests: Iterable[dict]) -> list[Workload]:
    """Every controller with a pod template, its labels and pod spec as :func:`pod_template` reads
    them (Knative pods carry Knative's own labels too; a LeaderWorkerSet is its leader's template and
    its workers', ``<name>/worker``)."""
    out = []
    for o in manifests:
        if is_leader_worker_set(o):
            for i, (labels, pod) in enumerate(pod_templates(o)):
                out.append(
                    Workload(
                        "LeaderWorkerSet",
                        namespace_of(o),
                        name_of(o) + ("" if i == 0 else "/worker"),
                        labels,
                        dict(pod),
                        o,
                    )
                )
            continue
        if not (is_ksvc(o) or o.get("kind") in _CONTROLLERS):
            continue
        template = pod_template(o)
        if template:
            labels, pod = template
            kind = "KnativeService" if is_ksvc(o) else o["kind"]
            out.append(Workload(kind, namespace_of(o), name_of(o), labels, dict(pod), o))
    return out


def selected(manifests: list[dict], namespace: str | None, selector: dict | None) -> list[Workload]:
    """The workloads of a namespace whose pods a selector matches (a missing selector: all)."""
    return [w for w in workloads(manifests) if w.namespace == namespace and matches(selector, w.labels)]


def named_ports(w: Workload) -> dict[str, int]:
    """Port name -> number on the pods of a workload (Knative renames the user container's port)."""
    if w.kind == "KnativeService":
        ports = [p for c in w.pod.get("containers") or [] for p in c.get("ports") or []]
        return {KNATIVE_USER_PORT: ports[0]["containerPort"]} if ports else {}
    return {p["name"]: p["containerPort"] for c in containers(w.pod) for p in c.get("ports") or [] if p.get("name")}


def resolve_port(w: Workload, port) -> int | None:
    return port if isinstance(port, int) else named_ports(w).get(port)


def service_targets(manifests: list[dict], svc: dict, port_ref=None) -> Iterator[tuple[Workload, int]]:
    """(workload, container port) a Service's ports (only ``port_ref``'s, by name or number) reach."""
    spec = svc.get("spec") or {}
    for p in spec.get("ports") or []:
        if port_ref is not None and port_ref not in (p.get("name"), p.get("port")):
            continue
        for w in selected(manifests, namespace_of(svc), {"matchLabels": spec.get("selector") or {}}):
            port = resolve_port(w, p.get("targetPort", p.get("port")))
            if port is not None:
                yield w, port


def created_namespaces(manifests: Iterable[dict]) -> set[str | None]:
    """Namespaces the stack creates: its Namespaces and its Helm releases' createNamespace."""
    out = {name_of(o) for o in manifests if o["kind"] == "Namespace"}
    return out | {namespace_of(o) for o in manifests if o["kind"] == "Release" and o.get("createNamespace")}


def existing(manifests: Iterable[dict], declared: Declared) -> set[tuple]:
    """``(kind, namespace or None, name)`` of every object the stack creates or declares."""
    have = {(o["kind"], None if o["kind"] in CLUSTER_SCOPED else namespace_of(o), name_of(o)) for o in manifests}
    return have | set(declared.objects)
