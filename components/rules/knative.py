"""Knative: a Service's traffic reaches its own revisions, and a route to a Knative model goes
through Knative's ingress to a Knative Service of the stack."""

import re
from collections.abc import Mapping

from ..serving.knative_vllm_service import QUEUE_PROXY_HTTP_PORT
from .manifests import (
    UNKNOWN,
    annotations,
    as_int,
    as_list,
    as_map,
    describe,
    get_path,
    is_knative_service,
    namespace_of,
)
from .network import Flow, blocked
from .stack import Declared, Workload, workloads

#: Knative's cluster-local ingress Service: Kourier's, which the Knative Operator runs beside a KnativeServing.
KOURIER_LOCAL_GATEWAY = ("kourier-internal", 80)
#: Knative's per-Service Service (an ExternalName to its ingress) answers on this port.
KNATIVE_SERVICE_PORT = 80


def knative_traffic(m: Mapping) -> list[str]:
    """A Knative Service's ``traffic`` reaches revisions of that Service: every ``revisionName`` starts with
    ``<service>-`` (Knative fails a Route to another Service's revision, and a revision the Service never made
    does not exist: the Route then serves nothing, ``RevisionMissing``); no target both names a revision and
    sets ``latestRevision: true``; percents sum to 100; tags are unique DNS labels; and the revision the
    template creates (a named template) gets traffic or a tag, or it loads the model on GPUs for nothing.
    Protects from a Knative Service that Knative refuses, or whose Route serves nothing."""
    if not is_knative_service(m) or m.get("kind") != "Service":
        return []
    service, targets = get_path(m, "metadata", "name"), as_list(get_path(m, "spec", "traffic"))
    if not targets or service == UNKNOWN:
        return []
    problems, tags, total, known = [], set(), 0, True
    template_name = get_path(m, "spec", "template", "metadata", "name")
    routed = template_name in (None, UNKNOWN)
    for i, t in enumerate(as_map(t) for t in targets):
        rev, pct, tag = t.get("revisionName"), t.get("percent"), t.get("tag")
        if rev and rev != UNKNOWN and not str(rev).startswith(f"{service}-"):
            problems.append(
                f"{describe(m)}: traffic[{i}].revisionName {rev!r} is not a revision of this Service "
                f"(its revisions are named {service}-...): the Route would serve nothing"
            )
        if rev and t.get("latestRevision") is True:
            problems.append(
                f"{describe(m)}: traffic[{i}] names revision {rev!r} and sets latestRevision: true; Knative refuses "
                "both"
            )
        if rev == template_name or (not rev and t.get("latestRevision", True) is not False):
            routed = True
        if tag is not None and tag != UNKNOWN:
            if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", str(tag)) or tag in tags:
                problems.append(f"{describe(m)}: traffic[{i}].tag {tag!r} is repeated or not a DNS label")
            tags.add(tag)
        if pct == UNKNOWN:
            known = False
        else:
            total += as_int(pct) or 0
    if known and total != 100:
        problems.append(f"{describe(m)}: traffic percents sum to {total}, not 100; Knative refuses the Service")
    if not routed:
        problems.append(
            f"{describe(m)}: the template's revision {template_name!r} is in no traffic target: it would start "
            "(GPUs, weights) and serve nothing; route a percent or a tag to it"
        )
    return problems


def knative_local_gateways(manifests: list[dict], declared: Declared) -> set[tuple]:
    """(namespace, name, port) of the Knative ingress Services routes may use: Kourier's beside each
    KnativeServing of the stack with Kourier enabled, and the declared ones (port 80)."""
    out = {
        (namespace_of(o), *KOURIER_LOCAL_GATEWAY)
        for o in manifests
        if o["kind"] == "KnativeServing"
        and (((o.get("spec") or {}).get("ingress") or {}).get("kourier") or {}).get("enabled")
    }
    return out | {(ns, name, KNATIVE_SERVICE_PORT) for ns, name in declared.knative_local_gateways}


