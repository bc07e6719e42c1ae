"""The serving edge: which Gateway (or ingress-nginx) exposes the models, on which host, with
which request budget; and per model whether it is exposed."""

import re
from typing import TypeGuard

from pydantic import Field, model_validator

from llmstack_k8s.edge.body_router import DEFAULT_REPLICAS as DEFAULT_BBR_REPLICAS
from llmstack_k8s.edge.body_router import BodyRouterProvider
from llmstack_k8s.edge.inference_objective import PRIORITY_RANGE, objective_name_problem
from llmstack_k8s.edge.model_route import (
    DEFAULT_INGRESS_CLASS,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    MIN_REQUEST_TIMEOUT_SECONDS,
    RouteKind,
)

from .base import ConfigProblem
from .base import StackModel as _Model
from .cluster import DnsLabel

_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_BODY_SIZE = re.compile(r"^[0-9]+[kmg]?$")


class GatewayRefConfig(_Model):
    """An existing Gateway (Gateway API) the models' HTTPRoutes attach to."""

    name: DnsLabel = Field(description="Name of the Gateway.")
    namespace: DnsLabel = Field(
        description="Namespace of the Gateway and its proxy pods (the models' NetworkPolicies admit it)."
    )
    section_name: str | None = Field(
        None, description="Listener to attach to (default: every listener that allows the routes)."
    )


class IngressConfig(_Model):
    """The Ingress option (ingress-nginx), for clusters without Gateway API."""

    class_name: str = Field(DEFAULT_INGRESS_CLASS, description="IngressClass of ingress-nginx.")
    namespace: DnsLabel = Field(
        "ingress-nginx",
        description="Namespace of the ingress controller's pods (the models' NetworkPolicies admit it).",
    )
    tls_secret_name: str | None = Field(None, description="Secret with the host's TLS certificate.")
    cluster_issuer: str | None = Field(None, description="cert-manager ClusterIssuer that fills tlsSecretName.")
    max_body_size: str = Field(DEFAULT_MAX_BODY_SIZE, description="Largest request body (nginx size: 16m).")

    @model_validator(mode="after")
    def _consistent(self):
        if not _BODY_SIZE.match(self.max_body_size):
            raise ConfigProblem(
                "maxBodySize", f"{self.max_body_size!r} is not an nginx size; write a number with k, m or g (e.g. 16m)"
            )
        if self.cluster_issuer and not self.tls_secret_name:
            raise ConfigProblem(
                "tlsSecretName",
                "not set, but clusterIssuer is: cert-manager needs the Secret to write the certificate into",
            )
        return self


class BodyBasedRoutingConfig(_Model):
    # The config reference (README) shows a model docstring's first line only: one line, however long.
    """The Inference Extension's body-based router, installed beside the Gateway (llmstack_k8s.body_router.BodyRouter)."""  # noqa: E501

    install: bool = Field(
        False,
        description=(
            "Install the body-based router in the Gateway's namespace (one per Gateway): the body's model "
            "picks the route, and a served name's priority applies."
        ),
    )
    provider: BodyRouterProvider | None = Field(
        None,
        description=(
            "Gateway implementation whose hook calls the router: istio (an EnvoyFilter) or gke (a "
            "GCPRoutingExtension); required with install."
        ),
    )
    replicas: int = Field(
        DEFAULT_BBR_REPLICAS, ge=1, le=16, description="Router replicas (the Gateway fails requests when none answers)."
    )

    @model_validator(mode="after")
    def _consistent(self):
        if self.install and self.provider is None:
            raise ConfigProblem(
                "provider",
                "not set, but install is: name the Gateway implementation whose hook calls the router (istio or gke)",
            )
        if not self.install and self.model_fields_set - {"install"}:
            key = sorted(self.model_fields_set - {"install"})[0]
            raise ConfigProblem(key, "applies to the router the stack installs; set install: true or remove it")
        return self


