"""GPUs: what a vLLM server asks for matches its parallelism, GPU pods tolerate the pool's
taints, and the DCGM exporter maps every GPU resource the pods request."""

from collections.abc import Mapping, Sequence
from typing import Any

from ..cluster.scheduling import WHOLE_GPU_RESOURCE
from ..observability.observability import DCGM_RESOURCE_NAMES_ENV, DCGM_VIRTUAL_GPUS_ENV
from .manifests import (
    UNKNOWN,
    as_int,
    as_list,
    as_map,
    containers,
    describe,
    flag_value,
    get_path,
    pod_template,
    vllm_containers,
    words,
)
from .stack import Declared, workloads

#: Resource name prefixes that are GPUs (whole, shared or MIG slices) for the device plugin.
GPU_RESOURCE_PREFIXES = ("nvidia.com/",)
#: The pool's taints when nothing else is declared: the GpuNodePool default.
DEFAULT_GPU_TAINTS = ({"key": WHOLE_GPU_RESOURCE, "effect": "NoSchedule"},)
#: The dcgm-exporter chart's name (releases of it are checked against the GPUs pods request).
DCGM_CHART = "dcgm-exporter"
SHARED_RESOURCE_SUFFIX = ".shared"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"


def gpu_requests(c: Mapping, prefixes: Sequence[str] = GPU_RESOURCE_PREFIXES) -> dict[str, Any]:
    """GPU resources a container asks for (limits, where the device plugin reads them)."""
    res = as_map(c.get("resources"))
    limits, requests = as_map(res.get("limits")), as_map(res.get("requests"))
    source = limits if any(str(k).startswith(tuple(prefixes)) for k in limits) else requests
    return {k: v for k, v in source.items() if str(k).startswith(tuple(prefixes))}


def vllm_gpus_needed(c: Mapping) -> int | None:
    """GPUs one vLLM server uses: tensor x pipeline (x data) parallel size, from its flags
    (in a multi-node group, that over ``--nnodes``: each pod runs its node's share)."""
    ws = words(c)
    if any(w == UNKNOWN for w in ws):
        return None
    sizes = [
        flag_value(ws, *names) or "1"
        for names in (
            ("--tensor-parallel-size", "-tp"),
            ("--pipeline-parallel-size", "-pp"),
            ("--data-parallel-size", "-dp"),
        )
    ]
    tp, pp, dp = (as_int(s) for s in sizes)
    nodes = as_int(flag_value(ws, "--nnodes", "-n") or "1")
    if tp is None or pp is None or dp is None or not nodes:
        return None
    return tp * pp * dp // nodes


def gpu_request_matches_parallelism(m: Mapping, prefixes: Sequence[str] = GPU_RESOURCE_PREFIXES) -> list[str]:
    """A vLLM container requests exactly tensor x pipeline parallel size GPUs (requests = limits).
    Protects from a server that fails at start for want of GPUs, or holds GPUs it never uses."""
    problems = []
    for where, c in vllm_containers(m):
        needed = vllm_gpus_needed(c)
        if flag_value(words(c), "--device") == "cpu":
            continue
        res = as_map(c.get("resources"))
        for name, qty in gpu_requests(c, prefixes).items():
            req = as_map(res.get("requests")).get(name)
            if req is not None and req != UNKNOWN and qty != UNKNOWN and as_int(req) != as_int(qty):
                problems.append(f"{where} requests {req} {name} but limits {qty}: set both to the same count.")
        got = gpu_requests(c, prefixes)
        if any(v == UNKNOWN for v in got.values()) or needed is None:
            continue
        total = sum(as_int(v) or 0 for v in got.values())
        if not got:
            problems.append(
                f"{where} runs vLLM but requests no GPU: set resources.limits[{WHOLE_GPU_RESOURCE!r}] "
                f"(or the pool's shared/MIG resource) to {needed} (tensor x pipeline parallel size)."
            )
        elif total != needed:
            problems.append(
                f"{where} requests {total} GPU(s) ({', '.join(f'{k}={v}' for k, v in got.items())}) but its "
                f"parallelism needs {needed} (tensor x pipeline parallel size): make the GPU request "
                f"equal {needed}, or change --tensor-parallel-size/--pipeline-parallel-size."
            )
    return problems


def tolerates(toleration: Mapping, taint: Mapping) -> bool:
    """Kubernetes' toleration/taint matching."""
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    if toleration.get("operator", "Equal") == "Exists":
        return not key or key == taint.get("key")
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def _taint_str(t: Mapping) -> str:
    return f"{t.get('key')}{'=' + str(t['value']) if t.get('value') else ''}:{t.get('effect')}"


