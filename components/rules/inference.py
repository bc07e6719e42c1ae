"""The inference edge: InferencePools, their endpoint pickers and objectives, and the body-based
router that turns "one URL, model in the body" into the header routes match."""

import itertools
import json
from collections.abc import Mapping, Sequence

from ..edge.inference_objective import OBJECTIVE_HEADER
from ..edge.model_route import MODEL_NAME_HEADER
from .manifests import UNKNOWN, containers, describe, get_path, is_core_service, name_of, namespace_of
from .network import Flow, blocked
from .stack import Declared, Workload, existing, named_ports, selected, service_targets, workloads

#: What an InferenceObjective's poolRef must name (the picker loads objectives of its own pool only).
POOL_GROUP, POOL_KIND = "inference.networking.k8s.io", "InferencePool"


def inference_objectives_name_pools(objects: Sequence[Mapping]) -> list[str]:
    """Every InferenceObjective's poolRef names an InferencePool (inference.networking.k8s.io) of the stack in
    the objective's namespace: the Endpoint Picker loads only objectives naming its own pool, so any other
    objective is silently ignored and its served name runs at priority 0. Protects from a priority
    that is set but never applied."""
    pools = {(namespace_of(m), get_path(m, "metadata", "name")) for m in objects if m.get("kind") == POOL_KIND}
    problems = []
    for m in objects:
        if m.get("kind") != "InferenceObjective":
            continue
        ref = get_path(m, "spec", "poolRef") or {}
        group, kind, name = ref.get("group", POOL_GROUP), ref.get("kind", POOL_KIND), ref.get("name")
        if UNKNOWN in (group, kind, name):
            continue
        if (group, kind) != (POOL_GROUP, POOL_KIND):
            problems.append(
                f"{describe(m)} refers to {group}/{kind}, not an {POOL_KIND} ({POOL_GROUP}): no picker loads it"
            )
        elif (namespace_of(m), name) not in pools:
            problems.append(
                f"{describe(m)} refers to InferencePool {namespace_of(m)}/{name}, which the stack does not create: "
                "no picker loads it, and its served name runs at priority 0"
            )
    return problems


def inference_pools_reach_servers(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every InferencePool (Gateway API Inference Extension) selects server pods that listen on its
    target ports; its endpoint picker is a Service of the stack selecting pods with that port; every
    HTTPRoute backendRef to a pool names one that exists; and NetworkPolicies admit the routes'
    Gateway to the picker (ext-proc) and to the pool's pods (the Gateway then calls the chosen pod
    directly), and the picker to the pool's pods (it scrapes their metrics). Protects from
    KV-cache-aware routing that sends requests nowhere, or picks pods blind."""
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
                    problems.append(
                        f"{describe(route)} routes to InferencePool {ns}/{b.get('name')}, which the stack does not "
                        "create"
                    )
                    continue
                gateways.setdefault((ns, b.get("name")), set()).update(
                    r.get("namespace", ns) for r in spec.get("parentRefs") or []
                )
    for key, pool in pools.items():
        ns, spec = key[0], pool.get("spec") or {}
        ports = [p.get("number") for p in spec.get("targetPorts") or []]
        servers = selected(manifests, ns, spec.get("selector"))
        if not servers:
            problems.append(f"{describe(pool)} selects no pods")
        picker_ref = spec.get("endpointPickerRef") or {}
        svc = services.get((ns, picker_ref.get("name")))
        pickers = list(service_targets(manifests, svc, (picker_ref.get("port") or {}).get("number"))) if svc else []
        if not pickers:
            problems.append(
                f"{describe(pool)} names endpoint picker Service {ns}/{picker_ref.get('name')} port "
                f"{(picker_ref.get('port') or {}).get('number')}, which selects no pod with that port"
            )
        for w in servers:
            for port in ports:
                if port not in named_ports(w).values() and port not in [
                    p.get("containerPort") for c in containers(w.pod) for p in c.get("ports") or []
                ]:
                    problems.append(f"{describe(pool)} targets port {port}, on which {w} does not listen")
                flows = [
                    Flow(g, w, port, f"the Gateway sends {describe(pool)}'s requests to the chosen pod")
                    for g in gateways.get(key, ())
                ]
                flows += [
                    Flow(p.namespace, w, port, f"{describe(pool)}'s endpoint picker scrapes its metrics")
                    for p, _ in pickers
                ]
                problems += [
                    f"no NetworkPolicy admits namespace {f.source!r} to {w} on port {f.port} ({f.why})"
                    for f in flows
                    if blocked(policies, f)
                ]
        for p, port in pickers:
            for g in gateways.get(key, ()):
                f = Flow(g, p, port, f"the Gateway calls {describe(pool)}'s endpoint picker (ext-proc)")
                if blocked(policies, f):
                    problems.append(f"no NetworkPolicy admits namespace {g!r} to {p} on port {port} ({f.why})")
    return problems


def plugin_headers(w: Workload) -> dict[str, str]:
    """Headers a body-based router's pods set from the body: ``{header (lower case): body field}``,
    read from its ``--plugin body-field-to-header:<name>:<json>`` flags."""
    out = {}
    for c in containers(w.pod):
        args = c.get("args") or []
        for flag, value in itertools.pairwise(args):
            parts = value.split(":", 2) if flag == "--plugin" else []
            if len(parts) == 3 and parts[0] == "body-field-to-header":
                conf = json.loads(parts[2])
                out[conf.get("headerName", "").lower()] = conf.get("fieldName")
    return out


def _ext_proc_service(envoy_filter: dict) -> tuple[str, str, int] | None:
    """(namespace, Service, port) an Istio EnvoyFilter's ext_proc filter calls (``outbound|port||host``)."""
    for patch in (envoy_filter.get("spec") or {}).get("configPatches") or []:
        config = ((patch.get("patch") or {}).get("value") or {}).get("typed_config") or {}
        cluster = ((config.get("grpc_service") or {}).get("envoy_grpc") or {}).get("cluster_name") or ""
        parts = cluster.split("|")
        if (
            config.get("@type", "").endswith("ext_proc.v3.ExternalProcessor")
            and len(parts) == 4
            and parts[0] == "outbound"
        ):
            host = parts[3].split(".")
            return host[1], host[0], int(parts[1])
    return None


