"""Expand every Helm release of a rendered stack with its real pinned chart, offline.

Each ``helm.v3.Release`` the program registers is rendered with the packaged chart of exactly
the pinned version (``tests/fixtures/charts/<chart>-<version>.tgz``; a release whose chart is a local
package, a stack with ``charts.directory``, with that package) and exactly the values the program
passes, by Helm's own Go SDK (PyPI ``helm-python-sdk``: no helm binary, no cluster, no
network). The result is the whole cluster a ``pulumi up`` creates: our objects, every chart's
objects (namespace filled in, Helm's ownership metadata added, ``helm test`` hooks left out, since
an install does not run them), the CRDs the charts install and the namespaces
``createNamespace`` makes.

Templates see the Capabilities of a real cluster running the stack: Kubernetes
``KUBE_VERSION`` and, beyond the built-in API groups, every custom resource API the stack's
CRDs and custom resources bring (``monitoring.coreos.com/v1``, ``keda.sh/v1alpha1`` ...), so
templates gated on ``.Capabilities.APIVersions.Has`` render as they would on install.
"""

from __future__ import annotations

import functools
import json
import sys
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmstack_k8s import versions
from llmstack_k8s._core.helm import package_file_names, pull_command

ROOT = Path(__file__).resolve().parents[2]
#: The packaged upstream charts, one per pinned chart version (tests/stack/test_charts.py keeps it so).
PACKAGES = ROOT / "tests" / "fixtures" / "charts"
#: Kubernetes version templates see: the oldest minor the stack supports (tests/support/schemas.py).
KUBE_VERSION = "v1.32.0"

#: Pinned charts with no package in PACKAGES, and why. Only a stack choosing that install path
#: needs one; expanding such a stack stops with this reason (tests/stack/test_charts.py names each).
UNPACKAGED_PINS = {
    versions.GPU_OPERATOR.chart: (
        "NVIDIA's GPU operator is served from helm.ngc.nvidia.com, which the build machines cannot "
        "reach; used only with gpuPool.install: gpuOperator (dev and prod use the device plugin)"
    ),
}

# Kinds that live outside namespaces (custom kinds: the CRD's spec.scope says).
_CLUSTER_SCOPED = {
    "APIService",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "CSIDriver",
    "CSINode",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "GatewayClass",
}
# Apply order a reader (and kubectl) expects; the rest alphabetically after these.
_ORDER = [
    "CustomResourceDefinition",
    "Namespace",
    "PriorityClass",
    "RuntimeClass",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
]
RELEASE_NAME = "meta.helm.sh/release-name"
RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
REDACTED = "<redacted>"


class _Loader(yaml.CSafeLoader):
    """libyaml's safe loader, reading a bare ``=`` (enum values in the Prometheus CRDs) as the
    string it is in YAML 1.2 rather than PyYAML's YAML 1.1 ``value`` tag."""


# types-PyYAML types the constructor as one of the loader's own class; SafeConstructor's is the one CSafeLoader uses.
_Loader.add_constructor("tag:yaml.org,2002:value", yaml.constructor.SafeConstructor.construct_yaml_str)  # type: ignore[type-var]


class ChartExpansionError(Exception):
    """A release that cannot be expanded: no package for its pin, a template error, bad values."""


def package_path(chart: str, version: str, packages: Path = PACKAGES) -> Path:
    """``<chart>-<version>.tgz``; a pin written ``v1.23.0`` is packaged as ``1.23.0`` (Helm's naming,
    the one ``charts.directory`` follows: ``llmstack_k8s.helm.package_file_names``)."""
    return packages / package_file_names(versions.Chart("", chart, version))[0]


def pinned_charts() -> list[versions.Chart]:
    """Every chart pinned in the versions module."""
    return [v for v in vars(versions).values() if isinstance(v, versions.Chart)]


@dataclass
class Release:
    name: str
    namespace: str
    chart: str
    version: str
    values: dict
    create_namespace: bool = False
    #: The local package the release installs (``charts.directory``); None: the pin's package in PACKAGES.
    package: Path | None = None
    #: The chart's objects as installed (templates rendered, namespace set), CRDs from crds/ apart.
    objects: list[dict] = field(default_factory=list)
    #: CRDs from the chart's crds/ folder (Helm installs them before the templates).
    crds: list[dict] = field(default_factory=list)


@dataclass
class Cluster:
    """Our objects plus every release's objects: what the cluster holds after ``pulumi up``."""

    stack: str
    ours: list[dict]
    releases: list[Release]

    @property
    def namespaces_created_by_helm(self) -> list[dict]:
        declared = {o["metadata"]["name"] for o in self.ours + self.chart_objects if o["kind"] == "Namespace"}
        out = {}
        for r in self.releases:
            if r.create_namespace and r.namespace not in declared:
                # What `helm install --create-namespace` creates (helm pkg/action/install.go).
                out[r.namespace] = {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": r.namespace, "labels": {"name": r.namespace}},
                }
        return list(out.values())

    @property
    def chart_objects(self) -> list[dict]:
        return [o for r in self.releases for o in r.crds + r.objects]

    @property
    def objects(self) -> list[dict]:
        return sorted(self.ours + self.chart_objects + self.namespaces_created_by_helm, key=sort_key)

    def release(self, chart: str) -> Release | None:
        return next((r for r in self.releases if r.chart == chart), None)


