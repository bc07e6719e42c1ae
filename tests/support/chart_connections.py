"""The connections between our objects and the charts' objects, checked over a whole expanded
cluster (``stacks.tools.charts.expand``): each function takes the cluster's objects and returns one
message per broken connection (empty: connected).

What operators create at run time (the Prometheus server pods, Knative's activator and Kourier
gateway) is not in any chart's output; ``operator_pods`` derives it from the custom resources
that ask for it, with the labels, ports and namespaces the pinned operators give it.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

from llmstack_k8s.rules import containers, describe, pod_template, selector_matches

PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
LEVELS = ("restricted", "baseline", "privileged")
#: What an unlabelled namespace is taken to enforce: the cluster-wide default most managed clusters
#: set. A pod that needs more must sit in a namespace that says so.
UNLABELLED_NAMESPACE_LEVEL = "baseline"


def _ns(o: dict) -> str | None:
    return (o.get("metadata") or {}).get("namespace")


def _name(o: dict) -> str:
    return (o.get("metadata") or {}).get("name")


def _labels(o: dict) -> dict:
    return dict((o.get("metadata") or {}).get("labels") or {})


def of_kind(objects: Iterable[dict], kind: str, group: str = "") -> list[dict]:
    return [o for o in objects if o["kind"] == kind and o["apiVersion"].startswith(group)]


def namespace_labels(objects: list[dict], namespace: str) -> dict:
    """A namespace's labels as the API server holds them (it adds kubernetes.io/metadata.name)."""
    ns = next((o for o in objects if o["kind"] == "Namespace" and _name(o) == namespace), None)
    return {**(_labels(ns) if ns else {}), "kubernetes.io/metadata.name": namespace}


def namespace_selected(objects: list[dict], selector: dict | None, namespace: str, own: str) -> bool:
    """Prometheus Operator's ``*NamespaceSelector``: null = its own namespace only, ``{}`` = all."""
    if selector is None:
        return namespace == own
    return selector_matches(selector, namespace_labels(objects, namespace))


# --- pods: those in workloads, and those operators create ------------------------------------


@dataclass
class Pod:
    """A pod some object runs: where, with which labels, exposing which ports."""

    owner: str
    namespace: str
    labels: dict
    ports: dict = field(default_factory=dict)  # port name -> number (unnamed ports under their number)
    spec: dict = field(default_factory=dict)


# Knative Serving 1.23 as its operator installs it, all in the KnativeServing's namespace (the
# operator moves every namespaced object there, Kourier's gateway included: knative/operator
# pkg/reconciler/knativeserving/ingress/kourier.go). Labels from knative/serving
# config/core/deployments/{activator,autoscaler}.yaml and net-kourier config/300-gateway.yaml;
# a revision pod's queue-proxy ports from knative/serving pkg/reconciler/revision/resources/queue.go
# and pkg/apis/serving/v1 (queue-port 8012 for http1, http-queueadm 8022, http-autometric 9090,
# http-usermetric 9091).
KNATIVE_QUEUE_PROXY_PORTS = {
    "queue-port": 8012,
    "http-queueadm": 8022,
    "http-autometric": 9090,
    "http-usermetric": 9091,
}
KNATIVE_USER_PORT = "user-port"  # the name Knative gives the user container's port in a revision
KNATIVE_CALLERS = {
    # caller -> (pod labels, revision ports it connects to)
    "activator": ({"app": "activator", "role": "activator"}, ("queue-port",)),
    "kourier-gateway": ({"app": "3scale-kourier-gateway"}, ("queue-port",)),
    "autoscaler": ({"app": "autoscaler"}, ("http-autometric",)),
}


def _ports(spec: dict) -> dict:
    out = {}
    for c in containers(spec):
        for p in c.get("ports") or []:
            out[p.get("name") or str(p["containerPort"])] = p["containerPort"]
    return out