def body_routers_reach_routes(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every EnvoyFilter that hooks an external processor (the body-based router) into a Gateway:
    targets a Gateway of its own namespace that exists or is declared (Istio applies it to no other);
    calls a Service of the stack that selects pods listening on that port; NetworkPolicies admit the
    Gateway's namespace to them; and every header the Gateway's HTTPRoutes match is one the router
    sets from the body. Protects from "one URL, model in the body" that matches no route."""
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
            problems.append(f"{describe(ef)} targets no Gateway: Istio would apply it to every proxy of its namespace")
        for g in gateways:
            if ("Gateway", ns, g) not in have:
                problems.append(
                    f"{describe(ef)} targets Gateway {ns}/{g}, which is neither in the stack nor declared (an "
                    "EnvoyFilter targets its own namespace only)"
                )
        svc = services.get(target[:2])
        routers = list(service_targets(manifests, svc, target[2])) if svc else []
        if not routers:
            problems.append(
                f"{describe(ef)} calls {target[1]}.{target[0]} port {target[2]}, which is no Service of the stack "
                "selecting pods with that port"
            )
        headers: dict = {}
        for w, port in routers:
            headers.update(plugin_headers(w))
            f = Flow(ns, w, port, f"the Gateway calls the body-based router ({describe(ef)})")
            if blocked(policies, f):
                problems.append(f"no NetworkPolicy admits namespace {ns!r} to {w} on port {port} ({f.why})")
        for route in (o for o in manifests if o["kind"] == "HTTPRoute"):
            parents = {
                (r.get("namespace", namespace_of(route)), r.get("name"))
                for r in (route.get("spec") or {}).get("parentRefs") or []
            }
            if not parents & {(ns, g) for g in gateways} or not routers:
                continue
            for rule in (route.get("spec") or {}).get("rules") or []:
                for match in rule.get("matches") or []:
                    for h in match.get("headers") or []:
                        if h.get("name", "").lower() not in headers:
                            problems.append(
                                f"{describe(route)} matches header {h.get('name')}, which the body-based router behind "
                                f"{describe(ef)} does not set (it sets {sorted(headers)})"
                            )
    return problems


def objectives_select_pools(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every InferenceObjective: its poolRef names an InferencePool of the stack in its namespace
    (the picker loads only objectives naming its own pool), and it is selectable: some HTTPRoute
    sends requests for the served name it is named after to that pool, and a body-based router of
    the stack copies the body's model into the header the picker finds objectives by. Protects
    from an objective no request ever selects (its model runs at the default priority)."""
    pools = {(namespace_of(o), name_of(o)) for o in manifests if o["kind"] == "InferencePool"}
    routed: set = set()  # (namespace, pool, served name)
    for route in (o for o in manifests if o["kind"] == "HTTPRoute"):
        for rule in (route.get("spec") or {}).get("rules") or []:
            names = {
                h.get("value")
                for m in rule.get("matches") or []
                for h in m.get("headers") or []
                if h.get("name", "").lower() == MODEL_NAME_HEADER.lower()
            }
            for b in rule.get("backendRefs") or []:
                if b.get("kind") == "InferencePool":
                    routed |= {(namespace_of(route), b.get("name"), n) for n in names}
    setters = {h: field for w in workloads(manifests) for h, field in plugin_headers(w).items()}
    problems = inference_objectives_name_pools(manifests)
    for o in (o for o in manifests if o["kind"] == "InferenceObjective"):
        ns, ref = namespace_of(o), (o.get("spec") or {}).get("poolRef") or {}
        if (ns, ref.get("name")) not in pools:
            continue  # reported above
        if (ns, ref.get("name"), name_of(o)) not in routed:
            problems.append(
                f"{describe(o)} is named {name_of(o)!r}, but no HTTPRoute sends requests for that model name to "
                f"InferencePool {ns}/{ref.get('name')}"
            )
        if setters.get(OBJECTIVE_HEADER) != "model":
            problems.append(
                f"{describe(o)}: no body-based router of the stack sets {OBJECTIVE_HEADER} from the body's model, so "
                "no request selects it"
            )
    return problems
