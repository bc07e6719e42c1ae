"""Time budgets: a vLLM container's startup probe covers the engine's start, and ``pulumi up``
waits at least as long as what it waits for may legitimately take."""

import math
from collections.abc import Mapping

from .._core.awaits import (
    DEFAULT_AWAIT_SECONDS,
    DEFAULT_HELM_TIMEOUT_SECONDS,
    SCHEDULING_SECONDS,
    SKIP_AWAIT_ANNOTATION,
    TIMEOUT_ANNOTATION,
    WAIT_FOR_ANNOTATION,
    startup_budget_seconds,
    startup_probe_seconds,
)
from ..serving.knative_vllm_service import duration_seconds
from ..serving.vllm_pod import STARTUP_BASE_SECONDS
from .manifests import annotations, as_int, describe, is_core_service, is_headless_vllm, namespace_of, vllm_containers
from .stack import Declared, Workload, is_ksvc, selected, workloads

#: Knative's default ``serving.knative.dev/progress-deadline``.
KNATIVE_DEFAULT_PROGRESS_DEADLINE = 600
#: KEDA's default ``maxReplicaCount``.
KEDA_DEFAULT_MAX_REPLICAS = 100


def vllm_startup_probe(m: Mapping, min_budget_seconds: int = STARTUP_BASE_SECONDS) -> list[str]:
    """A vLLM container has a startup probe whose budget covers at least the derived minimum
    (engine start before any weights are read; weights add 10 s/GiB on top). Protects from a
    server the liveness probe restarts forever while it is still loading the model."""
    problems = []
    for where, c in vllm_containers(m):
        if is_headless_vllm(c):
            continue  # no HTTP server: a probe could never pass (the leader's covers the group)
        probe = c.get("startupProbe")
        if not isinstance(probe, Mapping):
            problems.append(
                f"{where} has no startupProbe: loading a model takes minutes, and the liveness probe "
                f"would restart it first. Add a startupProbe on /health with periodSeconds x failureThreshold "
                f">= {min_budget_seconds} s plus 10 s per GiB of weights (VllmService derives it)."
            )
            continue
        budget = startup_budget_seconds(probe)
        if budget is not None and budget < min_budget_seconds:
            problems.append(
                f"{where} startupProbe allows {budget} s (initialDelaySeconds + periodSeconds x failureThreshold), "
                f"less than the {min_budget_seconds} s a vLLM engine needs to start: raise failureThreshold to at "
                f"least {-(-min_budget_seconds // max(as_int(probe.get('periodSeconds', 10)) or 1, 1))} (or set "
                "startupTimeoutSeconds / weightsGiB on the model)."
            )
    return problems


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


def autoscaler_max(manifests: list[dict], w: Workload) -> int | None:
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
        o["kind"] == "ScaledObject"
        and namespace_of(o) == w.namespace
        and (o.get("spec") or {}).get("scaleTargetRef", {}).get("name") == w.name
        and (o.get("spec") or {}).get("minReplicaCount", 0) == 0
        for o in manifests
    )


def _count(value, replicas: int, rounding) -> int:
    """A rollout step (maxSurge/maxUnavailable: a count or a percent of the replicas)."""
    if isinstance(value, str) and value.endswith("%"):
        return int(rounding(replicas * int(value[:-1]) / 100))
    return int(value)


def _seconds(value: str | None, default: int) -> int:
    return duration_seconds(value) if value else default


def _rollout_waves(replicas: int, surge, unavailable) -> int:
    """How many rounds a rolling update of ``replicas`` takes, each starting ``surge + unavailable`` pods."""
    step = _count(surge, replicas, math.ceil) + _count(unavailable, replicas, math.floor)
    return math.ceil(max(replicas, 1) / max(step, 1))


def _deployment_await(manifests: list[dict], w: Workload, have: int, per_pod: int) -> list[str]:
    o, spec, problems = w.obj, w.obj.get("spec") or {}, []
    progress = spec.get("progressDeadlineSeconds", 600)
    if progress < per_pod:
        problems.append(
            f"{describe(o)}: progressDeadlineSeconds {progress} is less than a node, the image and the startup "
            f"budget ({per_pod} s): the rollout is failed while a pod is still starting"
        )
    replicas = autoscaler_max(manifests, w) or spec.get("replicas", 1)
    strategy = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    need = _rollout_waves(replicas, strategy.get("maxSurge", "25%"), strategy.get("maxUnavailable", "25%")) * per_pod
    if have < need:
        problems.append(
            f"{describe(o)} is awaited {have} s, less than its rollout may take ({need} s for {replicas} replica(s))"
        )
    return problems


