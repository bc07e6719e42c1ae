"""KnativeServing: installs Knative Serving (with Kourier) through the Knative Operator.

The operator comes from its official Helm chart (pinned in ``versions.KNATIVE_OPERATOR``); a
``KnativeServing`` resource (operator.knative.dev/v1beta1) then has it install Serving at the
pinned version, with the settings a vLLM pod needs:
- ``config-features``: the ``kubernetes.podspec-*`` flags for the fields the shared vLLM pod uses
  (init container, PVC, security context, tolerations, node selector, runtime/priority class);
- ``config-defaults``: a maximum request timeout long enough for a cold start plus a long generation;
- ``config-autoscaler``: scale to zero on, and ``initial-scale: 0`` allowed.
"""

from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .. import versions
from .._core.awaits import SCHEDULING_SECONDS, timeout_annotation
from .._core.helm import ChartSourceArgs, check_chart_source, pinned_release, release_namespace
from .._core.package import MANAGED_BY, type_token
from .._core.validation import validate_args
from ..serving.knative_vllm_service import ALL_POD_FEATURES

KNATIVE_OPERATOR_API = "operator.knative.dev/v1beta1"
#: The operator installs Serving into the namespace of the KnativeServing resource; Knative's
#: documentation and tooling expect this one.
SERVING_NAMESPACE = "knative-serving"
#: Where the operator runs the data plane a vLLM pod is called from: activator, autoscaler and the
#: Kourier gateway all run in the KnativeServing's namespace (not ``kourier-system``, where
#: Knative's release YAMLs put Kourier).
DATA_PLANE_NAMESPACES = [SERVING_NAMESPACE]
DEFAULT_OPERATOR_NAMESPACE = "knative-operator"
KOURIER_INGRESS_CLASS = "kourier.ingress.networking.knative.dev"
#: Kourier's Service for cluster-local traffic (its internal listener): it picks a Knative Service by the
#: request's Host (``<ksvc>.<namespace>.svc.cluster.local``), through the activator while at zero. A
#: Gateway's HTTPRoute routes a Knative model here (Gateway API implementations SHOULD NOT follow the
#: ExternalName Service Knative makes per ksvc, so that one is no backend for a Gateway).
LOCAL_GATEWAY_SERVICE = "kourier-internal"
LOCAL_GATEWAY_PORT = 80
#: Where Knative's release YAMLs (not the operator) put Kourier: an existing Knative's usual place.
RELEASE_KOURIER_NAMESPACE = "kourier-system"
#: Longest request timeout a revision may ask for (Knative's own default is 600 s).
DEFAULT_MAX_REVISION_TIMEOUT_SECONDS = 3600


class KnativeServingArgs(TypedDict):
    """Arguments of a KnativeServing install."""

    features: NotRequired[list[str]]
    """``config-features`` flags to enable (default: every flag a vLLM pod may need)."""
    max_revision_timeout_seconds: NotRequired[int]
    """Longest request timeout a revision may ask for (default 3600)."""
    allow_zero_initial_scale: NotRequired[bool]
    """Let revisions start with ``initial-scale: 0`` (default true)."""
    operator_namespace: NotRequired[pulumi.Input[str]]
    """Namespace of the Knative Operator (default ``knative-operator``)."""
    chart_source: NotRequired[ChartSourceArgs]
    """Where the Knative Operator chart comes from: a directory of packaged charts or a private mirror
    (default: the pin's upstream repository)."""


