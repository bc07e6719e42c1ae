"""InferencePool: KV-cache-aware routing to one model's replicas (Gateway API Inference Extension).

An ``InferencePool`` (``inference.networking.k8s.io/v1``) selects the model's server pods; its
Endpoint Picker (EPP, the upstream image pinned in versions.py) scrapes each pod's vLLM metrics and,
called by the Gateway over ext-proc for every request, picks the replica: short queue, free KV
cache, and the replica that already holds the request's prompt prefix. The model's HTTPRoute points
at the pool instead of the Service (``ModelRoute``'s ``inference_pool_name``).

What the picker reads comes from metrics.py (``PICKER_METRICS``), written into its config, so a
metric renamed by a vLLM upgrade fails the metrics tests instead of silently blinding the picker.
The objects mirror the upstream ``inferencepool`` chart (v1.5.0): ServiceAccount, Role and
RoleBinding (pods and pools, read-only), plugin ConfigMap, Deployment (one replica: the prefix
index lives in memory), Service (ext-proc 9002, metrics 9090), and a NetworkPolicy admitting the
Gateway's namespace on ext-proc and Prometheus on metrics.
"""

from enum import Enum
from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s
import yaml
from typing_extensions import NotRequired

from .. import versions
from .._core.awaits import deployment_await_seconds, pod_ready_seconds, skip_await_annotation, timeout_annotation
from .._core.package import labels, selector_labels, type_token
from .._core.validation import args_error, validate_args
from ..observability import metrics
from ..serving.vllm_pod import CONTAINER_SECURITY_CONTEXT, HTTP_PORT
from ..serving.vllm_service import namespace_selector
from .inference_objective import InferenceObjectiveArgs, inference_objective, objective_name_problem, priority_problem

EXT_PROC_PORT = 9002
HEALTH_PORT = 9003
METRICS_PORT = 9090
EPP_APP = "endpoint-picker"
INFERENCE_API = "inference.networking.k8s.io/v1"
#: The pod label the picker reads to choose an engine's metric names (its default; we set it explicitly).
ENGINE_LABEL = "inference.networking.k8s.io/engine-type"
CONFIG_FILE = "plugins.yaml"
#: The picker is ready in seconds once running (it loads no model); generous for a slow node.
PICKER_START_SECONDS = 60
#: Scorer weights of the upstream chart's default profile: prefix affinity first, then load.
SCORER_WEIGHTS = {"queue-scorer": 2, "kv-cache-utilization-scorer": 2, "prefix-cache-scorer": 3}


class FailureMode(str, Enum):
    """What the Gateway does when the Endpoint Picker does not answer."""

    FAIL_OPEN = "FailOpen"
    """Route to some ready replica anyway (requests keep flowing, without the picker's choice)."""
    FAIL_CLOSE = "FailClose"
    """Refuse the request."""


class InferencePoolArgs(TypedDict):
    """Arguments of an InferencePool."""

    namespace: pulumi.Input[str]
    """Namespace of the model's server pods (the pool and its picker live beside them)."""
    pod_selector: dict[str, pulumi.Input[str]]
    """Labels selecting exactly the model's server pods (``VllmService.selector_labels``)."""
    gateway_namespace: pulumi.Input[str]
    """Namespace of the Gateway's proxies, which call the picker over ext-proc."""
    monitoring_namespaces: NotRequired[list[pulumi.Input[str]]]
    """Namespaces whose Prometheus may scrape the picker's own metrics."""
    serves_lora: NotRequired[bool]
    """The servers run LoRA adapters: the picker reads which adapters each replica holds (default false)."""
    failure_mode: NotRequired[FailureMode]
    """When the picker is down (default FailOpen: an LLM endpoint should degrade, not stop)."""
    image: NotRequired[pulumi.Input[str]]
    """Endpoint Picker image (default: the pinned one)."""
    objectives: NotRequired[list[InferenceObjectiveArgs]]
    """Priorities per served name: an ``InferenceObjective`` each, named after the served name, pointing at
    this pool (requests select one by the ``x-gateway-inference-objective`` header: ``BodyRouter`` sets it)."""


