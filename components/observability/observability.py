"""Observability: Prometheus, Grafana, the DCGM exporter, vLLM scraping, alert rules, dashboards.

- kube-prometheus-stack (pinned chart) as Helm release ``kube-prometheus-stack`` with
  ``fullnameOverride: kube-prometheus-stack``, so Prometheus is always at
  ``http://kube-prometheus-stack-prometheus.<namespace>.svc.cluster.local:9090``; or, with
  ``install_prometheus_stack: False``, an existing Prometheus Operator picks up the monitors
  and rules through ``monitor_labels``;
- the DCGM exporter (pinned chart) on GPU nodes only, with its ServiceMonitor;
- one PodMonitor scraping every vLLM pod (``app.kubernetes.io/name: vllm``) on port ``http``;
  it keeps vLLM's ``model_name`` label and adds ``model`` (the stack's model name) and
  ``job="vllm"``;
- a PrometheusRule built by ``llmstack_k8s.observability.alerts``;
- the Grafana dashboards in ``components/observability/dashboards/*.json`` as ConfigMaps for Grafana's sidecar.
"""

import json
import re
from importlib import resources
from typing import NamedTuple, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from typing_extensions import NotRequired

from .._core.helm import ChartSourceArgs, check_chart_source, pinned_release
from .._core.package import (
    CANARY_VARIANT,
    MANAGED_BY,
    STABLE_VARIANT,
    VARIANT_OF_POD_LABEL,
    VARIANT_POD_LABEL,
    type_token,
)
from .._core.validation import args_error, validate_args
from ..cluster.scheduling import SchedulingContractArgs, default_contract
from ..serving.knative_canary import REVISION_POD_LABEL
from ..serving.vllm_pod import PORT_NAME
from ..versions import DCGM_EXPORTER, KUBE_PROMETHEUS_STACK, Chart
from . import metrics
from .alerts import (
    MODEL_LABEL,
    VARIANT_LABEL,
    VLLM_JOB,
    AlertThresholdsArgs,
    MonitoredModelArgs,
    rule_groups,
    thresholds_with_defaults,
)

#: Helm release name and fullnameOverride of kube-prometheus-stack (other components rely on it).
STACK_RELEASE = "kube-prometheus-stack"
DEFAULT_NAMESPACE = "monitoring"
#: Namespace of the DCGM exporter beside an existing Prometheus (created privileged by Observability).
DEFAULT_DCGM_NAMESPACE = "dcgm-exporter"
#: Label (and value) Grafana's dashboard sidecar watches for (the chart's default).
DASHBOARD_LABEL = ("grafana_dashboard", "1")
#: Node label GPU Feature Discovery puts on GPU nodes; the DCGM exporter's node selector when
#: the scheduling contract has none (the exporter crashes on a node without a GPU).
GPU_PRESENT_LABEL = {"nvidia.com/gpu.present": "true"}
#: API of the Prometheus Operator's monitors and rules (CRDs installed by kube-prometheus-stack).
MONITORING_API = "monitoring.coreos.com/v1"
#: dcgm-exporter 4.8.x settings (environment of its container) for GPUs handed out under another
#: resource name than ``nvidia.com/gpu``/``nvidia.com/mig-*``, and for shared GPUs (device ids
#: ``<uuid>::<n>``): without them it maps no GPU to the pod using it.
DCGM_RESOURCE_NAMES_ENV = "NVIDIA_RESOURCE_NAMES"
DCGM_VIRTUAL_GPUS_ENV = "KUBERNETES_VIRTUAL_GPUS"
#: Port name the Knative queue-proxy sidecar leaves to the user container (Knative renames ports).
KNATIVE_USER_PORT = "user-port"

_PLACEHOLDER = re.compile(r"\{\{metric:([A-Z0-9_]+)\}\}")


