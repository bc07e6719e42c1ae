"""Routes to the models: HTTPRoutes and Ingresses reach servers of the stack, and outlast a stream."""

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..edge.model_route import MIN_REQUEST_TIMEOUT_SECONDS
from .knative import knative_local_gateways, knative_route_problems
from .manifests import UNKNOWN, as_list, as_map, describe, get_path, is_core_service, name_of, namespace_of
from .network import Flow, blocked
from .stack import Declared, existing, service_targets, workloads

#: A proxy's usual default, which cuts a streamed generation off: no route to an LLM may time out sooner
#: (ModelRoute refuses a shorter request timeout).
MIN_ROUTE_TIMEOUT_SECONDS = MIN_REQUEST_TIMEOUT_SECONDS
INGRESS_NGINX_TIMEOUTS = (
    "nginx.ingress.kubernetes.io/proxy-read-timeout",
    "nginx.ingress.kubernetes.io/proxy-send-timeout",
)
_DURATION_PART = re.compile(r"([0-9]+)(ms|h|m|s)")


def timeout_seconds(value: Any) -> float | None:
    """Seconds of a route timeout: a Gateway API duration (``900s``, ``15m``, ``1h30m``; ``0s`` means
    no timeout: infinite) or an nginx annotation's plain seconds; None when unset or unreadable."""
    text = str(value).strip() if value is not None else ""
    if text.isdigit():
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    total = sum(int(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts)
    return float("inf") if total == 0 else total


def route_timeouts(m: Mapping, min_seconds: float = MIN_ROUTE_TIMEOUT_SECONDS) -> list[str]:
    """An HTTPRoute rule that forwards somewhere sets ``timeouts.request`` (and ``backendRequest``, if
    set) to at least ``min_seconds``; an ingress-nginx Ingress sets its proxy read/send timeouts so
    (the controller's default is 60 s). Protects from streamed generations (minutes long) cut off
    by a proxy's default timeout."""
    problems = []
    if m.get("kind") == "HTTPRoute":
        for i, rule in enumerate(as_list(get_path(m, "spec", "rules"))):
            if not as_list(as_map(rule).get("backendRefs")):
                continue
            t = as_map(as_map(rule).get("timeouts"))
            for key in ("request", "backendRequest"):
                value = t.get(key)
                if value == UNKNOWN or (key == "backendRequest" and value is None):
                    continue
                seconds = timeout_seconds(value)
                if seconds is None or seconds < min_seconds:
                    problems.append(
                        f"{describe(m)}: rules[{i}].timeouts.{key} is {value or 'unset (the implementation default)'}: "
                        f"set at least {min_seconds:g}s (the model's request budget), or a streamed answer is cut off"
                    )
    elif m.get("kind") == "Ingress":
        notes = as_map(get_path(m, "metadata", "annotations"))
        nginx = "nginx" in str(get_path(m, "spec", "ingressClassName") or "") or any(
            k.startswith("nginx.ingress.kubernetes.io/") for k in notes
        )
        for key in INGRESS_NGINX_TIMEOUTS if nginx else ():
            value = notes.get(key)
            if value == UNKNOWN:
                continue
            seconds = timeout_seconds(value)
            if seconds is None or seconds < min_seconds:
                problems.append(
                    f"{describe(m)}: {key} is {value or 'unset (60 s)'}: set at least {min_seconds:g} "
                    "(the model's request budget), or a streamed answer is cut off"
                )
    return problems


def route_backends(o: dict) -> Iterator[tuple[dict, str | None, Any, Any]]:
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


def _route_callers(o: dict, have: set, declared: Declared) -> tuple[list[str], list[str]]:
    """(namespaces that send the route's traffic, problems): an HTTPRoute's Gateways, which must
    exist or be declared; an Ingress's declared ingress controllers."""
    if o["kind"] != "HTTPRoute":
        return list(declared.ingress_controllers), []
    callers, problems = [], []
    for ref in (o.get("spec") or {}).get("parentRefs") or []:
        gw_ns = ref.get("namespace", namespace_of(o))
        if ref.get("kind", "Gateway") == "Gateway" and ("Gateway", gw_ns, ref.get("name")) not in have:
            problems.append(
                f"{describe(o)} attaches to Gateway {gw_ns}/{ref.get('name')}, which the stack neither creates nor "
                "declares"
            )
        callers.append(gw_ns)
    return callers, problems


def routes_reach_servers(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every HTTPRoute and Ingress: attaches to a Gateway that exists or is declared; each backend is
    a Service of the stack with that port, selecting pods; the pods' NetworkPolicies admit the
    Gateway's (or the declared ingress controller's) namespace; timeouts are set and outlast a
    stream (:func:`route_timeouts`). A route to a Knative model goes to Knative's ingress instead
    (:func:`knative_route_problems`). Protects from a model that is deployed but unreachable."""
    have = existing(manifests, declared)
    services = {(namespace_of(o), name_of(o)): o for o in manifests if is_core_service(o)}
    ksvcs = {(w.namespace, w.name) for w in workloads(manifests) if w.kind == "KnativeService"}
    local_gateways = knative_local_gateways(manifests, declared)
    policies = [o for o in manifests if o["kind"] == "NetworkPolicy"]
    problems = []
    for o in (o for o in manifests if o["kind"] in ("HTTPRoute", "Ingress")):
        ns = namespace_of(o)
        callers, found = _route_callers(o, have, declared)
        problems += found + route_timeouts(o)
        for rule, backend_ns, name, port in route_backends(o):
            svc = services.get((backend_ns, name))
            to_knative = (
                o["kind"] == "HTTPRoute" and (backend_ns, name) in {(n, s) for n, s, _ in local_gateways}
            ) or (o["kind"] == "Ingress" and svc is None and (backend_ns, name) in ksvcs)  # Knative's Service for it
            if to_knative or (o["kind"] == "HTTPRoute" and backend_ns != ns):
                problems += knative_route_problems(manifests, o, rule, backend_ns, name, port, local_gateways, policies)
                continue
            if svc is None:
                problems.append(f"{describe(o)} routes to Service {ns}/{name}, which the stack does not create")
                continue
            targets = list(service_targets(manifests, svc, port))
            if not targets:
                problems.append(
                    f"{describe(o)} routes to {describe(svc)} port {port}, which selects no pod with that port"
                )
            for w, target_port in targets:
                for caller in callers:
                    f = Flow(caller, w, target_port, f"{describe(o)} routes to it")
                    if blocked(policies, f, ingress_only=False):
                        problems.append(
                            f"no NetworkPolicy admits namespace {caller!r} to {w} on port {target_port} ({f.why})"
                        )
    return problems
