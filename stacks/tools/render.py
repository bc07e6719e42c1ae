"""Offline render: every Kubernetes object and Helm install a stack would create, as YAML.

    python -m stacks.tools.render dev out/

runs ``__main__.py`` under the Pulumi Python SDK's mocks with the config of
``Pulumi.<stack>.yaml`` (no Pulumi CLI, no cluster) and writes
``out/<stack>/manifests.yaml`` (all objects) and ``out/<stack>/helm-releases.yaml``
(chart, version, repository and values of every Helm install). Secret values are redacted.
With ``--expand-charts`` it also writes ``out/<stack>/cluster.yaml``: our objects plus every Helm
release rendered with its pinned chart (``stacks/tools/charts.py``), the whole cluster in one file.
Secure config values cannot be decrypted without the stack's passphrase: they render as a
placeholder, still marked secret.
"""

import contextlib
import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

# The mocks and manifest helpers are the library's consumer testing helper; re-exported here.
from llmstack_k8s._core.testing import (  # noqa: F401
    PROVIDER_PREFIX,
    RELEASE_TYPE,
    SECRET_PLACEHOLDER,
    RecordingMocks,
    Registration,
    Rendered,
    plain,
    to_manifest,
)

from . import charts

ROOT = Path(__file__).resolve().parents[2]


def stack_config_env(stack: str, root: Path = ROOT) -> tuple[str, dict[str, str], list[str]]:
    """(project, PULUMI_CONFIG, secret keys) for ``Pulumi.<stack>.yaml``, as the engine passes them."""
    project_file = yaml.safe_load((root / "Pulumi.yaml").read_text())
    project = project_file["name"]
    stack_path = root / f"Pulumi.{stack}.yaml"
    if not stack_path.exists():
        raise SystemExit(f"no stack file {stack_path.name} (stacks: {', '.join(available_stacks(root))})")
    stack_values = (yaml.safe_load(stack_path.read_text()) or {}).get("config") or {}
    config: dict[str, str] = {}
    secrets: list[str] = []
    for key, decl in (project_file.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            config[f"{project}:{key}"] = _wire(decl["default"])
    for key, value in stack_values.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            value = SECRET_PLACEHOLDER
            secrets.append(key)
        config[key] = _wire(value)
    return project, config, secrets


def _wire(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def available_stacks(root: Path = ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


@contextlib.contextmanager
def config_env(config: dict[str, str], secret_keys: list[str]):
    """The stack's config in the environment the SDK reads it from (as the engine passes it), restored after."""
    saved = {k: os.environ.get(k) for k in ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS")}
    os.environ["PULUMI_CONFIG"], os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(config), json.dumps(secret_keys)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_program(
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    root: Path = ROOT,
    mocks: RecordingMocks | None = None,
) -> Rendered:
    """Run ``__main__.py`` under mocks with exactly this config; raise what the program raises
    (``mocks.registrations`` then shows what had been registered before it did)."""
    mocks = mocks if mocks is not None else RecordingMocks()
    with config_env(config, secret_keys):
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=True)
        pulumi.runtime.set_all_config({}, [])
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))

        def program() -> None:
            runpy.run_path(str(root / "__main__.py"), run_name="__main__")

        _sync_await(run_pulumi_func(program))
    return Rendered(stack, mocks.registrations)


def render(stack: str, root: Path = ROOT) -> Rendered:
    project, config, secrets = stack_config_env(stack, root)
    return run_program(project, stack, config, secrets, root)


def write(rendered: Rendered, out_dir: Path) -> Path:
    target = out_dir / rendered.stack
    target.mkdir(parents=True, exist_ok=True)
    (target / "manifests.yaml").write_text(yaml.safe_dump_all(rendered.objects, sort_keys=True))
    releases = [
        {
            "name": r.get("name"),
            "namespace": r.get("namespace"),
            "chart": r.get("chart"),
            "version": r.get("version"),
            "repository": (r.get("repositoryOpts") or {}).get("repo"),
            "values": r.get("values") or {},
        }
        for r in rendered.helm_releases
    ]
    # Sorted everywhere: the engine's wire format has no key order, and PR diffs need a stable one.
    releases.sort(key=lambda r: (r["namespace"] or "", r["name"] or ""))
    (target / "helm-releases.yaml").write_text(yaml.safe_dump_all(releases, sort_keys=True) if releases else "")
    return target


def write_cluster(rendered: Rendered, out_dir: Path) -> tuple[Path, int]:
    """``out/<stack>/cluster.yaml``: our objects and every Helm release expanded with its pinned
    chart, sorted, secrets redacted (what ``kubectl diff -f`` and policy tools take)."""
    cluster = charts.expand(rendered)
    target = out_dir / rendered.stack / "cluster.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(charts.cluster_yaml(cluster))
    return target, len(cluster.objects)


def main(argv: list[str]) -> int:
    root = ROOT
    expand_charts = "--expand-charts" in argv
    argv = [a for a in argv if a != "--expand-charts"]
    if len(argv) == 4 and argv[0] == "--project-dir":
        root, argv = Path(argv[1]).resolve(), argv[2:]
    if len(argv) != 2:
        print(
            "usage: python -m stacks.tools.render [--project-dir DIR] [--expand-charts] STACK OUT_DIR   (stacks: "
            f"{', '.join(available_stacks(root))})",
            file=sys.stderr,
        )
        return 2
    stack, out = argv
    try:
        rendered = render(stack, root)
    except pulumi.RunError as err:  # bad config: the message says what and where
        print(f"error: {err}", file=sys.stderr)
        return 1
    target = write(rendered, Path(out))
    print(
        f"{stack}: {len(rendered.objects)} Kubernetes objects, {len(rendered.helm_releases)} Helm releases, "
        f"{rendered.resource_count} resources registered -> {target}/"
    )
    if expand_charts:
        try:
            cluster_file, count = write_cluster(rendered, Path(out))
        except charts.ChartExpansionError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{stack}: whole cluster with the charts expanded, {count} objects -> {cluster_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
