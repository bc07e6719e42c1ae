"""Benchmark (not a test): cost of the components over bare pulumi-kubernetes registrations.

For the prod stack and synthetic stacks of 1, 10 and 100 models, runs the program under the
SDK's mocks (as the offline render does) and, separately, registers the very same Kubernetes
objects with bare pulumi-kubernetes calls (one typed resource per object, no components, no
config validation). Prints resources registered, seconds (best of --repeat runs) and the ratio.

    .venv/bin/python benchmarks/render_bench.py [--repeat 3]
"""

import argparse
import copy
import re
import sys
import time
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stacks.tools import render  # noqa: E402


def synthetic_config(n: int) -> dict:
    """n copies of the dev stack's model, named m0..m{n-1}, everything else as in dev."""
    _, config, _ = render.stack_config_env("dev")
    base = yaml.safe_load(config["llmstack:models"])[0]
    models = []
    for i in range(n):
        m = copy.deepcopy(base)
        m["name"], m["servedModelName"] = f"m{i}", f"model-{i}"
        models.append(m)
    config = {k: v for k, v in config.items() if k != "llmstack:huggingfaceToken"}
    config["llmstack:models"] = render._wire(models)
    return config


def timed_program(stack: str, config: dict, secrets: list) -> tuple[float, render.Rendered]:
    t0 = time.perf_counter()
    rendered = render.run_program("llmstack", stack, config, secrets)
    return time.perf_counter() - t0, rendered


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def bare_registrations(rendered: render.Rendered) -> float:
    """Register each object with its typed pulumi-kubernetes class (and each Helm release and
    generated password as such), nothing else: no components, no config validation."""
    objects = rendered.objects
    releases = rendered.helm_releases
    passwords = [r for r in rendered.registrations if r.type == "random:index/randomPassword:RandomPassword"]

    def program():
        for i, rel in enumerate(releases):
            k8s.helm.v3.Release(f"h{i}", **{_snake(k): v for k, v in rel.items()})
        for i, pw in enumerate(passwords):
            random.RandomPassword(f"p{i}", length=pw.inputs["length"], special=pw.inputs["special"])
        for i, obj in enumerate(objects):
            group_version, kind = obj["apiVersion"], obj["kind"]
            group, _, version = group_version.rpartition("/")
            module = getattr(k8s, (group.split(".")[0] or "core").replace("-", "_"), None)
            cls = getattr(getattr(module, version, None), kind, None) if module else None
            body = {_snake(k): v for k, v in obj.items() if k not in ("apiVersion", "kind")}
            if cls is None:  # a custom resource
                k8s.apiextensions.CustomResource(f"r{i}", api_version=group_version, kind=kind, **body)
            else:
                cls(f"r{i}", **body)

    pulumi.runtime.set_mocks(render.RecordingMocks(), project="llmstack", stack="bare", preview=True)
    t0 = time.perf_counter()
    _sync_await(run_pulumi_func(program))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    _, prod_config, prod_secrets = render.stack_config_env("prod")
    cases = [("prod", prod_config, prod_secrets)] + [(f"{n} models", synthetic_config(n), []) for n in (1, 10, 100)]
    timed_program("bench", synthetic_config(1), [])  # warm-up: imports, first event loop
    print(f"{'stack':<11} {'resources':>9} {'k8s objs':>8} {'components s':>12} {'bare s':>8} {'ratio':>6}")
    for label, config, secrets in cases:
        stack = "prod" if label == "prod" else "bench"
        best, rendered = min((timed_program(stack, config, secrets) for _ in range(opts.repeat)), key=lambda r: r[0])
        bare = min(bare_registrations(rendered) for _ in range(opts.repeat))
        print(
            f"{label:<11} {rendered.resource_count:>9} {len(rendered.objects):>8} {best:>12.3f} {bare:>8.3f} "
            f"{best / bare:>6.2f}"
        )


if __name__ == "__main__":
    main()
