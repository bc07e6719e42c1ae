"""The alert rules and dashboard queries are valid PromQL (``promtool check rules``) and the main
alerts fire on synthetic bad series and stay quiet on healthy ones (``promtool test rules``)."""

import copy
import re
import shutil
import subprocess

import pytest
import yaml

from llmstack_k8s.observability import alerts, metrics
from llmstack_k8s.observability.observability import dashboard_files, dashboard_queries, dashboards
from unit.test_metrics import dcgm_fields, exported_wire_names

PROMTOOL = shutil.which("promtool")


def _promtool(*args: str, cwd) -> subprocess.CompletedProcess:
    if PROMTOOL is None:
        pytest.fail("promtool not found: install the Debian package `prometheus` (.ci/run does)")
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _check_rules(groups: list[dict], tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    res = _promtool("check", "rules", str(path), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_rendered_prometheus_rules_pass_promtool(rendered, tmp_path):
    rules = rendered.of_kind("PrometheusRule")
    assert rules, f"{rendered.stack}: no PrometheusRule rendered"
    for rule in rules:
        _check_rules(rule["spec"]["groups"], tmp_path)


def test_promtool_check_is_not_a_rubber_stamp(tmp_path):
    with pytest.raises(AssertionError):
        _check_rules([{"name": "bad", "rules": [{"alert": "X", "expr": "sum by (a (up)"}]}], tmp_path)


# --- dashboards ----------------------------------------------------------------------------------
_GRAFANA_VARS = [
    ("$__rate_interval", "5m"),
    ("$__interval", "1m"),
    ("$namespace", ".*"),
    ("$model", ".*"),
    ("$node", ".*"),
]


def _as_promql(query: str) -> str:
    m = re.fullmatch(r"label_values\((.*),\s*[A-Za-z_]+\)", query.strip())
    if m:  # a template variable query: its first argument is a series selector
        query = m.group(1)
    for var, value in _GRAFANA_VARS:
        query = query.replace(var, value)
    assert "$" not in query, f"unhandled Grafana variable in {query!r}"
    return query


def _all_dashboard_queries() -> list[str]:
    out = [q for d in dashboards().values() for q in dashboard_queries(d)]
    assert len(out) > 20
    return out


def test_every_dashboard_query_is_valid_promql(tmp_path):
    rules = [
        {"record": f"llmstack:dashboard_query:{i}", "expr": _as_promql(q)}
        for i, q in enumerate(_all_dashboard_queries())
    ]
    _check_rules([{"name": "dashboards", "rules": rules}], tmp_path)


def test_dashboards_take_metric_names_from_the_metrics_module():
    for name, text in dashboard_files().items():
        stripped = re.sub(r"\{\{metric:[A-Z0-9_]+\}\}", "", text)
        literal = re.findall(r"vllm:[a-z0-9_:]+|DCGM_[A-Z_]+|kube_[a-z_]+", stripped)
        assert not literal, f"{name}: metric names written as literals (use {{{{metric:CONST}}}}): {literal}"


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"vllm:[a-z0-9_:]+|DCGM_FI_[A-Z_]+", expr))


def test_every_metric_name_used_exists_in_the_pinned_exporters():
    exported = exported_wire_names() | dcgm_fields()
    used = set()
    for q in _all_dashboard_queries():
        used |= _metric_names(q)
    for g in alerts.rule_groups(MODELS):
        for r in g["rules"]:
            used |= _metric_names(r["expr"])
    assert used >= {metrics.VLLM_KV_CACHE_USAGE, metrics.VLLM_TTFT_BUCKET, metrics.DCGM_XID_ERRORS}
    assert not sorted(used - exported), f"not exported by vLLM 0.32 / DCGM exporter 4.8.2: {sorted(used - exported)}"


