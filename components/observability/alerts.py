"""Alert rules for the vLLM servers and their GPUs, as plain data (Prometheus rule groups).

``rule_groups(models, thresholds)`` returns the ``groups`` list of a Prometheus rules file /
PrometheusRule spec. It is plain Python so that the same rules are shipped by Observability,
checked by ``promtool check rules``, unit-tested with ``promtool test rules`` and loaded into a
real Prometheus by the e2e suite. Every metric name comes from ``llmstack_k8s.observability.metrics``.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, cast

import pulumi
from typing_extensions import NotRequired

from .._core.package import CANARY_VARIANT, STABLE_VARIANT
from . import metrics as m

#: Value of the ``job`` label Observability's PodMonitor gives every vLLM target.
VLLM_JOB = "vllm"
#: Label Observability's PodMonitor copies from the pods' ``app.kubernetes.io/instance``: the
#: stack's model name (``model_name`` on vLLM's own series is the *served* model name).
MODEL_LABEL = "model"
#: Label the PodMonitor puts on every vLLM series: ``stable`` or ``canary`` (a model's canary release).
VARIANT_LABEL = "variant"

VLLM_GROUP = "llmstack-vllm"
GPU_GROUP = "llmstack-gpu"

#: The grouping of the per-model vLLM alerts.
_BY_MODEL = f"namespace, {m.VLLM_MODEL_LABEL}"


class AlertThresholdsArgs(TypedDict):
    """When the alerts fire. Every field is optional; ``DEFAULT_THRESHOLDS`` holds the defaults."""

    no_ready_replica_minutes: NotRequired[int]
    """Minutes without a single replica answering before ``VllmModelDown`` fires (default 5)."""
    queue_waiting_requests: NotRequired[int]
    """Waiting requests per model that count as a queue building up (default 10)."""
    queue_minutes: NotRequired[int]
    """Minutes the queue must stay above ``queue_waiting_requests`` (default 5)."""
    kv_cache_usage_ratio: NotRequired[float]
    """KV-cache use (0..1) of a replica above which ``VllmKvCacheNearlyFull`` fires (default 0.9)."""
    kv_cache_minutes: NotRequired[int]
    """Minutes the KV cache must stay above the ratio (default 10)."""
    preemptions_per_minute: NotRequired[float]
    """Preemptions per minute per model above which ``VllmPreemptionsRising`` fires (default 1)."""
    ttft_p95_seconds: NotRequired[float]
    """Default TTFT p95 SLO in seconds, for models without their own (default 2)."""
    slo_minutes: NotRequired[int]
    """Minutes a latency SLO must be breached before it alerts (default 10)."""
    error_ratio: NotRequired[float]
    """Fraction of requests finishing with an error above which ``VllmHighErrorRate`` fires (default 0.05)."""
    pod_restarts_per_hour: NotRequired[int]
    """Container restarts in an hour above which ``VllmPodRestarting`` fires (default 3)."""
    gpu_memory_ratio: NotRequired[float]
    """GPU framebuffer use (0..1) above which ``GpuMemoryNearlyFull`` fires (default 0.98; vLLM
    pre-allocates ``gpuMemoryUtilization`` of it, so keep this above that)."""
    gpu_temperature_celsius: NotRequired[int]
    """GPU temperature above which ``GpuTemperatureHigh`` fires (default 87)."""


DEFAULT_THRESHOLDS: AlertThresholdsArgs = {
    "no_ready_replica_minutes": 5,
    "queue_waiting_requests": 10,
    "queue_minutes": 5,
    "kv_cache_usage_ratio": 0.9,
    "kv_cache_minutes": 10,
    "preemptions_per_minute": 1.0,
    "ttft_p95_seconds": 2.0,
    "slo_minutes": 10,
    "error_ratio": 0.05,
    "pod_restarts_per_hour": 3,
    "gpu_memory_ratio": 0.98,
    "gpu_temperature_celsius": 87,
}


class MonitoredModelArgs(TypedDict):
    """One served model, as the alert rules see it."""

    name: str
    """The stack's model name (``app.kubernetes.io/instance`` of its pods)."""
    namespace: pulumi.Input[str]
    """Namespace of the model's servers and download Job (``VllmService.namespace``)."""
    served_model_name: pulumi.Input[str]
    """Name vLLM reports in its ``model_name`` label (``VllmService.served_model_name``)."""
    ttft_p95_seconds: NotRequired[float]
    """This model's TTFT p95 SLO in seconds (default: the thresholds' ``ttft_p95_seconds``)."""
    always_on: NotRequired[bool]
    """The model should always have a replica (default true; false for scale-to-zero services,
    which get no ``VllmModelDown`` alert)."""
    download_job_name: NotRequired[pulumi.Input[str]]
    """Name of the model's weight download Job (``ModelCache.job_name``), watched by ``ModelDownloadFailed``."""
    download_job_names: NotRequired[list[pulumi.Input[str]]]
    """Every further download Job of the model (a canary's own ``ModelCache``), each watched like
    ``download_job_name``."""