def _leader_worker_set_await(w: Workload, have: int, per_pod: int) -> list[str]:
    """Multi-node: every group ready, each rollout wave a whole start (the leader's startup budget
    covers the group; the workers have no probe)."""
    o, spec = w.obj, w.obj.get("spec") or {}
    if w.name.endswith("/worker"):
        return []
    if WAIT_FOR_ANNOTATION not in annotations(o):
        return [f"{describe(o)} is not awaited: custom resources are awaited only with {WAIT_FOR_ANNOTATION}"]
    replicas = spec.get("replicas", 1)
    rolling = (spec.get("rolloutStrategy") or {}).get("rollingUpdateConfiguration") or {}
    need = _rollout_waves(replicas, rolling.get("maxSurge", 0), rolling.get("maxUnavailable", 1)) * per_pod
    if have < need:
        return [f"{describe(o)} is awaited {have} s, less than its groups may take ({need} s for {replicas} group(s))"]
    return []


def _knative_service_await(w: Workload, have: int) -> list[str]:
    o, spec, problems = w.obj, w.obj.get("spec") or {}, []
    if WAIT_FOR_ANNOTATION not in annotations(o):
        return []  # custom resources are awaited only when asked
    tmpl_ann = annotations(spec.get("template") or {})
    progress = _seconds(tmpl_ann.get("serving.knative.dev/progress-deadline"), KNATIVE_DEFAULT_PROGRESS_DEADLINE)
    if progress < startup_probe_seconds(w.pod):
        problems.append(
            f"{describe(o)}: progress deadline {progress} s is less than its startup budget "
            f"{startup_probe_seconds(w.pod)} s"
        )
    if have < progress:
        problems.append(f"{describe(o)} is awaited {have} s, less than its progress deadline {progress} s")
    return problems


def _workload_await(manifests: list[dict], w: Workload, scheduling_seconds: int) -> list[str]:
    """One workload's await against its kind's budget (per pod: a node, the image, the startup budget)."""
    o, spec = w.obj, w.obj.get("spec") or {}
    have, per_pod = await_seconds(o), scheduling_seconds + startup_probe_seconds(w.pod)
    if w.kind == "Job":
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is None:
            return [f"{describe(o)} is awaited but has no activeDeadlineSeconds: the await cannot cover it"]
        return (
            [f"{describe(o)} is awaited {have} s, less than its activeDeadlineSeconds {deadline}"]
            if have < deadline
            else []
        )
    if w.kind == "Deployment":
        return _deployment_await(manifests, w, have, per_pod)
    if w.kind == "LeaderWorkerSet":
        return _leader_worker_set_await(w, have, per_pod)
    if w.kind in ("StatefulSet", "DaemonSet"):
        return (
            [f"{describe(o)} is awaited {have} s, less than one pod may take to start ({per_pod} s)"]
            if have < per_pod
            else []
        )
    if w.kind == "KnativeService":
        return _knative_service_await(w, have)
    return []


def _service_awaits(manifests: list[dict], awaited: dict[tuple, int]) -> list[str]:
    """A Service is awaited until it has an endpoint: at least as long as the Deployments behind it,
    and never when one of them scales to zero."""
    problems = []
    for svc in (o for o in manifests if is_core_service(o)):
        spec = svc.get("spec") or {}
        if (
            skips_await(svc)
            or spec.get("type") == "ExternalName"
            or spec.get("clusterIP") == "None"
            or not spec.get("selector")
        ):
            continue
        for w in selected(manifests, namespace_of(svc), {"matchLabels": spec["selector"]}):
            if scales_to_zero(manifests, w):
                problems.append(f"{describe(svc)} is awaited until it has an endpoint, but {w} scales to zero")
            elif await_seconds(svc) < awaited.get((w.namespace, w.name), 0):
                problems.append(
                    f"{describe(svc)} is awaited {await_seconds(svc)} s, less than {w} behind it "
                    f"({awaited[(w.namespace, w.name)]} s)"
                )
    return problems


def awaits_cover_budgets(
    manifests: list[dict], declared: Declared = Declared(), scheduling_seconds: int = SCHEDULING_SECONDS
) -> list[str]:
    """``pulumi up`` waits at least as long as what it waits for may legitimately take: a Job its
    deadline; a Deployment a node, the image and the startup budget per rollout wave (and its
    progress deadline one such wave); a Service the controllers behind it (a Service of a workload
    that scales to zero must not be awaited); a Knative Service its progress deadline; a Helm
    release or another awaited resource a node and its images. Protects from an ``up`` that fails
    (and a rollout marked failed) while the pods are still legitimately starting."""
    problems = []
    awaited: dict[tuple, int] = {}
    for w in workloads(manifests):
        if skips_await(w.obj):
            continue
        problems += _workload_await(manifests, w, scheduling_seconds)
        if w.kind == "Deployment":
            awaited[(w.namespace, w.name)] = await_seconds(w.obj)
    problems += _service_awaits(manifests, awaited)
    for o in manifests:
        if skips_await(o):
            continue
        if o["kind"] == "Release" or (WAIT_FOR_ANNOTATION in annotations(o) and not is_ksvc(o)):
            if await_seconds(o) < scheduling_seconds:
                problems.append(
                    f"{describe(o)} is awaited {await_seconds(o)} s, less than a new node and its images may take "
                    f"({scheduling_seconds} s)"
                )
    return problems
