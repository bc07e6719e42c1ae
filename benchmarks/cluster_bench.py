"""Benchmark (not a test): the real Pulumi engine on the local simulated cluster (scripts/local_cluster.py).

1. prod: `pulumi preview`, `up`, a second `preview` (no changes) and `destroy`, the median of --rounds rounds,
   next to a bare pulumi-kubernetes program (its own Pulumi project, same Python virtualenv) that registers
   the very same Kubernetes objects and Helm releases: one typed resource per object (CustomResource for
   custom kinds), one ``k8s.helm.v3.Release`` per release with the same chart, version and values, with the
   same dependency edges between them as llmstack's own state records. No components, no config, no
   validation, no generated passwords. Both run on the same cluster, one after the other in every round (the
   order alternates), after an unmeasured warm-up cycle of each.
2. `up` and `destroy` of stacks made from prod with N copies of its llama-8b (1, 10, 50 by default: names
   llama-8b-0..N-1, autoscaling, KV-cache-aware route and everything else as in prod; no research team, which
   serves llama-70b; karpenter.gpuLimit raised to N x maxReplicas), each on as many GPU nodes as its
   pods need. How the time grows with N.

It runs its own cluster (``LLMSTACK_CLUSTER=llmstack-bench``, started fresh, stopped at the end) with its
Pulumi state in a temporary backend, so it never disturbs ``make demo`` or the cluster tests.

    .venv/bin/python benchmarks/cluster_bench.py [--rounds 3] [--models 1,10,50] [--scale-rounds 1]
"""

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The benchmark's own cluster, never ``llmstack`` (make demo) or ``llmstack-test`` (the suite): read at import.
os.environ["LLMSTACK_CLUSTER"] = "llmstack-bench"
sys.path.insert(0, str(ROOT / "scripts"))

import engine  # noqa: E402
import local_cluster  # noqa: E402

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"

BARE_PROJECT = """\
name: bare-k8s
description: The objects of an llmstack render as bare pulumi-kubernetes resources (benchmarks/cluster_bench.py).
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: .venv
"""

BARE_PROGRAM = '''\
"""Bare pulumi-kubernetes: every object and Helm release of resources.json, one resource each, with the
dependencies listed there; nothing else."""

import json
import re
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

spec = json.loads((Path(__file__).parent / "resources.json").read_text())
provider = k8s.Provider("k8s", context=spec["context"], enable_server_side_apply=True)
TYPED_GROUPS = ("", "apps", "batch", "policy", "autoscaling")


def snake(key):
    return re.sub(r"(?<!^)([A-Z])", r"_\\1", key).lower()


def typed(api_version, kind):
    group, _, version = api_version.rpartition("/")
    if group not in TYPED_GROUPS and not group.endswith(".k8s.io"):
        return None
    module = getattr(k8s, group.split(".")[0] or "core", None)
    return getattr(getattr(module, version, None), kind, None)


made = {}
for item in spec["resources"]:
    opts = pulumi.ResourceOptions(provider=provider, depends_on=[made[d] for d in item["dependsOn"]])
    if "release" in item:
        args = {snake(k): v for k, v in item["release"].items() if k != "compat"}
        made[item["key"]] = k8s.helm.v3.Release(item["name"], **args, opts=opts)
        continue
    obj = dict(item["object"])
    api_version, kind = obj.pop("apiVersion"), obj.pop("kind")
    if kind == "Secret":  # secret values stay secret in the state, as llmstack's do
        obj["stringData"] = {k: pulumi.Output.secret(v) for k, v in (obj.get("stringData") or {}).items()}
    cls = typed(api_version, kind)
    if cls is None:
        made[item["key"]] = k8s.apiextensions.CustomResource(item["name"], api_version=api_version, kind=kind,
                                                             opts=opts, **obj)
    else:
        made[item["key"]] = cls(item["name"], **{snake(k): v for k, v in obj.items()}, opts=opts)
'''