def _pod_label_meta(key: str) -> str:
    """Prometheus' discovery label of a pod label (every character outside [a-zA-Z0-9_] becomes ``_``)."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def knative_canary_relabeling(revisions: list) -> list[dict]:
    """``variant="canary"`` on the series of pods of these Knative revisions (names are DNS labels:
    no regex metacharacters)."""
    if not revisions:
        return []
    return [
        {
            "sourceLabels": [_pod_label_meta(REVISION_POD_LABEL)],
            "regex": pulumi.Output.all(*revisions).apply(lambda names: "|".join(sorted(set(names)))),
            "targetLabel": VARIANT_LABEL,
            "replacement": CANARY_VARIANT,
        }
    ]


class PrometheusArgs(TypedDict):
    """Prometheus server sizing (kube-prometheus-stack only)."""

    retention: NotRequired[pulumi.Input[str]]
    """How long samples are kept (Prometheus duration, default ``7d``)."""
    retention_size: NotRequired[pulumi.Input[str]]
    """Most disk the TSDB may use (e.g. ``85GB``); keep it below ``storage_size``."""
    storage_size: NotRequired[str]
    """Size of a persistent volume for the TSDB (e.g. ``100Gi``); without it data lives in an emptyDir."""
    storage_class_name: NotRequired[pulumi.Input[str]]
    """StorageClass of that volume (default: the cluster's default)."""
    cpu: NotRequired[pulumi.Input[str]]
    """CPU request (default ``500m``)."""
    memory: NotRequired[pulumi.Input[str]]
    """Memory request and limit (default ``2Gi``)."""


class ObservabilityNamesArgs(TypedDict):
    """Names of the objects Observability creates under fixed names, so two instances (or another
    install) in one namespace or cluster never collide."""

    pod_monitor: NotRequired[str]
    """PodMonitor scraping the vLLM pods (default ``<component name>-vllm``)."""
    prometheus_rule: NotRequired[str]
    """PrometheusRule holding the alerts (default ``<component name>-alerts``)."""
    dashboard_prefix: NotRequired[str]
    """Prefix of the dashboard ConfigMaps, ``<prefix>-<dashboard>`` (default ``<component name>-dashboard``)."""
    grafana_admin_secret: NotRequired[str]
    """Secret holding Grafana's admin credentials (default ``<component name>-grafana-admin``)."""
    prometheus_stack_release: NotRequired[str]
    """Helm release name and ``fullnameOverride`` of kube-prometheus-stack; Prometheus is at
    ``http://<it>-prometheus.<namespace>.svc.cluster.local:9090`` (default ``kube-prometheus-stack``,
    which GpuAutoscaling's default Prometheus URL assumes; the chart's cluster-wide objects are
    named from it, so a second install needs another)."""
    dcgm_exporter_release: NotRequired[str]
    """Helm release name and ``fullnameOverride`` of the DCGM exporter (default ``dcgm-exporter``)."""


def object_names(name: str, names: ObservabilityNamesArgs | None) -> dict[str, str]:
    """Every configurable name, with its default: from the component name where nothing else
    relies on it, the well-known release names otherwise."""
    n = names or {}
    return {
        "pod_monitor": n.get("pod_monitor") or f"{name}-vllm",
        "prometheus_rule": n.get("prometheus_rule") or f"{name}-alerts",
        "dashboard_prefix": n.get("dashboard_prefix") or f"{name}-dashboard",
        "grafana_admin_secret": n.get("grafana_admin_secret") or f"{name}-grafana-admin",
        "prometheus_stack_release": n.get("prometheus_stack_release") or STACK_RELEASE,
        "dcgm_exporter_release": n.get("dcgm_exporter_release") or "dcgm-exporter",
    }


class ObservabilityArgs(TypedDict):
    """Arguments of Observability."""

    models: list[MonitoredModelArgs]
    """The served models: scraped, alerted on (per-model SLO) and shown on the dashboards."""
    serving_namespaces: list[pulumi.Input[str]]
    """Namespaces of the vLLM pods (the PodMonitor's namespace selector)."""
    knative_canary_revisions: NotRequired[list[pulumi.Input[str]]]
    """Knative revisions that are canaries (``KnativeVllmService.canary_revision_name``): their pods' series
    get ``variant="canary"``. Read from the revision's name, not from a pod label: the revision is
    reused as it is when the canary is promoted, and its series then say ``stable``."""
    namespace: NotRequired[str]
    """Namespace of Prometheus, Grafana, the exporter, monitors, rules and dashboards (default
    ``monitoring``). Plain, not an Input: the Prometheus and Grafana addresses are composed from it at preview."""
    create_namespace: NotRequired[bool]
    """Create that namespace (default: when installing kube-prometheus-stack)."""
    install_prometheus_stack: NotRequired[bool]
    """Install kube-prometheus-stack (default true). False: an existing Prometheus Operator
    (whose selectors match ``monitor_labels``) picks up the monitors and rules."""
    prometheus: NotRequired[PrometheusArgs]
    """Retention, storage and resources of Prometheus."""
    prometheus_url: NotRequired[pulumi.Input[str]]
    """In-cluster URL of an existing Prometheus (only with ``install_prometheus_stack: False``)."""
    grafana_url: NotRequired[pulumi.Input[str]]
    """URL of an existing Grafana (only with ``install_prometheus_stack: False``)."""
    install_dcgm_exporter: NotRequired[bool]
    """Install the DCGM exporter (default true; false where the GPU Operator already runs one)."""
    dcgm_exporter_namespace: NotRequired[pulumi.Input[str]]
    """Namespace of the DCGM exporter where Observability does not create ``namespace`` (an
    existing Prometheus): the exporter runs as root with SYS_ADMIN and hostPath, which only the
    privileged Pod Security level admits, and the level of a namespace the component does not own
    is not its to know; so it creates this one, labelled privileged (default ``dcgm-exporter``).
    The exporter's ServiceMonitor lives there with ``monitor_labels``: the existing Prometheus must
    select ServiceMonitors in it (kube-prometheus-stack's default namespace selector is every
    namespace). Where Observability creates ``namespace`` (privileged), the exporter runs there."""
    scheduling: NotRequired[SchedulingContractArgs]
    """GPU scheduling contract (tolerations, node selector, runtime class) for the DCGM exporter."""
    thresholds: NotRequired[AlertThresholdsArgs]
    """Alert thresholds (``llmstack_k8s.alerts.DEFAULT_THRESHOLDS`` where not given)."""
    monitor_labels: NotRequired[dict[str, pulumi.Input[str]]]
    """Labels on monitors and rules, for the Prometheus' selectors (default ``release: kube-prometheus-stack``)."""
    scrape_interval: NotRequired[str]
    """Scrape interval of the vLLM pods and GPUs (default ``15s``)."""
    names: NotRequired[ObservabilityNamesArgs]
    """Names of the PodMonitor, PrometheusRule, dashboards, Grafana admin Secret and Helm releases."""
    chart_source: NotRequired[ChartSourceArgs]
    """Where the kube-prometheus-stack and DCGM exporter charts come from: a directory of packaged
    charts or a private mirror (default: the pins' upstream repositories)."""


def dashboard_files() -> dict[str, str]:
    """``{file name: raw JSON}`` of every dashboard shipped with the package (placeholders unresolved)."""
    folder = resources.files(__package__) / "dashboards"
    return {p.name: p.read_text() for p in sorted(folder.iterdir(), key=lambda p: p.name) if p.name.endswith(".json")}


def resolve_metric_placeholders(text: str) -> str:
    """Replace ``{{metric:VLLM_KV_CACHE_USAGE}}`` with the name in ``llmstack_k8s.observability.metrics``."""

    def sub(match: re.Match) -> str:
        const = match.group(1)
        value = getattr(metrics, const, None)
        if not isinstance(value, str):
            raise KeyError(
                f"dashboard placeholder {match.group(0)}: no metric constant {const} in "
                "llmstack_k8s.observability.metrics"
            )
        return value

    return _PLACEHOLDER.sub(sub, text)


def dashboards() -> dict[str, dict]:
    """``{file name: dashboard}`` with every metric name resolved from ``llmstack_k8s.observability.metrics``."""
    return {name: json.loads(resolve_metric_placeholders(text)) for name, text in dashboard_files().items()}


def dashboard_queries(dashboard: dict) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and template-variable queries."""
    out = [t["expr"] for p in dashboard.get("panels", []) for t in p.get("targets", []) if t.get("expr")]
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            out.append(v["definition"])
    return out


def resolved_models(models: list[MonitoredModelArgs]) -> pulumi.Output[list[dict]]:
    """The models with every Output field resolved (the alert rules are plain strings)."""
    return pulumi.Output.all(*[pulumi.Output.all(**m) for m in models]).apply(list)


def observability_charts(args: ObservabilityArgs) -> list[Chart]:
    """The pinned charts an Observability with these args installs."""
    return [
        *([KUBE_PROMETHEUS_STACK] if args.get("install_prometheus_stack", True) else []),
        *([DCGM_EXPORTER] if args.get("install_dcgm_exporter", True) else []),
    ]


def _pinned(
    name: str,
    chart: Chart,
    release_name: str,
    namespace: pulumi.Input[str],
    values: dict,
    opts: pulumi.ResourceOptions,
    chart_source: ChartSourceArgs | None,
):
    # Big charts (CRDs, webhooks) need more than Helm's default 5 minutes.
    return pinned_release(name, chart, release_name, namespace, opts, values, chart_source=chart_source, timeout=900)


def _check_args(name: str, args: ObservabilityArgs) -> None:
    """The checks across fields that the TypedDict cannot express (run before registering)."""
    install_stack = args.get("install_prometheus_stack", True)
    if not install_stack and args.get("prometheus"):
        raise args_error("Observability", name, "prometheus", "applies only when install_prometheus_stack is true")
    if install_stack and (args.get("prometheus_url") or args.get("grafana_url")):
        raise args_error(
            "Observability",
            name,
            "prometheus_url" if args.get("prometheus_url") else "grafana_url",
            "names an existing install; set install_prometheus_stack to false to use it",
        )
    if not args["serving_namespaces"]:
        raise args_error("Observability", name, "serving_namespaces", "is empty; name the namespaces of the vLLM pods")
    try:  # the rules apply them inside an Output: a bad fraction would surface only after registering
        thresholds_with_defaults(args.get("thresholds"))
    except ValueError as e:
        raise args_error("Observability", name, "thresholds", str(e)) from None
    check_chart_source("Observability", name, args.get("chart_source"), observability_charts(args))


class _Endpoints(NamedTuple):
    """Where Prometheus and Grafana answer, whether installed here or already there."""

    prometheus_url: pulumi.Input[str]
    grafana_url: pulumi.Input[str] | None
    admin_password: pulumi.Output[str] | None
    operator_api: pulumi.Input[str]


def _prometheus_url(stack_release: str, ns_name: str) -> str:
    return f"http://{stack_release}-prometheus.{ns_name}.svc.cluster.local:9090"


def _existing_prometheus(args: ObservabilityArgs, stack_release: str, ns_name: str) -> _Endpoints:
    """The endpoints of an existing install (``install_prometheus_stack: False``)."""
    return _Endpoints(
        prometheus_url=args.get("prometheus_url") or _prometheus_url(stack_release, ns_name),
        grafana_url=args.get("grafana_url"),
        admin_password=None,
        operator_api=MONITORING_API,  # an existing Prometheus Operator: its CRDs are there
    )


def dcgm_exporter_values(
    release: str, contract: SchedulingContractArgs, interval: str, monitor_labels: dict[str, pulumi.Input[str]]
) -> dict:
    """Helm values of the DCGM exporter: on the contract's GPU nodes, mapping GPUs to the pods using them."""
    values: dict = {
        "fullnameOverride": release,
        "nodeSelector": contract.get("node_selector") or GPU_PRESENT_LABEL,
        "tolerations": contract.get("tolerations") or [],
        "serviceMonitor": {
            "enabled": True,
            "interval": interval,
            # Keep the exporter's pod/namespace/container labels: they name the pod using the GPU.
            "honorLabels": True,
            "additionalLabels": monitor_labels,
        },
    }
    # The pool's GPU resource name (and, shared, its replica devices) so that the exporter maps
    # each GPU to the pods using it: otherwise per-pod panels and alerts stay empty.
    env = [{"name": DCGM_RESOURCE_NAMES_ENV, "value": contract["gpu_resource_name"]}]
    if contract.get("gpu_shared"):
        env.append({"name": DCGM_VIRTUAL_GPUS_ENV, "value": "true"})
    values["extraEnv"] = env
    if contract.get("runtime_class_name"):
        # An output of whatever provides the RuntimeClass (GpuNodePool): the release waits for it.
        values["runtimeClassName"] = contract["runtime_class_name"]
    return values


def vllm_relabelings(knative_canary_revisions: list) -> list[dict]:
    """Relabelings of every vLLM target.

    vLLM's own labels (model_name, engine) are kept; the target gets the stack's model name and a
    stable job name, which alerts and autoscalers select on."""
    return [
        {
            "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
            "targetLabel": MODEL_LABEL,
        },
        {"targetLabel": "job", "replacement": VLLM_JOB},
        # Canary pods: the model they are a variant of, and variant="canary"; every
        # other pod is variant="stable" (dashboards and alerts compare the two).
        {
            "sourceLabels": [_pod_label_meta(VARIANT_OF_POD_LABEL)],
            "regex": "(.+)",
            "targetLabel": MODEL_LABEL,
        },
        {"targetLabel": VARIANT_LABEL, "replacement": STABLE_VARIANT},
        {
            "sourceLabels": [_pod_label_meta(VARIANT_POD_LABEL)],
            "regex": "(.+)",
            "targetLabel": VARIANT_LABEL,
        },
        *knative_canary_relabeling(knative_canary_revisions),
    ]


class Observability(pulumi.ComponentResource):
    """Prometheus + Grafana (kube-prometheus-stack), the DCGM exporter, scraping of every vLLM
    server, alert rules and Grafana dashboards."""

    prometheus_url: pulumi.Output[str]
    """In-cluster URL of Prometheus (the query endpoint autoscalers use)."""
    grafana_url: pulumi.Output[str | None]
    """In-cluster URL of Grafana (``kubectl port-forward`` to reach it), if known."""
    grafana_admin_password: pulumi.Output[str | None]
    """Grafana's generated admin password (secret; user ``admin``), when the stack installs Grafana."""
    namespace: pulumi.Output[str]
    """Namespace of the monitoring objects."""
    rule_name: pulumi.Output[str]
    """Name of the PrometheusRule holding the alerts."""
    prometheus_operator_api: pulumi.Output[str]
    """API version of the Prometheus Operator's monitors (``monitoring.coreos.com/v1``), known once
    its CRDs are installed: give it to whatever installs monitors of its own (``GpuAutoscaling``)."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("Observability", name, args, ObservabilityArgs)
        _check_args(name, args)
        super().__init__(type_token("Observability"), name, {}, opts)
        ns_name = args.get("namespace") or DEFAULT_NAMESPACE
        names = object_names(name, args.get("names"))
        stack_release = names["prometheus_stack_release"]
        monitor_labels = dict(args.get("monitor_labels") or {"release": stack_release})
        interval = args.get("scrape_interval") or "15s"
        base_labels = {**MANAGED_BY, "app.kubernetes.io/component": "observability"}

        deps: list[pulumi.Resource] = []
        ns: pulumi.Input[str] = ns_name
        created_namespace = bool(args.get("create_namespace", args.get("install_prometheus_stack", True)))
        if created_namespace:
            namespace = self._privileged_namespace(f"{name}-ns", ns_name, base_labels)
            ns = namespace.metadata["name"]
            deps.append(namespace)
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=list(deps))

        if args.get("install_prometheus_stack", True):
            endpoints, stack = self._prometheus_stack(name, args, names, ns, ns_name, deps, base_labels)
            deps.append(stack)  # the chart installs the Prometheus Operator CRDs the objects below use
        else:
            endpoints = _existing_prometheus(args, stack_release, ns_name)
        after_stack = pulumi.ResourceOptions(parent=self, depends_on=list(deps))

        if args.get("install_dcgm_exporter", True):
            self._dcgm_exporter(
                name, args, names, ns_name, created_namespace, deps, base_labels, monitor_labels, interval
            )
        monitored_labels = {**base_labels, **monitor_labels}
        self._vllm_pod_monitor(name, args, names["pod_monitor"], ns, monitored_labels, interval, after_stack)
        rule = self._rules(name, args, names["prometheus_rule"], ns, monitored_labels, after_stack)
        self._dashboards(name, names["dashboard_prefix"], ns, base_labels, in_ns)

        self.prometheus_url = pulumi.Output.from_input(endpoints.prometheus_url)
        self.grafana_url = pulumi.Output.from_input(endpoints.grafana_url)
        admin_password = endpoints.admin_password
        self.grafana_admin_password = (
            pulumi.Output.secret(admin_password) if admin_password is not None else pulumi.Output.from_input(None)
        )
        self.namespace = pulumi.Output.from_input(ns)
        self.rule_name = rule.metadata["name"]  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime
        self.prometheus_operator_api = pulumi.Output.from_input(endpoints.operator_api)
        self.register_outputs(
            {
                "prometheus_url": self.prometheus_url,
                "grafana_url": self.grafana_url,
                "grafana_admin_password": self.grafana_admin_password,
                "namespace": self.namespace,
                "rule_name": self.rule_name,
                "prometheus_operator_api": self.prometheus_operator_api,
            }
        )

    def _privileged_namespace(
        self, resource_name: str, ns_name: pulumi.Input[str], base_labels: dict
    ) -> k8s.core.v1.Namespace:
        # node-exporter (host network/PID/paths) and the DCGM exporter (root, SYS_ADMIN for
        # profiling counters) cannot run under the baseline or restricted standards.
        return k8s.core.v1.Namespace(
            resource_name,
            metadata={
                "name": ns_name,
                "labels": {**base_labels, "pod-security.kubernetes.io/enforce": "privileged"},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _prometheus_stack(
        self,
        name: str,
        args: ObservabilityArgs,
        names: dict[str, str],
        ns: pulumi.Input[str],
        ns_name: str,
        deps: list[pulumi.Resource],
        base_labels: dict,
    ) -> tuple[_Endpoints, pulumi.Resource]:
        """Grafana's admin password and Secret, then the kube-prometheus-stack release."""
        stack_release = names["prometheus_stack_release"]
        child = pulumi.ResourceOptions(parent=self)
        admin_password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False, opts=child).result
        secret_password: pulumi.Output[str] = pulumi.Output.secret(admin_password)
        admin_secret = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": names["grafana_admin_secret"], "namespace": ns, "labels": base_labels},
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": secret_password},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(deps)),
        )
        stack = _pinned(
            f"{name}-kube-prometheus-stack",
            KUBE_PROMETHEUS_STACK,
            stack_release,
            ns_name,
            self._stack_values(args.get("prometheus") or {}, stack_release, names["grafana_admin_secret"]),
            pulumi.ResourceOptions(parent=self, depends_on=[*deps, admin_secret]),
            args.get("chart_source"),
        )
        endpoints = _Endpoints(
            prometheus_url=_prometheus_url(stack_release, ns_name),
            grafana_url=f"http://{stack_release}-grafana.{ns_name}.svc.cluster.local",
            admin_password=admin_password,
            operator_api=stack.name.apply(lambda _: MONITORING_API),
        )
        return endpoints, stack

    def _dcgm_exporter(
        self,
        name: str,
        args: ObservabilityArgs,
        names: dict[str, str],
        ns_name: str,
        created_namespace: bool,
        deps: list[pulumi.Resource],
        base_labels: dict,
        monitor_labels: dict[str, pulumi.Input[str]],
        interval: str,
    ) -> None:
        """The DCGM exporter release, in a privileged namespace of its own where ``namespace`` is not ours."""
        dcgm_ns: pulumi.Input[str] = ns_name
        dcgm_opts = pulumi.ResourceOptions(parent=self, depends_on=list(deps))
        if not created_namespace:
            # Not our namespace: its Pod Security level is unknown, the exporter needs privileged.
            dcgm_namespace = self._privileged_namespace(
                f"{name}-dcgm-ns", args.get("dcgm_exporter_namespace") or DEFAULT_DCGM_NAMESPACE, base_labels
            )
            dcgm_ns = dcgm_namespace.metadata["name"]
            dcgm_opts = pulumi.ResourceOptions(parent=self, depends_on=[*deps, dcgm_namespace])
        values = dcgm_exporter_values(
            names["dcgm_exporter_release"],
            args.get("scheduling") or default_contract(),
            interval,
            monitor_labels,
        )
        _pinned(
            f"{name}-dcgm-exporter",
            DCGM_EXPORTER,
            names["dcgm_exporter_release"],
            dcgm_ns,
            values,
            dcgm_opts,
            args.get("chart_source"),
        )

    def _vllm_pod_monitor(
        self,
        name: str,
        args: ObservabilityArgs,
        monitor_name: str,
        ns: pulumi.Input[str],
        labels: dict,
        interval: str,
        opts: pulumi.ResourceOptions,
    ) -> None:
        """One PodMonitor scraping every vLLM pod of the serving namespaces."""
        k8s.apiextensions.CustomResource(
            f"{name}-vllm-podmonitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={"name": monitor_name, "namespace": ns, "labels": labels},
            spec={
                "namespaceSelector": {
                    "matchNames": pulumi.Output.all(*args["serving_namespaces"]).apply(lambda n: sorted(set(n)))
                },
                "selector": {"matchLabels": {"app.kubernetes.io/name": "vllm"}},
                "podMetricsEndpoints": [
                    {
                        "port": port,
                        "path": "/metrics",
                        "interval": interval,
                        "relabelings": vllm_relabelings(args.get("knative_canary_revisions") or []),
                    }
                    # Deployments name the port "http"; Knative renames the user container's port.
                    for port in (PORT_NAME, KNATIVE_USER_PORT)
                ],
            },
            opts=opts,
        )

    def _rules(
        self,
        name: str,
        args: ObservabilityArgs,
        rule_name: str,
        ns: pulumi.Input[str],
        labels: dict,
        opts: pulumi.ResourceOptions,
    ) -> k8s.apiextensions.CustomResource:
        """The PrometheusRule holding the alerts of ``llmstack_k8s.observability.alerts``."""
        return k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": rule_name, "namespace": ns, "labels": labels},
            # Namespaces, served names and Job names may be Outputs (wired from the servers and caches).
            spec={
                "groups": resolved_models(args["models"]).apply(
                    lambda models: rule_groups(models, args.get("thresholds"))
                )
            },
            opts=opts,
        )

    def _dashboards(
        self, name: str, prefix: str, ns: pulumi.Input[str], base_labels: dict, opts: pulumi.ResourceOptions
    ) -> None:
        """One ConfigMap per shipped dashboard, labelled for Grafana's sidecar."""
        label_key, label_value = DASHBOARD_LABEL
        for file_name, dashboard in dashboards().items():
            stem = file_name.removesuffix(".json")
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{stem}",
                metadata={
                    "name": f"{prefix}-{stem}",
                    "namespace": ns,
                    "labels": {**base_labels, label_key: label_value},
                },
                data={f"llmstack-{stem}.json": json.dumps(dashboard, indent=1, sort_keys=True)},
                opts=opts,
            )

    @staticmethod
    def _stack_values(p: PrometheusArgs, release: str = STACK_RELEASE, admin_secret: str = "grafana-admin") -> dict:
        spec: dict = {
            "retention": p.get("retention") or "7d",
            "resources": {
                "requests": {"cpu": p.get("cpu") or "500m", "memory": p.get("memory") or "2Gi"},
                "limits": {"memory": p.get("memory") or "2Gi"},
            },
            # Select every ServiceMonitor/PodMonitor/PrometheusRule in the cluster, not only the
            # chart's own (the default): the vLLM and DCGM monitors come from other releases.
            "ruleSelectorNilUsesHelmValues": False,
            "serviceMonitorSelectorNilUsesHelmValues": False,
            "podMonitorSelectorNilUsesHelmValues": False,
            "probeSelectorNilUsesHelmValues": False,
        }
        if p.get("retention_size"):
            spec["retentionSize"] = p["retention_size"]
        if p.get("storage_size"):
            claim: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": p["storage_size"]}}}
            if p.get("storage_class_name"):
                claim["storageClassName"] = p["storage_class_name"]
            spec["storageSpec"] = {"volumeClaimTemplate": {"spec": claim}}
        return {
            "fullnameOverride": release,
            "prometheus": {"prometheusSpec": spec},
            "grafana": {
                "admin": {"existingSecret": admin_secret, "userKey": "admin-user", "passwordKey": "admin-password"},
                "sidecar": {
                    "dashboards": {
                        "enabled": True,
                        "label": DASHBOARD_LABEL[0],
                        "labelValue": DASHBOARD_LABEL[1],
                        "searchNamespace": "ALL",
                    }
                },
            },
        }
