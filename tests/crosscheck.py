"""Cross-object checks over a whole rendered stack: what selects what, what refers to what,
who may reach whom, and whether ``pulumi up`` waits long enough.

Schema validation sees one object at a time; these rules see them together. Every rule is a plain
function over a list of manifests (Kubernetes objects as dicts, plus Helm releases as ``kind:
Release`` manifests, the shape ``llmstack_k8s.testing.to_manifest`` gives a Release registration)
and a ``Declared`` (what the stack says exists outside it, and who calls and scrapes it). Each
returns a list of problems, one sentence each naming the object: empty means fine. Nothing here
knows our stack files, so a policy pack (or a test of another program) can run the same rules.

    problems = check_all(manifests, Declared(namespaces={"default"}, scrapers=("monitoring",)))
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

from llmstack_k8s.awaits import (
    DEFAULT_AWAIT_SECONDS,
    DEFAULT_HELM_TIMEOUT_SECONDS,
    SCHEDULING_SECONDS,
    SKIP_AWAIT_ANNOTATION,
    TIMEOUT_ANNOTATION,
    WAIT_FOR_ANNOTATION,
    startup_probe_seconds as startup_seconds,
)
from llmstack_k8s import checks
from llmstack_k8s.inference_objective import OBJECTIVE_HEADER
from llmstack_k8s.model_route import MODEL_NAME_HEADER
from llmstack_k8s.checks import route_timeouts
from llmstack_k8s.knative_vllm_service import QUEUE_PROXY_HTTP_PORT
from llmstack_k8s.observability import DCGM_RESOURCE_NAMES_ENV, DCGM_VIRTUAL_GPUS_ENV
from llmstack_k8s.scheduling import WHOLE_GPU_RESOURCE
from llmstack_k8s.testing import RELEASE_TYPE, Rendered, to_manifest

#: Kinds that live outside any namespace (a namespace on them is ignored by the API server).
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "PriorityClass", "RuntimeClass", "StorageClass", "CSIDriver",
    "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "APIService", "IngressClass",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "PriorityLevelConfiguration", "FlowSchema", "GatewayClass",
    "NodePool", "EC2NodeClass", "AKSNodeClass", "ClusterTriggerAuthentication", "VolumeSnapshotClass",
})
KNATIVE_SERVICE_API = "serving.knative.dev/v1"
#: The port name Knative gives the user container's port on the pods it creates.
KNATIVE_USER_PORT = "user-port"
#: Knative's default ``serving.knative.dev/progress-deadline``.
KNATIVE_DEFAULT_PROGRESS_DEADLINE = 600
#: KEDA's default ``maxReplicaCount``.
KEDA_DEFAULT_MAX_REPLICAS = 100
#: The dcgm-exporter chart's name (releases of it are checked against the GPUs pods request).
DCGM_CHART = "dcgm-exporter"
SHARED_RESOURCE_SUFFIX = ".shared"
#: Services of the stack that clients do not call (an InferencePool's endpoint picker: the Gateway does).
INTERNAL_COMPONENTS = frozenset({"endpoint-picker", "body-based-router"})
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"


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
    namespace: str
    name: str
    labels: dict
    pod: dict
    obj: dict

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Flow:
    """Traffic the stack expects: pods in ``source`` reach ``target``'s pods on ``port``."""

    source: str
    target: Workload
    port: int
    why: str


# --- reading manifests -------------------------------------------------------------------------


def manifests_of(rendered: Rendered) -> list[dict]:
    """Every object of a render plus its Helm releases (as ``kind: Release`` manifests)."""
    releases = [to_manifest(r) for r in rendered.registrations if r.type == RELEASE_TYPE]
    return [*rendered.objects, *releases]


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def namespace_of(obj: dict) -> Optional[str]:
    return obj.get("namespace") if obj["kind"] == "Release" else meta(obj).get("namespace")


def name_of(obj: dict) -> str:
    return obj.get("name") if obj["kind"] == "Release" else meta(obj).get("name")


def ident(obj: dict) -> str:
    ns = namespace_of(obj)
    return f"{obj['kind']} {ns + '/' if ns else ''}{name_of(obj)}"


def annotations(obj: dict) -> dict:
    return meta(obj).get("annotations") or {}


def is_knative_service(obj: dict) -> bool:
    return obj["kind"] == "Service" and obj.get("apiVersion") == KNATIVE_SERVICE_API


def is_core_service(obj: dict) -> bool:
    return obj["kind"] == "Service" and obj.get("apiVersion") == "v1"


#: Kinds whose pods the rules follow (bare Pods are not rendered by a stack).
_CONTROLLERS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController", "CronJob"})


def workloads(manifests: Iterable[dict]) -> list[Workload]:
    """Every controller with a pod template; the labels and pod spec as ``llmstack_k8s.checks`` reads
    them (the policy pack's reading: Knative pods carry Knative's own labels too)."""
    out = []
    for o in manifests:
        if checks.is_leader_worker_set(o):  # multi-node: a group's leader and worker templates (two StatefulSets)
            templates = checks.pod_templates(o)
            for i, (labels, pod) in enumerate(templates):
                out.append(Workload("LeaderWorkerSet", namespace_of(o), name_of(o) + ("" if i == 0 else "/worker"), labels, dict(pod), o))
            continue
        if not (is_knative_service(o) or o["kind"] in _CONTROLLERS):
            continue
        template = checks.pod_template(o)
        if template:
            labels, pod = template
            kind = "KnativeService" if is_knative_service(o) else o["kind"]
            out.append(Workload(kind, namespace_of(o), name_of(o), labels, dict(pod), o))
    return out


def containers(pod: dict) -> list[dict]:
    return [dict(c) for c in checks.containers(pod)]