def workload_pods(objects: list[dict]) -> list[Pod]:
    """Pods of every workload (Deployments, DaemonSets, Jobs, Knative Services ...) in the cluster."""
    pods = []
    for o in objects:
        t = pod_template(o)
        if not t:
            continue
        labels, spec = t
        ports = _ports(spec)
        if o["apiVersion"].startswith("serving.knative.dev/"):
            # A revision pod: the user container's port renamed, queue-proxy's ports beside it.
            user = (spec.get("containers") or [{}])[0].get("ports") or [{"containerPort": 8080}]
            ports = {KNATIVE_USER_PORT: user[0]["containerPort"], **KNATIVE_QUEUE_PROXY_PORTS}
        pods.append(Pod(describe(o), _ns(o) or "default", labels, ports, dict(spec)))
    return pods


def prometheus_pods(objects: list[dict]) -> list[Pod]:
    """The server pods Prometheus Operator runs for each Prometheus (labels its StatefulSet sets)."""
    pods = []
    for p in of_kind(objects, "Prometheus", "monitoring.coreos.com/"):
        name, spec = _name(p), p.get("spec") or {}
        labels = {
            **((spec.get("podMetadata") or {}).get("labels") or {}),
            "app.kubernetes.io/name": "prometheus",
            "app.kubernetes.io/instance": name,
            "app.kubernetes.io/managed-by": "prometheus-operator",
            "prometheus": name,
            "operator.prometheus.io/name": name,
            "operator.prometheus.io/shard": "0",
        }
        pods.append(
            Pod(f"Prometheus {_ns(p)}/{name} (server pods)", _ns(p), labels, {spec.get("portName") or "web": 9090})
        )
    return pods


def knative_pods(objects: list[dict]) -> dict[str, Pod]:
    """Knative's data-plane pods that call revisions, for each KnativeServing in the cluster."""
    out = {}
    for ks in of_kind(objects, "KnativeServing", "operator.knative.dev/"):
        for caller, (labels, _) in KNATIVE_CALLERS.items():
            out[caller] = Pod(f"Knative {caller} ({describe(ks)})", _ns(ks), dict(labels))
    return out


def pods_of_service(objects: list[dict], svc: dict) -> list[Pod]:
    selector = (svc.get("spec") or {}).get("selector")
    if not selector:
        return []
    return [
        p
        for p in workload_pods(objects) + prometheus_pods(objects)
        if p.namespace == _ns(svc) and all(p.labels.get(k) == v for k, v in selector.items())
    ]


def runtime_services(objects: list[dict]) -> list[dict]:
    """Services no chart renders but the cluster has: the API server's ``default/kubernetes``, and
    the kubelet Service Prometheus Operator maintains where its ``--kubelet-service`` flag says
    (prometheus-operator pkg/kubelet)."""
    out = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {"ports": [{"name": "https", "port": 443}]},
        }
    ]
    for o in objects:
        t = pod_template(o)
        for c in containers(t[1]) if t else []:
            for arg in c.get("args") or []:
                if arg.startswith("--kubelet-service="):
                    ns, _, name = arg.split("=", 1)[1].partition("/")
                    out.append(
                        {
                            "apiVersion": "v1",
                            "kind": "Service",
                            "metadata": {
                                "name": name,
                                "namespace": ns,
                                "labels": {
                                    "app.kubernetes.io/name": "kubelet",
                                    "k8s-app": "kubelet",
                                    "app.kubernetes.io/managed-by": "prometheus-operator",
                                },
                            },
                            "spec": {
                                "ports": [
                                    {"name": "https-metrics", "port": 10250},
                                    {"name": "http-metrics", "port": 10255},
                                    {"name": "cadvisor", "port": 4194},
                                ]
                            },
                        }
                    )
    return out


def services(objects: list[dict]) -> list[dict]:
    return [s for s in objects if s["kind"] == "Service" and s["apiVersion"] == "v1"] + runtime_services(objects)


def service(objects: list[dict], namespace: str, name: str) -> dict | None:
    return next((s for s in services(objects) if _ns(s) == namespace and _name(s) == name), None)


# --- 1. Prometheus selects every monitor and rule ----------------------------------------------

