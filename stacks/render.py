"""Offline render: every Kubernetes object and Helm install a stack would create, as YAML.

    python -m stacks.render dev out/

runs ``__main__.py`` under the Pulumi Python SDK's mocks with the config of
``Pulumi.<stack>.yaml`` (no Pulumi CLI, no cluster) and writes
``out/<stack>/manifests.yaml`` (all objects) and ``out/<stack>/helm-releases.yaml``
(chart, version, repository and values of every Helm install). Secret values are redacted.
Secure config values cannot be decrypted without the stack's passphrase: they render as a
placeholder, still marked secret.
"""

import json
import os
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parent.parent
SECRET_PLACEHOLDER = "rendered-secret-placeholder"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
PROVIDER_PREFIX = "pulumi:providers:"

# Apply order a reader (and kubectl) expects.
_KIND_ORDER = [
    "Namespace", "PriorityClass", "RuntimeClass", "ConfigMap", "Secret", "PersistentVolumeClaim",
    "ServiceAccount", "Job", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
]


@dataclass
class Registration:
    type: str
    name: str
    inputs: dict
    custom: bool
    parent_type: Optional[str] = None


@dataclass
class Rendered:
    stack: str
    registrations: list[Registration] = field(default_factory=list)

    @property
    def objects(self) -> list[dict]:
        """Kubernetes objects (core kinds and custom resources), as YAML-ready dicts."""
        out = []
        for r in self.registrations:
            if r.custom and r.type.startswith("kubernetes:") and r.type != RELEASE_TYPE:
                out.append(to_manifest(r))
        return sorted(out, key=_sort_key)

    @property
    def helm_releases(self) -> list[dict]:
        return [r.inputs for r in self.registrations if r.type == RELEASE_TYPE]

    @property
    def resource_count(self) -> int:
        return len(self.registrations)

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]


def _sort_key(o: dict):
    kind = o["kind"]
    rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    meta = o.get("metadata", {})
    return (rank, kind, meta.get("namespace", ""), meta.get("name", ""))


def to_manifest(r: Registration) -> dict:
    """``kubernetes:apps/v1:Deployment`` + inputs -> a manifest with apiVersion and kind first."""
    _, group_version, kind = r.type.split(":")
    api_version = group_version.removeprefix("core/")
    body = {k: v for k, v in r.inputs.items() if k not in ("apiVersion", "kind")}
    manifest = {"apiVersion": api_version, "kind": kind, **body}
    if kind == "Secret":
        for key in ("data", "stringData"):
            if key in manifest:
                manifest[key] = {k: "<redacted>" for k in manifest[key]}
    return manifest


def plain(value: Any) -> Any:
    """Wire values back to what the program wrote: secrets unwrapped, whole floats as ints
    (the protocol carries every number as a double)."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return plain(value["value"])
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs back as state, the way a preview sees them, and record every registration."""

    def __init__(self) -> None:
        self.registrations: list[Registration] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = SECRET_PLACEHOLDER
        if args.typ.startswith("kubernetes:") and args.custom:
            state.setdefault("metadata", {}).setdefault("name", args.name)
        if not args.typ.startswith(PROVIDER_PREFIX):
            self.registrations.append(Registration(args.typ, args.name, plain(args.inputs), args.custom))
        return [f"{args.name}-id", state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


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
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def run_program(
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    root: Path = ROOT,
    mocks: Optional[RecordingMocks] = None,
) -> Rendered:
    """Run ``__main__.py`` under mocks with exactly this config; raise what the program raises
    (``mocks.registrations`` then shows what had been registered before it did)."""
    saved = {k: os.environ.get(k) for k in ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS")}
    os.environ["PULUMI_CONFIG"] = json.dumps(config)
    os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(secret_keys)
    mocks = mocks if mocks is not None else RecordingMocks()
    try:
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=True)
        pulumi.runtime.set_all_config({}, [])
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(root / "__main__.py"), run_name="__main__")))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
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


def main(argv: list[str]) -> int:
    root = ROOT
    if len(argv) == 4 and argv[0] == "--project-dir":
        root, argv = Path(argv[1]).resolve(), argv[2:]
    if len(argv) != 2:
        print(
            f"usage: python -m stacks.render [--project-dir DIR] STACK OUT_DIR   (stacks: {', '.join(available_stacks(root))})",
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
