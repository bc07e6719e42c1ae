"""Test your own programs that use these components, without a cluster or the Pulumi CLI.

``RecordingMocks`` runs a program under the Pulumi SDK's mocks, echoing inputs back the way a
preview sees them, and records every registration; ``objects`` turns what was recorded into
Kubernetes manifests. Our own tests and the offline render use exactly this::

    import pulumi
    from llmstack_k8s.testing import RecordingMocks

    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="my-project", stack="test", preview=True)

    @pulumi.runtime.test
    def test_server():
        server = VllmService("m", {...})
        return server.endpoint.apply(lambda _: check(mocks.objects(kind="Deployment")))
"""

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc

#: What a generated password (pulumi-random) reads as under the mocks.
SECRET_PLACEHOLDER = "rendered-secret-placeholder"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
PROVIDER_PREFIX = "pulumi:providers:"

# Apply order a reader (and kubectl) expects.
_KIND_ORDER = [
    "Namespace",
    "PriorityClass",
    "RuntimeClass",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "ServiceAccount",
    "Job",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "NetworkPolicy",
]


@dataclass
class Registration:
    type: str
    name: str
    inputs: dict
    custom: bool | None  # Pulumi's MockResourceArgs.custom (None where the engine does not say)
    parent_type: str | None = None


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
                manifest[key] = dict.fromkeys(manifest[key], "<redacted>")
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


#: What ``str()`` of an Output gives: in a rendered object it means an Output was formatted into
#: a string instead of being resolved with ``apply``/``concat`` (the value never arrives).
STRINGIFIED_OUTPUT = "Calling __str__ on an Output[T]"


def stringified_outputs(value: Any, path: str = "") -> list[str]:
    """Paths of every string in ``value`` that holds a formatted Output instead of its value."""
    if isinstance(value, str):
        return [path or "."] if STRINGIFIED_OUTPUT in value else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in stringified_outputs(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in stringified_outputs(v, f"{path}[{i}]")]
    return []


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs back as state, the way a preview sees them, and record every registration."""

    def __init__(self) -> None:
        self.registrations: list[Registration] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        broken = stringified_outputs(plain(args.inputs))
        if broken:
            # Every program rendered under these mocks fails here, not on a cluster.
            raise ValueError(f"{args.typ} {args.name}: an Output was formatted into a string at {', '.join(broken)}")
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

    def objects(self, kind: str | None = None) -> list[dict]:
        """Kubernetes objects registered so far (of ``kind`` if given), as manifests."""
        return [o for o in Rendered("", self.registrations).objects if kind is None or o["kind"] == kind]

    def helm_releases(self) -> list[dict]:
        """Inputs of every Helm release registered so far."""
        return Rendered("", self.registrations).helm_releases
