"""ModelRoute: a model's OpenAI API on the serving edge, by Gateway API HTTPRoute or Ingress.

One host serves every model. A request names its model in the JSON body (``"model": ...``); the
Gateway API Inference Extension's body-based router copies it into the ``X-Gateway-Model-Name``
header before routing, so each model's HTTPRoute matches that header (one match per served name:
the base model and each LoRA adapter). Where no body-based router runs, the fallback is a path per
model: ``/models/<name>/v1/...`` is rewritten to ``/v1/...``. Only ``/v1`` is routed, so the
server's ``/metrics`` (which vLLM's API key does not protect) never leaves the cluster.

LLM responses stream for minutes: the route's timeouts are the model's request budget (never a
proxy's 60 s default), and the Ingress option turns off response buffering.

A Knative model (``knative``) is reached through Knative's own ingress, never its pods: the HTTPRoute's
backend is the ingress's cluster-local Service (Kourier's ``kourier-internal``, in another namespace, so
the route brings a ReferenceGrant there) and a URLRewrite sets the Host to the Knative Service's
cluster-local name, which is how Knative's ingress picks the Service (through the activator while it is
at zero; its traffic split, a canary included, applies). The Ingress option reaches the Service Knative
creates per Knative Service (an ExternalName to its ingress, which ingress-nginx follows) with
``upstream-vhost``. The activator holds a request while a pod starts, so the timeouts add the cold start.
"""

import re
from enum import Enum
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .._core.package import labels, type_token
from .._core.validation import args_error, validate_args
from ..cluster.knative_serving import (
    LOCAL_GATEWAY_PORT as KNATIVE_HTTP_PORT,
)
from ..cluster.knative_serving import (
    LOCAL_GATEWAY_SERVICE as DEFAULT_LOCAL_GATEWAY,
)
from ..serving.vllm_pod import HTTP_PORT

#: Header the Inference Extension's body-based router sets from the request body's ``model``.
MODEL_NAME_HEADER = "X-Gateway-Model-Name"
#: The OpenAI-compatible API's prefix: the only path the edge routes to a server.
API_PREFIX = "/v1"
#: Where the path-per-model fallback puts a model (``/models/<name>/v1/...``).
MODEL_PATH_ROOT = "/models"
INFERENCE_GROUP = "inference.networking.k8s.io"
#: A proxy's usual default; an LLM stream outlives it, so no route may time out sooner (the policy
#: pack's llm-route-timeouts minimum, ``llmstack_k8s.rules.MIN_ROUTE_TIMEOUT_SECONDS``).
MIN_REQUEST_TIMEOUT_SECONDS = 60
DEFAULT_REQUEST_TIMEOUT_SECONDS = 600
DEFAULT_INGRESS_CLASS = "nginx"
#: Request bodies carry whole conversations (and images for multimodal models).
DEFAULT_MAX_BODY_SIZE = "16m"
_BODY_SIZE = re.compile(r"^[0-9]+[kmg]?$")
#: ingress-nginx's cert-manager hook and its proxy settings (all strings, as annotations are).
CLUSTER_ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
NGINX = "nginx.ingress.kubernetes.io/"


class RouteKind(str, Enum):
    """How the model is exposed."""

    GATEWAY_API = "gatewayApi"
    """An HTTPRoute attached to a Gateway (Gateway API)."""
    INGRESS = "ingress"
    """An Ingress for ingress-nginx (clusters without Gateway API); path per model only."""


class ParentRefArgs(TypedDict):
    """The Gateway the route attaches to (it must allow routes from the model's namespace)."""

    name: pulumi.Input[str]
    """Name of the Gateway."""
    namespace: pulumi.Input[str]
    """Namespace of the Gateway (and of its proxy pods, which NetworkPolicies must admit)."""
    section_name: NotRequired[pulumi.Input[str]]
    """Listener of the Gateway to attach to (default: every listener that allows the route)."""


class IngressArgs(TypedDict):
    """The Ingress option (ingress-nginx)."""

    class_name: NotRequired[pulumi.Input[str]]
    """IngressClass (default ``nginx``)."""
    tls_secret_name: NotRequired[pulumi.Input[str]]
    """Secret with the host's certificate (``kubernetes.io/tls``); with ``cluster_issuer`` cert-manager fills it."""
    cluster_issuer: NotRequired[pulumi.Input[str]]
    """cert-manager ClusterIssuer that issues the certificate into ``tls_secret_name``."""
    max_body_size: NotRequired[str]
    """Largest request body, nginx size syntax (default ``16m``)."""