def matches(selector: Optional[dict], labels: dict) -> bool:
    """A LabelSelector (``matchLabels``/``matchExpressions``) against labels (``checks.selector_matches``);
    here a missing selector selects all (a NetworkPolicy's podSelector)."""
    return checks.selector_matches(selector or {}, labels)


def selected(manifests: list[dict], namespace: str, selector: dict) -> list[Workload]:
    return [w for w in workloads(manifests) if w.namespace == namespace and matches(selector, w.labels)]


def named_ports(w: Workload) -> dict[str, int]:
    """Port name -> number on the pods of a workload (Knative renames the user container's port)."""
    if w.kind == "KnativeService":
        ports = [p for c in w.pod.get("containers") or [] for p in c.get("ports") or []]
        return {KNATIVE_USER_PORT: ports[0]["containerPort"]} if ports else {}
    return {p["name"]: p["containerPort"] for c in containers(w.pod) for p in c.get("ports") or [] if p.get("name")}


def resolve_port(w: Workload, port) -> Optional[int]:
    return port if isinstance(port, int) else named_ports(w).get(port)


def created_namespaces(manifests: Iterable[dict]) -> set[str]:
    out = {name_of(o) for o in manifests if o["kind"] == "Namespace"}
    return out | {namespace_of(o) for o in manifests if o["kind"] == "Release" and o.get("createNamespace")}


def existing(manifests: Iterable[dict], declared: Declared) -> set[tuple]:
    have = {(o["kind"], None if o["kind"] in CLUSTER_SCOPED else namespace_of(o), name_of(o)) for o in manifests}
    return have | set(declared.objects)


def skips_await(obj: dict) -> bool:
    if obj["kind"] == "Release":
        return bool(obj.get("skipAwait"))
    return str(annotations(obj).get(SKIP_AWAIT_ANNOTATION, "")).lower() == "true"


def await_seconds(obj: dict) -> int:
    """How long pulumi-kubernetes waits for the object (``customTimeouts`` are not rendered)."""
    if obj["kind"] == "Release":
        return int(obj.get("timeout") or DEFAULT_HELM_TIMEOUT_SECONDS)
    value = annotations(obj).get(TIMEOUT_ANNOTATION)
    return int(value) if value is not None else DEFAULT_AWAIT_SECONDS


def autoscaler_max(manifests: list[dict], w: Workload) -> Optional[int]:
    """The most replicas a ScaledObject / HPA may give a workload."""
    for o in manifests:
        if namespace_of(o) != w.namespace:
            continue
        spec = o.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        if o["kind"] == "ScaledObject" and target.get("name") == w.name and target.get("kind", "Deployment") == w.kind:
            return spec.get("maxReplicaCount", KEDA_DEFAULT_MAX_REPLICAS)
        if o["kind"] == "HorizontalPodAutoscaler" and target.get("name") == w.name and target.get("kind") == w.kind:
            return spec.get("maxReplicas")
    return None


def scales_to_zero(manifests: list[dict], w: Workload) -> bool:
    return any(
        o["kind"] == "ScaledObject" and namespace_of(o) == w.namespace
        and (o.get("spec") or {}).get("scaleTargetRef", {}).get("name") == w.name
        and (o.get("spec") or {}).get("minReplicaCount", 0) == 0
        for o in manifests
    )


# --- rules ---------------------------------------------------------------------------------------