def _grant_permits(manifests: list[dict], route: dict, ns: str | None, name: str) -> bool:
    """A ReferenceGrant in ``ns`` lets HTTPRoutes of the route's namespace use Service ``ns/name``."""
    for g in (o for o in manifests if o["kind"] == "ReferenceGrant" and namespace_of(o) == ns):
        spec = g.get("spec") or {}
        if any(
            f.get("group") == "gateway.networking.k8s.io"
            and f.get("kind") == "HTTPRoute"
            and f.get("namespace") == namespace_of(route)
            for f in spec.get("from") or []
        ) and any(
            t.get("group", "") == "" and t.get("kind") == "Service" and t.get("name", name) == name
            for t in spec.get("to") or []
        ):
            return True
    return False


def _cluster_local_ksvc(manifests: list[dict], host) -> Workload | None:
    """The Knative Service of the stack a cluster-local host names (``<name>.<namespace>[.svc[.cluster.local]]``)."""
    parts = str(host or "").split(".")
    if len(parts) < 2 or ".".join(parts[2:]) not in ("", "svc", "svc.cluster.local"):
        return None
    return next(
        (
            w
            for w in workloads(manifests)
            if w.kind == "KnativeService" and (w.namespace, w.name) == (parts[1], parts[0])
        ),
        None,
    )


def knative_route_problems(
    manifests: list[dict], o: dict, rule: dict, ns: str | None, name, port, local_gateways: set, policies: list[dict]
) -> list[str]:
    """A route to a Knative model: its backend is Knative's ingress (a cluster-local gateway, another namespace
    needing a ReferenceGrant; or, for an Ingress, the Service Knative makes per Knative Service), and the Host
    it sends (URLRewrite hostname / upstream-vhost) names a Knative Service of the stack, whose NetworkPolicy
    admits the ingress (Knative's data plane). Protects from a route the Gateway refuses or that Knative's
    ingress answers with 404."""
    problems = []
    if o["kind"] == "HTTPRoute":
        if ns != namespace_of(o) and not _grant_permits(manifests, o, ns, name):
            problems.append(
                f"{describe(o)} routes to Service {ns}/{name} in another namespace, but no ReferenceGrant there "
                f"lets HTTPRoutes of namespace {namespace_of(o)!r} use it (the Gateway refuses the backend)"
            )
        if (ns, name, port) not in local_gateways:
            problems.append(
                f"{describe(o)} routes to {ns}/{name} port {port}, which is not the Knative ingress's cluster-local "
                f"Service ({', '.join(f'{n}/{s}:{p}' for n, s, p in sorted(local_gateways))})"
            )
        rewrites = [f.get("urlRewrite") or {} for f in rule.get("filters") or [] if f.get("type") == "URLRewrite"]
        host = next((r["hostname"] for r in rewrites if r.get("hostname")), None)
        ingress_ns = [ns]
    else:
        host = (annotations(o) or {}).get("nginx.ingress.kubernetes.io/upstream-vhost")
        if port != KNATIVE_SERVICE_PORT:
            problems.append(
                f"{describe(o)} routes to Knative Service {ns}/{name} on port {port}; Knative's Service for it answers "
                f"on {KNATIVE_SERVICE_PORT}"
            )
        ingress_ns = sorted({n for n, _, _ in local_gateways})
    w = _cluster_local_ksvc(manifests, host)
    if w is None:
        problems.append(
            f"{describe(o)} sends Knative's ingress the Host {host!r}, which names no Knative Service of the stack "
            "(<name>.<namespace>.svc.cluster.local): Knative's ingress would answer 404"
        )
        return problems
    if o["kind"] == "Ingress" and (w.namespace, w.name) != (ns, name):
        problems.append(f"{describe(o)} routes to Knative Service {ns}/{name} but its upstream-vhost names {w}")
    for gw_ns in ingress_ns:  # Knative's ingress (then the activator) calls queue-proxy
        f = Flow(gw_ns, w, QUEUE_PROXY_HTTP_PORT, f"{describe(o)} routes to it through Knative's ingress")
        if blocked(policies, f, ingress_only=False):
            problems.append(
                f"no NetworkPolicy admits namespace {gw_ns!r} to {w} on port {QUEUE_PROXY_HTTP_PORT} ({f.why})"
            )
    return problems
