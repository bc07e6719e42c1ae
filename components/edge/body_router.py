"""BodyRouter: the Gateway API Inference Extension's body-based router (BBR) beside a Gateway.

Clients name the model in the JSON body (``"model": ...``); a Gateway routes on headers and paths.
The body-based router is an Envoy external processor (ext_proc, gRPC) the Gateway calls first for
every request: it reads the body and sets headers from it, and the Gateway then matches the routes
on those headers. Each model's HTTPRoute (``ModelRoute``) matches ``X-Gateway-Model-Name``; the
router also copies the model into ``x-gateway-inference-objective``, the header the Endpoint Picker
reads to find the request's ``InferenceObjective`` (its priority), so a served name's priority
applies without the client sending anything but the body. Both headers are set by a filter that runs
before the picker's: an HTTPRoute's own header filter is applied by Envoy's router, after every
ext_proc, too late for the picker.

The objects mirror the upstream ``body-based-routing`` chart at the pinned release (v1.5.0,
config/charts/body-based-routing): Deployment, Service (ext-proc 9004), ServiceAccount, and the
provider's hook: Istio an ``EnvoyFilter`` inserting the ext_proc filter first on the Gateway's
listeners and a ``DestinationRule`` (the router serves TLS with a self-signed certificate); GKE a
``GCPRoutingExtension`` and a ``HealthCheckPolicy``. Differences from the chart, all on the safe
side: two replicas and a PodDisruptionBudget (the Gateway fails requests when the router does not
answer: ``failure_mode_allow: false``), a readiness probe, restricted security context, a
NetworkPolicy admitting the Gateway's namespace on ext-proc only, pprof off, and no RBAC: the
chart's ConfigMap reader serves its ``base-model-to-header`` plugin (adapter-to-base-model maps in
labelled ConfigMaps), which the stack does not need (every adapter's served name is matched on its
own), so the router runs only ``body-field-to-header`` and reads nothing from the API.

Everything lives in the Gateway's namespace, as the chart installs it: Istio applies an EnvoyFilter
only to a Gateway of its own namespace (``targetRefs``). Install one router per Gateway.
"""

import json
from enum import Enum
from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .. import versions
from .._core.awaits import deployment_await_seconds, pod_ready_seconds, skip_await_annotation, timeout_annotation
from .._core.package import labels, selector_labels, type_token
from .._core.validation import args_error, validate_args
from ..serving.vllm_pod import CONTAINER_SECURITY_CONTEXT
from ..serving.vllm_service import namespace_selector
from .inference_objective import OBJECTIVE_HEADER  # the header the Endpoint Picker finds a priority by
from .model_route import MODEL_NAME_HEADER  # the header each model's HTTPRoute matches

GRPC_PORT = 9004
HEALTH_PORT = 9005
BBR_APP = "body-based-router"
#: The body field both headers are copied from (the OpenAI API's model name).
MODEL_FIELD = "model"
#: Ready in seconds once running (no model, no API reads); generous for a slow node.
ROUTER_START_SECONDS = 60
DEFAULT_REPLICAS = 2
#: Envoy's name for the HTTP connection manager, the network filter whose HTTP filters the patch extends.
HCM_FILTER = "envoy.filters.network.http_connection_manager"
EXT_PROC_FILTER = "envoy.filters.http.ext_proc.bbr"
EXT_PROC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
ISTIO_NETWORKING = "networking.istio.io"
GKE_NETWORKING = "networking.gke.io/v1"


class BodyRouterProvider(str, Enum):
    """Which Gateway implementation calls the router (the hook differs)."""

    ISTIO = "istio"
    """Istio's Gateway: an EnvoyFilter inserts the ext_proc filter first on the Gateway's listeners."""
    GKE = "gke"
    """GKE's Gateway controller: a GCPRoutingExtension with a gRPC HealthCheckPolicy."""


class BodyRouterArgs(TypedDict):
    """Arguments of a BodyRouter."""

    namespace: pulumi.Input[str]
    """Namespace of the Gateway (the router and its hook live beside it; its proxies call the router)."""
    gateway_name: pulumi.Input[str]
    """Name of the Gateway whose listeners call the router."""
    provider: BodyRouterProvider
    """The Gateway implementation (decides which hook object exists). Plain: known at preview."""
    replicas: NotRequired[int]
    """Router replicas (default 2: the Gateway fails requests when no router answers)."""
    image: NotRequired[pulumi.Input[str]]
    """Router image (default: the pinned one, the Endpoint Picker's release)."""


def plugin_args() -> list[str]:
    """The router's ``--plugin`` flags: the body's ``model`` into the route's header and into the
    objective header (the chart's ``<type>:<name>:<json>`` form)."""
    out = []
    for name, header in (("model-to-route-header", MODEL_NAME_HEADER), ("model-to-objective-header", OBJECTIVE_HEADER)):
        out += [
            "--plugin",
            f"body-field-to-header:{name}:"
            + json.dumps({"fieldName": MODEL_FIELD, "headerName": header}, separators=(",", ":")),
        ]
    return out


