"""Installing a pinned chart: the one way every component turns a ``versions.Chart`` into a
Helm release (chart, version and repository always from the pin, never spelled twice).

Where the chart comes from is the component's ``chart_source`` (``ChartSourceArgs``): the pin's
upstream repository by default; for a cluster that reaches no chart repository on the internet, a
local directory of packaged charts (``<chart>-<version>.tgz``, Helm's naming) or a private mirror
(an HTTP(S) chart repository or an ``oci://`` registry prefix) serving the same charts at the pinned
versions.
"""

import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ..versions import Chart
from .awaits import HELM_TIMEOUT_SECONDS
from .package import MANAGED_BY
from .validation import args_error

#: What a mirror may be: an HTTP(S) chart repository or an OCI registry prefix, with a host.
MIRROR = re.compile(r"^(https?|oci)://[^/\s]+(/\S*)?$")


class ChartSourceArgs(TypedDict):
    """Where the pinned charts are installed from (default: each pin's upstream repository). Set
    one of ``directory`` and ``mirror``; chart names and versions always come from the pins."""

    directory: NotRequired[str]
    """Absolute path of a local directory holding every chart the component installs as a package
    named ``<chart>-<version>.tgz`` (Helm's naming: a pin written ``v1.23.0`` is ``<chart>-1.23.0.tgz``),
    e.g. filled with ``helm pull``. Plain: the release's chart becomes the package's path, checked at preview."""
    mirror: NotRequired[str]
    """A private mirror serving the same charts at the pinned versions: an ``http(s)://`` chart
    repository URL or an ``oci://`` registry prefix (the chart is ``<prefix>/<chart>``). Plain: an OCI
    mirror changes the release's shape (chart reference, no repository options)."""


def package_file_names(chart: Chart) -> list[str]:
    """File names a packaged pin may have: ``<chart>-<version>.tgz`` with the version as Helm writes
    it (``v1.23.0`` -> ``1.23.0``; this one first), then as the pin spells it, where that differs."""
    names = [f"{chart.chart}-{chart.version.removeprefix('v')}.tgz", f"{chart.chart}-{chart.version}.tgz"]
    return list(dict.fromkeys(names))


def find_package(directory: str, chart: Chart) -> Path | None:
    """The package of ``chart`` in ``directory``, or None."""
    for name in package_file_names(chart):
        path = Path(directory) / name
        if path.is_file():
            return path
    return None


def describe_pin(chart: Chart) -> str:
    """``keda 2.20.2 (https://kedacore.github.io/charts)``: a pin as a person finds it upstream."""
    return f"{chart.chart} {chart.version} ({chart.repo})"


def pull_command(chart: Chart, destination: str) -> str:
    """The ``helm pull`` that fetches the pinned package of ``chart`` into ``destination`` (upstream)."""
    destination = shlex.quote(destination)
    if chart.repo.startswith("oci://"):
        return f"helm pull {chart.repo}/{chart.chart} --version {chart.version} --destination {destination}"
    return f"helm pull {chart.chart} --repo {chart.repo} --version {chart.version} --destination {destination}"


def chart_source_problem(source: ChartSourceArgs | None, charts: Iterable[Chart]) -> tuple[str, str] | None:
    """(key of ``source``, what is wrong) when the charts cannot be installed from ``source``; None
    when they can. ``charts`` are the pins to be installed from it."""
    if not source:
        return None
    directory, mirror = source.get("directory"), source.get("mirror")
    if directory is not None and mirror is not None:
        return "mirror", "set together with directory; charts come from one place: keep directory or mirror, not both"
    if mirror is not None:
        if not MIRROR.match(mirror):
            return "mirror", (
                f"{mirror!r} is neither an HTTP(S) chart repository URL (https://charts.example.com) "
                "nor an OCI registry prefix (oci://registry.example.com/charts)"
            )
        return None
    if directory is None:
        return None
    if not Path(directory).is_absolute():
        return "directory", f"{directory!r} is not an absolute path (Helm would look for it wherever the engine runs)"
    if not Path(directory).is_dir():
        return "directory", f"{directory} does not exist or is not a directory"
    missing = [c for c in dict.fromkeys(charts) if find_package(directory, c) is None]
    if missing:
        files = ", ".join(package_file_names(c)[0] for c in missing)
        pins = "; ".join(describe_pin(c) for c in missing)
        pulls = "; ".join(f"`{pull_command(c, directory)}`" for c in missing)
        return "directory", f"{directory} has no package of {files} (pinned: {pins}); fetch it with {pulls}"
    return None


def check_chart_source(component: str, name: str, source: ChartSourceArgs | None, charts: Iterable[Chart]) -> None:
    """Refuse (``ComponentArgsError`` at ``chart_source.<key>``) a source the charts cannot come from;
    components call it before registering themselves."""
    problem = chart_source_problem(source, charts)
    if problem:
        raise args_error(component, name, f"chart_source.{problem[0]}", problem[1])


def chart_reference(chart: Chart, source: ChartSourceArgs | None = None) -> dict:
    """The Release arguments that say which chart to install: ``chart``, ``version`` and, for a chart
    repository, ``repository_opts``."""
    source = source or {}
    if source.get("directory") is not None:
        # A local package: Helm installs the file; no repository is asked.
        found = find_package(source["directory"], chart)
        path = found if found is not None else Path(source["directory"]) / package_file_names(chart)[0]
        return {"chart": str(path), "version": chart.version}
    repo = source["mirror"].rstrip("/") if source.get("mirror") is not None else chart.repo
    if repo.startswith("oci://"):
        # An OCI registry is no chart repository: Helm takes the chart's full oci:// reference instead.
        return {"chart": f"{repo}/{chart.chart}", "version": chart.version}
    return {
        "chart": chart.chart,
        "version": chart.version,
        "repository_opts": {"repo": source.get("mirror") or chart.repo},
    }


def release_namespace(
    resource_name: str, namespace: pulumi.Input[str], parent: pulumi.Resource, labels: dict | None = None
) -> k8s.core.v1.Namespace:
    """The namespace a release installs into, as a child of ``parent``: created and deleted with the stack.
    Not Helm's ``createNamespace``: Helm creates a namespace but never deletes it, so ``pulumi destroy``
    would leave it behind (seen on a real cluster; the SDK's mocks cannot show it)."""
    return k8s.core.v1.Namespace(
        resource_name,
        metadata={"name": namespace, "labels": {**MANAGED_BY, **(labels or {})}},
        opts=pulumi.ResourceOptions(parent=parent),
    )


def pinned_release(
    resource_name: str,
    chart: Chart,
    release_name: str,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    values: dict | None = None,
    chart_source: ChartSourceArgs | None = None,
    **release_options,
) -> k8s.helm.v3.Release:
    """A ``helm.v3.Release`` of ``chart`` at its pinned version, from ``chart_source`` (default: the
    pin's repository); ``release_options`` are further Release arguments (``atomic``, ``timeout``);
    the namespace comes from ``release_namespace``. Helm waits for the chart's workloads (``--wait``): by default for as
    long as a new node and the images may take, not Helm's 5 minutes."""
    release_options.setdefault("timeout", HELM_TIMEOUT_SECONDS)
    # The overloads cannot match keyword arguments splatted from dicts (chart_reference, release_options).
    return k8s.helm.v3.Release(  # type: ignore[call-overload]
        resource_name,
        name=release_name,
        namespace=namespace,
        **chart_reference(chart, chart_source),
        **({"values": values} if values is not None else {}),
        **release_options,
        opts=opts,
    )
