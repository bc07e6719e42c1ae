"""What the HPA that KEDA creates does with a rendered ScaledObject: a small, faithful model of
the Kubernetes HPA controller (replica calculation with tolerance, behaviour stabilisation
windows, scale-up/scale-down policies, min/max), evaluated every 15 s.

The README's worked example (a burst of 50 requests under the prod settings) is printed by

    .venv/bin/python tests/support/hpa_sim.py

and tests/stack/test_gpu_autoscaling.py fails when the README's table differs from this output.
"""

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from llmstack_k8s.scaling.gpu_autoscaling import hpa_desired  # noqa: E402

SYNC_SECONDS = 15  # the HPA controller's resync period
TOLERANCE = 0.1


@dataclass
class Hpa:
    """The HPA state for one ScaledObject spec (``spec`` as rendered)."""

    spec: dict
    replicas: int
    recommendations: list = field(default_factory=list)  # (t, raw desired)
    scale_events: list = field(default_factory=list)  # (t, +n / -n)

    @property
    def behavior(self) -> dict:
        return self.spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]

    def raw_desired(self, values: dict[str, float]) -> int:
        """Max over the triggers of ceil-based replica counts (HPA: the largest metric wins)."""
        best = 0
        for trig in self.spec["triggers"]:
            if trig["type"] != "prometheus" or trig["name"] not in values:
                continue  # the example scenario gives no value for this signal
            value = values[trig["name"]]
            target = float(trig["metadata"]["threshold"])
            best = max(best, hpa_desired(self.replicas, value, target, trig["metricType"], TOLERANCE))
        return best

    def _stabilize(self, t: int, desired: int) -> int:
        up_cut = t - self.behavior["scaleUp"]["stabilizationWindowSeconds"]
        down_cut = t - self.behavior["scaleDown"]["stabilizationWindowSeconds"]
        up = down = desired
        for when, rec in self.recommendations:
            if when > up_cut:
                up = min(up, rec)
            if when > down_cut:
                down = max(down, rec)
        self.recommendations.append((t, desired))
        rec = self.replicas
        rec = max(rec, up)
        rec = min(rec, down)
        return rec

    def _limit(self, t: int, rules: dict, up: bool) -> int:
        limits = []
        for p in rules["policies"]:
            cut = t - p["periodSeconds"]
            added = sum(n for when, n in self.scale_events if when > cut and n > 0)
            deleted = -sum(n for when, n in self.scale_events if when > cut and n < 0)
            if up:
                start = self.replicas - added + deleted
                limits.append(start + p["value"] if p["type"] == "Pods" else math.ceil(start * (1 + p["value"] / 100)))
            else:
                start = self.replicas + deleted - added
                limits.append(start - p["value"] if p["type"] == "Pods" else int(start * (1 - p["value"] / 100)))
        if up:
            return max(limits) if rules["selectPolicy"] == "Max" else min(limits)
        return max(limits) if rules["selectPolicy"] == "Min" else min(limits)

    def step(self, t: int, values: dict[str, float]) -> int:
        raw = self.raw_desired(values)
        desired = self._stabilize(t, raw)
        lo, hi = max(self.spec["minReplicaCount"], 1), self.spec["maxReplicaCount"]
        if desired > self.replicas:
            desired = min(desired, hi, max(self.replicas, self._limit(t, self.behavior["scaleUp"], True)))
        elif desired < self.replicas:
            desired = max(desired, lo, self._limit(t, self.behavior["scaleDown"], False))
        if desired != self.replicas:
            self.scale_events.append((t, desired - self.replicas))
            self.replicas = desired
        return raw


def burst_of_50(spec: dict, burst_seconds: int = 600, after_seconds: int = 1800) -> list[tuple[int, int, int, int]]:
    """(t, waiting, raw recommendation, replicas) at every change, for: steady light load at
    minReplicas, then 50 requests waiting for ``burst_seconds`` (they stay queued until new
    replicas have loaded the model), then idle. KV-cache use per replica: 0.5 steady, 0.6 in
    the burst, 0.05 idle."""
    names = {
        t["metadata"]["query"].split("(", 1)[1].split("{")[0]: t["name"]
        for t in spec["triggers"]
        if t["type"] == "prometheus"
    }
    from llmstack_k8s.observability import metrics

    queue, kv = names.get(metrics.VLLM_REQUESTS_WAITING), names.get(metrics.VLLM_KV_CACHE_USAGE)

    hpa = Hpa(spec, replicas=spec["minReplicaCount"])
    warmup = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
    rows: list[tuple[int, int, int, int]] = []
    last = None
    for t in range(-warmup, burst_seconds + after_seconds + 1, SYNC_SECONDS):
        if t < 0:
            waiting, kv_each = 0, 0.5
        elif t < burst_seconds:
            waiting, kv_each = 50, 0.6
        else:
            waiting, kv_each = 0, 0.05
        values = {}
        if queue:
            values[queue] = waiting
        if kv:
            values[kv] = kv_each * hpa.replicas
        raw = hpa.step(t, values)
        if t >= 0 and (last is None or hpa.replicas != last[3] or waiting != last[1]):
            last = (t, waiting, raw, hpa.replicas)
            rows.append(last)
    return rows


def _clock(t: int) -> str:
    return f"{t // 60}:{t % 60:02d}"


def burst_table(spec: dict) -> str:
    """The README's table (markdown)."""
    lines = ["| time | requests waiting | HPA recommendation (raw) | replicas |", "| --- | --- | --- | --- |"]
    for t, waiting, raw, replicas in burst_of_50(spec):
        lines.append(f"| {_clock(t)} | {waiting} | {raw} | {replicas} |")
    return "\n".join(lines)


def prod_example_spec(model: str = "llama-8b") -> dict:
    from stacks.tools.render import render

    for obj in render("prod").of_kind("ScaledObject"):
        if obj["metadata"]["name"] == model:
            return obj["spec"]
    raise LookupError(f"no ScaledObject {model} in the prod stack")


if __name__ == "__main__":
    print(burst_table(prod_example_spec()))
