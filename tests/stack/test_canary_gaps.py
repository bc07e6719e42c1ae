"""A canary counts like a model: a team's quota check adds its replicas and its own cache
volume, and every download Job the stack creates (a canary of another revision has its own) is
watched by a ModelDownloadFailed alert."""

import copy
import re

import yaml

from conftest import assert_refused, render_with
from llmstack_k8s.observability import metrics
from stack.test_canary import GATEWAY, OTHER_REVISION
from stack.test_cross_objects import BASE, H100_POOL, model
from unit.test_alert_rules import _promtool

# One model of a team: 1 replica x (1 GPU, 2 CPU, 16Gi), cache 20Gi; its canary (another revision)
# adds 2 replicas and a 20Gi volume of its own.
CANARY = {"weight": 10, "replicas": 2, "revision": OTHER_REVISION}


def team_stack(quota: dict, canary: dict | None = CANARY) -> dict:
    m = model("t", **({"canary": canary} if canary else {}))
    return {
        **BASE,
        "gpuPool": H100_POOL,
        "gateway": GATEWAY,
        "models": [m],
        "teams": [{"name": "alpha", "models": ["t"], "quota": quota}],
    }


FITS_WITHOUT_CANARY = {"gpus": 1, "cpu": "2", "memory": "16Gi", "storage": "20Gi"}


def test_the_quota_fits_the_model_alone():
    # the figures below are the canary's alone: without it the same quota is accepted
    assert render_with(team_stack(FITS_WITHOUT_CANARY, canary=None)).of_kind("ResourceQuota")


def test_a_teams_quota_counts_the_canarys_replicas_and_its_own_cache():
    msg = assert_refused(team_stack(FITS_WITHOUT_CANARY), "teams[0] (name: alpha).quota")
    assert "gpus: the models need 3 GPU(s) (t 1 pod(s) x 1 + t-canary 2 pod(s) x 1) but the quota allows 1" in msg
    assert "cpu: the models need 6 CPU cores (t 1 pod(s) x 2 + t-canary 2 pod(s) x 2) but the quota allows 2" in msg
    assert (
        "memory: the models need 48 GiB memory (t 1 pod(s) x 16 + t-canary 2 pod(s) x 16) but the quota allows 16"
        in msg
    )
    assert "storage: the models need 40 GiB storage (t 20 + t-canary 20) but the quota allows 20" in msg
    # a canary of the same weights (another image or args) shares the model's volume: no storage counted
    same = team_stack(
        {**FITS_WITHOUT_CANARY, "gpus": 3, "cpu": "6", "memory": "48Gi"},
        canary={"weight": 10, "replicas": 2, "extraArgs": ["--max-num-batched-tokens", "4096"]},
    )
    assert render_with(same).of_kind("ResourceQuota")
    # the canary's rollout surge counts as the model's does
    surged = team_stack({"gpus": 3}, canary=CANARY)
    surged["models"][0]["rollout"] = {"maxSurge": 1, "maxUnavailable": 0}
    assert "gpus: the models need 5 GPU(s) (t 2 pod(s) x 1 + t-canary 3 pod(s) x 1)" in assert_refused(surged, "quota")


# --- every download Job has its alert -------------------------------------------------------------


def _download_rules(objects) -> list[dict]:
    return [
        r
        for o in objects
        if o["kind"] == "PrometheusRule"
        for g in o["spec"]["groups"]
        for r in g["rules"]
        if r["alert"] == "ModelDownloadFailed"
    ]


def _selects(rule: dict, namespace: str, job: str) -> bool:
    """The rule's selector (label="value" pairs) matches the Job's series labels (exact matches only:
    the rules use no regex, so a name it does not spell is a name it does not watch)."""
    sel = dict(re.findall(r'(\w+)="([^"]*)"', rule["expr"]))
    return sel.get("namespace") == namespace and sel.get("job_name") == job and sel.get("condition") == "true"


def unwatched_jobs(objects) -> list[str]:
    rules = _download_rules(objects)
    return [
        f"{j['metadata']['namespace']}/{j['metadata']['name']}"
        for j in objects
        if j["kind"] == "Job"
        if not any(_selects(r, j["metadata"]["namespace"], j["metadata"]["name"]) for r in rules)
    ]


def canary_stack() -> dict:
    return {
        **BASE,
        "gpuPool": H100_POOL,
        "gateway": GATEWAY,
        "models": [model("m", canary={"weight": 10, "revision": OTHER_REVISION}), model("plain")],
    }


def test_every_download_job_the_stack_creates_is_watched():
    objects = render_with(canary_stack()).objects
    jobs = sorted(j["metadata"]["name"] for j in objects if j["kind"] == "Job")
    assert jobs == ["m-canary-download", "m-download", "plain-download"]  # the canary's own cache has its Job
    assert unwatched_jobs(objects) == []
    (canary_rule,) = [r for r in _download_rules(objects) if _selects(r, "llm", "m-canary-download")]
    assert canary_rule["labels"]["model"] == "m"  # paged as the model's
    # the walk is not a rubber stamp: without the canary's rule its Job is reported
    broken = [o for o in copy.deepcopy(objects) if o["kind"] != "PrometheusRule"] + [
        {
            **o,
            "spec": {
                "groups": [
                    {**g, "rules": [r for r in g["rules"] if "m-canary-download" not in r["expr"]]}
                    for g in o["spec"]["groups"]
                ]
            },
        }
        for o in objects
        if o["kind"] == "PrometheusRule"
    ]
    assert unwatched_jobs(broken) == ["llm/m-canary-download"]


def test_the_canarys_download_alert_fires_under_promtool(tmp_path):
    objects = render_with(canary_stack()).objects
    groups = [g for o in objects if o["kind"] == "PrometheusRule" for g in o["spec"]["groups"]]
    for g in groups:
        for r in g["rules"]:
            r.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    failed = f'{metrics.KSM_JOB_FAILED}{{namespace="llm", job_name="m-canary-download", condition="true"}}'
    ok = f'{metrics.KSM_JOB_FAILED}{{namespace="llm", job_name="m-canary-download", condition="false"}}'
    tests = [
        {
            "interval": "1m",
            "input_series": [{"series": failed, "values": "1x10"}],
            "alert_rule_test": [
                {
                    "eval_time": "5m",
                    "alertname": "ModelDownloadFailed",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "namespace": "llm",
                                "job_name": "m-canary-download",
                                "model": "m",
                            }
                        }
                    ],
                }
            ],
        },
        {
            "interval": "1m",
            "input_series": [{"series": ok, "values": "1x10"}],
            "alert_rule_test": [{"eval_time": "5m", "alertname": "ModelDownloadFailed", "exp_alerts": []}],
        },
    ]
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False)
    )
    res = _promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
