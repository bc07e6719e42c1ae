"""What selects what: PodDisruptionBudgets and Services against the stack's pod templates."""

from collections.abc import Mapping, Sequence

from .manifests import (
    describe,
    get_path,
    is_core_service,
    is_knative_service,
    is_leader_worker_set,
    name_of,
    namespace_of,
    pod_templates,
    selector_matches,
)
from .stack import Declared, resolve_port, selected

#: Controllers with a scale the disruption controller can read (Knative revisions are Deployments).
SCALABLE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController")


def pdb_selects_one_controller(objects: Sequence[Mapping], declared: Declared = Declared()) -> list[str]:
    """Each PodDisruptionBudget selects the pods of exactly one scalable controller in its namespace.
    Protects from a budget that protects nothing (selects no pods: a PDB without a selector selects
    none), and from one over several controllers or a Job's pods: the disruption controller then finds
    no single scale to count, allows no eviction, and drains, node upgrades and consolidation block."""
    objects = [o for o in objects if o.get("kind") != "Release"]
    workloads = [(m, t[0]) for m in objects for t in pod_templates(m)]
    problems = []
    for pdb in objects:
        if pdb.get("kind") != "PodDisruptionBudget":
            continue
        selector = get_path(pdb, "spec", "selector")
        ns = namespace_of(pdb)
        hits = list(
            {
                id(m): m for m, labels in workloads if namespace_of(m) == ns and selector_matches(selector, labels)
            }.values()
        )
        if not hits:
            problems.append(
                f"{describe(pdb)} selects no pods of any workload in the stack: make spec.selector the "
                f"labels of the server's pod template."
            )
        elif len(hits) > 1:
            problems.append(
                f"{describe(pdb)} selects the pods of {len(hits)} workloads ({', '.join(describe(h) for h in hits)}): "
                f"narrow spec.selector (e.g. add app.kubernetes.io/component) or give the other workloads' pods "
                f"labels of their own."
            )
        elif (
            hits[0].get("kind") not in SCALABLE_KINDS
            and not is_knative_service(hits[0])
            and not is_leader_worker_set(hits[0])
        ):
            problems.append(
                f"{describe(pdb)} selects the pods of {describe(hits[0])}, which has no scale the disruption "
                f"controller can count: select a Deployment's or StatefulSet's pods, or drop the budget."
            )
    return problems


def services_select_templates(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """A Service selects pods of a template in the stack, only templates that serve its target
    ports; an ExternalName Service names a Service the stack (or a release of it) provides.
    Protects from a Service with no endpoints (a label typo: every call fails) and from one whose
    named target port some selected pods lack (calls to those pods are refused)."""
    problems = []
    services = {(namespace_of(o), name_of(o)) for o in manifests if is_core_service(o)}
    release_namespaces = {namespace_of(o) for o in manifests if o["kind"] == "Release"}
    for svc in (o for o in manifests if is_core_service(o)):
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            host = spec.get("externalName", "")
            parts = host.split(".")
            if host.endswith(".svc.cluster.local") and len(parts) == 5:
                target = (parts[1], parts[0])
                known = target in services or ("Service", parts[1], parts[0]) in declared.objects
                if not known and parts[1] not in release_namespaces:
                    problems.append(f"{describe(svc)} points at {host}, which nothing in the stack provides")
            continue
        if not spec.get("selector"):
            continue  # endpoints managed by hand
        pods = selected(manifests, namespace_of(svc), {"matchLabels": spec["selector"]})
        if not pods:
            problems.append(f"{describe(svc)} selects no pod template of the stack ({spec['selector']})")
        for w in pods:
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                if isinstance(target, str) and resolve_port(w, target) is None:
                    problems.append(f"{describe(svc)} selects pods of {w}, which have no port named {target!r}")
    return problems