def sort_key(o: dict):
    kind = o["kind"]
    meta = o.get("metadata") or {}
    rank = _ORDER.index(kind) if kind in _ORDER else len(_ORDER)
    return (rank, kind, o.get("apiVersion", ""), meta.get("namespace") or "", meta.get("name") or "")


# --- rendering -------------------------------------------------------------------------------


def _helm():
    try:
        import helm_python
    except ImportError as err:  # an optional dependency of the render CLI, a test dependency
        raise ChartExpansionError(
            "expanding charts needs the PyPI package helm-python-sdk (pip install -e '.[test]')"
        ) from err
    return helm_python


@functools.cache
def _parse(text: str) -> str:
    """YAML stream -> JSON list of its documents, cached by text: parsing, not Helm, is the cost,
    and a template whose output did not change is not parsed twice."""
    return json.dumps([d for d in yaml.load_all(text, Loader=_Loader) if d])


@functools.cache
def _render_text(path: str, name: str, namespace: str, values_json: str, api_versions: tuple[str, ...]) -> tuple:
    """Helm's render of one chart with one set of values: ((template, manifest text) pairs, texts of
    the crds/ files Helm installs: those of the chart and of its enabled subcharts)."""
    helm = _helm()
    from helm_python import _native

    opts = {
        "name": name,
        "namespace": namespace,
        "is_install": True,
        "kube_version": KUBE_VERSION,
        "api_versions": list(api_versions),
    }
    # Chart.render() of helm-python-sdk 0.2.2 does not pass kube_version/api_versions, which the
    # library's C ABI takes (the same options as `helm template --kube-version --api-versions`);
    # tests/stack/test_charts.py proves they reach the templates.
    # A fresh chart per render: rendering drops the disabled subcharts from the loaded chart.
    with helm.Chart.load_archive(_package_bytes(path)) as chart:
        try:
            rendered = _native.call_string("helm_render", chart._raw(), values_json, json.dumps(opts))
        except helm.HelmError as err:
            raise ChartExpansionError(f"{Path(path).name}: {err}") from err
        crds = tuple(c["data"] for c in chart.crds)
    # NOTES.txt and helpers are not manifests.
    templates = tuple(
        (t, text)
        for t, text in sorted(json.loads(rendered).items())
        if t.endswith((".yaml", ".yml", ".json")) and "/templates/" in t
    )
    return templates, crds


@functools.cache
def _package_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def render_chart(
    path: Path, name: str, namespace: str, values: dict, api_versions: Iterable[str]
) -> tuple[list[dict], list[dict]]:
    """(the chart's objects in template order, the CRDs Helm installs from crds/ folders); every
    caller gets its own copy."""
    templates, crds = _render_text(
        str(path), name, namespace, json.dumps(values, sort_keys=True), tuple(sorted(set(api_versions)))
    )
    return (
        [d for _, text in templates for d in json.loads(_parse(text))],
        [d for text in crds for d in json.loads(_parse(text))],
    )