class KnativeServing(pulumi.ComponentResource):
    """The Knative Operator (Helm) and a KnativeServing with Kourier, configured for vLLM pods."""

    namespace: pulumi.Output[str]
    """Namespace Knative Serving runs in (activator, autoscaler, Kourier gateway)."""
    data_plane_namespaces: pulumi.Output[list[str]]
    """Namespaces a vLLM pod's NetworkPolicy must admit callers from (activator, Kourier gateway)."""
    version: pulumi.Output[str]
    """Installed Knative Serving version."""
    features: pulumi.Output[list[str]]
    """The ``config-features`` flags enabled."""
    max_revision_timeout_seconds: pulumi.Output[int]
    """Longest request timeout a revision may ask for."""
    local_gateway_name: pulumi.Output[str]
    """Kourier's cluster-local Service, where a Gateway routes a Knative model (``ModelRoute``'s ``knative``)."""
    local_gateway_namespace: pulumi.Output[str]
    """Namespace of that Service (Knative's)."""
    local_gateway_port: pulumi.Output[int]
    """Its HTTP port."""

    def __init__(self, name: str, args: KnativeServingArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("KnativeServing", name, args, KnativeServingArgs)
        check_chart_source("KnativeServing", name, args.get("chart_source"), [versions.KNATIVE_OPERATOR])
        super().__init__(type_token("KnativeServing"), name, {}, opts)
        features = sorted(set(args.get("features") or ALL_POD_FEATURES))
        max_timeout = args.get("max_revision_timeout_seconds") or DEFAULT_MAX_REVISION_TIMEOUT_SECONDS
        allow_zero = args.get("allow_zero_initial_scale", True)
        chart = versions.KNATIVE_OPERATOR

        operator_ns = args.get("operator_namespace") or DEFAULT_OPERATOR_NAMESPACE
        operator_namespace = release_namespace(f"{name}-operator-ns", operator_ns, self)
        operator = pinned_release(
            f"{name}-operator",
            chart,
            "knative-operator",
            operator_ns,
            pulumi.ResourceOptions(parent=self, depends_on=[operator_namespace]),
            chart_source=args.get("chart_source"),
            atomic=True,
        )
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": SERVING_NAMESPACE, "labels": dict(MANAGED_BY)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        serving = k8s.apiextensions.CustomResource(
            f"{name}-serving",
            api_version=KNATIVE_OPERATOR_API,
            kind="KnativeServing",
            metadata={
                "name": "knative-serving",
                "namespace": SERVING_NAMESPACE,
                "labels": dict(MANAGED_BY),
                # Services are created only once Serving (its CRDs and webhook) is Ready: its
                # controllers may need a node and their images.
                "annotations": {"pulumi.com/waitFor": "condition=Ready", **timeout_annotation(SCHEDULING_SECONDS)},
            },
            spec={
                "version": versions.KNATIVE_SERVING_VERSION,
                "ingress": {"kourier": {"enabled": True}},
                "config": {
                    "network": {"ingress-class": KOURIER_INGRESS_CLASS},
                    "features": dict.fromkeys(features, "enabled"),
                    "defaults": {"max-revision-timeout-seconds": str(max_timeout)},
                    "autoscaler": {
                        "enable-scale-to-zero": "true",
                        "allow-zero-initial-scale": "true" if allow_zero else "false",
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[operator, namespace]),
        )

        self.namespace = serving.metadata["namespace"]  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime
        self.data_plane_namespaces = pulumi.Output.from_input(list(DATA_PLANE_NAMESPACES))
        self.version = pulumi.Output.from_input(versions.KNATIVE_SERVING_VERSION)
        self.features = pulumi.Output.from_input(features)
        self.max_revision_timeout_seconds = pulumi.Output.from_input(max_timeout)
        self.local_gateway_name = pulumi.Output.from_input(LOCAL_GATEWAY_SERVICE)
        self.local_gateway_namespace = self.namespace
        self.local_gateway_port = pulumi.Output.from_input(LOCAL_GATEWAY_PORT)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "data_plane_namespaces": self.data_plane_namespaces,
                "version": self.version,
                "features": self.features,
                "max_revision_timeout_seconds": self.max_revision_timeout_seconds,
                "local_gateway_name": self.local_gateway_name,
                "local_gateway_namespace": self.local_gateway_namespace,
                "local_gateway_port": self.local_gateway_port,
            }
        )