_SELECTORS = {
    "PodMonitor": ("podMonitorSelector", "podMonitorNamespaceSelector"),
    "ServiceMonitor": ("serviceMonitorSelector", "serviceMonitorNamespaceSelector"),
    "PrometheusRule": ("ruleSelector", "ruleNamespaceSelector"),
}


def prometheus_selecting(objects: list[dict], monitor: dict) -> list[dict]:
    """The Prometheus servers whose selectors pick up this PodMonitor/ServiceMonitor/PrometheusRule
    (a null selector selects nothing; a null namespace selector means the Prometheus' namespace)."""
    sel, ns_sel = _SELECTORS[monitor["kind"]]
    return [
        p
        for p in of_kind(objects, "Prometheus", "monitoring.coreos.com/")
        if (p.get("spec") or {}).get(sel) is not None
        and selector_matches(p["spec"][sel], _labels(monitor))
        and namespace_selected(objects, p["spec"].get(ns_sel), _ns(monitor), _ns(p))
    ]


def prometheus_selects_monitors(objects: list[dict]) -> list[str]:
    """Every PodMonitor, ServiceMonitor and PrometheusRule in the cluster is picked up by a Prometheus
    (none to check when the stack installs no Prometheus: it uses the cluster's)."""
    if not of_kind(objects, "Prometheus", "monitoring.coreos.com/"):
        return []
    problems = []
    for m in objects:
        if m["kind"] in _SELECTORS and m["apiVersion"].startswith("monitoring.coreos.com/"):
            if not prometheus_selecting(objects, m):
                sel, ns_sel = _SELECTORS[m["kind"]]
                problems.append(
                    f"{describe(m)} (labels {_labels(m)}) is selected by no Prometheus: check its {sel}/{ns_sel}"
                )
    return problems


def monitors_reach_targets(objects: list[dict]) -> list[str]:
    """Each ServiceMonitor selects a Service with its endpoints' port names; each PodMonitor selects
    pods, and every pod it selects exposes one of its endpoints' ports."""
    problems = []
    pods = workload_pods(objects)
    for m in objects:
        if not m["apiVersion"].startswith("monitoring.coreos.com/") or m["kind"] not in (
            "ServiceMonitor",
            "PodMonitor",
        ):
            continue
        spec = m.get("spec") or {}
        nsel = spec.get("namespaceSelector") or {}
        in_scope = (
            (lambda ns: True)
            if nsel.get("any")
            else (lambda ns, nsel=nsel, m=m: ns in (nsel.get("matchNames") or [_ns(m)]))
        )
        endpoints = spec.get("endpoints") or spec.get("podMetricsEndpoints") or []
        wanted = {e.get("port") for e in endpoints if e.get("port")}
        if m["kind"] == "ServiceMonitor":
            selected = [
                s
                for s in services(objects)
                if in_scope(_ns(s)) and selector_matches(spec.get("selector") or {}, _labels(s))
            ]
            named = {p.get("name") for s in selected for p in (s.get("spec") or {}).get("ports") or []}
            if not selected:
                problems.append(f"{describe(m)} selects no Service (selector {spec.get('selector')})")
            elif wanted - named:
                problems.append(f"{describe(m)}: the Services it selects have no port named {sorted(wanted - named)}")
        else:
            selected = [
                p for p in pods if in_scope(p.namespace) and selector_matches(spec.get("selector") or {}, p.labels)
            ]
            if not selected:
                problems.append(f"{describe(m)} selects no pods (selector {spec.get('selector')})")
            for p in selected:
                if not wanted & set(p.ports):
                    problems.append(
                        f"{describe(m)} selects pods of {p.owner}, which expose none of the ports {sorted(wanted)}"
                    )
    return problems


# --- 2. KEDA's Prometheus server address resolves ----------------------------------------------

_SVC_URL = re.compile(
    r"^https?://(?P<svc>[a-z0-9-]+)\.(?P<ns>[a-z0-9-]+)(\.svc(\.cluster\.local)?)?(:(?P<port>\d+))?(/.*)?$"
)


