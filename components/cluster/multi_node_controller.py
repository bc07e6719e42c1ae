"""LeaderWorkerSetController: installs the LeaderWorkerSet controller (kubernetes-sigs/lws) that runs
MultiNodeVllmService's groups, from its pinned chart (``versions.LWS``, an OCI chart).

The chart brings the CRD (Helm installs ``crds/`` first) and the controller whose webhook defaults
and validates every LeaderWorkerSet and injects ``LWS_LEADER_ADDRESS``/``LWS_WORKER_INDEX`` into its
pods. A LeaderWorkerSet created before the webhook answers is refused, so serving components
``depends_on`` this component: Helm's ``--wait`` holds the release until the controller is ready.
"""

from typing import TypedDict, cast

import pulumi
from typing_extensions import NotRequired

from .. import versions
from .._core.helm import ChartSourceArgs, check_chart_source, pinned_release, release_namespace
from .._core.package import type_token
from .._core.validation import validate_args

#: The namespace the project's installation docs use.
DEFAULT_NAMESPACE = "lws-system"


class LeaderWorkerSetControllerArgs(TypedDict):
    """Arguments of a LeaderWorkerSet controller install."""

    namespace: NotRequired[pulumi.Input[str]]
    """Namespace of the controller (default ``lws-system``; created by the release)."""
    chart_source: NotRequired[ChartSourceArgs]
    """Where the lws chart comes from: a directory of packaged charts or a private mirror (default:
    the pin's upstream OCI registry)."""


class LeaderWorkerSetController(pulumi.ComponentResource):
    """The LeaderWorkerSet CRD and controller (Helm release of the pinned chart)."""

    namespace: pulumi.Output[str]
    """Namespace the controller runs in."""
    version: pulumi.Output[str]
    """Installed chart (and controller) version."""

    def __init__(self, name: str, args: LeaderWorkerSetControllerArgs, opts: pulumi.ResourceOptions | None = None):
        args = validate_args("LeaderWorkerSetController", name, args, LeaderWorkerSetControllerArgs)
        check_chart_source("LeaderWorkerSetController", name, args.get("chart_source"), [versions.LWS])
        super().__init__(type_token("LeaderWorkerSetController"), name, {}, opts)
        chart = versions.LWS
        namespace = args.get("namespace") or DEFAULT_NAMESPACE
        controller_namespace = release_namespace(f"{name}-ns", namespace, self)
        release = pinned_release(
            f"{name}-chart",
            chart,
            "lws",
            namespace,
            pulumi.ResourceOptions(parent=self, depends_on=[controller_namespace]),
            # The controller image of exactly the chart's release (the chart at its git tag says "main").
            values={"image": {"manager": {"tag": f"v{chart.version}", "pullPolicy": "IfNotPresent"}}},
            chart_source=args.get("chart_source"),
            atomic=True,
        )
        # Release.namespace is typed Optional (Helm's default applies when unset); this release sets it.
        self.namespace = cast(pulumi.Output[str], release.namespace)
        self.version = pulumi.Output.from_input(chart.version)
        self.register_outputs({"namespace": self.namespace, "version": self.version})