def router_args() -> list[str]:
    return [
        "--streaming",  # Envoy's full-duplex streamed bodies (the chart's default and the EnvoyFilter's mode)
        "--grpc-port",
        str(GRPC_PORT),
        "--grpc-health-port",
        str(HEALTH_PORT),
        *plugin_args(),
        "--tracing=false",
        "--enable-pprof=false",
    ]


def istio_envoy_filter_spec(name: str, gateway_name, service_host) -> dict:
    """The chart's Istio EnvoyFilter: the ext_proc filter first in the Gateway's HTTP filters, full
    duplex streamed bodies, requests fail when the router is down (``failure_mode_allow: false``)."""
    return {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway_name}],
        "configPatches": [
            {
                "applyTo": "HTTP_FILTER",
                "match": {"context": "GATEWAY", "listener": {"filterChain": {"filter": {"name": HCM_FILTER}}}},
                "patch": {
                    "operation": "INSERT_FIRST",
                    "value": {
                        "name": EXT_PROC_FILTER,
                        "typed_config": {
                            "@type": EXT_PROC_TYPE,
                            "failure_mode_allow": False,
                            "allow_mode_override": True,
                            "processing_mode": {
                                "request_header_mode": "SEND",
                                "response_header_mode": "SEND",
                                "request_body_mode": "FULL_DUPLEX_STREAMED",
                                "response_body_mode": "FULL_DUPLEX_STREAMED",
                                "request_trailer_mode": "SEND",
                                "response_trailer_mode": "SEND",
                            },
                            "grpc_service": {
                                "envoy_grpc": {
                                    "cluster_name": pulumi.Output.concat(
                                        "outbound|", str(GRPC_PORT), "||", service_host
                                    )
                                }
                            },
                        },
                    },
                },
            }
        ],
    }


def router_container(args: BodyRouterArgs) -> dict:
    """The router's container: ext-proc and gRPC health ports, probed over gRPC, read-only root."""
    return {
        "name": "bbr",
        "image": args.get("image") or versions.BBR_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": router_args(),
        # The chart's single-namespace mode: the router's API cache stays in its namespace.
        "env": [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT},
            {"name": "grpc-health", "containerPort": HEALTH_PORT},
        ],
        "readinessProbe": {"grpc": {"port": HEALTH_PORT}, "periodSeconds": 5},
        "livenessProbe": {"grpc": {"port": HEALTH_PORT}, "initialDelaySeconds": 5, "periodSeconds": 10},
        # It holds a request body at a time per stream (16m bodies at the edge's default).
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {**CONTAINER_SECURITY_CONTEXT, "readOnlyRootFilesystem": True},
    }


def gke_routing_extension_spec(gateway_name: pulumi.Input[str], service_name: pulumi.Input[str]) -> dict:
    """GKE's hook: a GCPRoutingExtension sending the Gateway's requests, bodies streamed, to the router's Service."""
    return {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway_name}],
        "extensionChains": [
            {
                "name": "chain1",
                "extensions": [
                    {
                        "name": "ext1",
                        "authority": "myext.com",
                        "timeout": "1s",
                        "supportedEvents": ["RequestHeaders", "RequestBody", "RequestTrailers"],
                        "requestBodySendMode": "FullDuplexStreamed",
                        "backendRef": {"group": "", "kind": "Service", "name": service_name, "port": GRPC_PORT},
                    }
                ],
            }
        ],
    }