def _is_test_hook(o: dict) -> bool:
    hooks = ((o.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "")
    return any(h.strip().startswith("test") for h in hooks.split(","))


def crd_api_versions(crds: Iterable[dict]) -> set[str]:
    """What ``.Capabilities.APIVersions.Has`` answers true for once these CRDs are installed."""
    out = set()
    for crd in crds:
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            if v.get("served", True):
                out |= {f"{group}/{v['name']}", f"{group}/{v['name']}/{kind}"}
    return out


def _custom_api_versions(objects: Iterable[dict]) -> set[str]:
    out = set()
    for o in objects:
        group = o["apiVersion"].rpartition("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            out |= {o["apiVersion"], f"{o['apiVersion']}/{o['kind']}"}
    return out


def _namespaced(kind: str, crds: Iterable[dict]) -> bool:
    for crd in crds:
        if crd["spec"]["names"]["kind"] == kind:
            return crd["spec"].get("scope") == "Namespaced"
    return kind not in _CLUSTER_SCOPED


def is_local_package(chart: str) -> bool:
    """A release's ``chart`` that is a packaged chart on disk (``charts.directory``), not a name or an
    ``oci://`` reference."""
    return not chart.startswith("oci://") and chart.endswith(".tgz")


@functools.cache
def package_chart_name(path: str) -> str:
    """The chart's name, as its packaged ``Chart.yaml`` says (``<name>/Chart.yaml`` at the top)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                _top, _, rest = member.name.partition("/")
                if rest == "Chart.yaml" and member.isfile():
                    return str(yaml.safe_load(tar.extractfile(member).read())["name"])  # type: ignore[union-attr]
    except (OSError, tarfile.TarError, KeyError, TypeError, yaml.YAMLError) as err:
        raise ChartExpansionError(f"{path}: not a packaged chart ({err})") from err
    raise ChartExpansionError(f"{path}: not a packaged chart (no <name>/Chart.yaml)")


def _releases_of(rendered) -> list[Release]:
    out = []
    for r in rendered.helm_releases:
        unsupported = sorted(k for k in ("valueYamlFiles", "postrender") if r.get(k))
        if unsupported:
            raise ChartExpansionError(
                f"release {r.get('name')}: {', '.join(unsupported)} is not supported by the expansion"
            )
        chart, package = r["chart"], None
        if is_local_package(chart):  # charts.directory: the package itself, its chart named inside it
            package = Path(chart)
            if not package.is_file():
                raise ChartExpansionError(f"release {r['name']}: its chart {chart} does not exist")
            chart = package_chart_name(chart)
        out.append(
            Release(
                name=r["name"],
                namespace=r.get("namespace") or "default",
                chart=chart.rsplit("/", 1)[-1],  # an oci:// reference ends in the chart's name
                version=r["version"],
                values=r.get("values") or {},
                create_namespace=bool(r.get("createNamespace")),
                package=package,
            )
        )
    return out


def expand(rendered, packages: Path = PACKAGES) -> Cluster:
    """The whole cluster of a rendered stack (``stacks.tools.render.render(stack)``)."""
    releases = _releases_of(rendered)
    paths = {}
    for r in releases:
        path = r.package or package_path(r.chart, r.version, packages)
        if not path.exists():
            why = UNPACKAGED_PINS.get(r.chart, f"copy {path.name} into {packages}")
            raise ChartExpansionError(f"release {r.name}: no package of chart {r.chart} {r.version} ({why})")
        paths[r.name] = path
    ours = rendered.objects
    # Capabilities: the cluster has every CRD the stack installs and every custom API we create.
    # CRDs come from crds/ folders and from templates (KEDA's charts): render until nothing new appears.
    api = _custom_api_versions(ours)
    while True:
        for r in releases:
            objects, r.crds = render_chart(paths[r.name], r.name, r.namespace, r.values, api)
            r.objects = [o for o in objects if not _is_test_hook(o)]
        more = crd_api_versions(
            o for r in releases for o in r.crds + r.objects if o["kind"] == "CustomResourceDefinition"
        )
        if more <= api:
            break
        api |= more
    crds = [o for r in releases for o in r.crds + r.objects if o["kind"] == "CustomResourceDefinition"]
    for r in releases:
        for o in r.objects:
            meta = o.setdefault("metadata", {})
            if _namespaced(o["kind"], crds):
                meta.setdefault("namespace", r.namespace)
            # The ownership metadata Helm adds to every object it creates (pkg/action setMetadataVisitor).
            meta["labels"] = {**(meta.get("labels") or {}), "app.kubernetes.io/managed-by": "Helm"}
            meta["annotations"] = {
                **(meta.get("annotations") or {}),
                RELEASE_NAME: r.name,
                RELEASE_NAMESPACE: r.namespace,
            }
    return Cluster(rendered.stack, ours, releases)


def redacted(objects: list[dict]) -> list[dict]:
    """Secret values replaced (ours are redacted already; charts may carry generated ones)."""
    out = []
    for o in objects:
        if o["kind"] == "Secret":
            o = {**o, **{k: dict.fromkeys(o[k], REDACTED) for k in ("data", "stringData") if o.get(k)}}
        out.append(o)
    return out


def cluster_yaml(cluster: Cluster) -> str:
    """One YAML stream of the whole cluster, sorted, secrets redacted (kubectl diff, policy tools)."""
    return yaml.dump_all(
        redacted(cluster.objects),
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        sort_keys=True,
        default_flow_style=False,
    )


def owner(o: dict) -> str | None:
    """The Helm release an object comes from, or None for ours."""
    return ((o.get("metadata") or {}).get("annotations") or {}).get(RELEASE_NAME)


def values_of(cluster: Cluster, chart: str) -> Any:
    r = cluster.release(chart)
    return None if r is None else r.values


# --- filling a chart directory (``charts.directory``, README: Air-gapped clusters) ------------------


def pull_commands(destination: str) -> list[str]:
    """One ``helm pull`` per pinned chart, into ``destination``: what fills a ``charts.directory``."""
    return [pull_command(pin, destination) for pin in pinned_charts()]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "pull-commands":
        print(
            "usage: python -m stacks.tools.charts pull-commands DIRECTORY   (prints one `helm pull` per pinned chart)",
            file=sys.stderr,
        )
        return 2
    print("\n".join(pull_commands(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