def resolve_service_address(objects: list[dict], address: str) -> tuple[dict | None, int | None, str]:
    """(Service, port, problem) for an in-cluster URL ``http://<svc>.<ns>.svc...:<port>``."""
    m = _SVC_URL.match(address)
    if not m:
        return None, None, f"{address!r} is not an in-cluster Service URL (http://<service>.<namespace>.svc:<port>)"
    svc = service(objects, m["ns"], m["svc"])
    port = int(m["port"] or (443 if address.startswith("https") else 80))
    if svc is None:
        return None, port, f"{address}: no Service {m['ns']}/{m['svc']} in the cluster"
    if port not in [p["port"] for p in svc["spec"].get("ports") or []]:
        return (
            svc,
            port,
            f"{address}: Service {m['ns']}/{m['svc']} does not open port {port} (ports "
            f"{[p['port'] for p in svc['spec'].get('ports') or []]})",
        )
    return svc, port, ""


def keda_prometheus_address_resolves(objects: list[dict]) -> list[str]:
    """Each ScaledObject's prometheus trigger points at a Service the cluster has, on a port it
    opens, and that Service sends the traffic to Prometheus server pods listening on its target port
    (none to check when the stack installs no Prometheus: the address is then the cluster's)."""
    if not of_kind(objects, "Prometheus", "monitoring.coreos.com/"):
        return []
    problems = []
    for so in of_kind(objects, "ScaledObject", "keda.sh/"):
        for t in (so.get("spec") or {}).get("triggers") or []:
            if t.get("type") != "prometheus":
                continue
            address = (t.get("metadata") or {}).get("serverAddress", "")
            svc, port, problem = resolve_service_address(objects, address)
            if problem:
                problems.append(f"{describe(so)} trigger {t.get('name')}: {problem}")
                continue
            target = next(p.get("targetPort", p["port"]) for p in svc["spec"]["ports"] if p["port"] == port)
            servers = [p for p in pods_of_service(objects, svc) if p.owner.startswith("Prometheus ")]
            if not servers:
                problems.append(
                    f"{describe(so)} trigger {t.get('name')}: Service {describe(svc)} selects no Prometheus server pods"
                )
            elif not all(target in p.ports or target in p.ports.values() for p in servers):
                problems.append(
                    f"{describe(so)} trigger {t.get('name')}: Prometheus pods do not listen on target port {target}"
                )
    return problems


# --- 3. Grafana's dashboard sidecar picks up our dashboards ------------------------------------


def dashboard_sidecars(objects: list[dict]) -> list[tuple[str, dict]]:
    """(Grafana namespace, env of its dashboard sidecar) for each Grafana with one."""
    out = []
    for o in objects:
        t = pod_template(o)
        if not t:
            continue
        for c in containers(t[1]):
            env = {e["name"]: e.get("value") for e in c.get("env") or []}
            if "LABEL" in env and "dashboards" in (env.get("FOLDER") or "") + c.get("name", ""):
                out.append((_ns(o), env))
    return out


def is_dashboard(cm: dict) -> bool:
    return cm["kind"] == "ConfigMap" and any(k.endswith(".json") for k in (cm.get("data") or {}))


def sidecar_picks(ns: str, env: dict, cm: dict) -> bool:
    """kiwigrid k8s-sidecar: LABEL must be on the ConfigMap (with LABEL_VALUE when set), in
    NAMESPACE (ALL, or a comma list; unset = Grafana's own namespace)."""
    labels = _labels(cm)
    if env["LABEL"] not in labels or (env.get("LABEL_VALUE") and labels[env["LABEL"]] != env["LABEL_VALUE"]):
        return False
    if (env.get("RESOURCE") or "both") not in ("both", "configmap"):
        return False
    watched = env.get("NAMESPACE")
    return watched == "ALL" or _ns(cm) in (watched.split(",") if watched else [ns])


