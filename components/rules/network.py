"""Who may reach whom: NetworkPolicies against the traffic the stack expects, and teams kept apart."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..cluster.team import TEAM_LABEL
from ..serving.knative_vllm_service import QUEUE_PROXY_HTTP_PORT
from .manifests import (
    as_list,
    describe,
    get_path,
    is_core_service,
    matches,
    name_of,
    namespace_of,
    selector_matches,
    serving_pods,
)
from .stack import Declared, Workload, resolve_port, selected, service_targets, workloads

#: Services of the stack that clients do not call (an InferencePool's endpoint picker: the Gateway does).
INTERNAL_COMPONENTS = frozenset({"endpoint-picker", "body-based-router"})


@dataclass(frozen=True)
class Flow:
    """Traffic the stack expects: pods in ``source`` reach ``target``'s pods on ``port``."""

    source: str | None
    target: Workload
    port: int
    why: str


def is_ingress_policy(p: Mapping) -> bool:
    """A NetworkPolicy of type Ingress (without policyTypes, a NetworkPolicy always is)."""
    types = as_list(get_path(p, "spec", "policyTypes"))
    return "Ingress" in types or not types


def admits(policy: dict, f: Flow) -> bool:
    """Some ingress rule of the policy lets ``f.source``'s pods reach the target on ``f.port``."""
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


def isolating(policies: list[dict], target: Workload, ingress_only: bool = True) -> list[dict]:
    """The NetworkPolicies of the target's namespace that select its pods (of type Ingress; with
    ``ingress_only=False``, whatever their policyTypes)."""
    return [
        p
        for p in policies
        if namespace_of(p) == target.namespace
        and matches((p.get("spec") or {}).get("podSelector"), target.labels)
        and (not ingress_only or is_ingress_policy(p))
    ]


def blocked(policies: list[dict], f: Flow, ingress_only: bool = True) -> bool:
    """Policies isolate the flow's target and none admits the flow."""
    iso = isolating(policies, f.target, ingress_only)
    return bool(iso) and not any(admits(p, f) for p in iso)


