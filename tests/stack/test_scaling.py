"""One scaling vocabulary: the same ``autoscaling`` block means the same thing for a Deployment model
(KEDA's ScaledObject and the HPA it makes) and a Knative model (its revision's annotations)."""

import copy

import pytest

from conftest import assert_refused, render_with
from llmstack_k8s.scaling.gpu_autoscaling import default_cooldown_seconds
from llmstack_k8s.serving import knative_vllm_service as kn
from stacks.config import StackConfig

MODEL = {
    "name": "qwen",
    "model": "Qwen/Qwen2.5-1.5B-Instruct",
    "revision": "989aa7980e4cf806f80c7fef2b1adb7bc71aa306",
    "maxNumSeqs": 48,
    "weightsGiB": 3,
    "cache": {"size": "10Gi", "accessMode": "ReadWriteMany"},
}


def stack(serving: str, block: dict, **top) -> dict:
    """One model with the ``autoscaling`` block; ``top``: stack-wide keys (``autoscaling``: llmstack:autoscaling)."""
    m = {**copy.deepcopy(MODEL), "serving": serving, "autoscaling": copy.deepcopy(block)}
    return {"namespace": "llm-t", "models": [m], **top}


def keda_scaling(rendered) -> dict:
    """What KEDA and the HPA it creates are told: bounds, cooldown, the primary trigger's threshold."""
    (so,) = rendered.of_kind("ScaledObject")
    spec = so["spec"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == spec["cooldownPeriod"]  # one cooldown, both ways down
    trigger = spec["triggers"][0]
    return {
        "min": spec["minReplicaCount"],
        "max": spec["maxReplicaCount"],
        "cooldown": spec["cooldownPeriod"],
        "metric": trigger["name"],
        "target": float(trigger["metadata"]["threshold"]),
    }


def knative_scaling(rendered) -> dict:
    """What Knative's autoscaler is told, on the revision template."""
    (svc,) = [o for o in rendered.of_kind("Service") if o["apiVersion"] == kn.KNATIVE_SERVING_API]
    a = svc["spec"]["template"]["metadata"]["annotations"]
    return {
        "min": int(a["autoscaling.knative.dev/min-scale"]),
        "max": int(a["autoscaling.knative.dev/max-scale"]),
        "cooldown": kn.duration_seconds(a["autoscaling.knative.dev/scale-down-delay"]),
        "metric": a["autoscaling.knative.dev/metric"],
        "target": float(a["autoscaling.knative.dev/target"]),
    }


BLOCKS = {
    "bounds and cooldown": {"minReplicas": 1, "maxReplicas": 3, "cooldownSeconds": 900},
    "an odd cooldown": {"minReplicas": 2, "maxReplicas": 4, "cooldownSeconds": 1234},
    "defaults but the maximum": {"minReplicas": 1, "maxReplicas": 2},
}


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_the_same_block_gives_the_same_bounds_and_cooldown_both_ways(block):
    deployment = keda_scaling(render_with(stack("deployment", BLOCKS[block])))
    knative = knative_scaling(render_with(stack("knative", BLOCKS[block])))
    for key in ("min", "max", "cooldown"):
        assert deployment[key] == knative[key], (key, deployment, knative)
    assert deployment["min"] == BLOCKS[block]["minReplicas"] and deployment["max"] == BLOCKS[block]["maxReplicas"]


def test_the_cooldown_default_is_the_same_both_ways_and_outlasts_a_cold_start():
    cfg = StackConfig.model_validate(stack("deployment", BLOCKS["defaults but the maximum"]))
    expected = default_cooldown_seconds(cfg.models[0].cold_start_budget.total_seconds)
    assert keda_scaling(render_with(stack("deployment", BLOCKS["defaults but the maximum"])))["cooldown"] == expected
    assert knative_scaling(render_with(stack("knative", BLOCKS["defaults but the maximum"])))["cooldown"] == expected


def test_scale_to_zero_is_min_replicas_zero_both_ways():
    block = {"minReplicas": 0, "maxReplicas": 1, "cooldownSeconds": 600}
    as_deployment = render_with(stack("deployment", block, autoscaling={"httpAddOn": True}))
    assert keda_scaling(as_deployment)["min"] == 0
    assert as_deployment.of_kind("HTTPScaledObject"), (
        "a Deployment at zero needs the HTTP add-on to hold the first request"
    )
    assert knative_scaling(render_with(stack("knative", block)))["min"] == 0
    # Without the add-on only the Deployment is refused: Knative's activator holds the request itself.
    assert_refused(stack("deployment", block), "minReplicas is 0 but autoscaling.httpAddOn is false")


def test_target_is_the_per_replica_target_of_each_ones_metric():
    """The same target lands as each autoscaler's per-replica threshold of its metric: KEDA's default
    queueDepth trigger, Knative's concurrency."""
    block = {"minReplicas": 1, "maxReplicas": 2, "target": 6}
    deployment = keda_scaling(render_with(stack("deployment", block)))
    knative = knative_scaling(render_with(stack("knative", block)))
    assert deployment["target"] == knative["target"] == 6
    assert (deployment["metric"], knative["metric"]) == ("queuedepth", "concurrency")
    explicit = knative_scaling(render_with(stack("knative", {**block, "metric": "concurrency"})))
    assert explicit == knative


def test_default_targets_follow_the_metric():
    deployment = keda_scaling(render_with(stack("deployment", {"maxReplicas": 2, "metric": "kvCacheUsage"})))
    assert (deployment["metric"], deployment["target"], deployment["min"]) == ("kvcacheusage", 0.8, 1)
    knative = knative_scaling(render_with(stack("knative", {"maxReplicas": 2})))
    assert (knative["target"], knative["min"]) == (
        MODEL["maxNumSeqs"] // 2,
        0,
    )  # half the batch; Knative scales to zero


def test_a_knative_model_without_a_block_scales_zero_to_one():
    m = {**copy.deepcopy(MODEL), "serving": "knative"}
    knative = knative_scaling(render_with({"namespace": "llm-t", "models": [m]}))
    assert (knative["min"], knative["max"]) == (0, kn.DEFAULT_MAX_SCALE)


@pytest.mark.parametrize(
    "serving, block, expected",
    [
        (
            "deployment",
            {"maxReplicas": 2, "metric": "concurrency"},
            "autoscaling.metric: concurrency is what Knative's autoscaler measures",
        ),
        ("knative", {"maxReplicas": 2, "metric": "ttftP95"}, "autoscaling.metric: ttftP95 is a vLLM metric KEDA reads"),
        (
            "knative",
            {"maxReplicas": 2, "pollingIntervalSeconds": 30},
            "autoscaling.pollingIntervalSeconds: applies to a Deployment model",
        ),
        (
            "knative",
            {"maxReplicas": 2, "ttftP95Seconds": 3},
            "autoscaling.ttftP95Seconds: applies to a Deployment model",
        ),
    ],
)
def test_what_only_one_autoscaler_can_do_is_refused_on_the_other(serving, block, expected):
    message = assert_refused(stack(serving, block), f"llmstack:models[0] (name: qwen).{expected}")
    assert len(message.split("\n  ")[1:]) == 1, message
