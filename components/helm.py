"""Installing a pinned chart: the one way every component turns a ``versions.Chart`` into a
Helm release (chart, version and repository always from the pin, never spelled twice)."""

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from .awaits import HELM_TIMEOUT_SECONDS
from .versions import Chart


def pinned_release(
    resource_name: str,
    chart: Chart,
    release_name: str,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    values: Optional[dict] = None,
    **release_options,
) -> k8s.helm.v3.Release:
    """A ``helm.v3.Release`` of ``chart`` at its pinned version; ``release_options`` are further
    Release arguments (``create_namespace``, ``atomic``, ``timeout``). Helm waits for the chart's
    workloads (``--wait``): by default for as long as a new node and the images may take, not
    Helm's 5 minutes."""
    release_options.setdefault("timeout", HELM_TIMEOUT_SECONDS)
    return k8s.helm.v3.Release(
        resource_name,
        name=release_name,
        namespace=namespace,
        # An OCI registry is no chart repository: Helm takes the chart's full oci:// reference instead.
        chart=f"{chart.repo}/{chart.chart}" if chart.repo.startswith("oci://") else chart.chart,
        version=chart.version,
        **({} if chart.repo.startswith("oci://") else {"repository_opts": {"repo": chart.repo}}),
        **({"values": values} if values is not None else {}),
        **release_options,
        opts=opts,
    )