def grafana_sidecar_picks_dashboards(ours: list[dict], objects: list[dict]) -> list[str]:
    """Every dashboard ConfigMap of ours is loaded by a Grafana dashboard sidecar (none to check
    when the stack installs no Grafana: the dashboards are for the cluster's)."""
    sidecars = dashboard_sidecars(objects)
    if not sidecars:
        return []
    return [
        f"{describe(cm)} (labels {_labels(cm)}) is loaded by no Grafana dashboard sidecar "
        f"({[(ns, {k: env.get(k) for k in ('LABEL', 'LABEL_VALUE', 'NAMESPACE')}) for ns, env in sidecars]})"
        for cm in ours
        if is_dashboard(cm) and not any(sidecar_picks(ns, env, cm) for ns, env in sidecars)
    ]


# --- 4. The device plugin advertises what our pods request -------------------------------------


def device_plugin_configs(objects: list[dict]) -> list[tuple[str, dict]]:
    """(owner, parsed config) the NVIDIA device plugin DaemonSets run with: the ConfigMap their
    config-manager reads (the DEFAULT_CONFIG entry), or no config (defaults) without one."""
    out = []
    for ds in of_kind(objects, "DaemonSet", "apps/"):
        spec = ds["spec"]["template"]["spec"]
        plugin = [c for c in spec.get("containers") or [] if (c.get("command") or [""])[0] == "nvidia-device-plugin"]
        if not plugin:
            continue
        env = {e["name"]: e.get("value") for c in containers(spec) for e in c.get("env") or []}
        cm_names = [v["configMap"]["name"] for v in spec.get("volumes") or [] if "configMap" in v]
        cms = [o for o in objects if o["kind"] == "ConfigMap" and _ns(o) == _ns(ds) and _name(o) in cm_names]
        default = env.get("DEFAULT_CONFIG")
        if cms and default:
            data = {k: v for cm in cms for k, v in (cm.get("data") or {}).items()}
            out.append((describe(ds), yaml.safe_load(data.get(default) or "") or {}))
        else:
            out.append((describe(ds), {}))
    return out


def advertised_resources(config: dict) -> set[str]:
    """Resource names a device plugin with this config advertises (k8s-device-plugin
    api/config/v1: time-slicing/MPS rename; MIG strategy mixed advertises nvidia.com/mig-*)."""
    flags = config.get("flags") or {}
    if (flags.get("migStrategy") or "none") == "mixed":
        return {"nvidia.com/gpu", "nvidia.com/mig-*"}
    sharing = config.get("sharing") or {}
    out = {"nvidia.com/gpu"}
    for mode in ("timeSlicing", "mps"):
        s = sharing.get(mode) or {}
        for r in s.get("resources") or []:
            out.discard(r["name"])
            out.add(r.get("rename") or (f"{r['name']}.shared" if s.get("renameByDefault") else r["name"]))
    return out


def gpu_requests_of(objects: list[dict]) -> list[tuple[str, str]]:
    return [
        (describe(o), name)
        for o in objects
        if (t := pod_template(o))
        for c in containers(t[1])
        for name in ((c.get("resources") or {}).get("limits") or {})
        if name.startswith("nvidia.com/")
    ]


def device_plugin_advertises_requested_resources(ours: list[dict], objects: list[dict]) -> list[str]:
    """Every GPU resource our pods request is advertised by the device plugin the stack installs."""
    configs = device_plugin_configs(objects)
    if not configs:
        return []  # the cluster brings its own device plugin (gpuPool.install: none)
    advertised = set().union(*(advertised_resources(c) for _, c in configs))
    problems = []
    for owner, name in gpu_requests_of(ours):
        if name not in advertised and not ("nvidia.com/mig-*" in advertised and name.startswith("nvidia.com/mig-")):
            problems.append(
                f"{owner} requests {name}, which the device plugin ({', '.join(o for o, _ in configs)}) "
                f"does not advertise (it advertises {sorted(advertised)})"
            )
    return problems


# --- 5. Our NetworkPolicies admit the charts' callers ------------------------------------------


def _port_number(port, target: Pod) -> int | None:
    if isinstance(port, int):
        return port
    return target.ports.get(port) if not str(port).isdigit() else int(port)