class BodyRouter(pulumi.ComponentResource):
    """The Inference Extension's body-based router beside a Gateway: the body's ``model`` becomes the
    ``X-Gateway-Model-Name`` header the models' HTTPRoutes match (one URL for every model) and the
    ``x-gateway-inference-objective`` header that picks a served name's priority."""

    service_name: pulumi.Output[str]
    """Name of the router's Service (ext-proc on 9004)."""
    service_host: pulumi.Output[str]
    """The Service's cluster host name (what the Gateway's hook calls)."""

    def __init__(self, name: str, args: BodyRouterArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("BodyRouter", name, args, BodyRouterArgs)
        replicas = args.get("replicas", DEFAULT_REPLICAS)
        if replicas < 1:
            raise args_error(
                "BodyRouter", name, "replicas", f"{replicas}: the Gateway fails every request when no router answers"
            )
        provider = BodyRouterProvider(args["provider"])
        super().__init__(type_token("BodyRouter"), name, {}, opts)
        self._sel = selector_labels(name, app=BBR_APP)
        self._labels = labels(name, "body-based-router", app=BBR_APP)

        deployment = self._router_deployment(name, args, replicas)
        service = self._router_service(name, args, deployment)
        self._disruption_budget(name, args)
        self._network_policy(name, args)
        host = pulumi.Output.concat(service.metadata["name"], ".", args["namespace"], ".svc.cluster.local")
        if provider == BodyRouterProvider.ISTIO:
            self._istio_hook(name, args, host)
        else:
            self._gke_hook(name, args, service)
        self.service_name = service.metadata["name"]
        self.service_host = host
        self.register_outputs({"service_name": self.service_name, "service_host": self.service_host})

    def _metadata(self, name: str, args: BodyRouterArgs) -> dict:
        """Name, namespace and labels every router object has (a dict of its own for each)."""
        return {"name": name, "namespace": args["namespace"], "labels": self._labels}

    def _router_deployment(self, name: str, args: BodyRouterArgs, replicas: int) -> k8s.apps.v1.Deployment:
        """The router's ServiceAccount and Deployment: rolled one pod at a time, spread over nodes, awaited."""
        child = pulumi.ResourceOptions(parent=self)
        # Its own account with no Role: the router reads nothing from the API (it still needs the
        # token: the controller runtime it is built on loads the in-cluster config at start).
        account = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=self._metadata(name, args), opts=child)
        return k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={
                **self._metadata(name, args),
                "annotations": timeout_annotation(deployment_await_seconds(ROUTER_START_SECONDS, replicas, 1, 0)),
            },
            spec={
                "replicas": replicas,
                "progressDeadlineSeconds": pod_ready_seconds(ROUTER_START_SECONDS),
                # Stateless and on every request's path: a new pod is ready before an old one goes.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "selector": {"matchLabels": self._sel},
                "template": {
                    "metadata": {"labels": self._labels},
                    "spec": {
                        "serviceAccountName": account.metadata["name"],
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        # One replica per node where possible: a node drain leaves the other serving.
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "kubernetes.io/hostname",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": self._sel},
                            }
                        ],
                        "containers": [router_container(args)],
                    },
                },
            },
            opts=child,
        )

    def _router_service(
        self, name: str, args: BodyRouterArgs, deployment: k8s.apps.v1.Deployment
    ) -> k8s.core.v1.Service:
        """The router's Service (ext-proc), after its Deployment."""
        return k8s.core.v1.Service(
            f"{name}-svc",
            # Not awaited: it comes after the Deployment, whose await already proves the router ready.
            metadata={**self._metadata(name, args), "annotations": skip_await_annotation()},
            spec={
                "type": "ClusterIP",
                "selector": self._sel,
                "ports": [
                    {
                        "name": "grpc-ext-proc",
                        "port": GRPC_PORT,
                        "targetPort": GRPC_PORT,
                        "protocol": "TCP",
                        "appProtocol": "http2",
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )

    def _disruption_budget(self, name: str, args: BodyRouterArgs) -> None:
        """At most one router pod down at a time."""
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=self._metadata(name, args),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": self._sel}},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _network_policy(self, name: str, args: BodyRouterArgs) -> None:
        """The Gateway's proxies (this namespace) on ext-proc; nothing reaches its metrics or pprof."""
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=self._metadata(name, args),
            spec={
                "podSelector": {"matchLabels": self._sel},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [namespace_selector([args["namespace"]])],
                        "ports": [{"port": GRPC_PORT, "protocol": "TCP"}],
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _istio_hook(self, name: str, args: BodyRouterArgs, host: pulumi.Output[str]) -> None:
        """Istio's hook: an EnvoyFilter inserting the ext_proc filter first, and a DestinationRule for the
        router's TLS."""
        child = pulumi.ResourceOptions(parent=self)
        k8s.apiextensions.CustomResource(
            f"{name}-envoyfilter",
            api_version=f"{ISTIO_NETWORKING}/v1alpha3",
            kind="EnvoyFilter",
            metadata=self._metadata(name, args),
            spec=istio_envoy_filter_spec(name, args["gateway_name"], host),
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-destinationrule",
            api_version=f"{ISTIO_NETWORKING}/v1",
            kind="DestinationRule",
            metadata=self._metadata(name, args),
            # The router serves TLS with a certificate it makes at start (no CA to verify it against).
            spec={"host": host, "trafficPolicy": {"tls": {"mode": "SIMPLE", "insecureSkipVerify": True}}},
            opts=child,
        )

    def _gke_hook(self, name: str, args: BodyRouterArgs, service: k8s.core.v1.Service) -> None:
        """GKE's hook: a GCPRoutingExtension to the router's Service and a gRPC HealthCheckPolicy on it."""
        child = pulumi.ResourceOptions(parent=self)
        k8s.apiextensions.CustomResource(
            f"{name}-routing-extension",
            api_version=GKE_NETWORKING,
            kind="GCPRoutingExtension",
            metadata=self._metadata(name, args),
            spec=gke_routing_extension_spec(args["gateway_name"], service.metadata["name"]),
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-healthcheck",
            api_version=GKE_NETWORKING,
            kind="HealthCheckPolicy",
            metadata=self._metadata(name, args),
            spec={
                "default": {
                    "logConfig": {"enabled": True},
                    "config": {
                        "type": "GRPC",
                        "grpcHealthCheck": {"portSpecification": "USE_FIXED_PORT", "port": HEALTH_PORT},
                    },
                },
                "targetRef": {
                    "group": "",
                    "kind": "Service",
                    "name": service.metadata["name"],
                    "namespace": args["namespace"],
                },
            },
            opts=child,
        )