class KnativeBackendArgs(TypedDict):
    """A Knative model's backend: Knative's ingress, which picks the Knative Service by Host."""

    host: pulumi.Input[str]
    """The Knative Service's cluster-local host (``<name>.<namespace>.svc.cluster.local``)."""
    local_gateway_name: NotRequired[pulumi.Input[str]]
    """Knative ingress's cluster-local Service (default ``kourier-internal``; net-istio: ``knative-local-gateway``)."""
    local_gateway_namespace: pulumi.Input[str]
    """Namespace of that Service (the stack's KnativeServing: ``knative-serving``; Knative's release
    YAMLs: ``kourier-system``)."""
    local_gateway_port: NotRequired[pulumi.Input[int]]
    """Its HTTP port (default 80)."""
    cold_start_seconds: int
    """The longest a request may wait for a pod while the Knative Service is at zero (its whole cold start:
    node, image, load);
    added to the route's timeouts. Plain: checked at preview."""


class CanaryBackendArgs(TypedDict):
    """The model's canary variant: a second server under the same served names taking a share of the requests."""

    service_name: pulumi.Input[str]
    """The canary's ClusterIP Service (its own ``VllmService``)."""
    weight: int
    """Percent of the requests the canary gets (1-99); the stable backend gets ``100 - weight``.
    Plain: checked at preview."""
    inference_pool_name: NotRequired[pulumi.Input[str]]
    """The canary's own InferencePool, with ``inference_pool_name`` (both variants KV-cache-aware, each pool
    choosing among its own replicas)."""


class ModelRouteArgs(TypedDict):
    """Arguments of a ModelRoute."""

    namespace: pulumi.Input[str]
    """Namespace of the model's Service (the route lives beside it)."""
    service_name: pulumi.Input[str]
    """The model's ClusterIP Service (``VllmService.service_name``)."""
    served_model_names: list[pulumi.Input[str]]
    """Every ``model`` value this server answers (base model and LoRA adapters)."""
    kind: NotRequired[RouteKind]
    """Gateway API HTTPRoute (default) or Ingress. Plain: it decides which object exists."""
    gateway: NotRequired[ParentRefArgs]
    """The Gateway to attach to (required with ``gatewayApi``)."""
    hostnames: NotRequired[list[pulumi.Input[str]]]
    """Hosts the route answers (default: every host of the Gateway; required for an Ingress with TLS)."""
    request_timeout_seconds: NotRequired[int]
    """The model's request budget: the longest a request (a whole stream) may take; the route's
    timeouts are set to it (default 600, at least 60). Plain: checked at preview."""
    ingress: NotRequired[IngressArgs]
    """Settings of the Ingress option."""
    inference_pool_name: NotRequired[pulumi.Input[str]]
    """Route to this InferencePool (``InferencePool.pool_name``, KV-cache-aware replica choice by its
    Endpoint Picker) instead of the Service (Gateway API only)."""
    canary: NotRequired[CanaryBackendArgs]
    """Split the requests between the stable and a canary backend by weight (Gateway API only)."""
    knative: NotRequired[KnativeBackendArgs]
    """The model is a Knative Service (``service_name`` is its name): route through Knative's ingress,
    whose traffic split (a Knative canary) applies; no ``canary``, no ``inference_pool_name``."""


def model_path_prefix(name: str) -> str:
    """The fallback path of a model: ``/models/<name>``."""
    return f"{MODEL_PATH_ROOT}/{name}"


def duration(seconds: int) -> str:
    """A Gateway API duration (GEP-2257: at most 5 digits per unit)."""
    if seconds <= 99999:
        return f"{seconds}s"
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60}m{rest % 60}s"


def route_timeout_seconds(args: ModelRouteArgs) -> int:
    """The route's timeouts: the request budget, plus a Knative model's cold start (the activator holds
    the request meanwhile)."""
    seconds = args.get("request_timeout_seconds", DEFAULT_REQUEST_TIMEOUT_SECONDS)
    knative = args.get("knative")
    return seconds + (knative["cold_start_seconds"] if knative is not None else 0)


