"""What refers to what: every name an object uses exists (in the stack or declared outside it),
and no name the stack takes is one a controller needs for itself."""

from collections.abc import Mapping, Sequence

from .manifests import containers, describe, get_path, is_core_service, is_leader_worker_set, name_of, namespace_of
from .stack import CLUSTER_SCOPED, Declared, created_namespaces, existing, workloads


def references_exist(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every Secret, ConfigMap, PVC, RuntimeClass, PriorityClass and ServiceAccount a pod refers to,
    and every object a scaler targets, exists in the stack (in the pod's namespace) or is declared
    external. Protects from pods stuck in ContainerCreating or refused at admission, and from a
    scaler that scales nothing."""
    have = existing(manifests, declared)
    problems = []

    def need(kind: str, ns: str | None, name, who: str, optional: bool = False) -> None:
        if name and not optional and (kind, ns, name) not in have:
            problems.append(
                f"{who} refers to {kind} {ns + '/' if ns else ''}{name}, which the stack neither creates nor declares"
            )

    for w in workloads(manifests):
        ns, who, pod = w.namespace, str(w), w.pod
        for v in pod.get("volumes") or []:
            need(
                "Secret",
                ns,
                (v.get("secret") or {}).get("secretName"),
                who,
                (v.get("secret") or {}).get("optional", False),
            )
            need(
                "ConfigMap",
                ns,
                (v.get("configMap") or {}).get("name"),
                who,
                (v.get("configMap") or {}).get("optional", False),
            )
            need("PersistentVolumeClaim", ns, (v.get("persistentVolumeClaim") or {}).get("claimName"), who)
            for src in (v.get("projected") or {}).get("sources") or []:
                need(
                    "Secret",
                    ns,
                    (src.get("secret") or {}).get("name"),
                    who,
                    (src.get("secret") or {}).get("optional", False),
                )
                need(
                    "ConfigMap",
                    ns,
                    (src.get("configMap") or {}).get("name"),
                    who,
                    (src.get("configMap") or {}).get("optional", False),
                )
        for c in containers(pod):
            for e in c.get("env") or []:
                ref = e.get("valueFrom") or {}
                for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    if key in ref:
                        need(kind, ns, ref[key].get("name"), who, ref[key].get("optional", False))
            for e in c.get("envFrom") or []:
                for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                    if key in e:
                        need(kind, ns, e[key].get("name"), who, e[key].get("optional", False))
        for s in pod.get("imagePullSecrets") or []:
            need("Secret", ns, s.get("name"), who)
        need("RuntimeClass", None, pod.get("runtimeClassName"), who)
        need("ServiceAccount", ns, pod.get("serviceAccountName"), who)  # e.g. the workload identity for object storage
        need("PriorityClass", None, pod.get("priorityClassName"), who)
    for o in manifests:
        spec = o.get("spec") or {}
        if o["kind"] in ("ScaledObject", "HTTPScaledObject"):
            target = spec.get("scaleTargetRef") or {}
            need(target.get("kind", "Deployment"), namespace_of(o), target.get("name"), describe(o))
            if o["kind"] == "HTTPScaledObject":
                need("Service", namespace_of(o), target.get("service"), describe(o))
    return problems


def namespaces_exist(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every namespaced object lands in a namespace the stack creates (a Namespace, or a Helm
    release's createNamespace) or declares; so does every namespace a monitor or NetworkPolicy names.
    Protects from an ``up`` that fails on a missing namespace, objects in the provider's default
    namespace, and a monitor or policy peer that names a namespace nobody made (it matches nothing)."""
    known = created_namespaces(manifests) | set(declared.namespaces)
    problems = []
    for o in manifests:
        if o["kind"] in CLUSTER_SCOPED:
            continue
        ns = namespace_of(o)
        if not ns:
            problems.append(f"{describe(o)} has no namespace: it would land in whatever the provider's default is")
        elif ns not in known:
            problems.append(f"{describe(o)} lands in namespace {ns!r}, which the stack neither creates nor declares")
    for o in manifests:
        spec = o.get("spec") or {}
        named: list[str] = []
        if o["kind"] in ("PodMonitor", "ServiceMonitor"):
            named += (spec.get("namespaceSelector") or {}).get("matchNames") or []
        if o["kind"] == "NetworkPolicy":
            for rule in [*(spec.get("ingress") or []), *(spec.get("egress") or [])]:
                for peer in [*(rule.get("from") or []), *(rule.get("to") or [])]:
                    named += _namespace_names(peer.get("namespaceSelector") or {})
        for ns in sorted(set(named) - known):
            problems.append(f"{describe(o)} names namespace {ns!r}, which the stack neither creates nor declares")
    return problems


def _namespace_names(selector: dict) -> list[str]:
    """Namespaces a namespaceSelector names outright (``kubernetes.io/metadata.name``)."""
    names = [v for k, v in (selector.get("matchLabels") or {}).items() if k == "kubernetes.io/metadata.name"]
    for e in selector.get("matchExpressions") or []:
        if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "In":
            names += e.get("values") or []
    return names


def lws_headless_service_free(objects: Sequence[Mapping], declared: Declared = Declared()) -> list[str]:
    """No Service of the stack has a LeaderWorkerSet's name in its namespace: the LWS controller creates
    the headless Service of that name its pods' DNS names (``LWS_LEADER_ADDRESS``) live in, and keeps
    an existing one as it finds it. Protects from a group whose workers never resolve their leader."""
    services = {(namespace_of(o), name_of(o)) for o in objects if is_core_service(o)}
    return [
        f"{describe(m)}: the Service {get_path(m, 'metadata', 'name')} exists in its namespace, so the LeaderWorkerSet "
        f"controller does not create its headless Service and the group's pods cannot resolve their leader; give the "
        f"LeaderWorkerSet or the Service another name."
        for m in objects
        if is_leader_worker_set(m) and (namespace_of(m), name_of(m)) in services
    ]