class GatewayConfig(_Model):
    """One OpenAI endpoint for every model: each model gets an HTTPRoute on this Gateway (or an Ingress)."""

    kind: RouteKind = Field(
        RouteKind.GATEWAY_API,
        description=(
            "gatewayApi (HTTPRoute per model, routed by the body's model name) or ingress (ingress-nginx, path "
            "per model)."
        ),
    )
    gateway_ref: GatewayRefConfig | None = Field(
        None,
        description=(
            "The Gateway the routes attach to (with kind gatewayApi); it must allow routes from the models' namespace."
        ),
    )
    hostname: str | None = Field(None, description="Host clients call (default: every host of the Gateway).")
    request_timeout_seconds: int = Field(
        DEFAULT_REQUEST_TIMEOUT_SECONDS,
        ge=MIN_REQUEST_TIMEOUT_SECONDS,
        le=86400,
        description=(
            "Request budget of every exposed model (a whole streamed response); the routes' timeouts. At least 60."
        ),
    )
    ingress: IngressConfig | None = Field(None, description="Ingress settings (with kind ingress).")
    body_based_routing: BodyBasedRoutingConfig | None = Field(
        None,
        description=(
            "Install the Inference Extension's body-based router beside the Gateway (kind gatewayApi): one URL "
            "for every model, the model named only in the body."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self):
        if self.hostname is not None and not _HOSTNAME.match(self.hostname):
            raise ConfigProblem(
                "hostname", f"{self.hostname!r} is not a DNS host name (lowercase labels separated by dots)"
            )
        if self.kind == RouteKind.GATEWAY_API:
            if self.gateway_ref is None:
                raise ConfigProblem(
                    "gatewayRef",
                    "not set: with kind gatewayApi the routes need a Gateway to attach to ({name, namespace})",
                )
            if self.ingress is not None:
                raise ConfigProblem("ingress", "applies to kind ingress; remove it or set kind: ingress")
        elif self.body_based_routing is not None:
            raise ConfigProblem(
                "bodyBasedRouting",
                "applies to kind gatewayApi (the router is a hook of the Gateway); an Ingress routes by path per model",
            )
        else:
            if self.gateway_ref is not None:
                raise ConfigProblem("gatewayRef", "applies to kind gatewayApi; remove it or set kind: gatewayApi")
            if self.ingress is not None and self.ingress.tls_secret_name and not self.hostname:
                raise ConfigProblem(
                    "hostname", "not set, but ingress.tlsSecretName is: a certificate is for a named host"
                )
        return self

    @property
    def edge_namespace(self) -> str:
        """Namespace of the pods that call the models (the Gateway's proxies or the ingress controller)."""
        if self.kind == RouteKind.GATEWAY_API:
            assert self.gateway_ref is not None  # the validator above: gatewayApi needs gatewayRef
            return self.gateway_ref.namespace
        return (self.ingress or IngressConfig()).namespace

    @property
    def base_url(self) -> str | None:
        if not self.hostname:
            return None
        tls = self.kind == RouteKind.INGRESS and self.ingress is not None and self.ingress.tls_secret_name
        # A Gateway's TLS is its listener's (not the stack's): https is the usual case for a named host.
        return f"{'http' if self.kind == RouteKind.INGRESS and not tls else 'https'}://{self.hostname}"


class ModelRouteConfig(_Model):
    """How one model is exposed through llmstack:gateway."""

    expose: bool = Field(True, description="Route the model through the gateway (false: in-cluster clients only).")
    request_timeout_seconds: int | None = Field(
        None,
        ge=MIN_REQUEST_TIMEOUT_SECONDS,
        le=86400,
        description="This model's request budget (default: gateway.requestTimeoutSeconds); its route's timeouts.",
    )
    kv_cache_aware_routing: bool = Field(
        False,
        description=(
            "Route through an InferencePool whose Endpoint Picker chooses the replica per request (queue, "
            "KV-cache use, prompt-prefix affinity); Gateway API only."
        ),
    )
    priority: int | None = Field(
        None,
        ge=PRIORITY_RANGE[0],
        le=PRIORITY_RANGE[1],
        description=(
            "Priority of the model's served name in its InferencePool (an InferenceObjective): higher is "
            "served first when requests queue, unset is 0, negative is shed while the pool is saturated. Needs "
            "kvCacheAwareRouting and gateway.bodyBasedRouting.install."
        ),
    )


def prioritized_names(model) -> list[tuple[str, str, int]]:
    """(key of the priority, served name, priority) of each of a model's served names with a priority."""
    out = []
    if model.route is not None and model.route.priority is not None:
        out.append(("route.priority", model.served_name, model.route.priority))
    out += [
        (f"loraAdapters[{j}].priority", a.name, a.priority)
        for j, a in enumerate(model.lora_adapters)
        if a.priority is not None
    ]
    return out


def priority_problem(gateway: GatewayConfig | None, model) -> tuple[str, str] | None:
    """(key, message) when a served name's priority would not reach the Endpoint Picker."""
    for key, served, _ in prioritized_names(model):
        if not kv_cache_aware(gateway, model):
            return key, (
                "needs route.kvCacheAwareRouting: true (and the model exposed through llmstack:gateway): a priority "
                "is an InferenceObjective of the model's InferencePool, applied by its Endpoint Picker"
            )
        bbr = gateway.body_based_routing
        if bbr is None or not bbr.install:
            return key, (
                "needs llmstack:gateway.bodyBasedRouting.install: true: the stack's body-based router sets the header "
                "x-gateway-inference-objective from the body's model, which is how the picker finds the priority; "
                "without it requests carry no objective and run at priority 0"
            )
        problem = objective_name_problem(served)
        if problem:
            return ("servedModelName" if key == "route.priority" else key.replace(".priority", ".name")), problem
        if model.canary is not None:
            return key, (
                "cannot be combined with canary: the canary's requests go to its own InferencePool, whose picker "
                "cannot find an objective of the same name (one name per namespace), so the canary would serve at "
                "priority 0 and compare unfairly; remove the priorities while the canary runs, or promote it first"
            )
    return None


def exposure_problem(gateway: GatewayConfig | None, model, knative=None) -> tuple[str, str] | None:
    """(key, message) when a model's route settings cannot work with the stack's gateway (``knative``:
    the stack's KnativeConfig, for a Knative model's timeouts)."""
    problem = priority_problem(gateway, model)
    if problem:
        return problem
    canary = getattr(model, "canary", None) is not None
    if (
        canary
        and model.serving != "knative"
        and (not is_exposed(gateway, model) or gateway.kind != RouteKind.GATEWAY_API)
    ):
        return "canary", (
            "needs the model exposed through llmstack:gateway with kind gatewayApi: the traffic split is the "
            "HTTPRoute's weighted backends (a ClusterIP Service or an Ingress cannot split by weight); add "
            "llmstack:gateway (route.expose: true) or remove canary"
        )
    if gateway is None:
        if model.route is not None:
            return (
                "route",
                "is set but llmstack:gateway is not: there is no Gateway to route through; add llmstack:gateway or "
                "remove route",
            )
        return None
    if not is_exposed(gateway, model):
        if model.route is not None and model.route.kv_cache_aware_routing:
            return (
                "route.kvCacheAwareRouting",
                "needs the model exposed through the gateway (route.expose: true): the Gateway calls the Endpoint "
                "Picker",
            )
        return None
    if model.route is not None and model.route.kv_cache_aware_routing and gateway.kind != RouteKind.GATEWAY_API:
        return (
            "route.kvCacheAwareRouting",
            "needs llmstack:gateway.kind gatewayApi: an Ingress cannot route to an InferencePool",
        )
    if model.serving == "knative":
        return knative_exposure_problem(gateway, model, knative)
    if model.scaling is not None and model.scaling.min_replicas == 0:
        return "route.expose", (
            "a Deployment scaled to zero is reached through the KEDA HTTP add-on's interceptor, which a route to the "
            "model's Service would bypass (requests fail while it is at zero); set route.expose: false or minReplicas "
            ">= 1"
        )
    return None


def knative_exposure_problem(gateway: GatewayConfig, model, knative=None) -> tuple[str, str] | None:
    """An exposed Knative model is routed to Knative's ingress (ModelRoute's knative): no picker, and its
    revision's request timeout covers the route's (cold start + request budget)."""
    if model.route is not None and model.route.kv_cache_aware_routing:
        return "route.kvCacheAwareRouting", (
            "cannot be used with serving: knative: an InferencePool's Endpoint Picker sends requests straight to the "
            "pods, past Knative's activator (nothing starts a pod while the model is at zero) and past Knative's "
            "traffic split (a canary); the route goes to Knative's ingress instead. Remove it, or serve the model as "
            "serving: deployment"
        )
    if (
        knative is not None
        and not knative.install
        and knative.effective_local_gateway.namespace not in knative.namespaces
    ):
        return "route.expose", (
            f"routes through your Knative's cluster-local ingress in {knative.effective_local_gateway.namespace!r} "
            f"(llmstack:knative.localGateway), which llmstack:knative.namespaces ({', '.join(knative.namespaces)}) "
            "does not list: the model's NetworkPolicy would block it; add the namespace there or set localGateway"
        )
    route_seconds = knative_route_timeout(gateway, model)
    explicit = model.knative.request_timeout_seconds if model.knative is not None else None
    if explicit is not None and explicit < route_seconds:
        return "knative.requestTimeoutSeconds", (
            f"{explicit} s is shorter than the route's timeout, {route_seconds} s (cold start "
            f"{model.cold_start_budget.total_seconds} s, which the activator waits out at zero, + request budget "
            f"{request_budget(gateway, model)} s): Knative would cut off answers the gateway still allows; raise it or "
            "remove it (the default then covers the route)"
        )
    limit = knative.effective_max_revision_timeout if knative is not None else None
    if limit is not None and explicit is None and route_seconds > limit:
        return "route.requestTimeoutSeconds", (
            f"the route's timeout, cold start {model.cold_start_budget.total_seconds} s + request budget "
            f"{request_budget(gateway, model)} s "
            f"(this key, else llmstack:gateway.requestTimeoutSeconds) = {route_seconds} s, exceeds the longest request "
            f"Knative allows ({limit} s, knative.maxRevisionTimeoutSeconds): lower the request budget, or raise "
            "max-revision-timeout-seconds in Knative's config-defaults and say so there"
        )
    return None


def knative_route_timeout(gateway: GatewayConfig, model) -> int:
    """An exposed Knative model's route timeouts: its whole cold start (at zero the activator holds a request
    while a pod gets a node, pulls the image and loads the model) plus its request budget."""
    return model.cold_start_budget.total_seconds + request_budget(gateway, model)


def knative_request_timeout(gateway: GatewayConfig | None, model) -> int:
    """A Knative model's revision timeoutSeconds: its own (or Knative's default); an exposed model's default
    covers its route's, so the gateway and Knative cut a request at the same budget."""
    seconds = model.knative_scaling.request_timeout_seconds
    if not is_exposed(gateway, model) or (
        model.knative is not None and model.knative.request_timeout_seconds is not None
    ):
        return seconds
    return max(seconds, knative_route_timeout(gateway, model))


def is_exposed(gateway: GatewayConfig | None, model) -> TypeGuard[GatewayConfig]:
    return gateway is not None and (model.route is None or model.route.expose)


def kv_cache_aware(gateway: GatewayConfig | None, model) -> TypeGuard[GatewayConfig]:
    return is_exposed(gateway, model) and model.route is not None and model.route.kv_cache_aware_routing


def request_budget(gateway: GatewayConfig, model) -> int:
    """The model's request budget: its route's timeouts."""
    if model.route is not None and model.route.request_timeout_seconds is not None:
        return model.route.request_timeout_seconds
    return gateway.request_timeout_seconds
