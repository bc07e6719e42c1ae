"""KnativeVllmService: a vLLM server as a Knative Service that scales to zero when idle.

It runs the *same* container as ``VllmService`` (``llmstack_k8s.serving.vllm_pod``): a change to probes,
args, env or volumes reaches both ways of serving. Knative's activator holds the first request
while a pod starts, so an idle model costs no GPU; the price is a cold start (scheduling, image
pull, loading the weights from the cache) on the first request after idle.

What differs from the Deployment, and why:
- the container has no ``lifecycle`` hook: Knative refuses one on a revision's container and
  injects its own preStop (queue-proxy drains in-flight requests before vLLM gets SIGTERM);
- Knative sets ``terminationGracePeriodSeconds`` from the request timeout;
- the pod security context keeps only the fields Knative admits (``fsGroupChangePolicy`` goes:
  the cache is mounted read-only and the emptyDirs start empty, so it changed nothing);
- the pod needs ``kubernetes.podspec-*`` feature flags (init container, PVC, security context,
  tolerations, ...): ``knative_features_needed`` lists them, ``KnativeServing`` enables them.
"""

import re
from collections.abc import Mapping
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .._core.awaits import SCHEDULING_SECONDS, WAIT_FOR_ANNOTATION, knative_await_seconds, timeout_annotation
from .._core.validation import ComponentArgsError, validate_args
from ..cluster.scheduling import SchedulingContractArgs
from ..sizing.gpu_fit import check_serving_fit
from . import knative_canary as kc
from .base import ServingComponent, SinglePodServingArgs, namespace_selector
from .knative_canary import KnativeCanaryArgs
from .object_storage import ObjectStoragePod, check_weights_source, pod_shape
from .vllm_flags import check_extra_args
from .vllm_pod import HTTP_PORT, STARTUP_UNKNOWN_SIZE_SECONDS, knative_pod_spec, serving_pod_inputs

KNATIVE_SERVING_API = "serving.knative.dev/v1"
#: Namespaces the Knative data plane runs in, for a Knative installed from its release YAMLs:
#: activator and autoscaler in ``knative-serving``, the Kourier gateway in ``kourier-system``.
#: (The Knative Operator runs Kourier in ``knative-serving`` too: ``KnativeServing.data_plane_namespaces``.)
DEFAULT_KNATIVE_NAMESPACES = ["knative-serving", "kourier-system"]
#: queue-proxy's ports on every Knative pod: HTTP/1, h2c, autoscaler metrics, request metrics.
QUEUE_PROXY_HTTP_PORT, QUEUE_PROXY_H2C_PORT = 8012, 8013
QUEUE_PROXY_AUTOSCALER_METRICS_PORT, QUEUE_PROXY_USER_METRICS_PORT = 9090, 9091
#: Env vars Knative sets itself and refuses in a revision.
KNATIVE_RESERVED_ENV = frozenset({"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"})

#: config-features flag each pod-spec field needs (Knative refuses the field while it is disabled).
FIELD_FEATURES = {
    "initContainers": "kubernetes.podspec-init-containers",
    "securityContext": "kubernetes.podspec-securitycontext",
    "tolerations": "kubernetes.podspec-tolerations",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
}
VOLUME_FEATURES = {
    "persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
    "emptyDir": "kubernetes.podspec-volumes-emptydir",
}
#: Every flag the vLLM pod may need, whatever the GPU scheduling contract says (it sets no
#: affinity or topology spread constraints on Knative: the autoscaler places pods).
ALL_POD_FEATURES = (
    frozenset(FIELD_FEATURES.values()) - {FIELD_FEATURES["affinity"], FIELD_FEATURES["topologySpreadConstraints"]}
) | frozenset(VOLUME_FEATURES.values())

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

# Defaults (see KnativeScalingArgs for the reasoning).
DEFAULT_MAX_SCALE = 1
DEFAULT_INITIAL_SCALE = 1
DEFAULT_TARGET_CONCURRENCY = 32
DEFAULT_SCALE_DOWN_DELAY = "10m"
DEFAULT_STABLE_WINDOW = "60s"
DEFAULT_PANIC_WINDOW_PERCENTAGE = 10.0
#: Scheduling, possibly a new GPU node, and pulling the ~10 GB vLLM image come before the startup probe's budget.
PROGRESS_DEADLINE_MARGIN_SECONDS = SCHEDULING_SECONDS
#: A request may wait out a cold start and then stream for this long.
GENERATION_SECONDS = 600


