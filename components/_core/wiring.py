"""Typed wiring between components: what a serving component tells the others, and the helpers
that build one component's args from another's outputs, so a consumer never re-derives our
internal names (``"<name>-download"``) or settings (startup budget, "autoscaled").

A serving component records its plain facts (``ServerFacts``: known at preview, not Outputs)
under its ``deployment_name`` Output; GpuAutoscaling looks a workload's ``deployment_name`` up
there to take its startup budget and to refuse a Deployment that Pulumi, not the HPA, sizes.
"""

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from ..serving.vllm_pod import STARTUP_UNKNOWN_SIZE_SECONDS
from ..sizing.cold_start import DEFAULT_SCHEDULING_SECONDS
from .validation import ComponentArgsError


@dataclass(frozen=True)
class ServerFacts:
    """Plain facts of a serving component, known at preview."""

    component: str
    """``VllmService`` or ``KnativeVllmService``."""
    name: str
    """The component's resource name (also its pods' ``app.kubernetes.io/instance``)."""
    autoscaled: bool
    """An autoscaler owns the replica count (VllmService ``autoscaled=True``; Knative always)."""
    startup_budget_seconds: int
    """Seconds a replica may take to load (its startup probe's budget)."""
    scheduling_seconds: int = DEFAULT_SCHEDULING_SECONDS
    """Seconds before a new replica's container starts (a node, then the image): a request held while
    the model is at zero waits through them too."""
    max_num_seqs: int | None = None
    """vLLM's batch bound, if set (sizes the HTTP add-on's concurrency target)."""
    scales_to_zero: bool | None = None
    """Known to scale to zero (Knative ``min_scale: 0``); None where an autoscaler decides."""

    @classmethod
    def of(cls, component: str, name: str, args: Mapping[str, Any]) -> "ServerFacts":
        """The facts of a serving component from its validated args."""
        knative = component == "KnativeVllmService"
        return cls(
            component=component,
            name=name,
            autoscaled=knative or bool(args.get("autoscaled")),
            startup_budget_seconds=args.get("startup_budget_seconds") or STARTUP_UNKNOWN_SIZE_SECONDS,
            scheduling_seconds=args.get("scheduling_seconds") or DEFAULT_SCHEDULING_SECONDS,
            max_num_seqs=args["engine"].get("max_num_seqs"),
            scales_to_zero=(args.get("scaling") or {}).get("min_scale", 0) == 0 if knative else None,
        )


# deployment_name Output id -> facts; the service holds both, so an entry lives exactly as long.
_BY_OUTPUT: "weakref.WeakValueDictionary[int, ServerFacts]" = weakref.WeakValueDictionary()


def register_server(output: pulumi.Output, facts: ServerFacts) -> None:
    _BY_OUTPUT[id(output)] = facts


def server_facts(value: Any) -> ServerFacts | None:
    """The facts of the serving component whose Output this is (None for any other value)."""
    return _BY_OUTPUT.get(id(value)) if isinstance(value, pulumi.Output) else None


def scaled_workload(service: Any, max_replicas: int, **settings: Any) -> dict:
    """``ScaledWorkloadArgs`` for GpuAutoscaling from a ``VllmService`` created with
    ``autoscaled=True``: name, namespace, Deployment, Service, served model name and startup
    budget come from the service; ``settings`` are further ScaledWorkloadArgs fields
    (``min_replicas``, ``metric``, ``target``, ``cooldown_seconds``, ...)."""
    facts: ServerFacts | None = getattr(service, "facts", None)
    if facts is None or facts.component != "VllmService":
        raise TypeError("scaled_workload: pass a VllmService (a KnativeVllmService scales itself)")
    if not facts.autoscaled:
        raise ComponentArgsError(
            "VllmService",
            facts.name,
            "autoscaled",
            "must be True for the service to be scaled by GpuAutoscaling (otherwise Pulumi and the HPA fight over "
            "replicas)",
        )
    workload = {
        "name": facts.name,
        "namespace": service.namespace,
        "deployment_name": service.deployment_name,
        "service_name": service.service_name,
        "served_model_name": service.served_model_name,
        "startup_budget_seconds": facts.startup_budget_seconds,
        "scheduling_seconds": facts.scheduling_seconds,
        "max_replicas": max_replicas,
    }
    if facts.max_num_seqs:
        workload["http_concurrency_target"] = facts.max_num_seqs
    workload.update(settings)
    return workload


def monitored_model(service: Any, cache: Any = None, **settings: Any) -> dict:
    """``MonitoredModelArgs`` for Observability from a serving component (and its ``ModelCache``,
    whose download Job is then watched); ``settings`` are further fields (``ttft_p95_seconds``,
    ``always_on``)."""
    facts: ServerFacts | None = getattr(service, "facts", None)
    if facts is None:
        raise TypeError("monitored_model: pass a VllmService or KnativeVllmService")
    model = {"name": facts.name, "namespace": service.namespace, "served_model_name": service.served_model_name}
    if facts.scales_to_zero is not None:
        model["always_on"] = not facts.scales_to_zero
    if cache is not None:
        model["download_job_name"] = cache.job_name
    model.update(settings)
    return model