def test_dashboards_cover_what_users_look_for():
    exprs = " ".join(_all_dashboard_queries())
    for const in (
        "VLLM_E2E_LATENCY_COUNT",
        "VLLM_TTFT_BUCKET",
        "VLLM_ITL_BUCKET",
        "VLLM_E2E_LATENCY_BUCKET",
        "VLLM_REQUESTS_WAITING",
        "VLLM_REQUESTS_RUNNING",
        "VLLM_KV_CACHE_USAGE",
        "VLLM_PREFIX_CACHE_HITS",
        "VLLM_GENERATION_TOKENS",
        "VLLM_PREEMPTIONS",
        "DCGM_GPU_UTIL",
        "DCGM_FB_USED",
        "DCGM_GPU_TEMP",
        "DCGM_POWER_USAGE",
        "DCGM_XID_ERRORS",
    ):
        assert getattr(metrics, const) in exprs, f"no dashboard panel uses {const}"
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le, model_name) (rate({metrics.VLLM_TTFT_BUCKET}" in exprs


# --- alert unit tests ------------------------------------------------------------------------------
#: m1: always on with its own 1 s TTFT SLO; m2: scale-to-zero, default SLO (2 s).
MODELS: list = [
    {
        "name": "m1",
        "namespace": "llm",
        "served_model_name": "served-1",
        "ttft_p95_seconds": 1.0,
        "download_job_name": "m1-download",
    },
    {
        "name": "m2",
        "namespace": "llm",
        "served_model_name": "served-2",
        "always_on": False,
        "download_job_name": "m2-download",
    },
]
V1 = 'namespace="llm", model_name="served-1"'
V2 = 'namespace="llm", model_name="served-2"'
GPU = 'Hostname="gpu-node-1", gpu="0", UUID="GPU-1"'
# model m1's two variants, as the PodMonitor labels a canary's series
C1 = 'namespace="llm", model="m1", model_name="served-1", variant="canary"'
S1 = 'namespace="llm", model="m1", model_name="served-1", variant="stable"'
GPU_LABELS = {"Hostname": "gpu-node-1", "gpu": "0", "UUID": "GPU-1"}


def _ttft(sel: str, per_min: dict) -> list[dict]:
    """TTFT histogram: per_min maps each bucket bound to requests per minute at or below it."""
    return [
        {"series": f'{metrics.VLLM_TTFT_BUCKET}{{{sel}, le="{le}"}}', "values": f"0+{n}x40"}
        for le, n in per_min.items()
    ]


# alert -> (eval_time, bad series, expected alerts' labels, healthy series)
CASES = {
    # The stable variant down while its canary answers still fires: the stable variant takes most traffic.
    "VllmModelDown": (
        "10m",
        [
            {"series": 'up{job="vllm", namespace="llm", model="m1", pod="m1-a", variant="stable"}', "values": "0x20"},
            {
                "series": 'up{job="vllm", namespace="llm", model="m1", pod="m1-canary-a", variant="canary"}',
                "values": "1x20",
            },
            {"series": 'up{job="vllm", namespace="llm", model="m2", pod="m2-a"}', "values": "0x20"},
        ],
        [{"severity": "critical", "namespace": "llm", "model": "m1", "model_name": "served-1"}],
        [
            {"series": 'up{job="vllm", namespace="llm", model="m1", pod="m1-a", variant="stable"}', "values": "1x20"},
            {
                "series": 'up{job="vllm", namespace="llm", model="m1", pod="m1-canary-a", variant="canary"}',
                "values": "0x20",
            },
        ],
    ),
    "VllmQueueBuildingUp": (
        "10m",
        [
            {"series": f'{metrics.VLLM_REQUESTS_WAITING}{{{V1}, pod="a"}}', "values": "8x20"},
            {"series": f'{metrics.VLLM_REQUESTS_WAITING}{{{V1}, pod="b"}}', "values": "5x20"},
        ],
        [{"severity": "warning", "namespace": "llm", "model_name": "served-1"}],
        # a short burst is not a queue building up
        [{"series": f'{metrics.VLLM_REQUESTS_WAITING}{{{V1}, pod="a"}}', "values": "0x5 50x2 3x13"}],
    ),
    "VllmKvCacheNearlyFull": (
        "15m",
        [{"series": f'{metrics.VLLM_KV_CACHE_USAGE}{{{V1}, pod="a"}}', "values": "0.95x20"}],
        [{"severity": "warning", "namespace": "llm", "model_name": "served-1", "pod": "a"}],
        [{"series": f'{metrics.VLLM_KV_CACHE_USAGE}{{{V1}, pod="a"}}', "values": "0.7x20"}],
    ),
    "VllmPreemptionsRising": (
        "20m",
        [{"series": f"{metrics.VLLM_PREEMPTIONS}{{{V1}}}", "values": "0+5x30"}],
        [{"severity": "warning", "namespace": "llm", "model_name": "served-1"}],
        [{"series": f"{metrics.VLLM_PREEMPTIONS}{{{V1}}}", "values": "0+0.5x30"}],
    ),
    # ~1.5 s p95: above m1's own 1 s SLO, below the 2 s default of m2.
    "VllmTtftSloBreached": (
        "20m",
        _ttft(V1, {"0.5": 0, "1": 0, "2": 10, "5": 10, "+Inf": 10})
        + _ttft(V2, {"0.5": 0, "1": 0, "2": 10, "5": 10, "+Inf": 10}),
        [{"severity": "warning", "namespace": "llm", "model_name": "served-1", "slo_seconds": "1"}],
        _ttft(V1, {"0.5": 10, "1": 10, "2": 10, "5": 10, "+Inf": 10})
        + _ttft(V2, {"0.5": 0, "1": 0, "2": 10, "5": 10, "+Inf": 10}),
    ),
    "VllmHighErrorRate": (
        "15m",
        [
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{V1}, finished_reason="error"}}', "values": "0+2x20"},
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{V1}, finished_reason="stop"}}', "values": "0+8x20"},
        ],
        [{"severity": "critical", "namespace": "llm", "model_name": "served-1"}],
        [
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{V1}, finished_reason="error"}}', "values": "0+0x20"},
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{V1}, finished_reason="abort"}}', "values": "0+5x20"},
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{V1}, finished_reason="stop"}}', "values": "0+10x20"},
        ],
    ),
    # Canary vs stable of model m1: 20 % errors against none (the stable variant has no error series at all).
    "VllmCanaryErrorsAboveStable": (
        "20m",
        [
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{C1}, finished_reason="error"}}', "values": "0+2x30"},
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{C1}, finished_reason="stop"}}', "values": "0+8x30"},
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{S1}, finished_reason="stop"}}', "values": "0+90x30"},
        ],
        [{"severity": "warning", "namespace": "llm", "model": "m1", "model_name": "served-1"}],
        # both variants fail 1 %: the canary is no worse
        [
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{C1}, finished_reason="error"}}', "values": "0+1x30"},
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{C1}, finished_reason="stop"}}', "values": "0+99x30"},
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{S1}, finished_reason="error"}}', "values": "0+1x30"},
            {"series": f'{metrics.VLLM_REQUEST_SUCCESS}{{{S1}, finished_reason="stop"}}', "values": "0+99x30"},
        ],
    ),
    # Canary p95 ~1.95 s against the stable variant's ~0.5 s.
    "VllmCanaryTtftAboveStable": (
        "30m",
        _ttft(C1, {"0.5": 0, "1": 0, "2": 10, "5": 10, "+Inf": 10})
        + _ttft(S1, {"0.5": 10, "1": 10, "2": 10, "5": 10, "+Inf": 10}),
        [{"severity": "warning", "namespace": "llm", "model": "m1", "model_name": "served-1"}],
        _ttft(C1, {"0.5": 9, "1": 10, "2": 10, "5": 10, "+Inf": 10})
        + _ttft(S1, {"0.5": 9, "1": 10, "2": 10, "5": 10, "+Inf": 10}),
    ),
    "VllmPodCrashLooping": (
        "10m",
        [
            {
                "series": f'{metrics.KSM_CONTAINER_WAITING_REASON}{{namespace="llm", pod="m1-a", '
                'container="vllm", reason="CrashLoopBackOff"}',
                "values": "1x20",
            }
        ],
        [{"severity": "critical", "namespace": "llm", "pod": "m1-a", "container": "vllm"}],
        # other namespaces are not the stack's; ContainerCreating is not a crash loop
        [
            {
                "series": f'{metrics.KSM_CONTAINER_WAITING_REASON}{{namespace="other", pod="x", '
                'container="x", reason="CrashLoopBackOff"}',
                "values": "1x20",
            },
            {
                "series": f'{metrics.KSM_CONTAINER_WAITING_REASON}{{namespace="llm", pod="m1-a", '
                'container="vllm", reason="ContainerCreating"}',
                "values": "1x20",
            },
        ],
    ),
    "VllmPodRestarting": (
        "30m",
        [
            {
                "series": f'{metrics.KSM_CONTAINER_RESTARTS}{{namespace="llm", pod="m1-a", container="vllm"}}',
                "values": "0+1x40",
            }
        ],
        [{"severity": "warning", "namespace": "llm", "pod": "m1-a", "container": "vllm"}],
        [
            {
                "series": f'{metrics.KSM_CONTAINER_RESTARTS}{{namespace="llm", pod="m1-a", container="vllm"}}',
                "values": "2x40",
            }
        ],
    ),
    "ModelDownloadFailed": (
        "5m",
        [
            {
                "series": f'{metrics.KSM_JOB_FAILED}{{namespace="llm", job_name="m1-download", condition="true"}}',
                "values": "1x10",
            }
        ],
        [{"severity": "critical", "namespace": "llm", "job_name": "m1-download", "model": "m1"}],
        [
            {
                "series": f'{metrics.KSM_JOB_FAILED}{{namespace="llm", job_name="m1-download", condition="false"}}',
                "values": "1x10",
            },
            {
                "series": f'{metrics.KSM_JOB_FAILED}{{namespace="llm", job_name="nightly-backup", condition="true"}}',
                "values": "1x10",
            },
        ],
    ),
    "GpuXidError": (
        "8m",
        [{"series": f"{metrics.DCGM_XID_ERRORS}{{{GPU}}}", "values": "0x5 79x5"}],
        [{"severity": "critical", **GPU_LABELS}],
        [{"series": f"{metrics.DCGM_XID_ERRORS}{{{GPU}}}", "values": "0x10"}],
    ),
    "GpuMemoryNearlyFull": (
        "20m",
        [
            {"series": f"{metrics.DCGM_FB_USED}{{{GPU}}}", "values": "80500x25"},
            {"series": f"{metrics.DCGM_FB_FREE}{{{GPU}}}", "values": "500x25"},
        ],
        [{"severity": "warning", **GPU_LABELS}],
        # vLLM at gpuMemoryUtilization 0.92 is healthy
        [
            {"series": f"{metrics.DCGM_FB_USED}{{{GPU}}}", "values": "74500x25"},
            {"series": f"{metrics.DCGM_FB_FREE}{{{GPU}}}", "values": "6500x25"},
        ],
    ),
    "GpuTemperatureHigh": (
        "15m",
        [{"series": f"{metrics.DCGM_GPU_TEMP}{{{GPU}}}", "values": "92x20"}],
        [{"severity": "warning", **GPU_LABELS}],
        [{"series": f"{metrics.DCGM_GPU_TEMP}{{{GPU}}}", "values": "70x20"}],
    ),
}


