"""The llmstack policy pack's policies: the platform's invariants, checked at every preview and up.

The rules themselves are ``llmstack_k8s.rules`` (shipped in the library wheel, so the test
suite, this pack and an importing project's own pack share one source for each rule); this
module only adapts them to the Pulumi Policy SDK: which resources each rule sees, its default
enforcement level and the config it accepts.

Enforcement levels and settings can be changed without editing code, with Pulumi's policy pack
config (``pulumi preview --policy-pack policy --policy-pack-config policy/config.json``)::

    {"all": "mandatory",
     "images-pinned": {"enforcementLevel": "advisory", "requireDigest": false},
     "gpu-pods-tolerate-pool-taints": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]}}
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from llmstack_k8s import rules

PACK_NAME = "llmstack"
PACK_DESCRIPTION = "Invariants of the llmstack serving platform (vLLM on Kubernetes with NVIDIA GPUs)."


def plain(value: Any) -> Any:
    """The SDK's read-only proxies as plain dicts and lists; a value unknown during preview
    becomes ``rules.UNKNOWN`` (the rules skip what they cannot see; ``up`` checks it)."""
    if isinstance(value, Mapping):
        out = {}
        for key in value:
            try:
                out[key] = plain(value[key])
            except UnknownValueError:
                out[key] = rules.UNKNOWN
        return out
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = []
        for i in range(len(value)):
            try:
                items.append(plain(value[i]))
            except UnknownValueError:
                items.append(rules.UNKNOWN)
        return items
    return value


def _config(args, key: str, default: Any) -> Any:
    value = (args.get_config() or {}).get(key)
    return default if value is None else value


@dataclass(frozen=True)
class Spec:
    """One policy: what it enforces, how to fix it, how strictly by default, what it accepts."""

    name: str
    description: str
    remediation: str
    level: EnforcementLevel
    properties: dict
    # Per object: (manifest, config) -> problems; or per stack: (manifests, config) -> problems.
    check_object: Callable[[dict, Callable[[str, Any], Any]], list[str]] | None = None
    check_stack: Callable[[list[dict], Callable[[str, Any], Any]], list[str]] | None = None
    check_helm: bool = False


def _resource_validate(spec: Spec):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        conf = lambda key, default: _config(args, key, default)  # noqa: E731
        if spec.check_helm:
            if args.resource_type not in rules.HELM_TYPES:
                return
            props = plain(args.props)
            problems = rules.helm_chart_pinned(
                args.resource_type.rsplit(":", 1)[-1], args.name, props.get("chart"), props.get("version")
            )
        else:
            manifest = rules.pulumi_manifest(args.resource_type, plain(args.props))
            if manifest is None:
                return
            problems = spec.check_object(manifest, conf)
        for problem in problems:
            report_violation(problem)

    return validate


def _stack_validate(spec: Spec):
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        conf = lambda key, default: _config(args, key, default)  # noqa: E731
        manifests, urns = [], {}
        for r in args.resources:
            m = rules.pulumi_manifest(r.resource_type, plain(r.props))
            if m is not None:
                manifests.append(m)
                urns[rules.describe(m)] = r.urn
        for problem in spec.check_stack(manifests, conf):
            # Attach the violation to the object the message starts with.
            urn = next((u for d, u in urns.items() if problem.startswith((d + " ", d + ":"))), None)
            report_violation(problem, urn)

    return validate


_TAINT = {
    "type": "object",
    "properties": {"key": {"type": "string"}, "value": {"type": "string"}, "effect": {"type": "string"}},
    "required": ["key"],
}

SPECS: list[Spec] = [
    Spec(
        name="images-pinned",
        description="Container images name a version or a digest, never a moving tag such as latest.",
        remediation="Pin the image to a release tag (vLLM: components/versions.py) or to @sha256:<digest>.",
        level=EnforcementLevel.MANDATORY,
        properties={
            "movingTags": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(rules.MOVING_TAGS),
                "description": "Tags that count as moving.",
            },
            "requireDigest": {
                "type": "boolean",
                "default": False,
                "description": "Require every image to be pinned by digest.",
            },
        },
        check_object=lambda m, conf: rules.images_pinned(
            m, [t.lower() for t in conf("movingTags", rules.MOVING_TAGS)], conf("requireDigest", False)
        ),
    ),
    Spec(
        name="gpu-request-matches-parallelism",
        description="A vLLM container requests exactly tensor x pipeline parallel size GPUs.",
        remediation=(
            "Set the GPU resource (nvidia.com/gpu or the pool's shared/MIG name) to tensor x pipeline "
            "parallel size in both requests and limits."
        ),
        level=EnforcementLevel.MANDATORY,
        properties={
            "gpuResourcePrefixes": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(rules.GPU_RESOURCE_PREFIXES),
                "description": "Extended resource prefixes that are GPUs.",
            },
        },
        check_object=lambda m, conf: rules.gpu_request_matches_parallelism(
            m, conf("gpuResourcePrefixes", rules.GPU_RESOURCE_PREFIXES)
        ),
    ),
    Spec(
        name="gpu-pods-tolerate-pool-taints",
        description=(
            "Pods that request GPUs tolerate the GPU pool's taints (declared ones and those of the "
            "Karpenter NodePool they are placed on)."
        ),
        remediation=(
            "Take tolerations from the GpuNodePool's scheduling contract, or declare the pool's real "
            "taints in this policy's config (taints: [])."
        ),
        level=EnforcementLevel.MANDATORY,
        properties={
            "taints": {
                "type": "array",
                "items": _TAINT,
                "default": [dict(t) for t in rules.DEFAULT_GPU_TAINTS],
                "description": "Taints every GPU node carries.",
            },
        },
        check_stack=lambda ms, conf: rules.gpu_pods_tolerate_pool_taints(ms, conf("taints", rules.DEFAULT_GPU_TAINTS)),
    ),
    Spec(
        name="vllm-startup-probe-budget",
        description="vLLM containers have a startup probe whose budget covers engine start and weight loading.",
        remediation="Use VllmService's startup probe (300 s + 10 s per GiB of weights), or raise failureThreshold.",
        level=EnforcementLevel.MANDATORY,
        properties={
            "minStartupSeconds": {
                "type": "integer",
                "minimum": 1,
                "default": rules.STARTUP_BASE_SECONDS,
                "description": (
                    "Least startup budget (initialDelaySeconds + periodSeconds x failureThreshold) of a vLLM container."
                ),
            },
        },
        check_object=lambda m, conf: rules.vllm_startup_probe(m, conf("minStartupSeconds", rules.STARTUP_BASE_SECONDS)),
    ),
    Spec(
        name="no-plain-credentials",
        description="No credential in a container's plain env value or command line.",
        remediation="Put the value in a Secret and reference it with valueFrom.secretKeyRef.",
        level=EnforcementLevel.MANDATORY,
        properties={
            "allowedNames": {
                "type": "array",
                "items": {"type": "string"},
                "default": [],
                "description": "Env names that look like credentials but are not.",
            },
        },
        check_object=lambda m, conf: rules.no_plain_credentials(m, conf("allowedNames", [])),
    ),
    Spec(
        name="pdb-selects-one-controller",
        description="Each PodDisruptionBudget selects the pods of exactly one workload.",
        remediation="Make the PodDisruptionBudget's selector the server pods' own labels.",
        level=EnforcementLevel.MANDATORY,
        properties={},
        check_stack=lambda ms, conf: rules.pdb_selects_one_controller(ms),
    ),
    Spec(
        name="serving-pods-have-network-policy",
        description="Every vLLM server's pods are selected by an ingress NetworkPolicy.",
        remediation=(
            "Add a NetworkPolicy admitting only the gateway/clients to the API port and Prometheus to "
            "/metrics (VllmService creates one)."
        ),
        level=EnforcementLevel.MANDATORY,
        properties={},
        check_stack=lambda ms, conf: rules.serving_pods_have_network_policy(ms),
    ),
    Spec(
        name="serving-pods-non-root",
        description="Serving pods run as non-root, without privilege escalation, unprivileged.",
        remediation=(
            "Set runAsNonRoot: true, a non-zero runAsUser and allowPrivilegeEscalation: false on every "
            "container (components/serving/vllm_pod.py does)."
        ),
        level=EnforcementLevel.MANDATORY,
        properties={
            "allWorkloads": {
                "type": "boolean",
                "default": False,
                "description": "Check every pod, not only those running vLLM.",
            },
        },
        check_object=lambda m, conf: (
            rules.pod_security if conf("allWorkloads", False) else rules.serving_pod_security
        )(m),
    ),
    Spec(
        name="llm-route-timeouts",
        description=(
            "Routes to model servers (Gateway API HTTPRoutes, ingress-nginx Ingresses) time out no sooner "
            "than a streamed generation may take, never at a proxy's 60 s default."
        ),
        remediation=(
            "Set the HTTPRoute rules' timeouts.request (and backendRequest) or the Ingress's "
            "proxy-read/send-timeout annotations to the model's request budget (ModelRoute does)."
        ),
        level=EnforcementLevel.MANDATORY,
        properties={
            "minTimeoutSeconds": {
                "type": "integer",
                "minimum": 1,
                "default": rules.MIN_ROUTE_TIMEOUT_SECONDS,
                "description": "Shortest timeout a route to a model may have.",
            },
        },
        check_object=lambda m, conf: rules.route_timeouts(
            m, conf("minTimeoutSeconds", rules.MIN_ROUTE_TIMEOUT_SECONDS)
        ),
    ),
    Spec(
        name="knative-traffic",
        description=(
            "A Knative Service's traffic targets are revisions of that Service, sum to 100 percent, carry "
            "unique tags, and include the revision its template creates (a Knative canary's split)."
        ),
        remediation=(
            "Name revisions <service>-..., make the percents sum to 100, keep tags unique DNS labels, and "
            "route a percent or a tag to the template's revision (KnativeVllmService's canary does)."
        ),
        level=EnforcementLevel.MANDATORY,
        properties={},
        check_object=lambda m, conf: rules.knative_traffic(m),
    ),
    Spec(
        name="inference-objectives-name-pools",
        description=(
            "Every InferenceObjective's poolRef names an InferencePool of the stack in its namespace (the "
            "Endpoint Picker loads only its own pool's objectives; any other runs its model at priority 0)."
        ),
        remediation=(
            "Point poolRef at the model's InferencePool (InferencePool's objectives arg does), in the same namespace."
        ),
        level=EnforcementLevel.MANDATORY,
        properties={},
        check_stack=lambda ms, conf: rules.inference_objectives_name_pools(ms),
    ),
    Spec(
        name="lws-headless-service-free",
        description=(
            "No Service has a LeaderWorkerSet's name in its namespace (the LWS controller keeps such a Service "
            "instead of making the headless one its pods resolve their leader through)."
        ),
        remediation="Name the LeaderWorkerSet apart from every Service (MultiNodeVllmService names it <model>-lws).",
        level=EnforcementLevel.MANDATORY,
        properties={},
        check_stack=lambda ms, conf: rules.lws_headless_service_free(ms),
    ),
    Spec(
        name="helm-releases-pinned",
        description="Helm releases and charts name an exact chart version.",
        remediation="Set version to an exact chart release (components/versions.py holds every pin).",
        level=EnforcementLevel.MANDATORY,
        properties={},
        check_helm=True,
    ),
]


def build_policies() -> list:
    policies = []
    for spec in SPECS:
        common = {
            "name": spec.name,
            "description": spec.description,
            "enforcement_level": spec.level,
            "config_schema": PolicyConfigSchema(spec.properties) if spec.properties else None,
            "remediation_steps": spec.remediation,
        }
        if spec.check_stack is not None:
            policies.append(StackValidationPolicy(validate=_stack_validate(spec), **common))
        else:
            policies.append(ResourceValidationPolicy(validate=_resource_validate(spec), **common))
    return policies


POLICIES = build_policies()
