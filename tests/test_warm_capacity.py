"""Warm capacity: scheduled replica floors (KEDA cron scaler) for business hours or known peaks."""

import pytest
from conftest import assert_refused, render_with, rendered_stack
from schemas import validate_custom

from llmstack_k8s.cron import cron_problem
from llmstack_k8s.gpu_autoscaling import GpuAutoscaling
from llmstack_k8s.testing import RecordingMocks
from llmstack_k8s.validation import ComponentArgsError

REV = "0123456789abcdef0123456789abcdef01234567"
HOURS = {"start": "30 7 * * 1-5", "end": "0 19 * * 1-5", "minReplicas": 4, "timezone": "Europe/Berlin"}


def model(**schedule) -> dict:
    return {"name": "m", "model": "org/m", "revision": REV, "weightsGiB": 15, "cache": {"size": "40Gi"},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 6, "schedules": [{**HOURS, **schedule}]}}


def cron_triggers(so: dict) -> list[dict]:
    return [t for t in so["spec"]["triggers"] if t["type"] == "cron"]


def test_a_schedule_becomes_a_cron_trigger_beside_the_load_triggers():
    (so,) = render_with({"models": [model()]}).of_kind("ScaledObject")
    validate_custom(so)
    assert cron_triggers(so) == [{"type": "cron", "name": "warm-0", "metadata": {
        "timezone": "Europe/Berlin", "start": "30 7 * * 1-5", "end": "0 19 * * 1-5", "desiredReplicas": "4"}}]
    assert any(t["type"] == "prometheus" for t in so["spec"]["triggers"])  # load still scales above the floor
    assert so["spec"]["minReplicaCount"] == 1  # outside the window


def test_prod_keeps_the_8b_model_warm_in_business_hours():
    (so,) = [s for s in rendered_stack("prod").of_kind("ScaledObject") if s["metadata"]["name"].startswith("llama-8b")]
    (t,) = cron_triggers(so)
    assert cron_problem(t["metadata"]["start"]) is None and int(t["metadata"]["desiredReplicas"]) > so["spec"]["minReplicaCount"]


@pytest.mark.parametrize("expr", ["0 8 * * 1-5", "*/15 6-20 * * MON-FRI", "0 8 ? * mon", "0 0 1,15 jan-jun *", "@daily"])
def test_accepts_what_kedas_cron_parser_accepts(expr):
    assert cron_problem(expr) is None


@pytest.mark.parametrize("schedule, expected", [
    ({"start": "0 8 * *"}, "schedules[0].start: '0 8 * *' has 4 field(s)"),
    ({"end": "0 25 * * 1-5"}, "schedules[0].end: '0 25 * * 1-5' is not a valid cron expression: hour 25 is outside 0-23"),
    ({"start": "0 8 * * 1-8"}, "day of week 8 is outside 0-6"),
    ({"start": "0 8 * * funday"}, "day of week 'funday' is not a number or a name"),
    ({"timezone": "Europe/Berln"}, "schedules[0].timezone: 'Europe/Berln' is not an IANA time zone (did you mean 'Europe/Berlin'?)"),
    ({"minReplicas": 7}, "schedules[0].minReplicas: 7 exceeds maxReplicas 6"),
])
def test_refuses_a_window_that_is_not_valid(schedule, expected):
    msg = assert_refused({"models": [model(**schedule)]}, expected)
    assert "models[0] (name: m).autoscaling" in msg


def test_the_component_refuses_a_bad_cron_expression_too():
    import pulumi

    pulumi.runtime.set_mocks(RecordingMocks(), preview=True)
    workload = {"name": "m", "namespace": "llm", "deployment_name": "m", "service_name": "m", "served_model_name": "m",
                "max_replicas": 4, "schedules": [{"start": "0 8 * * 1-5", "end": "every evening", "min_replicas": 2}]}
    with pytest.raises((ComponentArgsError, ValueError), match="schedules\\[0\\].*'every evening' has 2 field"):
        GpuAutoscaling("as", {"workloads": [workload]})