def object_key(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj['apiVersion']}/{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"


def release_key(release: dict) -> str:
    return f"Release/{release.get('namespace', '')}/{release['name']}"


def state_key(resource: dict) -> str | None:
    """The render key of a Kubernetes object or Helm release in ``pulumi stack export``; None for the rest."""
    typ = resource["type"]
    if not resource.get("custom") or not typ.startswith("kubernetes:"):
        return None
    inputs = resource.get("inputs") or {}
    if typ == RELEASE_TYPE:
        return release_key(inputs)
    _, group_version, kind = typ.split(":")
    return object_key(
        {"apiVersion": group_version.removeprefix("core/"), "kind": kind, "metadata": inputs.get("metadata") or {}}
    )


def dependency_graph(state: list[dict]) -> dict[str, set[str]]:
    """key -> keys it depends on, as the engine recorded them for llmstack (a dependency on a component
    stands for the Kubernetes resources under it)."""
    by_urn = {r["urn"]: r for r in state}
    children: dict[str, list[str]] = {}
    for r in state:
        if r.get("parent"):
            children.setdefault(r["parent"], []).append(r["urn"])

    def keys(urn: str) -> set[str]:
        resource = by_urn.get(urn)
        if resource is None:
            return set()
        if resource.get("custom"):
            key = state_key(resource)
            return {key} if key else set()
        return set().union(*(keys(c) for c in children.get(urn, [])))

    graph = {}
    for r in state:
        key = state_key(r)
        if key:
            graph[key] = set().union(*(keys(d) for d in r.get("dependencies") or [])) - {key}
    return graph


def bare_resources(rendered: dict, graph: dict[str, set[str]]) -> list[dict]:
    """The render's objects and releases in an order where every dependency comes first."""
    items = {release_key(r): {"release": r} for r in rendered["releases"]}
    items.update({object_key(o): {"object": o} for o in rendered["objects"]})
    for key, item in items.items():
        item["key"] = key
        kind = "release" if "release" in item else item["object"]["kind"].lower()
        item["name"] = "-".join(p for p in (kind, *key.split("/")[-2:]) if p)
        item["dependsOn"] = sorted(graph.get(key, set()) & set(items))
    ordered, done = [], set()
    while len(ordered) < len(items):
        ready = [k for k in items if k not in done and set(items[k]["dependsOn"]) <= done]
        if not ready:
            raise SystemExit(f"cluster-bench: dependency cycle among {sorted(set(items) - done)}")
        for key in ready:
            ordered.append(items[key])
            done.add(key)
    return ordered


def bare_project(directory: Path, rendered: dict, graph: dict[str, set[str]], env: dict) -> engine.Project:
    project = engine.Project.copy(directory, "prod", "config: {}\n", files=(".venv",), env=env)
    (directory / "Pulumi.yaml").write_text(BARE_PROJECT)
    (directory / "__main__.py").write_text(BARE_PROGRAM)
    spec = {"context": local_cluster.CONTEXT, "resources": bare_resources(rendered, graph)}
    (directory / "resources.json").write_text(json.dumps(spec, indent=1))
    return project


OPERATIONS = (
    ("preview", lambda p: p.preview()),
    ("up", lambda p: p.up()),
    ("preview, no changes", lambda p: p.preview("--expect-no-changes")),
    ("destroy", lambda p: p.destroy()),
)


def cycle(project: engine.Project) -> dict[str, float]:
    """Seconds of each operation, in order; a failure destroys what was created before it is raised."""
    seconds = {}
    for name, operation in OPERATIONS:
        started = time.perf_counter()
        try:
            operation(project)
        except engine.PulumiError:
            project.destroy(check=False)
            raise
        seconds[name] = time.perf_counter() - started
    return seconds


def compare_prod(work: Path, env: dict, rounds: int) -> None:
    llmstack = engine.Project.copy(work / "llmstack-prod", "prod", local_cluster.stack_file("prod"), env=env)
    rendered = local_cluster.prepare("prod", llmstack.directory)
    llmstack.select()
    # warm-up (unmeasured): the first up installs the charts' CRDs Helm keeps afterwards; its state gives
    # the dependency edges the bare program copies
    llmstack.preview()
    llmstack.up()
    state = llmstack.resources()
    llmstack.destroy()
    graph = dependency_graph(state)
    render_keys = {object_key(o) for o in rendered["objects"]} | {release_key(r) for r in rendered["releases"]}
    if set(graph) != render_keys:
        print(
            f"note: render and llmstack state differ: only rendered {sorted(render_keys - set(graph))}, "
            f"only in state {sorted(set(graph) - render_keys)}"
        )
    bare = bare_project(work / "bare-prod", rendered, graph, env)
    bare.select()
    bare.preview()  # warm-up, and a check that the bare program registers every object and release
    bare.up()
    bare_count = len(bare.resources())
    bare.destroy()
    if bare_count != len(render_keys) + 2:
        raise SystemExit(
            f"cluster-bench: the bare program left {bare_count} resources in its state, "
            f"not {len(render_keys)} + provider + stack"
        )

    times: dict[str, dict[str, list[float]]] = {"llmstack": {}, "bare": {}}
    for n in range(rounds):
        order = [("llmstack", llmstack), ("bare", bare)]
        for label, project in order if n % 2 == 0 else order[::-1]:
            for op, seconds in cycle(project).items():
                times[label].setdefault(op, []).append(seconds)

    print(
        f"\nprod: {len(rendered['objects'])} Kubernetes objects + {len(rendered['releases'])} Helm releases; "
        f"llmstack registers {len(state)} resources (components, passwords, provider, stack included), "
        f"bare {bare_count} (provider and stack included). Median of {rounds} rounds after a warm-up, seconds:"
    )
    print(f"{'operation':<20} {'llmstack':>9} {'bare':>8} {'ratio':>6}   rounds llmstack | bare")
    for op, _ in OPERATIONS:
        ours, theirs = times["llmstack"][op], times["bare"][op]
        a, b = statistics.median(ours), statistics.median(theirs)
        rounds_text = " ".join(f"{s:.1f}" for s in ours) + " | " + " ".join(f"{s:.1f}" for s in theirs)
        print(f"{op:<20} {a:>9.1f} {b:>8.1f} {a / b:>6.2f}   {rounds_text}")
    local_cluster.release_gpu_nodes("prod")


def n_models(n: int):
    """An edit of prod's config: n copies of llama-8b, no research team (it serves llama-70b), and room
    for every copy at its autoscaling maximum in Karpenter's limit."""

    def edit(config: dict) -> None:
        base = next(m for m in config["llmstack:models"] if m["name"] == "llama-8b")
        models = []
        for i in range(n):
            model = copy.deepcopy(base)
            model["name"], model["servedModelName"] = f"llama-8b-{i}", f"{base['servedModelName']}-{i}"
            models.append(model)
        config["llmstack:models"] = models
        config.pop("llmstack:teams", None)
        pool = config["llmstack:gpuPool"]
        gpus = base.get("tensorParallelSize", 1) * base.get("pipelineParallelSize", 1)  # GPUs per replica
        per_model = base["autoscaling"]["maxReplicas"] * gpus
        pool["karpenter"]["gpuLimit"] = max(pool["karpenter"]["gpuLimit"], n * per_model)

    return edit


def scale(work: Path, env: dict, counts: list[int], rounds: int) -> None:
    rows = []
    for n in counts:
        stack = f"prod-n{n}"
        project = engine.Project.copy(work / stack, stack, local_cluster.stack_file("prod", n_models(n)), env=env)
        rendered = local_cluster.prepare(stack, project.directory)  # renders it first: the stack's own validation
        nodes = len(local_cluster.gpu_nodes(stack, rendered, project.directory))
        project.select()
        ups, destroys, resources, failure = [], [], 0, None
        for _ in range(rounds):
            started = time.perf_counter()
            result = project.up(check=False)
            ups.append(time.perf_counter() - started)
            if result.returncode != 0:
                failure = engine.PulumiError(["up"], result)
            else:
                resources = len(project.resources())
            started = time.perf_counter()
            gone = project.destroy(check=False)
            destroys.append(time.perf_counter() - started)
            if gone.returncode != 0 and failure is None:
                failure = engine.PulumiError(["destroy"], gone)
            if failure:
                break
        local_cluster.release_gpu_nodes(stack)
        rows.append((n, nodes, len(rendered["objects"]), resources, ups, destroys, failure))

    print(f"\nup and destroy of prod with N copies of llama-8b (median of {rounds} round(s) each), seconds:")
    print(
        f"{'models':>6} {'GPU nodes':>9} {'k8s objs':>8} {'resources':>9} {'up':>7} {'up/model':>8} "
        f"{'marginal/model':>14} {'destroy':>7}"
    )
    base = None
    for n, nodes, objects, resources, ups, destroys, failure in rows:
        up, down = statistics.median(ups), statistics.median(destroys)
        if failure:
            print(f"{n:>6} {nodes:>9} {objects:>8} {'-':>9} FAILED after {up:.1f} s: {str(failure)[-1500:]}")
            continue
        marginal = f"{(up - base[1]) / (n - base[0]):.2f}" if base and n > base[0] else "-"
        base = base or (n, up)
        print(f"{n:>6} {nodes:>9} {objects:>8} {resources:>9} {up:>7.1f} {up / n:>8.2f} {marginal:>14} {down:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the prod comparison")
    parser.add_argument("--models", default="1,10,50", help="model counts of the scaling run")
    parser.add_argument("--scale-rounds", type=int, default=1, help="rounds of each scaling stack")
    opts = parser.parse_args()
    if not engine.available() or not (local_cluster.BIN / "kwokctl").exists():
        raise SystemExit("cluster-bench: the real-engine toolchain is not built (make toolchain)")
    print(
        f"cluster {local_cluster.NAME}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start "
        "(other work may run beside it: figures are taken under that load)",
        flush=True,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        work = Path(tmp)
        env = engine.environment(backend=work / "state")
        try:
            local_cluster.provide([], fresh=True)
            compare_prod(work, env, opts.rounds)
            scale(work, env, [int(n) for n in opts.models.split(",")], opts.scale_rounds)
        finally:
            local_cluster.stop()
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