def admitted(objects: list[dict], caller: Pod, target: Pod, port: int) -> bool:
    """Kubernetes NetworkPolicy semantics: allowed when no ingress policy selects the target pod,
    or one that does has a rule admitting the caller (pod/namespace selectors) on the port."""
    policies = [
        p
        for p in of_kind(objects, "NetworkPolicy", "networking.k8s.io/")
        if _ns(p) == target.namespace
        and ("Ingress" in (p["spec"].get("policyTypes") or ["Ingress"]))
        and selector_matches(p["spec"].get("podSelector") or {}, target.labels)
    ]
    if not policies:
        return True
    caller_ns = namespace_labels(objects, caller.namespace)
    for p in policies:
        for rule in p["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if (
                ports
                and not any(_port_number(pp.get("port"), target) == port for pp in ports if "port" in pp)
                and not any("port" not in pp for pp in ports)
            ):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                if "ipBlock" in peer:
                    continue
                ns_ok = (
                    selector_matches(peer["namespaceSelector"], caller_ns)
                    if "namespaceSelector" in peer
                    else caller.namespace == target.namespace
                )
                pod_ok = selector_matches(peer["podSelector"], caller.labels) if "podSelector" in peer else True
                if ns_ok and pod_ok:
                    return True
    return False


def chart_callers(objects: list[dict]) -> list[tuple[Pod, Pod, int, str]]:
    """(caller, target pod, port, why) for every call a chart's pods make to our serving pods."""
    calls = []
    pods = workload_pods(objects)
    # Prometheus scrapes the pods its PodMonitors select, on the endpoint ports.
    for m in of_kind(objects, "PodMonitor", "monitoring.coreos.com/"):
        spec = m.get("spec") or {}
        nsel = spec.get("namespaceSelector") or {}
        for server in [s for p in prometheus_selecting(objects, m) for s in prometheus_pods([p])]:
            for target in pods:
                if not (nsel.get("any") or target.namespace in (nsel.get("matchNames") or [_ns(m)])):
                    continue
                if not selector_matches(spec.get("selector") or {}, target.labels):
                    continue
                for e in spec.get("podMetricsEndpoints") or []:
                    if e.get("port") in target.ports:
                        calls.append((server, target, target.ports[e["port"]], f"scrape via {describe(m)}"))
    # The KEDA HTTP add-on's interceptor forwards to the Service each HTTPScaledObject names.
    for hso in of_kind(objects, "HTTPScaledObject", "http.keda.sh/"):
        ref = hso["spec"]["scaleTargetRef"]
        svc = service(objects, _ns(hso), ref.get("service"))
        sp = next((p for p in (svc or {}).get("spec", {}).get("ports") or [] if p["port"] == ref.get("port")), None)
        interceptors = [
            p
            for s in of_kind(objects, "Service")
            if (s.get("spec") or {}).get("type") != "ExternalName" and "interceptor-proxy" in _name(s)
            for p in pods_of_service(objects, s)
        ]
        for target in pods_of_service(objects, svc) if svc and sp else []:
            port = _port_number(sp.get("targetPort", sp["port"]), target)
            if port is None:
                continue  # a pod without the Service's target port (the rule services_select_templates)
            for caller in interceptors:
                calls.append((caller, target, port, f"proxy for {describe(hso)}"))
    # Knative's activator, Kourier gateway and autoscaler reach every revision pod.
    for caller_name, caller in knative_pods(objects).items():
        for target in pods:
            if KNATIVE_USER_PORT in target.ports:
                for port in KNATIVE_CALLERS[caller_name][1]:
                    calls.append((caller, target, target.ports[port], f"Knative {caller_name} -> revision"))
    return calls


def network_policies_admit_chart_callers(objects: list[dict]) -> list[str]:
    return [
        f"{caller.owner} (namespace {caller.namespace}, labels {caller.labels}) cannot reach {target.owner} "
        f"on port {port} ({why}): no NetworkPolicy of {target.namespace} admits it"
        for caller, target, port, why in chart_callers(objects)
        if not admitted(objects, caller, target, port)
    ]