def _q(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(value: float) -> str:
    return f"{value:g}"


def _ns_selector(namespaces: list[str]) -> str:
    names = sorted(set(namespaces))
    if len(names) == 1:
        return f"namespace={_q(names[0])}"
    return f"namespace=~{_q('|'.join(names))}"  # DNS labels: no regex metacharacters


def _rule(
    alert: str, expr: str, for_minutes: int | None, severity: str, summary: str, description: str, **labels: str
) -> dict:
    rule: dict[str, Any] = {"alert": alert, "expr": expr}
    if for_minutes:
        rule["for"] = f"{for_minutes}m"
    rule["labels"] = {"severity": severity, **labels}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def thresholds_with_defaults(thresholds: AlertThresholdsArgs | None) -> AlertThresholdsArgs:
    # A cast: the keys are checked just below (a TypedDict cannot be built from a dict comprehension).
    merged = cast(
        AlertThresholdsArgs,
        {**DEFAULT_THRESHOLDS, **{k: v for k, v in (thresholds or {}).items() if v is not None}},
    )
    unknown = set(merged) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ValueError(f"thresholds: unknown keys {sorted(unknown)}; known: {sorted(DEFAULT_THRESHOLDS)}")
    for key in ("kv_cache_usage_ratio", "error_ratio", "gpu_memory_ratio"):
        if not 0 < merged[key] <= 1:
            raise ValueError(f"thresholds.{key} is {merged[key]}; it is a fraction between 0 and 1")
    return merged


def download_jobs(model: Mapping[str, Any]) -> list[str]:
    """Every download Job of a model (its own and, say, its canary's), once each."""
    jobs = [model.get("download_job_name"), *(model.get("download_job_names") or [])]
    return list(dict.fromkeys(j for j in jobs if j))


def _model_down_rules(models: Sequence[Mapping[str, Any]], t: AlertThresholdsArgs) -> list[dict]:
    """``VllmModelDown``, one per always-on model."""
    ml = m.VLLM_MODEL_LABEL
    rules: list[dict] = []
    for model in models:
        if not model.get("always_on", True):
            continue
        # The stable variant only: with a canary, the canary's pods carry the same model label, and a
        # live canary must not hide a dead stable variant (which takes most of the traffic).
        sel = (
            f"job={_q(VLLM_JOB)}, namespace={_q(model['namespace'])}, {MODEL_LABEL}={_q(model['name'])}, "
            f"{VARIANT_LABEL}!={_q(CANARY_VARIANT)}"
        )
        rules.append(
            _rule(
                "VllmModelDown",
                f"absent({m.PROM_UP}{{{sel}}} == 1)",
                t["no_ready_replica_minutes"],
                "critical",
                f"No replica of model {model['name']} is serving",
                f"No vLLM replica of {model['name']} ({model['served_model_name']}) in namespace {model['namespace']} "
                f"has answered a metrics scrape for {t['no_ready_replica_minutes']} minutes: requests to it fail. "
                "Check the pods (Pending for a GPU? crash-looping? still loading?) and the download Job.",
                namespace=model["namespace"],
                **{MODEL_LABEL: model["name"], ml: model["served_model_name"]},
            )
        )
    return rules


def _saturation_rules(ns_sel: str, t: AlertThresholdsArgs) -> list[dict]:
    """Queueing, a full KV cache and preemptions: a model short of capacity."""
    by_model = _BY_MODEL
    return [
        _rule(
            "VllmQueueBuildingUp",
            f"sum by ({by_model}) ({m.VLLM_REQUESTS_WAITING}{{{ns_sel}}}) > {t['queue_waiting_requests']}",
            t["queue_minutes"],
            "warning",
            "Requests are queueing for model {{ $labels.model_name }}",
            f"{{{{ $value }}}} requests have waited for a slot for more than {t['queue_minutes']} minutes: "
            "the model is saturated; add replicas or lower load.",
        ),
        _rule(
            "VllmKvCacheNearlyFull",
            f"max by ({by_model}, pod) ({m.VLLM_KV_CACHE_USAGE}{{{ns_sel}}}) > {_num(t['kv_cache_usage_ratio'])}",
            t["kv_cache_minutes"],
            "warning",
            "KV cache of {{ $labels.pod }} ({{ $labels.model_name }}) is nearly full",
            "KV-cache use is {{ $value | humanizePercentage }}; requests will queue and be preempted. "
            "Add replicas, lower maxNumSeqs or raise gpuMemoryUtilization.",
        ),
        _rule(
            "VllmPreemptionsRising",
            f"sum by ({by_model}) (rate({m.VLLM_PREEMPTIONS}{{{ns_sel}}}[5m])) * 60 > "
            f"{_num(t['preemptions_per_minute'])}",
            10,
            "warning",
            "Model {{ $labels.model_name }} is preempting requests",
            "{{ $value | humanize }} preemptions per minute: the KV cache is too small for the load, "
            "so running requests are evicted and recomputed (latency rises).",
        ),
    ]


def _ttft_slo_rules(models: Sequence[Mapping[str, Any]], t: AlertThresholdsArgs) -> list[dict]:
    """TTFT SLO, one rule per model (models without their own SLO use the default)."""
    by_model = _BY_MODEL
    rules: list[dict] = []
    for model in models:
        slo = float(model.get("ttft_p95_seconds") or t["ttft_p95_seconds"])
        sel = f"namespace={_q(model['namespace'])}, {m.VLLM_MODEL_LABEL}={_q(model['served_model_name'])}"
        rules.append(
            _rule(
                "VllmTtftSloBreached",
                f"histogram_quantile(0.95, sum by ({by_model}, le) "
                f"(rate({m.VLLM_TTFT_BUCKET}{{{sel}}}[5m]))) > {_num(slo)}",
                t["slo_minutes"],
                "warning",
                "Time to first token of {{ $labels.model_name }} is above its SLO",
                f"TTFT p95 is {{{{ $value | humanizeDuration }}}}, above the SLO of {_num(slo)} s for "
                f"{t['slo_minutes']} minutes.",
                slo_seconds=_num(slo),
            )
        )
    return rules


def _error_rate_rule(ns_sel: str, t: AlertThresholdsArgs) -> dict:
    by_model = _BY_MODEL
    return _rule(
        "VllmHighErrorRate",
        f'sum by ({by_model}) (rate({m.VLLM_REQUEST_SUCCESS}{{{ns_sel}, finished_reason="error"}}[5m]))'
        f" / sum by ({by_model}) (rate({m.VLLM_REQUEST_SUCCESS}{{{ns_sel}}}[5m])) > {_num(t['error_ratio'])}",
        5,
        "critical",
        "Requests to {{ $labels.model_name }} are failing",
        "{{ $value | humanizePercentage }} of finished requests ended with an error over the last 5 minutes.",
    )


def _canary_rules(ns_sel: str, t: AlertThresholdsArgs) -> list[dict]:
    """Canary releases: the canary against the stable variant of the same model and served name."""
    by_variant = f"namespace, {MODEL_LABEL}, {m.VLLM_MODEL_LABEL}"
    canary, stable = f"{VARIANT_LABEL}={_q(CANARY_VARIANT)}", f"{VARIANT_LABEL}={_q(STABLE_VARIANT)}"

    def _errors(variant: str) -> str:
        finished = f"sum by ({by_variant}) (rate({m.VLLM_REQUEST_SUCCESS}{{{ns_sel}, {variant}}}[10m]))"
        # A variant that never failed may have no error series at all: its ratio is 0, not absent.
        failed = (
            f"sum by ({by_variant}) (rate({m.VLLM_REQUEST_SUCCESS}{{{ns_sel}, {variant}, "
            'finished_reason="error"}[10m]))'
        )
        return f"({failed} or {finished} * 0) / {finished}"

    def _ttft_p95(variant: str) -> str:
        return (
            f"histogram_quantile(0.95, sum by ({by_variant}, le) (rate({m.VLLM_TTFT_BUCKET}{{{ns_sel}, "
            f"{variant}}}[10m])))"
        )

    return [
        _rule(
            "VllmCanaryErrorsAboveStable",
            f"({_errors(canary)}) > ({_errors(stable)}) + {_num(t['error_ratio'] / 2)}",
            10,
            "warning",
            "The canary of {{ $labels.model }} fails more requests than its stable variant",
            "The canary's error ratio is {{ $value | humanizePercentage }}, more than "
            f"{_num(t['error_ratio'] / 2 * 100)} points "
            "above the stable variant's over 10 minutes: do not promote it; set its weight lower or remove canary.",
        ),
        _rule(
            "VllmCanaryTtftAboveStable",
            f"({_ttft_p95(canary)}) > 1.5 * ({_ttft_p95(stable)})",
            15,
            "warning",
            "The canary of {{ $labels.model }} answers slower than its stable variant",
            "The canary's time-to-first-token p95 is {{ $value | humanizeDuration }}, more than 1.5 times the stable "
            "variant's over 15 minutes: do not promote it as it is.",
        ),
    ]


def _pod_health_rules(ns_sel: str, t: AlertThresholdsArgs) -> list[dict]:
    """Containers of the vLLM pods crash-looping or restarting."""
    return [
        _rule(
            "VllmPodCrashLooping",
            f"max by (namespace, pod, container) ({m.KSM_CONTAINER_WAITING_REASON}{{{ns_sel}, "
            'reason="CrashLoopBackOff"}) == 1',
            5,
            "critical",
            "{{ $labels.namespace }}/{{ $labels.pod }} is crash-looping",
            "Container {{ $labels.container }} is in CrashLoopBackOff. Typical causes: out of GPU memory, "
            "a bad vLLM flag, weights missing from the cache.",
        ),
        _rule(
            "VllmPodRestarting",
            f"increase({m.KSM_CONTAINER_RESTARTS}{{{ns_sel}}}[1h]) > {t['pod_restarts_per_hour']}",
            None,
            "warning",
            "{{ $labels.namespace }}/{{ $labels.pod }} restarts repeatedly",
            "Container {{ $labels.container }} restarted {{ $value | humanize }} times in the last hour.",
        ),
    ]


def _download_failed_rules(models: Sequence[Mapping[str, Any]]) -> list[dict]:
    """``ModelDownloadFailed``, one per download Job of every model."""
    rules: list[dict] = []
    for model, job in ((x, j) for x in models for j in download_jobs(x)):
        sel = f"namespace={_q(model['namespace'])}, job_name={_q(job)}"
        rules.append(
            _rule(
                "ModelDownloadFailed",
                f'max by (namespace, job_name) ({m.KSM_JOB_FAILED}{{{sel}, condition="true"}}) == 1',
                None,
                "critical",
                "Model download Job {{ $labels.namespace }}/{{ $labels.job_name }} failed",
                "The weights were not downloaded; the model's servers will not start. Check the Job's logs "
                "(revision exists? token valid for a gated model? cache volume large enough?).",
                **{MODEL_LABEL: model["name"]},
            )
        )
    return rules


def vllm_rules(models: Sequence[Mapping[str, Any]], thresholds: AlertThresholdsArgs | None = None) -> list[dict]:
    """The vLLM alerts of ``models``: MonitoredModelArgs with their Inputs resolved (``resolved_models``)."""
    t = thresholds_with_defaults(thresholds)
    ns_sel = _ns_selector(sorted({x["namespace"] for x in models}))
    return [
        *_model_down_rules(models, t),
        *_saturation_rules(ns_sel, t),
        *_ttft_slo_rules(models, t),
        _error_rate_rule(ns_sel, t),
        *_canary_rules(ns_sel, t),
        *_pod_health_rules(ns_sel, t),
        *_download_failed_rules(models),
    ]


def gpu_rules(thresholds: AlertThresholdsArgs | None = None) -> list[dict]:
    t = thresholds_with_defaults(thresholds)
    gpu = f"{m.DCGM_HOSTNAME_LABEL}, gpu, UUID"
    on_node = "on {{ $labels." + m.DCGM_HOSTNAME_LABEL + " }}"
    return [
        _rule(
            "GpuXidError",
            f"max by ({gpu}) ({m.DCGM_XID_ERRORS}) > 0",
            None,
            "critical",
            "GPU {{ $labels.gpu }} " + on_node + " reported XID error {{ $value }}",
            "An XID error is a GPU hardware/driver fault (e.g. 79: fallen off the bus, 48/63/64: ECC); "
            "workloads on this GPU may hang or fail. Drain the node and check `nvidia-smi -q`.",
        ),
        _rule(
            "GpuMemoryNearlyFull",
            f"sum by ({gpu}) ({m.DCGM_FB_USED}) / (sum by ({gpu}) ({m.DCGM_FB_USED}) + sum by ({gpu}) "
            f"({m.DCGM_FB_FREE})) > {_num(t['gpu_memory_ratio'])}",
            15,
            "warning",
            "GPU {{ $labels.gpu }} " + on_node + " memory is nearly full",
            "{{ $value | humanizePercentage }} of the framebuffer is used; a new allocation will fail with "
            "out-of-memory.",
        ),
        _rule(
            "GpuTemperatureHigh",
            f"max by ({gpu}) ({m.DCGM_GPU_TEMP}) > {t['gpu_temperature_celsius']}",
            10,
            "warning",
            "GPU {{ $labels.gpu }} " + on_node + " is hot",
            "GPU temperature is {{ $value }} C; the GPU will throttle its clocks.",
        ),
    ]


def rule_groups(models: Sequence[Mapping[str, Any]], thresholds: AlertThresholdsArgs | None = None) -> list[dict]:
    """The ``groups`` of a Prometheus rules file (and of a PrometheusRule's spec)."""
    groups = []
    if models:
        groups.append({"name": VLLM_GROUP, "rules": vllm_rules(models, thresholds)})
    groups.append({"name": GPU_GROUP, "rules": gpu_rules(thresholds)})
    return groups


def metric_names_used(groups: list[dict]) -> set[str]:
    """Every metric name (from ``llmstack_k8s.observability.metrics``) that appears in the groups' expressions."""
    known = m.VLLM_METRICS | m.DCGM_METRICS | m.KSM_METRICS | {m.PROM_UP}
    found = set()
    for g in groups:
        for r in g["rules"]:
            for token in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", r["expr"]):
                if token in known:
                    found.add(token)
    return found