def knative_grant_name(name: str, namespace: str) -> str:
    """The ReferenceGrant's name in the Knative ingress's namespace (routes of several namespaces and
    stacks meet there)."""
    return f"{namespace}-{name}"


def _backend(service_name, pool_name=None) -> dict:
    if pool_name is not None:
        return {"group": INFERENCE_GROUP, "kind": "InferencePool", "name": pool_name}
    return {"name": service_name, "port": HTTP_PORT}


def httproute_spec(name: str, args: ModelRouteArgs) -> dict:
    """The HTTPRoute's spec: header match per served name on /v1, then the path-per-model fallback."""
    backend = [_backend(args["service_name"], args.get("inference_pool_name"))]
    knative = args.get("knative")
    host_rewrite = {}
    if knative is not None:  # Knative's ingress picks the Knative Service by Host
        backend = [
            {
                "name": knative.get("local_gateway_name", DEFAULT_LOCAL_GATEWAY),
                "namespace": knative["local_gateway_namespace"],
                "port": knative.get("local_gateway_port", KNATIVE_HTTP_PORT),
            }
        ]
        host_rewrite = {"hostname": knative["host"]}
    canary = args.get("canary")
    if canary is not None:  # weights are relative; summing to 100 makes them the percent each variant gets
        backend = [
            {**backend[0], "weight": 100 - canary["weight"]},
            {**_backend(canary["service_name"], canary.get("inference_pool_name")), "weight": canary["weight"]},
        ]
    seconds = route_timeout_seconds(args)
    # One attempt per request: backendRequest equal to the whole budget (a retry would restart a stream).
    timeouts = {"request": duration(seconds), "backendRequest": duration(seconds)}
    by_header = [
        {
            "path": {"type": "PathPrefix", "value": API_PREFIX},
            "headers": [{"type": "Exact", "name": MODEL_NAME_HEADER, "value": served}],
        }
        for served in args["served_model_names"]
    ]
    fallback = {
        "matches": [{"path": {"type": "PathPrefix", "value": f"{model_path_prefix(name)}{API_PREFIX}"}}],
        "filters": [
            {
                "type": "URLRewrite",
                "urlRewrite": {
                    **host_rewrite,
                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": API_PREFIX},
                },
            }
        ],
        "backendRefs": backend,
        "timeouts": timeouts,
    }
    gw = args["gateway"]
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw["name"], "namespace": gw["namespace"]}
    if gw.get("section_name"):
        parent["sectionName"] = gw["section_name"]
    spec = {
        "parentRefs": [parent],
        "rules": [
            {
                "matches": by_header,
                "backendRefs": backend,
                "timeouts": timeouts,
                **({"filters": [{"type": "URLRewrite", "urlRewrite": host_rewrite}]} if host_rewrite else {}),
            },
            fallback,
        ],
    }
    if args.get("hostnames"):
        spec["hostnames"] = list(args["hostnames"])
    return spec


#: v1beta1: served by every Gateway API release that has ReferenceGrant (v1 only by the newest).
REFERENCE_GRANT_API = "gateway.networking.k8s.io/v1beta1"


def reference_grant_spec(args: ModelRouteArgs) -> dict:
    """Lets this model's HTTPRoutes (their namespace) use Knative's cluster-local ingress Service, and nothing else."""
    knative = args["knative"]
    return {
        "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": args["namespace"]}],
        "to": [{"group": "", "kind": "Service", "name": knative.get("local_gateway_name", DEFAULT_LOCAL_GATEWAY)}],
    }


def ingress_annotations(args: ModelRouteArgs) -> dict:
    ing = args.get("ingress") or {}
    seconds = str(route_timeout_seconds(args))
    notes: dict[str, pulumi.Input[str]] = {
        NGINX + "use-regex": "true",
        NGINX + "rewrite-target": "/v1/$1",
        NGINX + "proxy-read-timeout": seconds,
        NGINX + "proxy-send-timeout": seconds,
        NGINX + "proxy-body-size": ing.get("max_body_size", DEFAULT_MAX_BODY_SIZE),
        # Tokens reach the client as vLLM writes them (server-sent events), not when a buffer fills.
        NGINX + "proxy-buffering": "off",
        NGINX + "proxy-request-buffering": "off",
    }
    if ing.get("cluster_issuer"):
        notes[CLUSTER_ISSUER_ANNOTATION] = ing["cluster_issuer"]
    if args.get("knative") is not None:  # Knative's ingress picks the Knative Service by Host
        notes[NGINX + "upstream-vhost"] = args["knative"]["host"]
    return notes