def untolerated_gpu_taints(
    m: Mapping,
    taints: Sequence[Mapping],
    extra_tolerations: Sequence[Mapping] = (),
    prefixes: Sequence[str] = GPU_RESOURCE_PREFIXES,
) -> list[str]:
    """A pod that requests GPUs tolerates every taint of the GPU pool (else it never schedules).
    ``extra_tolerations``: what admission adds (a RuntimeClass's ``scheduling.tolerations``)."""
    t = pod_template(m)
    if not t or not any(gpu_requests(c, prefixes) for c in containers(t[1])):
        return []
    tolerations = [as_map(x) for x in as_list(t[1].get("tolerations"))] + list(extra_tolerations)
    missing = []
    for taint in taints:
        if not any(tolerates(tol, taint) for tol in tolerations) and taint not in missing:
            missing.append(taint)
    return [
        f"{describe(m)} requests GPUs but does not tolerate the GPU pool's taint {_taint_str(taint)}: add the "
        f"toleration {{key: {taint.get('key')}, operator: Exists, effect: {taint.get('effect')}}} (the "
        f"GpuNodePool's scheduling contract carries it), or declare the pool's real taints in the pack's config."
        for taint in missing
    ]


def gpu_pool_taints(
    objects: Sequence[Mapping], pod_labels_selector: Mapping, default: Sequence[Mapping]
) -> list[Mapping]:
    """Taints of the GPU nodes a pod lands on: those of the Karpenter NodePools whose node labels
    its nodeSelector matches, plus ``default`` (the pool's declared taints)."""
    taints = list(default)
    for m in objects:
        if m.get("kind") != "NodePool" or not str(m.get("apiVersion", "")).startswith("karpenter.sh/"):
            continue
        node_labels = as_map(get_path(m, "spec", "template", "metadata", "labels"))
        if pod_labels_selector and all(node_labels.get(k) == v for k, v in pod_labels_selector.items()):
            taints += [as_map(t) for t in as_list(get_path(m, "spec", "template", "spec", "taints"))]
    return taints


def gpu_pods_tolerate_pool_taints(
    objects: Sequence[Mapping], taints: Sequence[Mapping] = DEFAULT_GPU_TAINTS
) -> list[str]:
    """Every pod that requests GPUs tolerates the pool's taints (declared ones and those of the
    Karpenter NodePool it is placed on), counting what its RuntimeClass adds at admission.
    Protects from GPU pods that stay Pending forever."""
    runtime_tolerations = {
        get_path(m, "metadata", "name"): [as_map(t) for t in as_list(get_path(m, "scheduling", "tolerations"))]
        for m in objects
        if m.get("kind") == "RuntimeClass"
    }
    problems = []
    for m in objects:
        t = pod_template(m)
        if not t:
            continue
        selector = as_map(t[1].get("nodeSelector"))
        extra = runtime_tolerations.get(t[1].get("runtimeClassName"), [])
        problems += untolerated_gpu_taints(m, gpu_pool_taints(objects, selector, taints), extra)
    return problems


def dcgm_maps_gpu_resources(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """The DCGM exporter maps a GPU to the pod using it only for resources it is told about
    (``nvidia.com/gpu``, ``nvidia.com/mig-*``, or ``NVIDIA_RESOURCE_NAMES``), and shared GPUs only
    with ``KUBERNETES_VIRTUAL_GPUS``: every GPU resource a pod of the stack requests is mapped.
    Protects from GPU dashboards and alerts that show no model for a busy GPU."""
    requested = {
        r
        for w in workloads(manifests)
        for c in containers(w.pod)
        for part in ("requests", "limits")
        for r in ((c.get("resources") or {}).get(part) or {})
        if r.startswith("nvidia.com/")
    }
    problems = []
    for rel in (o for o in manifests if o["kind"] == "Release" and o.get("chart") == DCGM_CHART):
        env = {e["name"]: e.get("value", "") for e in ((rel.get("values") or {}).get("extraEnv") or [])}
        names = {n.strip() for n in env.get(DCGM_RESOURCE_NAMES_ENV, "").split(",") if n.strip()}
        for r in sorted(requested):
            if r != WHOLE_GPU_RESOURCE and not r.startswith(MIG_RESOURCE_PREFIX) and r not in names:
                problems.append(f"{describe(rel)} does not map {r} to pods (set {DCGM_RESOURCE_NAMES_ENV})")
            if r.endswith(SHARED_RESOURCE_SUFFIX) and env.get(DCGM_VIRTUAL_GPUS_ENV, "").lower() != "true":
                problems.append(f"{describe(rel)} does not map shared GPUs ({r}) to pods (set {DCGM_VIRTUAL_GPUS_ENV})")
    return problems