def declared_flows(manifests: list[dict], declared: Declared) -> list[Flow]:
    """The traffic the declaration implies: Prometheus scraping every monitored pod on its metrics
    port, callers reaching every Service's pods on its target ports, Knative's data plane reaching
    queue-proxy, the KEDA HTTP interceptor reaching the Services it routes to."""
    flows: list[Flow] = []
    by_name = {(namespace_of(o), name_of(o)): o for o in manifests if is_core_service(o)}
    for mon in (o for o in manifests if o["kind"] in ("PodMonitor", "ServiceMonitor")):
        spec = mon.get("spec") or {}
        for ns in (spec.get("namespaceSelector") or {}).get("matchNames") or [namespace_of(mon)]:
            if mon["kind"] == "PodMonitor":
                for w in selected(manifests, ns, spec.get("selector")):
                    for ep in spec.get("podMetricsEndpoints") or []:
                        port = resolve_port(w, ep.get("port") or ep.get("targetPort"))
                        if port is not None:
                            flows += [Flow(s, w, port, f"{describe(mon)} scrapes it") for s in declared.scrapers]
            else:
                for svc in (
                    o
                    for o in manifests
                    if is_core_service(o)
                    and namespace_of(o) == ns
                    and matches(spec.get("selector"), (o.get("metadata") or {}).get("labels") or {})
                ):
                    for ep in spec.get("endpoints") or []:
                        for w, port in service_targets(manifests, svc, ep.get("port")):
                            flows += [Flow(s, w, port, f"{describe(mon)} scrapes it") for s in declared.scrapers]
    for svc in (
        o
        for o in manifests
        if is_core_service(o)
        and (o.get("spec") or {}).get("selector")
        and ((o.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component")
        not in INTERNAL_COMPONENTS
    ):
        for w, port in service_targets(manifests, svc):
            flows += [Flow(c, w, port, f"clients call {describe(svc)}") for c in declared.callers]
    for w in workloads(manifests):
        if w.kind == "KnativeService":
            flows += [
                Flow(ns, w, QUEUE_PROXY_HTTP_PORT, "Knative's activator/gateway call queue-proxy")
                for ns in declared.knative_data_plane
            ]
    for o in (o for o in manifests if o["kind"] == "HTTPScaledObject"):
        ref = (o.get("spec") or {}).get("scaleTargetRef") or {}
        target = by_name.get((namespace_of(o), ref.get("service")))
        if target is not None:
            for w, port in service_targets(manifests, target, ref.get("port")):
                flows += [
                    Flow(ns, w, port, f"the HTTP add-on routes {describe(o)}") for ns in declared.http_interceptors
                ]
    return flows


def network_policies_admit(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Where NetworkPolicies isolate a pod, some policy admits every flow the stack declares:
    the scrapers on the metrics port, the callers on the API port, Knative's data plane.
    Protects from dashboards and alerts that go blind, and clients that time out, after ``up``."""
    policies = [o for o in manifests if o["kind"] == "NetworkPolicy"]
    problems = []
    for f in declared_flows(manifests, declared):
        iso = isolating(policies, f.target)
        if iso and not any(admits(p, f) for p in iso):
            problems.append(
                f"no NetworkPolicy admits namespace {f.source!r} to {f.target} on port {f.port} ({f.why}); "
                f"isolated by {', '.join(describe(p) for p in iso)}"
            )
    return problems


def serving_pods_have_network_policy(objects: Sequence[Mapping]) -> list[str]:
    """Every vLLM server's pods are selected by an ingress NetworkPolicy of their namespace.
    Protects from an API and /metrics any pod in the cluster can reach (vLLM's --api-key does not
    protect /metrics and /health)."""
    policies = [m for m in objects if m.get("kind") == "NetworkPolicy" and is_ingress_policy(m)]
    problems = []
    for m, labels, _ in serving_pods(objects):
        if not any(
            namespace_of(p) == namespace_of(m) and selector_matches(get_path(p, "spec", "podSelector"), labels)
            for p in policies
        ):
            problems.append(
                f"{describe(m)} runs vLLM servers that no NetworkPolicy selects: any pod in the cluster can reach "
                f"its API and /metrics. Add an ingress NetworkPolicy whose podSelector matches its pod labels "
                f"(VllmService creates one)."
            )
    return problems


def teams_stay_apart(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """A team's namespace (labelled ``llmstack.dev/team``) is isolated by a NetworkPolicy that selects
    every pod, no NetworkPolicy there admits another team's namespace, and a quota on CPU/memory
    requests comes with a LimitRange that gives containers without requests some. Protects a team
    from another team's pods, and from pods the quota refuses for want of requests."""
    teams = {
        o["metadata"]["name"]: o["metadata"]["labels"][TEAM_LABEL]
        for o in manifests
        if o["kind"] == "Namespace" and TEAM_LABEL in (o["metadata"].get("labels") or {})
    }
    problems = []
    for ns, team in sorted(teams.items()):
        here = [o for o in manifests if namespace_of(o) == ns]
        policies = [o for o in here if o["kind"] == "NetworkPolicy"]
        if not any(
            (p["spec"].get("podSelector") or {}) == {} and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
            for p in policies
        ):
            problems.append(
                f"team {team}'s namespace {ns!r} has no NetworkPolicy isolating every pod: other namespaces reach them"
            )
        for p in policies:
            for rule in p["spec"].get("ingress") or []:
                for peer in rule.get("from") or []:
                    sel = peer.get("namespaceSelector")
                    if sel is None:
                        continue
                    for other in teams:
                        if other != ns and matches(sel, {"kubernetes.io/metadata.name": other}):
                            problems.append(
                                f"{describe(p)} in team {team}'s namespace admits team {teams[other]}'s namespace "
                                f"{other!r}"
                            )
        hard = {k for q in here if q["kind"] == "ResourceQuota" for k in (q["spec"].get("hard") or {})}
        if hard & {"requests.cpu", "requests.memory", "cpu", "memory"} and not any(
            o["kind"] == "LimitRange" for o in here
        ):
            problems.append(
                f"team {team}'s namespace {ns!r} has a quota on CPU/memory requests but no LimitRange: a container "
                "without requests is refused"
            )
    return problems