def pdbs_select_one_scalable_controller(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """A PodDisruptionBudget that selects no pods protects nothing; one that selects the pods of a
    Job (or of two controllers) leaves the disruption controller without a scale to count, and it
    then allows no eviction at all: drains, node upgrades and consolidation block forever."""
    # One source: the policy pack's rule (llmstack_k8s.checks), over the stack's Kubernetes objects.
    return checks.pdb_selects_one_controller([o for o in manifests if o["kind"] != "Release"])


def services_select_templates(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """A Service selects pods of a template in the stack, only templates that serve its target
    ports; an ExternalName Service names a Service the stack (or a release of it) provides."""
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
                    problems.append(f"{ident(svc)} points at {host}, which nothing in the stack provides")
            continue
        if not spec.get("selector"):
            continue  # endpoints managed by hand
        pods = selected(manifests, namespace_of(svc), {"matchLabels": spec["selector"]})
        if not pods:
            problems.append(f"{ident(svc)} selects no pod template of the stack ({spec['selector']})")
        for w in pods:
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                if isinstance(target, str) and resolve_port(w, target) is None:
                    problems.append(f"{ident(svc)} selects pods of {w}, which have no port named {target!r}")
    return problems


def references_exist(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every Secret, ConfigMap, PVC, RuntimeClass and PriorityClass a pod refers to, and every
    object a scaler targets, exists in the stack (in the pod's namespace) or is declared external."""
    have = existing(manifests, declared)
    problems = []

    def need(kind: str, ns: Optional[str], name, who: str, optional: bool = False) -> None:
        if name and not optional and (kind, ns, name) not in have:
            problems.append(f"{who} refers to {kind} {ns + '/' if ns else ''}{name}, which the stack neither creates nor declares")

    for w in workloads(manifests):
        ns, who, pod = w.namespace, str(w), w.pod
        for v in pod.get("volumes") or []:
            need("Secret", ns, (v.get("secret") or {}).get("secretName"), who, (v.get("secret") or {}).get("optional", False))
            need("ConfigMap", ns, (v.get("configMap") or {}).get("name"), who, (v.get("configMap") or {}).get("optional", False))
            need("PersistentVolumeClaim", ns, (v.get("persistentVolumeClaim") or {}).get("claimName"), who)
            for src in (v.get("projected") or {}).get("sources") or []:
                need("Secret", ns, (src.get("secret") or {}).get("name"), who, (src.get("secret") or {}).get("optional", False))
                need("ConfigMap", ns, (src.get("configMap") or {}).get("name"), who, (src.get("configMap") or {}).get("optional", False))
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
            need(target.get("kind", "Deployment"), namespace_of(o), target.get("name"), ident(o))
            if o["kind"] == "HTTPScaledObject":
                need("Service", namespace_of(o), target.get("service"), ident(o))
    return problems


def namespaces_exist(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every namespaced object lands in a namespace the stack creates (a Namespace, or a Helm
    release's createNamespace) or declares; so does every namespace a monitor or NetworkPolicy names."""
    known = created_namespaces(manifests) | set(declared.namespaces)
    problems = []
    for o in manifests:
        if o["kind"] in CLUSTER_SCOPED:
            continue
        ns = namespace_of(o)
        if not ns:
            problems.append(f"{ident(o)} has no namespace: it would land in whatever the provider's default is")
        elif ns not in known:
            problems.append(f"{ident(o)} lands in namespace {ns!r}, which the stack neither creates nor declares")
    for o in manifests:
        spec = o.get("spec") or {}
        named: list[str] = []
        if o["kind"] in ("PodMonitor", "ServiceMonitor"):
            named += (spec.get("namespaceSelector") or {}).get("matchNames") or []
        if o["kind"] == "NetworkPolicy":
            for rule in [*(spec.get("ingress") or []), *(spec.get("egress") or [])]:
                for peer in [*(rule.get("from") or []), *(rule.get("to") or [])]:
                    named += _namespace_names((peer.get("namespaceSelector") or {}))
        for ns in sorted(set(named) - known):
            problems.append(f"{ident(o)} names namespace {ns!r}, which the stack neither creates nor declares")
    return problems


def _namespace_names(selector: dict) -> list[str]:
    names = [v for k, v in (selector.get("matchLabels") or {}).items() if k == "kubernetes.io/metadata.name"]
    for e in selector.get("matchExpressions") or []:
        if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "In":
            names += e.get("values") or []
    return names


def declared_flows(manifests: list[dict], declared: Declared) -> list[Flow]:
    """The traffic the declaration implies: Prometheus scraping every monitored pod on its metrics
    port, callers reaching every Service's pods on its target ports, Knative's data plane reaching
    queue-proxy, the KEDA HTTP interceptor reaching the Services it routes to."""
    flows: list[Flow] = []
    by_name = {(namespace_of(o), name_of(o)): o for o in manifests if is_core_service(o)}
    for mon in (o for o in manifests if o["kind"] in ("PodMonitor", "ServiceMonitor")):
        spec = mon.get("spec") or {}
        names = (spec.get("namespaceSelector") or {}).get("matchNames") or [namespace_of(mon)]
        for ns in names:
            if mon["kind"] == "PodMonitor":
                for w in selected(manifests, ns, spec.get("selector")):
                    for ep in spec.get("podMetricsEndpoints") or []:
                        port = resolve_port(w, ep.get("port") or ep.get("targetPort"))
                        if port is not None:
                            flows += [Flow(s, w, port, f"{ident(mon)} scrapes it") for s in declared.scrapers]
            else:
                for svc in (o for o in manifests if is_core_service(o) and namespace_of(o) == ns and matches(spec.get("selector"), meta(o).get("labels") or {})):
                    for ep in spec.get("endpoints") or []:
                        for w, port in _service_targets(manifests, svc, ep.get("port")):
                            flows += [Flow(s, w, port, f"{ident(mon)} scrapes it") for s in declared.scrapers]
    for svc in (o for o in manifests if is_core_service(o) and (o.get("spec") or {}).get("selector")
                and (meta(o).get("labels") or {}).get("app.kubernetes.io/component") not in INTERNAL_COMPONENTS):
        for w, port in _service_targets(manifests, svc):
            flows += [Flow(c, w, port, f"clients call {ident(svc)}") for c in declared.callers]
    for w in workloads(manifests):
        if w.kind == "KnativeService":
            flows += [Flow(ns, w, QUEUE_PROXY_HTTP_PORT, "Knative's activator/gateway call queue-proxy") for ns in declared.knative_data_plane]
    for o in (o for o in manifests if o["kind"] == "HTTPScaledObject"):
        ref = (o.get("spec") or {}).get("scaleTargetRef") or {}
        svc = by_name.get((namespace_of(o), ref.get("service")))
        if svc is not None:
            for w, port in _service_targets(manifests, svc, ref.get("port")):
                flows += [Flow(ns, w, port, f"the HTTP add-on routes {ident(o)}") for ns in declared.http_interceptors]
    return flows


def _service_targets(manifests: list[dict], svc: dict, port_ref=None) -> Iterator[tuple[Workload, int]]:
    spec = svc.get("spec") or {}
    for p in spec.get("ports") or []:
        if port_ref is not None and port_ref not in (p.get("name"), p.get("port")):
            continue
        for w in selected(manifests, namespace_of(svc), {"matchLabels": spec.get("selector") or {}}):
            port = resolve_port(w, p.get("targetPort", p.get("port")))
            if port is not None:
                yield w, port


def network_policies_admit(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Where NetworkPolicies isolate a pod, some policy admits every flow the stack declares:
    the scrapers on the metrics port, the callers on the API port, Knative's data plane."""
    policies = [o for o in manifests if o["kind"] == "NetworkPolicy"]
    problems = []
    for f in declared_flows(manifests, declared):
        isolating = [
            p for p in policies
            if namespace_of(p) == f.target.namespace and matches((p.get("spec") or {}).get("podSelector"), f.target.labels)
            and "Ingress" in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"])
        ]
        if isolating and not any(_admits(p, f) for p in isolating):
            problems.append(
                f"no NetworkPolicy admits namespace {f.source!r} to {f.target} on port {f.port} ({f.why}); "
                f"isolated by {', '.join(ident(p) for p in isolating)}"
            )
    return problems


def _admits(policy: dict, f: Flow) -> bool:
    for rule in (policy.get("spec") or {}).get("ingress") or []:
        ports = rule.get("ports")
        if ports and not any(resolve_port(f.target, p.get("port")) == f.port or p.get("port") is None for p in ports):
            continue
        peers = rule.get("from")
        if not peers:
            return True
        for peer in peers:
            ns_sel = peer.get("namespaceSelector")
            if ns_sel is None:
                if f.source == namespace_of(policy):  # podSelector alone: the policy's own namespace
                    return True
            elif matches(ns_sel, {"kubernetes.io/metadata.name": f.source}):
                return True
    return False


def awaits_cover_budgets(manifests: list[dict], declared: Declared = Declared(), scheduling_seconds: int = SCHEDULING_SECONDS) -> list[str]:
    """``pulumi up`` waits at least as long as what it waits for may legitimately take: a Job its
    deadline; a Deployment a node, the image and the startup budget per rollout wave (and its
    progress deadline one such wave); a Service the controllers behind it (a Service of a workload
    that scales to zero must not be awaited); a Knative Service its progress deadline; a Helm
    release or another awaited resource a node and its images."""
    problems = []
    awaited: dict[tuple, int] = {}
    for w in workloads(manifests):
        o = w.obj
        if skips_await(o):
            continue
        have = await_seconds(o)
        per_pod = scheduling_seconds + startup_seconds(w.pod)
        spec = o.get("spec") or {}
        if w.kind == "Job":
            deadline = spec.get("activeDeadlineSeconds")
            if deadline is None:
                problems.append(f"{ident(o)} is awaited but has no activeDeadlineSeconds: the await cannot cover it")
            elif have < deadline:
                problems.append(f"{ident(o)} is awaited {have} s, less than its activeDeadlineSeconds {deadline}")
        elif w.kind == "Deployment":
            progress = spec.get("progressDeadlineSeconds", 600)
            if progress < per_pod:
                problems.append(
                    f"{ident(o)}: progressDeadlineSeconds {progress} is less than a node, the image and the startup "
                    f"budget ({per_pod} s): the rollout is failed while a pod is still starting"
                )
            replicas = autoscaler_max(manifests, w) or spec.get("replicas", 1)
            strategy = (spec.get("strategy") or {}).get("rollingUpdate") or {}
            step = _count(strategy.get("maxSurge", "25%"), replicas, math.ceil) + _count(strategy.get("maxUnavailable", "25%"), replicas, math.floor)
            need = math.ceil(max(replicas, 1) / max(step, 1)) * per_pod
            if have < need:
                problems.append(f"{ident(o)} is awaited {have} s, less than its rollout may take ({need} s for {replicas} replica(s))")
            awaited[(w.namespace, w.name)] = have
        elif w.kind == "LeaderWorkerSet":  # multi-node: every group ready, each rollout wave a whole start
            if w.name.endswith("/worker"):
                continue  # the leader's startup budget covers the group (workers have no probe)
            if WAIT_FOR_ANNOTATION not in annotations(o):
                problems.append(f"{ident(o)} is not awaited: custom resources are awaited only with {WAIT_FOR_ANNOTATION}")
                continue
            replicas = spec.get("replicas", 1)
            rolling = (spec.get("rolloutStrategy") or {}).get("rollingUpdateConfiguration") or {}
            step = _count(rolling.get("maxSurge", 0), replicas, math.ceil) + _count(rolling.get("maxUnavailable", 1), replicas, math.floor)
            need = math.ceil(max(replicas, 1) / max(step, 1)) * per_pod
            if have < need:
                problems.append(f"{ident(o)} is awaited {have} s, less than its groups may take ({need} s for {replicas} group(s))")
        elif w.kind in ("StatefulSet", "DaemonSet"):
            if have < per_pod:
                problems.append(f"{ident(o)} is awaited {have} s, less than one pod may take to start ({per_pod} s)")
        elif w.kind == "KnativeService":
            if WAIT_FOR_ANNOTATION not in annotations(o):
                continue  # custom resources are awaited only when asked
            tmpl_ann = annotations((spec.get("template") or {}))
            progress = _seconds(tmpl_ann.get("serving.knative.dev/progress-deadline"), KNATIVE_DEFAULT_PROGRESS_DEADLINE)
            if progress < startup_seconds(w.pod):
                problems.append(f"{ident(o)}: progress deadline {progress} s is less than its startup budget {startup_seconds(w.pod)} s")
            if have < progress:
                problems.append(f"{ident(o)} is awaited {have} s, less than its progress deadline {progress} s")
    for svc in (o for o in manifests if is_core_service(o)):
        spec = svc.get("spec") or {}
        if skips_await(svc) or spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None" or not spec.get("selector"):
            continue
        for w in selected(manifests, namespace_of(svc), {"matchLabels": spec["selector"]}):
            if scales_to_zero(manifests, w):
                problems.append(f"{ident(svc)} is awaited until it has an endpoint, but {w} scales to zero")
            elif await_seconds(svc) < awaited.get((w.namespace, w.name), 0):
                problems.append(f"{ident(svc)} is awaited {await_seconds(svc)} s, less than {w} behind it ({awaited[(w.namespace, w.name)]} s)")
    for o in manifests:
        if skips_await(o):
            continue
        if o["kind"] == "Release" or (WAIT_FOR_ANNOTATION in annotations(o) and not is_knative_service(o)):
            if await_seconds(o) < scheduling_seconds:
                problems.append(f"{ident(o)} is awaited {await_seconds(o)} s, less than a new node and its images may take ({scheduling_seconds} s)")
    return problems


def _count(value, replicas: int, rounding) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return int(rounding(replicas * int(value[:-1]) / 100))
    return int(value)


def _seconds(value: Optional[str], default: int) -> int:
    if not value:
        return default
    from llmstack_k8s.knative_vllm_service import duration_seconds

    return duration_seconds(value)


def dcgm_maps_gpu_resources(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """The DCGM exporter maps a GPU to the pod using it only for resources it is told about
    (``nvidia.com/gpu``, ``nvidia.com/mig-*``, or ``NVIDIA_RESOURCE_NAMES``), and shared GPUs only
    with ``KUBERNETES_VIRTUAL_GPUS``: every GPU resource a pod of the stack requests is mapped."""
    requested = {
        r for w in workloads(manifests) for c in containers(w.pod)
        for part in ("requests", "limits") for r in ((c.get("resources") or {}).get(part) or {})
        if r.startswith("nvidia.com/")
    }
    problems = []
    for rel in (o for o in manifests if o["kind"] == "Release" and o.get("chart") == DCGM_CHART):
        env = {e["name"]: e.get("value", "") for e in ((rel.get("values") or {}).get("extraEnv") or [])}
        names = {n.strip() for n in env.get(DCGM_RESOURCE_NAMES_ENV, "").split(",") if n.strip()}
        for r in sorted(requested):
            if r != WHOLE_GPU_RESOURCE and not r.startswith(MIG_RESOURCE_PREFIX) and r not in names:
                problems.append(f"{ident(rel)} does not map {r} to pods (set {DCGM_RESOURCE_NAMES_ENV})")
            if r.endswith(SHARED_RESOURCE_SUFFIX) and env.get(DCGM_VIRTUAL_GPUS_ENV, "").lower() != "true":
                problems.append(f"{ident(rel)} does not map shared GPUs ({r}) to pods (set {DCGM_VIRTUAL_GPUS_ENV})")
    return problems


def _route_backends(o: dict) -> Iterator[tuple[dict, str, str, object]]:
    """(rule, Service namespace, Service name, port) of an HTTPRoute's or Ingress's backends."""
    spec = o.get("spec") or {}
    if o["kind"] == "HTTPRoute":
        for rule in spec.get("rules") or []:
            for b in rule.get("backendRefs") or []:
                if b.get("kind", "Service") == "Service" and b.get("group", "") == "":
                    yield rule, b.get("namespace", namespace_of(o)), b.get("name"), b.get("port")
    else:
        paths = [p for r in spec.get("rules") or [] for p in (r.get("http") or {}).get("paths") or []]
        for p in paths + ([{"backend": spec["defaultBackend"]}] if spec.get("defaultBackend") else []):
            svc = (p.get("backend") or {}).get("service") or {}
            port = svc.get("port") or {}
            yield p, namespace_of(o), svc.get("name"), port.get("number", port.get("name"))


#: Knative's cluster-local ingress Service: Kourier's, which the Knative Operator runs beside a KnativeServing.
KOURIER_LOCAL_GATEWAY = ("kourier-internal", 80)
#: Knative's per-Service Service (an ExternalName to its ingress) answers on this port.
KNATIVE_SERVICE_PORT = 80


def knative_local_gateways(manifests: list[dict], declared: Declared) -> set[tuple[str, str, int]]:
    """(namespace, name, port) of the Knative ingress Services routes may use: Kourier's beside each
    KnativeServing of the stack with Kourier enabled, and the declared ones (port 80)."""
    out = {(namespace_of(o), *KOURIER_LOCAL_GATEWAY) for o in manifests if o["kind"] == "KnativeServing"
           and (((o.get("spec") or {}).get("ingress") or {}).get("kourier") or {}).get("enabled")}
    return out | {(ns, name, KNATIVE_SERVICE_PORT) for ns, name in declared.knative_local_gateways}


def _grant_permits(manifests: list[dict], route: dict, ns: str, name: str) -> bool:
    """A ReferenceGrant in ``ns`` lets HTTPRoutes of the route's namespace use Service ``ns/name``."""
    for g in (o for o in manifests if o["kind"] == "ReferenceGrant" and namespace_of(o) == ns):
        spec = g.get("spec") or {}
        if any(f.get("group") == "gateway.networking.k8s.io" and f.get("kind") == "HTTPRoute" and f.get("namespace") == namespace_of(route)
               for f in spec.get("from") or []) and any(
               t.get("group", "") == "" and t.get("kind") == "Service" and t.get("name", name) == name for t in spec.get("to") or []):
            return True
    return False


def _cluster_local_ksvc(manifests: list[dict], host) -> Optional[Workload]:
    """The Knative Service of the stack a cluster-local host names (``<name>.<namespace>[.svc[.cluster.local]]``)."""
    parts = str(host or "").split(".")
    if len(parts) < 2 or ".".join(parts[2:]) not in ("", "svc", "svc.cluster.local"):
        return None
    return next((w for w in workloads(manifests) if w.kind == "KnativeService" and (w.namespace, w.name) == (parts[1], parts[0])), None)


def _knative_route_problems(manifests: list[dict], o: dict, rule: dict, ns: str, name, port,
                            local_gateways: set, policies: list[dict]) -> list[str]:
    """A route to a Knative model: its backend is Knative's ingress (a cluster-local gateway, another namespace
    needing a ReferenceGrant; or, for an Ingress, the Service Knative makes per Knative Service), and the Host
    it sends (URLRewrite hostname / upstream-vhost) names a Knative Service of the stack, whose NetworkPolicy
    admits the ingress (Knative's data plane)."""
    problems = []
    if o["kind"] == "HTTPRoute":
        if ns != namespace_of(o) and not _grant_permits(manifests, o, ns, name):
            problems.append(f"{ident(o)} routes to Service {ns}/{name} in another namespace, but no ReferenceGrant there "
                            f"lets HTTPRoutes of namespace {namespace_of(o)!r} use it (the Gateway refuses the backend)")
        if (ns, name, port) not in local_gateways:
            problems.append(f"{ident(o)} routes to {ns}/{name} port {port}, which is not the Knative ingress's cluster-local "
                            f"Service ({', '.join(f'{n}/{s}:{p}' for n, s, p in sorted(local_gateways))})")
        rewrites = [f.get("urlRewrite") or {} for f in rule.get("filters") or [] if f.get("type") == "URLRewrite"]
        host = next((r["hostname"] for r in rewrites if r.get("hostname")), None)
        ingress_ns = [ns]
    else:
        host = (annotations(o) or {}).get("nginx.ingress.kubernetes.io/upstream-vhost")
        if port != KNATIVE_SERVICE_PORT:
            problems.append(f"{ident(o)} routes to Knative Service {ns}/{name} on port {port}; Knative's Service for it answers on {KNATIVE_SERVICE_PORT}")
        ingress_ns = sorted({n for n, _, _ in local_gateways})
    w = _cluster_local_ksvc(manifests, host)
    if w is None:
        problems.append(f"{ident(o)} sends Knative's ingress the Host {host!r}, which names no Knative Service of the stack "
                        "(<name>.<namespace>.svc.cluster.local): Knative's ingress would answer 404")
        return problems
    if o["kind"] == "Ingress" and (w.namespace, w.name) != (ns, name):
        problems.append(f"{ident(o)} routes to Knative Service {ns}/{name} but its upstream-vhost names {w}")
    for gw_ns in ingress_ns:  # Knative's ingress (then the activator) calls queue-proxy
        f = Flow(gw_ns, w, QUEUE_PROXY_HTTP_PORT, f"{ident(o)} routes to it through Knative's ingress")
        isolating = [p for p in policies if namespace_of(p) == w.namespace and matches((p.get("spec") or {}).get("podSelector"), w.labels)]
        if isolating and not any(_admits(p, f) for p in isolating):
            problems.append(f"no NetworkPolicy admits namespace {gw_ns!r} to {w} on port {QUEUE_PROXY_HTTP_PORT} ({f.why})")
    return problems


def routes_reach_servers(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every HTTPRoute and Ingress: attaches to a Gateway that exists or is declared; each backend is
    a Service of the stack with that port, selecting pods; the pods' NetworkPolicies admit the
    Gateway's (or the declared ingress controller's) namespace; timeouts are set and outlast a
    stream (at least 60 s: a proxy default cuts generations off). A route to a Knative model goes to
    Knative's ingress instead (``_knative_route_problems``)."""
    have = existing(manifests, declared)
    services = {(namespace_of(o), name_of(o)): o for o in manifests if is_core_service(o)}
    ksvcs = {(w.namespace, w.name) for w in workloads(manifests) if w.kind == "KnativeService"}
    local_gateways = knative_local_gateways(manifests, declared)
    policies = [o for o in manifests if o["kind"] == "NetworkPolicy"]
    problems = []
    for o in (o for o in manifests if o["kind"] in ("HTTPRoute", "Ingress")):
        ns, spec = namespace_of(o), o.get("spec") or {}
        callers: list[str] = []
        if o["kind"] == "HTTPRoute":
            for ref in spec.get("parentRefs") or []:
                gw_ns = ref.get("namespace", ns)
                if ref.get("kind", "Gateway") == "Gateway" and ("Gateway", gw_ns, ref.get("name")) not in have:
                    problems.append(f"{ident(o)} attaches to Gateway {gw_ns}/{ref.get('name')}, which the stack neither creates nor declares")
                callers.append(gw_ns)
        else:
            callers += list(declared.ingress_controllers)
        problems += route_timeouts(o)  # the policy pack's rule (llmstack_k8s.checks), one source
        for rule, backend_ns, name, port in _route_backends(o):
            svc = services.get((backend_ns, name))
            to_knative = (o["kind"] == "HTTPRoute" and (backend_ns, name) in {(n, s) for n, s, _ in local_gateways}) or (
                o["kind"] == "Ingress" and svc is None and (backend_ns, name) in ksvcs)  # Knative's Service for it
            if to_knative or (o["kind"] == "HTTPRoute" and backend_ns != ns):
                problems += _knative_route_problems(manifests, o, rule, backend_ns, name, port, local_gateways, policies)
                continue
            if svc is None:
                problems.append(f"{ident(o)} routes to Service {ns}/{name}, which the stack does not create")
                continue
            targets = list(_service_targets(manifests, svc, port))
            if not targets:
                problems.append(f"{ident(o)} routes to {ident(svc)} port {port}, which selects no pod with that port")
            for w, target_port in targets:
                for caller in callers:
                    f = Flow(caller, w, target_port, f"{ident(o)} routes to it")
                    isolating = [p for p in policies if namespace_of(p) == w.namespace and matches((p.get("spec") or {}).get("podSelector"), w.labels)]
                    if isolating and not any(_admits(p, f) for p in isolating):
                        problems.append(f"no NetworkPolicy admits namespace {caller!r} to {w} on port {target_port} ({f.why})")
    return problems


def teams_stay_apart(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """A team's namespace (labelled ``llmstack.dev/team``) is isolated by a NetworkPolicy that selects
    every pod, no NetworkPolicy there admits another team's namespace, and a quota on CPU/memory
    requests comes with a LimitRange that gives containers without requests some (else they are refused)."""
    from llmstack_k8s.team import TEAM_LABEL

    teams = {o["metadata"]["name"]: o["metadata"]["labels"][TEAM_LABEL] for o in manifests
             if o["kind"] == "Namespace" and TEAM_LABEL in (o["metadata"].get("labels") or {})}
    problems = []
    for ns, team in sorted(teams.items()):
        here = [o for o in manifests if namespace_of(o) == ns]
        policies = [o for o in here if o["kind"] == "NetworkPolicy"]
        if not any((p["spec"].get("podSelector") or {}) == {} and "Ingress" in p["spec"].get("policyTypes", ["Ingress"]) for p in policies):
            problems.append(f"team {team}'s namespace {ns!r} has no NetworkPolicy isolating every pod: other namespaces reach them")
        for p in policies:
            for rule in p["spec"].get("ingress") or []:
                for peer in rule.get("from") or []:
                    sel = peer.get("namespaceSelector")
                    if sel is None:
                        continue
                    for other in teams:
                        if other != ns and matches(sel, {"kubernetes.io/metadata.name": other}):
                            problems.append(f"{ident(p)} in team {team}'s namespace admits team {teams[other]}'s namespace {other!r}")
        hard = {k for q in here if q["kind"] == "ResourceQuota" for k in (q["spec"].get("hard") or {})}
        if hard & {"requests.cpu", "requests.memory", "cpu", "memory"} and not any(o["kind"] == "LimitRange" for o in here):
            problems.append(f"team {team}'s namespace {ns!r} has a quota on CPU/memory requests but no LimitRange: a container without requests is refused")
    return problems


def _blocked(policies: list[dict], f: Flow) -> bool:
    isolating = [p for p in policies if namespace_of(p) == f.target.namespace and matches((p.get("spec") or {}).get("podSelector"), f.target.labels)
                 and "Ingress" in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"])]
    return bool(isolating) and not any(_admits(p, f) for p in isolating)


def inference_pools_reach_servers(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every InferencePool (Gateway API Inference Extension) selects server pods that listen on its
    target ports; its endpoint picker is a Service of the stack selecting pods with that port; every
    HTTPRoute backendRef to a pool names one that exists; and NetworkPolicies admit the routes'
    Gateway to the picker (ext-proc) and to the pool's pods (the Gateway then calls the chosen pod
    directly), and the picker to the pool's pods (it scrapes their metrics)."""
    policies = [o for o in manifests if o["kind"] == "NetworkPolicy"]
    services = {(namespace_of(o), name_of(o)): o for o in manifests if is_core_service(o)}
    pools = {(namespace_of(o), name_of(o)): o for o in manifests if o["kind"] == "InferencePool"}
    gateways: dict[tuple, set] = {}
    problems = []
    for route in (o for o in manifests if o["kind"] == "HTTPRoute"):
        ns, spec = namespace_of(route), route.get("spec") or {}
        for rule in spec.get("rules") or []:
            for b in rule.get("backendRefs") or []:
                if b.get("kind") != "InferencePool":
                    continue
                if (ns, b.get("name")) not in pools:
                    problems.append(f"{ident(route)} routes to InferencePool {ns}/{b.get('name')}, which the stack does not create")
                    continue
                gateways.setdefault((ns, b.get("name")), set()).update(r.get("namespace", ns) for r in spec.get("parentRefs") or [])
    for key, pool in pools.items():
        ns, spec = key[0], pool.get("spec") or {}
        ports = [p.get("number") for p in spec.get("targetPorts") or []]
        servers = selected(manifests, ns, spec.get("selector"))
        if not servers:
            problems.append(f"{ident(pool)} selects no pods")
        picker_ref = spec.get("endpointPickerRef") or {}
        svc = services.get((ns, picker_ref.get("name")))
        pickers = list(_service_targets(manifests, svc, (picker_ref.get("port") or {}).get("number"))) if svc else []
        if not pickers:
            problems.append(f"{ident(pool)} names endpoint picker Service {ns}/{picker_ref.get('name')} port {(picker_ref.get('port') or {}).get('number')}, which selects no pod with that port")
        for w in servers:
            for port in ports:
                if port not in named_ports(w).values() and port not in [p.get("containerPort") for c in containers(w.pod) for p in c.get("ports") or []]:
                    problems.append(f"{ident(pool)} targets port {port}, on which {w} does not listen")
                flows = [Flow(g, w, port, f"the Gateway sends {ident(pool)}'s requests to the chosen pod") for g in gateways.get(key, ())]
                flows += [Flow(p.namespace, w, port, f"{ident(pool)}'s endpoint picker scrapes its metrics") for p, _ in pickers]
                problems += [f"no NetworkPolicy admits namespace {f.source!r} to {w} on port {f.port} ({f.why})" for f in flows if _blocked(policies, f)]
        for p, port in pickers:
            for g in gateways.get(key, ()):
                f = Flow(g, p, port, f"the Gateway calls {ident(pool)}'s endpoint picker (ext-proc)")
                if _blocked(policies, f):
                    problems.append(f"no NetworkPolicy admits namespace {g!r} to {p} on port {port} ({f.why})")
    return problems


def knative_traffic_reaches_revisions(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every Knative Service's traffic targets name its own revisions, sum to 100 and include the
    template's revision (the policy pack's rule, ``llmstack_k8s.checks.knative_traffic``)."""
    from llmstack_k8s.checks import knative_traffic

    return [p for o in manifests for p in knative_traffic(o)]


def _plugin_headers(w: Workload) -> dict[str, str]:
    """Headers a body-based router's pods set from the body: ``{header (lower case): body field}``,
    read from its ``--plugin body-field-to-header:<name>:<json>`` flags."""
    out = {}
    for c in containers(w.pod):
        args = c.get("args") or []
        for flag, value in zip(args, args[1:]):
            parts = value.split(":", 2) if flag == "--plugin" else []
            if len(parts) == 3 and parts[0] == "body-field-to-header":
                conf = json.loads(parts[2])
                out[conf.get("headerName", "").lower()] = conf.get("fieldName")
    return out


def _ext_proc_service(envoy_filter: dict) -> Optional[tuple[str, str, int]]:
    """(namespace, Service, port) an Istio EnvoyFilter's ext_proc filter calls (``outbound|port||host``)."""
    for patch in (envoy_filter.get("spec") or {}).get("configPatches") or []:
        config = ((patch.get("patch") or {}).get("value") or {}).get("typed_config") or {}
        cluster = ((config.get("grpc_service") or {}).get("envoy_grpc") or {}).get("cluster_name") or ""
        parts = cluster.split("|")
        if config.get("@type", "").endswith("ext_proc.v3.ExternalProcessor") and len(parts) == 4 and parts[0] == "outbound":
            host = parts[3].split(".")
            return host[1], host[0], int(parts[1])
    return None


def body_routers_reach_routes(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every EnvoyFilter that hooks an external processor (the body-based router) into a Gateway:
    targets a Gateway of its own namespace that exists or is declared (Istio applies it to no other);
    calls a Service of the stack that selects pods listening on that port; NetworkPolicies admit the
    Gateway's namespace to them; and every header the Gateway's HTTPRoutes match is one the router
    sets from the body (otherwise "one URL, model in the body" matches nothing)."""
    have = existing(manifests, declared)
    policies = [o for o in manifests if o["kind"] == "NetworkPolicy"]
    services = {(namespace_of(o), name_of(o)): o for o in manifests if is_core_service(o)}
    problems = []
    for ef in (o for o in manifests if o["kind"] == "EnvoyFilter"):
        target = _ext_proc_service(ef)
        if target is None:
            continue
        ns = namespace_of(ef)
        gateways = [r.get("name") for r in (ef.get("spec") or {}).get("targetRefs") or [] if r.get("kind") == "Gateway"]
        if not gateways:
            problems.append(f"{ident(ef)} targets no Gateway: Istio would apply it to every proxy of its namespace")
        for g in gateways:
            if ("Gateway", ns, g) not in have:
                problems.append(f"{ident(ef)} targets Gateway {ns}/{g}, which is neither in the stack nor declared (an EnvoyFilter targets its own namespace only)")
        svc = services.get(target[:2])
        routers = list(_service_targets(manifests, svc, target[2])) if svc else []
        if not routers:
            problems.append(f"{ident(ef)} calls {target[1]}.{target[0]} port {target[2]}, which is no Service of the stack selecting pods with that port")
        headers: dict = {}
        for w, port in routers:
            headers.update(_plugin_headers(w))
            f = Flow(ns, w, port, f"the Gateway calls the body-based router ({ident(ef)})")
            if _blocked(policies, f):
                problems.append(f"no NetworkPolicy admits namespace {ns!r} to {w} on port {port} ({f.why})")
        for route in (o for o in manifests if o["kind"] == "HTTPRoute"):
            parents = {(r.get("namespace", namespace_of(route)), r.get("name")) for r in (route.get("spec") or {}).get("parentRefs") or []}
            if not parents & {(ns, g) for g in gateways} or not routers:
                continue
            for rule in (route.get("spec") or {}).get("rules") or []:
                for match in rule.get("matches") or []:
                    for h in match.get("headers") or []:
                        if h.get("name", "").lower() not in headers:
                            problems.append(f"{ident(route)} matches header {h.get('name')}, which the body-based router behind {ident(ef)} does not set (it sets {sorted(headers)})")
    return problems


def objectives_select_pools(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every InferenceObjective: its poolRef names an InferencePool of the stack in its namespace
    (the picker loads only objectives naming its own pool), and it is selectable: some HTTPRoute
    sends requests for the served name it is named after to that pool, and a body-based router of
    the stack copies the body's model into the header the picker finds objectives by."""
    pools = {(namespace_of(o), name_of(o)) for o in manifests if o["kind"] == "InferencePool"}
    routed: set = set()  # (namespace, pool, served name)
    for route in (o for o in manifests if o["kind"] == "HTTPRoute"):
        for rule in (route.get("spec") or {}).get("rules") or []:
            names = {h.get("value") for m in rule.get("matches") or [] for h in m.get("headers") or [] if h.get("name", "").lower() == MODEL_NAME_HEADER.lower()}
            for b in rule.get("backendRefs") or []:
                if b.get("kind") == "InferencePool":
                    routed |= {(namespace_of(route), b.get("name"), n) for n in names}
    setters = {h: field for w in workloads(manifests) for h, field in _plugin_headers(w).items()}
    problems = checks.inference_objectives_name_pools(manifests)  # the poolRef: one source with the policy pack
    for o in (o for o in manifests if o["kind"] == "InferenceObjective"):
        ns, ref = namespace_of(o), (o.get("spec") or {}).get("poolRef") or {}
        if (ns, ref.get("name")) not in pools:
            continue  # reported above
        if (ns, ref.get("name"), name_of(o)) not in routed:
            problems.append(f"{ident(o)} is named {name_of(o)!r}, but no HTTPRoute sends requests for that model name to InferencePool {ns}/{ref.get('name')}")
        if setters.get(OBJECTIVE_HEADER) != "model":
            problems.append(f"{ident(o)}: no body-based router of the stack sets {OBJECTIVE_HEADER} from the body's model, so no request selects it")
    return problems


RULES = (
    pdbs_select_one_scalable_controller,
    services_select_templates,
    references_exist,
    namespaces_exist,
    network_policies_admit,
    awaits_cover_budgets,
    dcgm_maps_gpu_resources,
    routes_reach_servers,
    inference_pools_reach_servers,
    teams_stay_apart,
    body_routers_reach_routes,
    objectives_select_pools,
    knative_traffic_reaches_revisions,
)


def lws_headless_services_free(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """A LeaderWorkerSet's name is free for the headless Service its controller creates (the pods'
    DNS names, LWS_LEADER_ADDRESS, live in it); one rule with the policy pack (llmstack_k8s.checks)."""
    return checks.lws_headless_service_free(manifests)


RULES = RULES + (lws_headless_services_free,)  # multi-node


def check_all(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every rule over one stack's manifests; the problems of all of them."""
    return [p for rule in RULES for p in rule(manifests, declared)]