def _rules_without_annotations() -> list[dict]:
    # promtool compares annotations exactly when an alert fires; the firing logic is under test here
    # (the annotation templates are checked by `promtool check rules`).
    groups = copy.deepcopy(alerts.rule_groups(MODELS))
    for g in groups:
        for r in g["rules"]:
            r.pop("annotations", None)
    return groups


def _run_unit_test(tmp_path, tests: list[dict]) -> subprocess.CompletedProcess:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": _rules_without_annotations()}, sort_keys=False))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False)
    )
    return _promtool("test", "rules", "test.yaml", cwd=tmp_path)


def test_every_alert_has_a_unit_case():
    names = {r["alert"] for g in alerts.rule_groups(MODELS) for r in g["rules"]}
    assert names == set(CASES)


@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_fires_on_bad_series_and_stays_quiet_on_healthy(alert, tmp_path):
    eval_time, bad, expected, healthy = CASES[alert]
    res = _run_unit_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": bad,
                "alert_rule_test": [
                    {"eval_time": eval_time, "alertname": alert, "exp_alerts": [{"exp_labels": e} for e in expected]}
                ],
            },
            {
                "interval": "1m",
                "input_series": healthy,
                "alert_rule_test": [{"eval_time": eval_time, "alertname": alert, "exp_alerts": []}],
            },
        ],
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_alerts_fire_only_after_their_for_duration(tmp_path):
    """A queue that has lasted 3 minutes does not page anyone yet (queueMinutes: 5)."""
    _, bad, expected, _ = CASES["VllmQueueBuildingUp"]
    res = _run_unit_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": bad,
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "VllmQueueBuildingUp", "exp_alerts": []},
                    {
                        "eval_time": "6m",
                        "alertname": "VllmQueueBuildingUp",
                        "exp_alerts": [{"exp_labels": e} for e in expected],
                    },
                ],
            },
        ],
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_thresholds_are_configurable():
    groups = alerts.rule_groups(MODELS, {"queue_waiting_requests": 42, "kv_cache_usage_ratio": 0.8, "queue_minutes": 7})
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert rules["VllmQueueBuildingUp"]["expr"].endswith("> 42") and rules["VllmQueueBuildingUp"]["for"] == "7m"
    assert rules["VllmKvCacheNearlyFull"]["expr"].endswith("> 0.8")
    with pytest.raises(ValueError, match="kv_cache_usage_ratio"):
        alerts.rule_groups(MODELS, {"kv_cache_usage_ratio": 90})