def picker_config(serves_lora: bool) -> str:
    """The picker's EndpointPickerConfig: the upstream default profile, with the vLLM metric names
    from metrics.py (the LoRA metric only where servers export it)."""
    engine = {
        "name": "vllm",
        "queuedRequestsSpec": metrics.VLLM_REQUESTS_WAITING,
        "runningRequestsSpec": metrics.VLLM_REQUESTS_RUNNING,
        "kvUsageSpec": metrics.VLLM_KV_CACHE_USAGE,
        "loraSpec": metrics.PICKER_LORA_REQUESTS_INFO if serves_lora else "",
        "cacheInfoSpec": metrics.PICKER_CACHE_CONFIG_INFO,
    }
    config = {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [
            *({"type": t} for t in SCORER_WEIGHTS),
            {"type": "metrics-data-source", "parameters": {"scheme": "http", "path": "/metrics"}},
            {
                "type": "core-metrics-extractor",
                "parameters": {"engineLabelKey": ENGINE_LABEL, "defaultEngine": "vllm", "engineConfigs": [engine]},
            },
        ],
        "schedulingProfiles": [
            {"name": "default", "plugins": [{"pluginRef": t, "weight": w} for t, w in SCORER_WEIGHTS.items()]}
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def check_pool_args(name: str, args: InferencePoolArgs) -> None:
    """Refuse a pool that would select every pod, and objectives a picker could not load (bad or repeated
    served names, priorities out of range)."""
    if not args["pod_selector"]:
        raise args_error(
            "InferencePool", name, "pod_selector", "empty: the pool would select every pod of the namespace"
        )
    seen: set = set()
    for i, o in enumerate(args.get("objectives") or []):
        problem = objective_name_problem(o["served_model_name"]) or priority_problem(o["priority"])
        if o["served_model_name"] in seen:
            problem = f"{o['served_model_name']!r} is given twice: one objective per served name"
        if problem:
            raise args_error("InferencePool", name, f"objectives[{i}]", problem)
        seen.add(o["served_model_name"])


def picker_container(args: InferencePoolArgs, pool_name: str) -> dict:
    """The Endpoint Picker's container: ext-proc, gRPC health and metrics ports, its config mounted."""
    return {
        "name": "epp",
        "image": args.get("image") or versions.EPP_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "--pool-name",
            pool_name,
            "--pool-namespace",
            args["namespace"],
            "--pool-group",
            "inference.networking.k8s.io",
            "--config-file",
            f"/config/{CONFIG_FILE}",
            "--zap-encoder",
            "json",
            "--tracing=false",
            # Its /metrics is guarded by the NetworkPolicy (Prometheus only), not by token reviews.
            "--metrics-endpoint-auth=false",
        ],
        "env": [
            {
                "name": "NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [
            {"name": "grpc", "containerPort": EXT_PROC_PORT},
            {"name": "grpc-health", "containerPort": HEALTH_PORT},
            {"name": "metrics", "containerPort": METRICS_PORT},
        ],
        "livenessProbe": {
            "grpc": {"port": HEALTH_PORT, "service": "inference-extension"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
        },
        "readinessProbe": {
            "grpc": {"port": HEALTH_PORT, "service": "inference-extension"},
            "periodSeconds": 2,
        },
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        },
        "securityContext": CONTAINER_SECURITY_CONTEXT,
        "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}],
    }


class InferencePool(pulumi.ComponentResource):
    """An InferencePool over one model's server pods and its Endpoint Picker (Deployment, Service,
    RBAC, config, NetworkPolicy). Point the model's HTTPRoute at ``pool_name``."""

    pool_name: pulumi.Output[str]
    """Name of the InferencePool (the HTTPRoute's backendRef)."""
    picker_service_name: pulumi.Output[str]
    """Name of the Endpoint Picker's Service (ext-proc on 9002)."""

    def __init__(self, name: str, args: InferencePoolArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("InferencePool", name, args, InferencePoolArgs)
        check_pool_args(name, args)
        super().__init__(type_token("InferencePool"), name, {}, opts)
        self._picker = f"{name}-epp"
        self._picker_sel = selector_labels(self._picker, app=EPP_APP)
        self._picker_labels = labels(self._picker, "endpoint-picker", app=EPP_APP)
        pool_name = name

        account = self._picker_rbac(name, args)
        config = self._picker_config(name, args)
        deployment = self._picker_deployment(name, args, pool_name, account, config)
        service = self._picker_service(name, args, deployment)
        self._picker_network_policy(name, args)
        pool = self._pool(name, args, pool_name, service)
        self._objectives(name, args, pool)
        self.pool_name = pool.metadata["name"]  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime
        self.picker_service_name = service.metadata["name"]
        self.register_outputs({"pool_name": self.pool_name, "picker_service_name": self.picker_service_name})

    def _picker_metadata(self, args: InferencePoolArgs) -> dict:
        """Name, namespace and labels every picker object has (a dict of its own for each)."""
        return {"name": self._picker, "namespace": args["namespace"], "labels": self._picker_labels}

    def _picker_rbac(self, name: str, args: InferencePoolArgs) -> k8s.core.v1.ServiceAccount:
        """The picker's ServiceAccount, and a Role bound to it that reads the pool's pods, pools and objectives."""
        ns, child = args["namespace"], pulumi.ResourceOptions(parent=self)
        account = k8s.core.v1.ServiceAccount(f"{name}-epp-sa", metadata=self._picker_metadata(args), opts=child)
        role = k8s.rbac.v1.Role(
            f"{name}-epp-role",
            metadata=self._picker_metadata(args),
            # Read-only: the pool's pods (endpoints and their metrics addresses) and the pools and objectives.
            rules=[
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]},
                {
                    "apiGroups": ["inference.networking.k8s.io"],
                    "resources": ["inferencepools"],
                    "verbs": ["get", "watch", "list"],
                },
                {
                    "apiGroups": ["inference.networking.x-k8s.io"],
                    "resources": ["inferenceobjectives", "inferencemodelrewrites"],
                    "verbs": ["get", "watch", "list"],
                },
            ],
            opts=child,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-epp-rolebinding",
            metadata=self._picker_metadata(args),
            subjects=[{"kind": "ServiceAccount", "name": account.metadata["name"], "namespace": ns}],
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role.metadata["name"]},
            opts=child,
        )
        return account

    def _picker_config(self, name: str, args: InferencePoolArgs) -> k8s.core.v1.ConfigMap:
        """The picker's plugin ConfigMap (``picker_config``)."""
        return k8s.core.v1.ConfigMap(
            f"{name}-epp-config",
            metadata=self._picker_metadata(args),
            data={CONFIG_FILE: picker_config(args.get("serves_lora", False))},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _picker_deployment(
        self,
        name: str,
        args: InferencePoolArgs,
        pool_name: str,
        account: k8s.core.v1.ServiceAccount,
        config: k8s.core.v1.ConfigMap,
    ) -> k8s.apps.v1.Deployment:
        """The picker's Deployment: one replica, replaced (never two at once), awaited."""
        return k8s.apps.v1.Deployment(
            f"{name}-epp",
            # Awaited like every Deployment of the stack: a node and the image may come first.
            metadata={
                **self._picker_metadata(args),
                "annotations": timeout_annotation(deployment_await_seconds(PICKER_START_SECONDS, 1, 0, 1)),
            },
            spec={
                "replicas": 1,
                "progressDeadlineSeconds": pod_ready_seconds(PICKER_START_SECONDS),
                # One active picker (its prefix index is in memory): replace, never run two.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": self._picker_sel},
                "template": {
                    "metadata": {"labels": self._picker_labels},
                    "spec": {
                        "serviceAccountName": account.metadata["name"],
                        "terminationGracePeriodSeconds": 130,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [picker_container(args, pool_name)],
                        "volumes": [{"name": "config", "configMap": {"name": config.metadata["name"]}}],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _picker_service(
        self, name: str, args: InferencePoolArgs, deployment: k8s.apps.v1.Deployment
    ) -> k8s.core.v1.Service:
        """The picker's Service (ext-proc and metrics), after its Deployment."""
        return k8s.core.v1.Service(
            f"{name}-epp-svc",
            # Not awaited: it comes after the Deployment, whose await already proves the picker ready.
            metadata={**self._picker_metadata(args), "annotations": skip_await_annotation()},
            spec={
                "type": "ClusterIP",
                "selector": self._picker_sel,
                "ports": [
                    {
                        "name": "grpc-ext-proc",
                        "port": EXT_PROC_PORT,
                        "targetPort": EXT_PROC_PORT,
                        "protocol": "TCP",
                        "appProtocol": "http2",
                    },
                    {"name": "http-metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT, "protocol": "TCP"},
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )

    def _picker_network_policy(self, name: str, args: InferencePoolArgs) -> None:
        """The picker admits the Gateway's namespace on ext-proc and the monitoring namespaces on metrics."""
        rules = [
            {
                "from": [namespace_selector([args["gateway_namespace"]])],
                "ports": [{"port": EXT_PROC_PORT, "protocol": "TCP"}],
            }
        ]
        if args.get("monitoring_namespaces"):
            rules.append(
                {
                    "from": [namespace_selector(args["monitoring_namespaces"])],
                    "ports": [{"port": METRICS_PORT, "protocol": "TCP"}],
                }
            )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-epp-netpol",
            metadata=self._picker_metadata(args),
            spec={"podSelector": {"matchLabels": self._picker_sel}, "policyTypes": ["Ingress"], "ingress": rules},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _pool(
        self, name: str, args: InferencePoolArgs, pool_name: str, service: k8s.core.v1.Service
    ) -> k8s.apiextensions.CustomResource:
        """The InferencePool: the model's server pods, with the picker's Service as its endpoint picker."""
        return k8s.apiextensions.CustomResource(
            f"{name}-pool",
            api_version=INFERENCE_API,
            kind="InferencePool",
            metadata={
                "name": pool_name,
                "namespace": args["namespace"],
                "labels": labels(name, "inference-pool", app=EPP_APP),
            },
            spec={
                "selector": {"matchLabels": dict(args["pod_selector"])},
                "targetPorts": [{"number": HTTP_PORT}],
                "appProtocol": "http",
                "endpointPickerRef": {
                    "kind": "Service",
                    "name": service.metadata["name"],
                    "port": {"number": EXT_PROC_PORT},
                    "failureMode": FailureMode(args.get("failure_mode", FailureMode.FAIL_OPEN)).value,
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _objectives(self, name: str, args: InferencePoolArgs, pool: k8s.apiextensions.CustomResource) -> None:
        """An InferenceObjective per served name: the picker loads the objectives whose poolRef is its pool."""
        ns, child = args["namespace"], pulumi.ResourceOptions(parent=self)
        pool_ref = pool.metadata["name"]  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime
        for o in args.get("objectives") or []:
            inference_objective(f"{name}-objective-{o['served_model_name']}", name, ns, pool_ref, o, child)