def ingress_spec(name: str, args: ModelRouteArgs) -> dict:
    ing = args.get("ingress") or {}
    path = {
        "path": f"{model_path_prefix(name)}{API_PREFIX}/(.*)",
        "pathType": "ImplementationSpecific",
        # A Knative model: the Service Knative makes per Knative Service (an ExternalName to its ingress).
        "backend": {
            "service": {
                "name": args["service_name"],
                "port": {"number": KNATIVE_HTTP_PORT if args.get("knative") else HTTP_PORT},
            }
        },
    }
    hosts = list(args.get("hostnames") or [])
    rules = [{"host": h, "http": {"paths": [path]}} for h in hosts] or [{"http": {"paths": [path]}}]
    spec: dict[str, Any] = {"ingressClassName": ing.get("class_name", DEFAULT_INGRESS_CLASS), "rules": rules}
    if ing.get("tls_secret_name"):
        spec["tls"] = [{"hosts": hosts, "secretName": ing["tls_secret_name"]}]
    return spec


def check_route_args(name: str, args: ModelRouteArgs) -> None:
    kind = RouteKind(args.get("kind", RouteKind.GATEWAY_API))
    _check_route_basics(name, args, kind)
    knative = args.get("knative")
    if knative is not None:
        _check_knative(name, args, knative)
    canary = args.get("canary")
    if canary is not None:
        _check_canary(name, args, kind, canary)
    if kind == RouteKind.INGRESS:
        _check_ingress(name, args)


def _check_route_basics(name: str, args: ModelRouteArgs, kind: RouteKind) -> None:
    """The timeout, the served names, and what the route kind needs (a Gateway; no pool behind an Ingress)."""
    seconds = args.get("request_timeout_seconds", DEFAULT_REQUEST_TIMEOUT_SECONDS)
    if seconds < MIN_REQUEST_TIMEOUT_SECONDS:
        raise args_error(
            "ModelRoute",
            name,
            "request_timeout_seconds",
            f"{seconds} s is below {MIN_REQUEST_TIMEOUT_SECONDS} s: a streamed generation outlives it and would be cut "
            "off",
        )
    if not args["served_model_names"]:
        raise args_error("ModelRoute", name, "served_model_names", "empty: the route would match no request")
    if kind == RouteKind.GATEWAY_API and not args.get("gateway"):
        raise args_error(
            "ModelRoute", name, "gateway", "required with kind gatewayApi (the Gateway the HTTPRoute attaches to)"
        )
    if kind == RouteKind.INGRESS and args.get("inference_pool_name") is not None:
        raise args_error(
            "ModelRoute",
            name,
            "inference_pool_name",
            "needs kind gatewayApi: an Ingress cannot route to an InferencePool",
        )


def _check_knative(name: str, args: ModelRouteArgs, knative: KnativeBackendArgs) -> None:
    """A Knative backend: no pool and no route canary (Knative splits), a whole cold start."""
    if args.get("inference_pool_name") is not None:
        raise args_error(
            "ModelRoute",
            name,
            "inference_pool_name",
            "cannot be combined with knative: a picker would call the pods directly, past Knative's "
            "activator (no scale from zero) and its traffic split",
        )
    if args.get("canary") is not None:
        raise args_error(
            "ModelRoute",
            name,
            "canary",
            "cannot be combined with knative: a Knative canary is a revision of the same Knative Service, "
            "split by Knative (KnativeVllmService's canary); the route has one backend",
        )
    if not isinstance(knative.get("cold_start_seconds"), int) or knative["cold_start_seconds"] < 0:
        raise args_error(
            "ModelRoute",
            name,
            "knative.cold_start_seconds",
            f"{knative.get('cold_start_seconds')!r} is not a whole number of seconds >= 0",
        )