def buffered_services_resolve(objects: list[dict]) -> list[str]:
    """Each ExternalName Service of ours that names an in-cluster Service resolves to one the
    cluster has, on a port it opens (the scale-from-zero path through the KEDA interceptor)."""
    problems = []
    for s in of_kind(objects, "Service"):
        spec = s.get("spec") or {}
        if spec.get("type") != "ExternalName" or ".svc" not in spec.get("externalName", ""):
            continue
        for p in spec.get("ports") or [{"port": 80}]:
            _, _, problem = resolve_service_address(objects, f"http://{spec['externalName']}:{p['port']}")
            if problem:
                problems.append(f"{describe(s)}: {problem}")
    return problems


# --- 6. Privileged pods land in namespaces that allow them -------------------------------------

_BASELINE_CAPS = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def pod_security_level(spec: dict) -> tuple[str, list[str]]:
    """The least Pod Security Standard level that admits this pod spec, and why not a stricter one
    (kubernetes.io/docs/concepts/security/pod-security-standards)."""
    psc = spec.get("securityContext") or {}
    cs = containers(spec)
    scs = [(c.get("name"), c.get("securityContext") or {}) for c in cs]
    privileged = [f"host namespaces ({k})" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    privileged += [f"{n}: privileged" for n, sc in scs if sc.get("privileged")]
    privileged += [
        f"{n}: adds {sorted(set(sc['capabilities']['add']) - _BASELINE_CAPS)}"
        for n, sc in scs
        if set((sc.get("capabilities") or {}).get("add") or []) - _BASELINE_CAPS
    ]
    privileged += [f"hostPath volume {v['name']}" for v in spec.get("volumes") or [] if "hostPath" in v]
    privileged += [
        f"{c.get('name')}: hostPort {p['hostPort']}" for c in cs for p in c.get("ports") or [] if p.get("hostPort")
    ]
    privileged += [
        f"{n}: seccomp Unconfined"
        for n, sc in [*scs, ("pod", psc)]
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined"
    ]
    if privileged:
        return "privileged", privileged
    baseline = [
        f"volume {v['name']} ({next(k for k in v if k != 'name')})"
        for v in spec.get("volumes") or []
        if not set(v) - {"name"} <= _RESTRICTED_VOLUMES
    ]
    for n, sc in scs:
        if sc.get("allowPrivilegeEscalation") is not False:
            baseline.append(f"{n}: allowPrivilegeEscalation not false")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            baseline.append(f"{n}: runAsNonRoot not true")
        if 0 in (sc.get("runAsUser"), psc.get("runAsUser") if "runAsUser" not in sc else None):
            baseline.append(f"{n}: runAsUser 0")
        if (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") not in (
            "RuntimeDefault",
            "Localhost",
        ):
            baseline.append(f"{n}: no RuntimeDefault seccomp profile")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []) or set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            baseline.append(f"{n}: capabilities not dropped to ALL")
    return ("baseline", baseline) if baseline else ("restricted", [])


def namespace_level(objects: list[dict], namespace: str) -> tuple[str, bool]:
    """(enforced level, whether the namespace declares it)."""
    labels = namespace_labels(objects, namespace)
    if PSA_ENFORCE in labels:
        return labels[PSA_ENFORCE], True
    return UNLABELLED_NAMESPACE_LEVEL, False


def pods_admitted_by_namespace_pod_security(objects: list[dict]) -> list[str]:
    """Every pod of the cluster (ours and the charts') meets the Pod Security level its namespace
    enforces: privileged DaemonSets (device plugin, DCGM exporter, node exporter) need a namespace
    labelled ``pod-security.kubernetes.io/enforce: privileged``."""
    problems = []
    for pod in workload_pods(objects):
        needed, why = pod_security_level(pod.spec)
        level, declared = namespace_level(objects, pod.namespace)
        if LEVELS.index(needed) > LEVELS.index(level):
            problems.append(
                f"{pod.owner} needs Pod Security level {needed} ({'; '.join(why[:3])}) but namespace {pod.namespace} "
                + (f"enforces {level}" if declared else f"has no {PSA_ENFORCE} label (taken as {level})")
            )
    return problems
