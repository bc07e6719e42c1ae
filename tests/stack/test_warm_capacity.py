"""Warm capacity: scheduled replica floors (KEDA cron scaler) for business hours or known peaks."""

import json

import pytest

from conftest import assert_refused, render_with, rendered_stack
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.scaling.cron import cron_problem
from llmstack_k8s.scaling.gpu_autoscaling import GpuAutoscaling
from support.schemas import validate_custom

REV = "0123456789abcdef0123456789abcdef01234567"
HOURS = {"start": "30 7 * * 1-5", "end": "0 19 * * 1-5", "minReplicas": 4, "timezone": "Europe/Berlin"}


def model(**schedule) -> dict:
    return {
        "name": "m",
        "model": "org/m",
        "revision": REV,
        "weightsGiB": 15,
        "cache": {"size": "40Gi"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 6, "schedules": [{**HOURS, **schedule}]},
    }


def cron_triggers(so: dict) -> list[dict]:
    return [t for t in so["spec"]["triggers"] if t["type"] == "cron"]


def test_a_schedule_becomes_a_cron_trigger_beside_the_load_triggers():
    (so,) = render_with({"models": [model()]}).of_kind("ScaledObject")
    validate_custom(so)
    assert cron_triggers(so) == [
        {
            "type": "cron",
            "name": "warm-0",
            "metadata": {
                "timezone": "Europe/Berlin",
                "start": "30 7 * * 1-5",
                "end": "0 19 * * 1-5",
                "desiredReplicas": "4",
            },
        }
    ]
    assert any(t["type"] == "prometheus" for t in so["spec"]["triggers"])  # load still scales above the floor
    assert so["spec"]["minReplicaCount"] == 1  # outside the window


def test_prod_keeps_the_8b_model_warm_in_business_hours():
    (so,) = [s for s in rendered_stack("prod").of_kind("ScaledObject") if s["metadata"]["name"].startswith("llama-8b")]
    (t,) = cron_triggers(so)
    assert (
        cron_problem(t["metadata"]["start"]) is None
        and int(t["metadata"]["desiredReplicas"]) > so["spec"]["minReplicaCount"]
    )


@pytest.mark.parametrize(
    "expr", ["0 8 * * 1-5", "*/15 6-20 * * MON-FRI", "0 8 ? * mon", "0 0 1,15 jan-jun *", "@daily"]
)
def test_accepts_what_kedas_cron_parser_accepts(expr):
    assert cron_problem(expr) is None


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ({"start": "0 8 * *"}, "schedules[0].start: '0 8 * *' has 4 field(s)"),
        (
            {"end": "0 25 * * 1-5"},
            "schedules[0].end: '0 25 * * 1-5' is not a valid cron expression: hour 25 is outside 0-23",
        ),
        ({"start": "0 8 * * 1-8"}, "day of week 8 is outside 0-6"),
        ({"start": "0 8 * * funday"}, "day of week 'funday' is not a number or a name"),
        (
            {"timezone": "Europe/Berln"},
            "schedules[0].timezone: 'Europe/Berln' is not an IANA time zone (did you mean 'Europe/Berlin'?)",
        ),
        ({"minReplicas": 7}, "schedules[0].minReplicas: 7 exceeds maxReplicas 6"),
    ],
)
def test_refuses_a_window_that_is_not_valid(schedule, expected):
    msg = assert_refused({"models": [model(**schedule)]}, expected)
    assert "models[0] (name: m).autoscaling" in msg


def test_the_component_refuses_a_bad_cron_expression_too():
    import pulumi

    pulumi.runtime.set_mocks(RecordingMocks(), preview=True)
    workload = {
        "name": "m",
        "namespace": "llm",
        "deployment_name": "m",
        "service_name": "m",
        "served_model_name": "m",
        "max_replicas": 4,
        "schedules": [{"start": "0 8 * * 1-5", "end": "every evening", "min_replicas": 2}],
    }
    with pytest.raises((ComponentArgsError, ValueError), match=r"schedules\[0\].*'every evening' has 2 field"):
        GpuAutoscaling("as", {"workloads": [workload]})


# --- warm-up gate: one real completion before Ready ------------------------------------------------


def server_container(objs, name="m"):
    (dep,) = [d for d in objs.of_kind("Deployment") if d["metadata"]["name"] == name]
    (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"]
    return c


def test_the_startup_probe_is_a_real_completion_and_readiness_waits_for_it():
    from llmstack_k8s.serving.vllm_pod import HEALTH_PATH, HTTP_PORT, STARTUP_PERIOD_SECONDS
    from llmstack_k8s.serving.warmup import WARMUP_SCRIPT, WARMUP_TIMEOUT_SECONDS

    m = model()
    m["servedModelName"] = "served-m"
    c = server_container(render_with({"models": [m]}))
    p = c["startupProbe"]
    assert p["exec"]["command"] == [
        "python3",
        "-c",
        WARMUP_SCRIPT,
        "served-m",
        str(HTTP_PORT),
        str(WARMUP_TIMEOUT_SECONDS - 5),
    ]
    assert p["timeoutSeconds"] == WARMUP_TIMEOUT_SECONDS and p["periodSeconds"] == STARTUP_PERIOD_SECONDS
    assert p["periodSeconds"] * p["failureThreshold"] >= 450  # the startup budget still covers loading
    assert c["readinessProbe"]["httpGet"]["path"] == HEALTH_PATH  # tight readiness after the gate
    assert c["ports"][0]["containerPort"] == HTTP_PORT


def test_the_warmup_can_be_turned_off_in_the_component():
    import pulumi

    from llmstack_k8s import VllmService

    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=True)
    args = {
        "namespace": "llm",
        "engine": {"served_model_name": "m"},
        "model_path": "/models/m",
        "cache_claim_name": "m",
        "warmup": False,
    }

    @pulumi.runtime.test
    def run():
        VllmService("m", args)

    run()
    (dep,) = [r for r in mocks.registrations if r.type == "kubernetes:apps/v1:Deployment"]
    (c,) = dep.inputs["spec"]["template"]["spec"]["containers"]
    assert c["startupProbe"]["httpGet"]["path"] == "/health"


class _Fake:
    """A local HTTP server answering /v1/completions like vLLM, or not yet."""

    def __init__(self, status: int, body: dict):
        import http.server
        import threading

        seen = self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                seen.append(
                    (self.path, self.headers.get("Authorization"), self.rfile.read(int(self.headers["Content-Length"])))
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]


def _probe(port: int, key: str = "sk-test") -> int:
    import subprocess
    import sys

    from llmstack_k8s.serving.warmup import warmup_command

    cmd = warmup_command("served-m", port)
    return subprocess.run(
        [sys.executable, *cmd[1:]], env={"VLLM_API_KEY": key}, capture_output=True, timeout=60
    ).returncode


def test_the_warmup_script_passes_only_when_a_completion_is_answered():
    ok = _Fake(200, {"choices": [{"text": "!"}]})
    assert _probe(ok.port) == 0
    path, auth, body = ok.seen[0]
    assert path == "/v1/completions" and auth == "Bearer sk-test"
    assert json.loads(body) == {"model": "served-m", "prompt": "Hello", "max_tokens": 1, "temperature": 0}
    assert _probe(_Fake(503, {"error": "loading"}).port) == 1
    assert _probe(_Fake(401, {"error": "Unauthorized"}).port) == 1
    assert _probe(_Fake(200, {"choices": []}).port) == 1
    ok.server.shutdown()
    ok.server.server_close()
    assert _probe(ok.port) == 1  # nothing listening