def _check_canary(name: str, args: ModelRouteArgs, kind: RouteKind, canary: CanaryBackendArgs) -> None:
    """A route canary: weighted HTTPRoute backends, a percent, both variants through a pool or neither."""
    if kind == RouteKind.INGRESS:
        raise args_error(
            "ModelRoute", name, "canary", "needs kind gatewayApi: the split is the HTTPRoute's weighted backends"
        )
    if not 1 <= canary["weight"] <= 99:
        raise args_error("ModelRoute", name, "canary.weight", f"{canary['weight']} is not a percent between 1 and 99")
    if (canary.get("inference_pool_name") is None) != (args.get("inference_pool_name") is None):
        raise args_error(
            "ModelRoute",
            name,
            "canary.inference_pool_name",
            "given for one variant only: both variants route through a pool, or neither",
        )


def _check_ingress(name: str, args: ModelRouteArgs) -> None:
    """The Ingress option: an nginx body size, TLS where cert-manager writes it and for named hosts."""
    ing = args.get("ingress") or {}
    if not _BODY_SIZE.match(ing.get("max_body_size", DEFAULT_MAX_BODY_SIZE)):
        raise args_error(
            "ModelRoute", name, "ingress.max_body_size", f"{ing['max_body_size']!r} is not an nginx size (e.g. 16m)"
        )
    if ing.get("cluster_issuer") and not ing.get("tls_secret_name"):
        raise args_error(
            "ModelRoute",
            name,
            "ingress.tls_secret_name",
            "required with cluster_issuer: cert-manager writes the certificate there",
        )
    if ing.get("tls_secret_name") and not args.get("hostnames"):
        raise args_error("ModelRoute", name, "hostnames", "required with TLS: the certificate is for named hosts")


class ModelRoute(pulumi.ComponentResource):
    """A model's ``/v1`` API on the serving edge: an HTTPRoute to a Gateway (matched by model
    name, with a path-per-model fallback) or an ingress-nginx Ingress (path per model), with
    timeouts of the model's request budget. The server's NetworkPolicy must admit the Gateway's
    (or ingress controller's) namespace: ``VllmService``'s ``network.client_namespaces``; a Knative
    model's (``knative``) admits Knative's namespaces instead, whose ingress the route calls."""

    kind: pulumi.Output[str]
    """``HTTPRoute`` or ``Ingress``."""
    route_name: pulumi.Output[str]
    """Name of the HTTPRoute or Ingress."""
    path_prefix: pulumi.Output[str]
    """The model's fallback base URL path (``/models/<name>/v1``)."""

    def __init__(self, name: str, args: ModelRouteArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("ModelRoute", name, args, ModelRouteArgs)
        check_route_args(name, args)
        super().__init__(type_token("ModelRoute"), name, {}, opts)
        meta = {"name": name, "namespace": args["namespace"], "labels": labels(name, "route")}
        child = pulumi.ResourceOptions(parent=self)
        if RouteKind(args.get("kind", RouteKind.GATEWAY_API)) == RouteKind.GATEWAY_API:
            grants = []
            knative = args.get("knative")
            if knative is not None:  # the backend is in Knative's namespace: its owner lets this route in
                grants.append(
                    k8s.apiextensions.CustomResource(
                        f"{name}-grant",
                        api_version=REFERENCE_GRANT_API,
                        kind="ReferenceGrant",
                        metadata={
                            "name": pulumi.Output.from_input(args["namespace"]).apply(
                                lambda ns: knative_grant_name(name, ns)
                            ),
                            "namespace": knative["local_gateway_namespace"],
                            "labels": labels(name, "route"),
                        },
                        spec=reference_grant_spec(args),
                        opts=child,
                    )
                )
            route: pulumi.CustomResource = k8s.apiextensions.CustomResource(
                f"{name}-route",
                api_version="gateway.networking.k8s.io/v1",
                kind="HTTPRoute",
                metadata=meta,
                spec=httproute_spec(name, args),
                opts=pulumi.ResourceOptions(parent=self, depends_on=grants),
            )
            self.kind = pulumi.Output.from_input("HTTPRoute")
        else:
            route = k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata={**meta, "annotations": ingress_annotations(args)},
                spec=ingress_spec(name, args),
                opts=child,
            )
            self.kind = pulumi.Output.from_input("Ingress")
        self.route_name = route.metadata["name"]  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime
        self.path_prefix = pulumi.Output.from_input(f"{model_path_prefix(name)}{API_PREFIX}")
        self.register_outputs({"kind": self.kind, "route_name": self.route_name, "path_prefix": self.path_prefix})
