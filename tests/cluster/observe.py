"""What the local cluster holds, read back through kubectl: the API server's and controllers' own answers."""

from __future__ import annotations

import json
from collections import defaultdict

import local_cluster


def get(kind: str, namespace: str | None = None) -> list[dict]:
    """Every object of ``kind`` (``Kind.version.group`` or a core kind), in one namespace or all."""
    scope = ["-n", namespace] if namespace else ["-A"]
    out = local_cluster.kubectl("get", kind, *scope, "-o", "json", check=False)
    if out.returncode != 0:
        if (
            "the server doesn't have a resource type" in out.stderr
            or "could not find the requested resource" in out.stderr
        ):
            return []
        raise AssertionError(f"kubectl get {kind}: {out.stderr}")
    return json.loads(out.stdout)["items"]


def kubectl_kind(api_version: str, kind: str) -> str:
    if "/" not in api_version:
        return kind
    group, version = api_version.split("/")
    return f"{kind}.{version}.{group}"


def missing(objects: list[dict]) -> list[str]:
    """The rendered objects the cluster does not hold (``Kind ns/name``)."""
    wanted: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for obj in objects:
        meta = obj.get("metadata") or {}
        wanted[kubectl_kind(obj["apiVersion"], obj["kind"])].add((meta.get("namespace") or "", meta["name"]))
    absent = []
    for kind, names in sorted(wanted.items()):
        have = {((o["metadata"].get("namespace") or ""), o["metadata"]["name"]) for o in get(kind)}
        absent += [f"{kind} {ns}/{name}".replace(" /", " ") for ns, name in sorted(names - have)]
    return absent


def namespaces_of(objects: list[dict]) -> set[str]:
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    return names | {o["metadata"]["namespace"] for o in objects if (o.get("metadata") or {}).get("namespace")}


def pods(namespaces: set[str]) -> list[dict]:
    return [p for p in get("pods") if p["metadata"]["namespace"] in namespaces]


def pending(pod_list: list[dict]) -> list[str]:
    out = []
    for pod in pod_list:
        if pod["status"].get("phase") == "Pending":
            why = [c.get("message", "") for c in pod["status"].get("conditions", []) if c.get("status") == "False"]
            out.append(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}: {'; '.join(why)}")
    return out


def gpu_resource(pod: dict) -> str | None:
    for container in pod["spec"]["containers"]:
        for name in (container.get("resources") or {}).get("limits") or {}:
            if name.startswith("nvidia.com/"):
                return name
    return None


def nodes() -> dict[str, dict]:
    return {n["metadata"]["name"]: n for n in get("nodes")}


def ready_endpoints(namespace: str, service: str) -> int:
    slices = local_cluster.kubectl(
        "get", "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}", "-o", "json"
    ).stdout
    return sum(
        1
        for s in json.loads(slices)["items"]
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
    )


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