def duration_seconds(value: str) -> int:
    """Seconds of a Go-style duration as Knative annotations take it (``90s``, ``10m``, ``1h30m``)."""
    m = _DURATION.match(value or "")
    if not value or not m:
        raise ValueError(f"{value!r} is not a duration; write e.g. 60s, 10m or 1h")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def default_target_concurrency(max_num_seqs: int | None) -> int:
    """In-flight requests per pod Knative aims for: vLLM batches, so not 1. Half the batch when it
    is bounded (scale out before vLLM starts queueing), else 32."""
    return max(1, max_num_seqs // 2) if max_num_seqs else DEFAULT_TARGET_CONCURRENCY


def default_progress_deadline(startup_budget_seconds: int) -> int:
    return startup_budget_seconds + PROGRESS_DEADLINE_MARGIN_SECONDS


def default_request_timeout(cold_start_seconds: int) -> int:
    """The activator counts a cold start (node, image, load: at zero it holds the request through all of
    it) against the request timeout: the cold start + a long generation."""
    return cold_start_seconds + GENERATION_SECONDS


def knative_features_needed(pod_spec: dict) -> set[str]:
    """The ``config-features`` flags a pod spec needs enabled in Knative Serving."""
    needed = {flag for field, flag in FIELD_FEATURES.items() if pod_spec.get(field)}
    for volume in pod_spec.get("volumes") or []:
        needed |= {flag for kind, flag in VOLUME_FEATURES.items() if kind in volume}
    return needed


def pod_features(scheduling: SchedulingContractArgs | None = None) -> set[str]:
    """The flags the shared vLLM pod needs under a scheduling contract (its shape does not depend
    on the model, only on where it is placed)."""
    spec = knative_pod_spec(
        {
            "engine": {"served_model_name": "m"},
            "model_path": "/models/m",
            "claim_name": "c",
            "api_key_secret_name": "k",
            "scheduling": scheduling,
        }
    )
    return knative_features_needed(spec)


class KnativeScalingArgs(TypedDict):
    """Knative autoscaling (KPA, on in-flight requests) of one model."""

    min_scale: NotRequired[int]
    """Fewest pods (default 0: scale to zero when idle)."""
    max_scale: NotRequired[int]
    """Most pods (default 1: GPUs are scarce)."""
    initial_scale: NotRequired[int]
    """Pods a new revision starts with (default 1: proves the model loads at deploy time; 0 needs
    ``allow-zero-initial-scale`` in Knative's autoscaler config)."""
    target_concurrency: NotRequired[int]
    """In-flight requests per pod Knative aims for (default 32; vLLM batches, so never 1)."""
    container_concurrency: NotRequired[int]
    """Hard limit of requests per pod; excess waits in the activator (default 0: no limit, vLLM queues)."""
    scale_down_delay: NotRequired[str]
    """How long an idle pod is kept before scaling down, e.g. ``10m`` (default; avoids a cold start per burst)."""
    stable_window: NotRequired[str]
    """Window the concurrency is averaged over, ``6s`` to ``1h`` (default ``60s``)."""
    panic_window_percentage: NotRequired[float]
    """Panic window as a percentage of the stable window, 1 to 100 (default 10)."""


class KnativeVllmServiceArgs(SinglePodServingArgs):
    """Arguments of a KnativeVllmService: those of every serving component (``serving.base``) and its own."""

    scaling: NotRequired[KnativeScalingArgs]
    """Autoscaling bounds and behaviour."""
    progress_deadline_seconds: NotRequired[int]
    """Seconds a new revision may take to become ready; at least the startup budget (default budget + 600)."""
    request_timeout_seconds: NotRequired[int]
    """Longest a request may take, including waiting out a cold start (default budget + 600)."""
    enabled_features: NotRequired[list[str]]
    """The ``config-features`` flags enabled in the cluster's Knative; when given, a pod needing
    another flag is refused here instead of by Knative's webhook at deploy time (plain: checked at preview)."""
    knative_namespaces: NotRequired[list[pulumi.Input[str]]]
    """Namespaces of the Knative data plane (activator, autoscaler, ingress gateway) the NetworkPolicy admits."""
    cluster_local: NotRequired[bool]
    """Reachable only inside the cluster (default true); false publishes it on Knative's external domain."""
    canary: NotRequired[KnativeCanaryArgs]
    """A canary: a second revision of this Knative Service (other weights, image or engine args)
    taking ``canary.weight`` percent of the requests through Knative's traffic split. The stable
    revision must exist already (deployed by an earlier ``pulumi up``): see ``knative_canary``."""


def scaling_problems(
    scaling: KnativeScalingArgs | None, startup_budget_seconds: int, progress_deadline_seconds: int | None = None
) -> list[tuple[str, str]]:
    """(arg path, problem) for every scaling setting Knative's webhook would refuse, or that would
    fail every revision; empty when Knative takes them."""
    s = scaling or {}
    min_scale = s.get("min_scale", 0)
    max_scale = s.get("max_scale", DEFAULT_MAX_SCALE)
    initial = s.get("initial_scale", DEFAULT_INITIAL_SCALE)
    target = s.get("target_concurrency", DEFAULT_TARGET_CONCURRENCY)
    cc = s.get("container_concurrency", 0)
    panic = float(s.get("panic_window_percentage", DEFAULT_PANIC_WINDOW_PERCENTAGE))
    deadline = progress_deadline_seconds or default_progress_deadline(startup_budget_seconds)
    out: list[tuple[str, str]] = []
    if max_scale < 1:
        out.append(("scaling.max_scale", f"{max_scale} must be at least 1"))
    if min_scale < 0 or min_scale > max_scale:
        out.append(("scaling.min_scale", f"{min_scale} must be between 0 and max_scale ({max_scale})"))
    if not 0 <= initial <= max_scale:
        out.append(("scaling.initial_scale", f"{initial} is outside 0..max_scale ({max_scale})"))
    if target < 1:
        out.append(("scaling.target_concurrency", f"{target} must be at least 1"))
    if cc and target > cc:
        out.append(
            ("scaling.target_concurrency", f"{target} exceeds container_concurrency {cc}: Knative could never reach it")
        )
    for key, default, low, high, bounds in (
        ("stable_window", DEFAULT_STABLE_WINDOW, 6, 3600, "between 6s and 1h"),
        ("scale_down_delay", DEFAULT_SCALE_DOWN_DELAY, 0, 3600, "at most 1h"),
    ):
        value = str(s.get(key, default))
        try:
            if not low <= duration_seconds(value) <= high:
                out.append((f"scaling.{key}", f"{value!r} must be {bounds}"))
        except ValueError as e:
            out.append((f"scaling.{key}", str(e)))
    if not 1 <= panic <= 100:
        out.append(("scaling.panic_window_percentage", f"{panic} must be between 1 and 100"))
    if deadline < startup_budget_seconds:
        out.append(
            (
                "progress_deadline_seconds",
                f"{deadline} is shorter than the startup budget {startup_budget_seconds}: Knative would fail every "
                "revision while the model is still loading",
            )
        )
    return out


def scaling_annotations(
    scaling: KnativeScalingArgs | None, startup_budget_seconds: int, progress_deadline_seconds: int | None = None
) -> dict[str, str]:
    """Knative's per-revision autoscaling annotations (settings checked by ``scaling_problems``)."""
    s = scaling or {}
    deadline = progress_deadline_seconds or default_progress_deadline(startup_budget_seconds)
    panic = float(s.get("panic_window_percentage", DEFAULT_PANIC_WINDOW_PERCENTAGE))
    min_scale, max_scale = s.get("min_scale", 0), s.get("max_scale", DEFAULT_MAX_SCALE)
    initial, target = (
        s.get("initial_scale", DEFAULT_INITIAL_SCALE),
        s.get("target_concurrency", DEFAULT_TARGET_CONCURRENCY),
    )
    window, delay = s.get("stable_window", DEFAULT_STABLE_WINDOW), s.get("scale_down_delay", DEFAULT_SCALE_DOWN_DELAY)
    return {
        # KPA is the class that can scale to zero; it scales on in-flight requests per pod.
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "concurrency",
        "autoscaling.knative.dev/target": str(target),
        "autoscaling.knative.dev/min-scale": str(min_scale),
        "autoscaling.knative.dev/max-scale": str(max_scale),
        "autoscaling.knative.dev/initial-scale": str(initial),
        "autoscaling.knative.dev/scale-down-delay": delay,
        "autoscaling.knative.dev/window": window,
        "autoscaling.knative.dev/panic-window-percentage": f"{panic:.1f}",
        "serving.knative.dev/progress-deadline": f"{deadline}s",
    }


def check_knative_args(name: str, args: KnativeVllmServiceArgs) -> None:
    """What Knative would refuse (or fail every revision for), as ``ComponentArgsError`` before
    anything is registered: scaling settings, Knative's own env vars, config-features flags the
    pod needs but the cluster lacks, and the GPU fit."""

    def fail(path: str, problem: str) -> ComponentArgsError:
        return ComponentArgsError("KnativeVllmService", name, path, problem)

    budget = args.get("startup_budget_seconds") or STARTUP_UNKNOWN_SIZE_SECONDS
    problems = scaling_problems(args.get("scaling"), budget, args.get("progress_deadline_seconds"))
    if problems:
        raise fail(*problems[0])
    for key in sorted(KNATIVE_RESERVED_ENV & set(args.get("extra_env") or {})):
        raise fail(f"extra_env.{key}", "Knative sets this variable itself and refuses a revision that sets it")
    enabled = args.get("enabled_features")
    if enabled is not None:
        # The flags depend on which pod-spec fields are set, not on their values: a placeholder
        # Secret name builds the same shape before the real Secret exists.
        source = args.get("object_storage")
        pod_spec = knative_pod_spec(serving_pod_inputs(args, "api-key", budget, pod_shape(source) if source else None))
        missing = sorted(knative_features_needed(pod_spec) - set(enabled))
        if missing:
            raise fail(
                "enabled_features",
                f"lacks {', '.join(missing)}: Knative would refuse the vLLM pod; enable them in config-features "
                "(or let KnativeServing install Knative)",
            )
    check_serving_fit("KnativeVllmService", name, args)


def check_canary_args(name: str, args: KnativeVllmServiceArgs) -> dict | None:
    """The canary's args (the model's, with the canary's engine, image and weights path), checked like
    the model's; None without a canary. Also refuses a name too long for a named revision."""

    def fail(path: str, problem: str) -> ComponentArgsError:
        return ComponentArgsError("KnativeVllmService", name, path, problem)

    if len(name) > kc.MAX_SERVICE_NAME:  # every template is named <name>-<digest>, a DNS label of 63 at most
        raise fail(
            "",
            f"name {name!r} is longer than {kc.MAX_SERVICE_NAME} characters: its revision names "
            f"(<name>-<{kc.DIGEST_CHARS} hex digits>) would exceed Knative's 63",
        )
    canary = args.get("canary")
    if canary is None:
        return None
    if not 1 <= canary["weight"] <= 99:
        raise fail("canary.weight", f"{canary['weight']} is not a percent between 1 and 99")
    overrides: dict[str, Any] = {k: canary[k] for k in ("engine", "image", "model_path") if k in canary}
    if not overrides:
        raise fail("canary", "differs from the model in nothing: give its engine, image or model_path")
    if "engine" in overrides:
        served, own = args["engine"]["served_model_name"], overrides["engine"]["served_model_name"]
        if not isinstance(served, pulumi.Output) and not isinstance(own, pulumi.Output) and own != served:
            raise fail(
                "canary.engine.served_model_name",
                f"{own!r} differs from the model's {served!r}: "
                "both variants answer the same name (clients cannot tell them apart)",
            )
        try:
            check_extra_args("KnativeVllmService", name, overrides["engine"])
        except ComponentArgsError as e:
            raise fail(f"canary.{e.path}", e.problem) from None
    canary_args = {**args, **overrides}
    del canary_args["canary"]
    check_serving_fit("KnativeVllmService", name, canary_args)
    return canary_args


class KnativeVllmService(ServingComponent):
    """A vLLM server as a Knative Service (scale to zero), with its API-key Secret and NetworkPolicy."""

    url: pulumi.Output[str]
    """In-cluster URL of the Knative Service (through Knative's ingress, port 80)."""
    revision_name: pulumi.Output[str]
    """Knative revision of the model's settings (``<service>-<digest>``): the stable revision under a canary."""
    canary_revision_name: pulumi.Output[str | None]
    """Knative revision of the canary, when there is one (the PodMonitor labels its series ``variant="canary"``)."""
    canary_url: pulumi.Output[str | None]
    """In-cluster URL that reaches the canary revision only (its traffic tag), when there is one."""

    def __init__(self, name: str, args: KnativeVllmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("KnativeVllmService", name, args, KnativeVllmServiceArgs)
        check_extra_args("KnativeVllmService", name, args["engine"])
        source = check_weights_source("KnativeVllmService", name, args)  # cache volume or object storage
        check_knative_args(name, args)
        canary_args = check_canary_args(name, args)
        super().__init__("KnativeVllmService", name, args, opts)  # and the API-key Secret
        ns = args["namespace"]
        streaming = self.weights_streaming(source)
        service, stable_template, canary_template = self._knative_service(name, args, canary_args, streaming)
        self.network_policy(knative_ingress(args))

        self.service_name = service.metadata["name"]  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime
        self.revision_name = stable_template.apply(lambda t: t["metadata"]["name"])
        self.canary_revision_name = (
            canary_template.apply(lambda t: t["metadata"]["name"])
            if canary_template is not None
            else pulumi.Output.from_input(None)
        )
        self.canary_url = (
            kc.tagged_url(kc.CANARY_TAG, service.metadata["name"], ns)  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime
            if canary_template is not None
            else pulumi.Output.from_input(None)
        )
        self.url = pulumi.Output.concat("http://", service.metadata["name"], ".", ns, ".svc.cluster.local")  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime
        self.endpoint = pulumi.Output.concat(self.url, "/v1")
        self.register_outputs(
            {
                **self.serving_outputs(),
                "revision_name": self.revision_name,
                "canary_revision_name": self.canary_revision_name,
                "canary_url": self.canary_url,
                "url": self.url,
            }
        )

    def _knative_service(
        self,
        name: str,
        args: KnativeVllmServiceArgs,
        canary_args: dict | None,
        streaming: ObjectStoragePod | None,
    ) -> tuple[k8s.apiextensions.CustomResource, pulumi.Output, pulumi.Output | None]:
        """``<name>-ksvc`` and its revision templates (stable; canary or None)."""
        ns, meta_labels = args["namespace"], self._server_labels
        budget = args.get("startup_budget_seconds") or STARTUP_UNKNOWN_SIZE_SECONDS
        timeout = args.get("request_timeout_seconds") or default_request_timeout(budget + SCHEDULING_SECONDS)
        annotations = {
            **(args.get("pod_annotations") or {}),
            **scaling_annotations(args.get("scaling"), budget, args.get("progress_deadline_seconds")),
        }
        progress_deadline = args.get("progress_deadline_seconds") or default_progress_deadline(budget)

        def pod_for(a: Mapping[str, Any]) -> dict:
            return knative_pod_spec(serving_pod_inputs(a, self.api_key_secret_name, budget, streaming))

        def template(a: Mapping[str, Any]) -> pulumi.Output[dict]:
            """A revision template, named for its content (``knative_canary.revision_name``)."""
            return kc.named_template(
                name,
                {
                    "metadata": {"labels": meta_labels, "annotations": annotations},
                    "spec": {
                        **pod_for(a),
                        # 0: no hard per-pod limit; vLLM batches and queues itself.
                        "containerConcurrency": (args.get("scaling") or {}).get("container_concurrency", 0),
                        "timeoutSeconds": timeout,
                    },
                },
            )

        stable_template = template(args)
        service_spec: dict = {"template": stable_template}
        canary_template = None
        if canary_args is not None:
            # One template per Service: the canary's is the new revision; the stable one already exists.
            canary_template = template(canary_args)
            weight = args["canary"]["weight"]
            service_spec = {
                "template": canary_template,
                "traffic": pulumi.Output.all(stable_template, canary_template).apply(
                    lambda ts: kc.traffic(ts[0]["metadata"]["name"], ts[1]["metadata"]["name"], weight)
                ),
            }

        service = k8s.apiextensions.CustomResource(
            f"{name}-ksvc",
            api_version=KNATIVE_SERVING_API,
            kind="Service",
            metadata={
                "name": name,
                "namespace": ns,
                "labels": {
                    **meta_labels,
                    **(
                        {"networking.knative.dev/visibility": "cluster-local"}
                        if args.get("cluster_local", True)
                        else {}
                    ),
                },
                # Awaited like a Deployment: pulumi up ends once the revision is ready (the model loaded,
                # with initial scale 1) or Knative has failed it at its progress deadline.
                "annotations": {
                    WAIT_FOR_ANNOTATION: "condition=Ready",
                    **timeout_annotation(knative_await_seconds(progress_deadline)),
                },
            },
            spec=service_spec,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return service, stable_template, canary_template


def knative_ingress(args: KnativeVllmServiceArgs) -> list[dict]:
    """Who may reach a Knative server's pods. Requests reach the pod through queue-proxy, from the
    activator (while scaling from zero or under a burst) or the ingress gateway; vLLM's own port is
    reached only by queue-proxy (localhost) and by Prometheus for /metrics."""
    net = args.get("network") or {}
    knative_ns = list(args.get("knative_namespaces") or DEFAULT_KNATIVE_NAMESPACES)
    monitoring = list(net.get("monitoring_namespaces", []))

    def tcp(*ports: int) -> list[dict]:
        return [{"port": p, "protocol": "TCP"} for p in ports]

    ingress = [
        {
            "from": [{"podSelector": {}}, namespace_selector(knative_ns)],
            "ports": tcp(QUEUE_PROXY_HTTP_PORT, QUEUE_PROXY_H2C_PORT, QUEUE_PROXY_AUTOSCALER_METRICS_PORT),
        }
    ]
    if monitoring:
        ingress.append(
            {"from": [namespace_selector(monitoring)], "ports": tcp(HTTP_PORT, QUEUE_PROXY_USER_METRICS_PORT)}
        )
    return ingress
