"""How long ``pulumi up`` waits for what the components create, derived from the budgets the
objects themselves carry (download deadline, startup budget), never pulumi-kubernetes' default.

pulumi-kubernetes waits ("awaits") for some kinds until they are ready: a Job until it completes,
a Deployment until its rollout is available, a Service until it has a ready endpoint, a Helm
release until its workloads are ready (``helm --wait``), a custom resource only when it carries
``pulumi.com/waitFor``. Each gives up after 10 minutes (Helm releases: 5) unless told otherwise.
The timeout is written into the object as the ``pulumi.com/timeoutSeconds`` annotation, so the
rendered manifest shows it and the cross-object checks can compare it with the budget.
"""

import math
from collections.abc import Mapping

from ..sizing.cold_start import DEFAULT_SCHEDULING_SECONDS, cold_start_budget

#: Annotations pulumi-kubernetes reads (provider/pkg/metadata).
TIMEOUT_ANNOTATION = "pulumi.com/timeoutSeconds"
SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"
WAIT_FOR_ANNOTATION = "pulumi.com/waitFor"

#: pulumi-kubernetes' own await timeout where none is given (seconds).
DEFAULT_AWAIT_SECONDS = 600
#: Helm's ``--timeout`` where a release gives none.
DEFAULT_HELM_TIMEOUT_SECONDS = 300

#: Pulling the ~10 GB vLLM image onto a fresh node (the cold-start defaults, llmstack_k8s.sizing.cold_start).
IMAGE_PULL_SECONDS = cold_start_budget(None).image_seconds
#: What comes before a pod's own budget starts: a node for it, then its image (default figures;
#: the serving components take the model's own as ``scheduling_seconds``).
SCHEDULING_SECONDS = DEFAULT_SCHEDULING_SECONDS
#: A controller fails an object at the object's own deadline (a Job's ``activeDeadlineSeconds``, a
#: Knative revision's progress deadline); wait a little longer, so that ``pulumi up`` reports that
#: failure and its reason rather than a timeout of its own.
FAILURE_GRACE_SECONDS = 120
#: Helm releases install controllers on ordinary nodes: maybe a new node, then their images.
HELM_TIMEOUT_SECONDS = SCHEDULING_SECONDS


def timeout_annotation(seconds: int) -> dict[str, str]:
    return {TIMEOUT_ANNOTATION: str(int(seconds))}


def skip_await_annotation() -> dict[str, str]:
    return {SKIP_AWAIT_ANNOTATION: "true"}


def job_await_seconds(active_deadline_seconds: int) -> int:
    """A download Job is awaited until it completes or its own deadline fails it."""
    return active_deadline_seconds + FAILURE_GRACE_SECONDS


def knative_await_seconds(progress_deadline_seconds: int) -> int:
    """A Knative Service is awaited until Ready: its revision is ready or fails at its progress deadline."""
    return progress_deadline_seconds + FAILURE_GRACE_SECONDS


def _whole(value: object) -> int | None:
    """A whole number (``2``, ``"2"``, ``2.0``), else None: a manifest's probe fields may be strings."""
    try:
        f = float(value)  # type: ignore[arg-type]  # anything float() takes; the rest is None below
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else None


def startup_budget_seconds(probe: Mapping[str, object]) -> int | None:
    """Seconds a startup probe lets a container take before the kubelet restarts it (one formula: the
    awaits and the rules, so the policy pack, use it)."""
    period = _whole(probe.get("periodSeconds", 10))
    failures = _whole(probe.get("failureThreshold", 3))
    delay = _whole(probe.get("initialDelaySeconds", 0))
    if period is None or failures is None or delay is None:
        return None
    return delay + period * failures


def startup_probe_seconds(pod_spec: dict) -> int:
    """The longest a pod's containers may take to start before the kubelet restarts them: the
    startup probe's ``initialDelaySeconds + periodSeconds x failureThreshold`` (Kubernetes'
    defaults where unset; the readiness probe where a container has no startup probe)."""
    worst = 0
    for c in pod_spec.get("containers") or []:
        p = c.get("startupProbe") or c.get("readinessProbe") or {}
        worst = max(worst, startup_budget_seconds(p) or 0)
    return worst


def pod_ready_seconds(startup_budget_seconds: int, scheduling_seconds: int = SCHEDULING_SECONDS) -> int:
    """From a server pod's creation to ready: a node, the image, then the startup probe's budget.
    The Deployment's ``progressDeadlineSeconds`` and Knative's progress deadline are at least this."""
    return scheduling_seconds + startup_budget_seconds


def rollout_waves(replicas: int, max_surge: int, max_unavailable: int) -> int:
    """Pods a rollout replaces one batch after another: ``max_surge + max_unavailable`` at a time."""
    return max(1, math.ceil(max(replicas, 1) / max(1, max_surge + max_unavailable)))


def deployment_await_seconds(
    startup_budget_seconds: int,
    replicas: int,
    max_surge: int,
    max_unavailable: int,
    scheduling_seconds: int = SCHEDULING_SECONDS,
) -> int:
    """A Deployment is awaited until every replica of the new version is ready: each wave of the
    rollout may take a whole pod start (a create is one wave: all replicas start at once)."""
    return rollout_waves(replicas, max_surge, max_unavailable) * pod_ready_seconds(
        startup_budget_seconds, scheduling_seconds
    )
