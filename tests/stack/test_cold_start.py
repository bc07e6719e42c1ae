"""Cold start: one budget from stated figures drives the startup probe, the await, the progress
deadline and the autoscaling cooldown; the image pre-pull DaemonSet sits on the GPU nodes."""

import json
import os

import pulumi
import pytest

from conftest import assert_refused, render_with, rendered_stack
from llmstack_k8s._core.awaits import SCHEDULING_SECONDS, TIMEOUT_ANNOTATION
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s.rules import awaits_cover_budgets
from llmstack_k8s.serving.vllm_pod import STARTUP_UNKNOWN_SIZE_SECONDS, startup_budget_seconds
from llmstack_k8s.sizing.cold_start import cold_start_budget
from llmstack_k8s.versions import PAUSE_IMAGE, VLLM_IMAGE
from stacks.compose import stack as composition
from stacks.config import loader
from stacks.tools import cold_start_table as stack_cold_start
from stacks.tools.render import stack_config_env

REV = "0123456789abcdef0123456789abcdef01234567"


def model(**extra) -> dict:
    return {"name": "m", "model": "org/m", "revision": REV, "weightsGiB": 40, "cache": {"size": "100Gi"}, **extra}


def probe_seconds(dep: dict) -> int:
    (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"]
    p = c["startupProbe"]
    return p.get("initialDelaySeconds", 0) + p["periodSeconds"] * p["failureThreshold"]


def test_defaults_are_the_measured_figures():
    b = cold_start_budget(140)
    assert (b.node_seconds, b.image_seconds, b.weights_seconds, b.engine_seconds) == (420, 180, 1400, 300)
    assert b.scheduling_seconds == SCHEDULING_SECONDS == 600
    assert b.startup_seconds == startup_budget_seconds(140) == 1700
    assert cold_start_budget(None).startup_seconds == STARTUP_UNKNOWN_SIZE_SECONDS
    assert cold_start_budget(140, startup_override=2000).total_seconds == 2600


def test_stated_figures_drive_probe_await_progress_deadline_and_cooldown():
    figures = {
        "nodeProvisioningSeconds": 0,
        "imageGiB": 8,
        "imagePullMiBps": 256,
        "storageMiBps": 512,
        "engineStartSeconds": 120,
    }
    r = render_with({"models": [model(coldStart=figures, autoscaling={"minReplicas": 1, "maxReplicas": 2})]})
    # 40 GiB at 512 MiB/s = 80 s + 120 s engine; 8 GiB at 256 MiB/s = 32 s; no new node.
    (dep,) = r.of_kind("Deployment")
    assert 200 <= probe_seconds(dep) < 210  # whole probe periods
    assert dep["spec"]["progressDeadlineSeconds"] == 32 + probe_seconds(dep)
    assert int(dep["metadata"]["annotations"][TIMEOUT_ANNOTATION]) == 2 * (
        32 + probe_seconds(dep)
    )  # two waves: max 2, one at a time
    (so,) = r.of_kind("ScaledObject")
    assert so["spec"]["cooldownPeriod"] == 600  # the whole cold start (232 s) is below the 600 s floor
    slow = {"nodeProvisioningSeconds": 900, "storageMiBps": 20}
    r = render_with({"models": [model(coldStart=slow, autoscaling={"minReplicas": 1, "maxReplicas": 2})]})
    (so,) = r.of_kind("ScaledObject")
    assert so["spec"]["cooldownPeriod"] == 900 + 180 + 2048 + 300


def test_stack_wide_figures_apply_to_every_model_and_a_model_overrides_them():
    r = render_with(
        {
            "coldStart": {"storageMiBps": 1024, "engineStartSeconds": 100},
            "models": [model(), model(name="n", model="org/n", coldStart={"engineStartSeconds": 400})],
        }
    )
    deps = {d["metadata"]["name"]: d for d in r.of_kind("Deployment")}
    assert 140 <= probe_seconds(deps["m"]) < 150  # 40 s + 100 s
    assert 440 <= probe_seconds(deps["n"]) < 450  # 40 s + 400 s: its own engine start, the stack's storage


def test_budget_is_a_stack_output():
    project, config, secrets = stack_config_env("prod")
    os.environ["PULUMI_CONFIG"], os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(config), json.dumps(secrets)
    try:
        pulumi.runtime.set_mocks(RecordingMocks(), project=project, stack="prod", preview=True)
        cfg = loader.load(project, "prod")
        seen = {}

        @pulumi.runtime.test
        def run():
            seen.update(composition.build(cfg)["coldStart"])

        run()
    finally:
        os.environ.pop("PULUMI_CONFIG")
        os.environ.pop("PULUMI_CONFIG_SECRET_KEYS")
    assert seen["llama-70b"] == {
        "nodeSeconds": 420,
        "imagePullSeconds": 180,
        "weightsSeconds": 1320,
        "engineSeconds": 300,
        "startupProbeSeconds": 1620,
        "totalSeconds": 2220,
    }
    assert set(seen) == {m.name for m in cfg.models}


def test_readme_cold_start_table_matches_prod():
    assert stack_cold_start.main(["--check"]) == 0, (
        "run `.venv/bin/python -m stacks.tools.cold_start_table` to regenerate the README's table"
    )


@pytest.mark.parametrize(
    "figures, expected",
    [
        ({"storageMiBps": 0}, "coldStart.storageMiBps"),
        ({"imagePullMiBps": -1}, "coldStart.imagePullMiBps"),
        ({"nodeProvisioningSecond": 1}, "did you mean"),
        ({"engineStartSeconds": 5}, "coldStart.engineStartSeconds"),
    ],
)
def test_refuses_bad_figures(figures, expected):
    assert_refused({"models": [model(coldStart=figures)]}, expected)
    assert_refused({"coldStart": figures, "models": [model()]}, expected)


def test_refuses_a_startup_override_below_what_the_stated_storage_needs():
    # 40 GiB at 20 MiB/s is 2048 s before the engine even starts.
    msg = assert_refused(
        {"models": [model(coldStart={"storageMiBps": 20}, startupTimeoutSeconds=1800)]}, "startupTimeoutSeconds"
    )
    assert "2348" in msg and "storageMiBps" in msg


# --- image pre-pull -------------------------------------------------------------------------------


def test_prod_prepulls_every_model_image_on_the_gpu_nodes_only():
    r = rendered_stack("prod")
    (ds,) = [d for d in r.of_kind("DaemonSet") if d["metadata"]["name"] == "image-prepull"]
    spec = ds["spec"]["template"]["spec"]
    (server,) = [d for d in r.of_kind("Deployment") if d["metadata"]["name"] == "llama-8b"]
    sspec = server["spec"]["template"]["spec"]
    # Where the servers run, tolerating the same taints; never with a GPU or the serving priority.
    assert spec["nodeSelector"] == sspec["nodeSelector"] and spec["tolerations"] == sspec["tolerations"]
    assert "priorityClassName" not in spec and "runtimeClassName" not in spec
    assert [c["image"] for c in spec["initContainers"]] == [VLLM_IMAGE]
    assert [c["image"] for c in spec["containers"]] == [PAUSE_IMAGE]
    for c in spec["initContainers"] + spec["containers"]:
        assert not any("gpu" in k for k in c["resources"].get("limits", {})), c
        assert c["resources"]["requests"]["cpu"] == "1m"
        assert c["securityContext"]["runAsNonRoot"] is True
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "100%"
    assert not awaits_cover_budgets([ds])


def test_dev_has_no_prepull_and_each_distinct_image_is_pulled_once():
    assert not [d for d in rendered_stack("dev").of_kind("DaemonSet") if d["metadata"]["name"] == "image-prepull"]
    other = "docker.io/vllm/vllm-openai:v0.31.0"
    r = render_with(
        {
            "imagePrePull": {"enabled": True},
            "models": [model(), model(name="n", model="org/n", image=other), model(name="o", model="org/o")],
        }
    )
    (ds,) = [d for d in r.of_kind("DaemonSet") if d["metadata"]["name"] == "image-prepull"]
    assert [c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"]] == sorted([VLLM_IMAGE, other])
