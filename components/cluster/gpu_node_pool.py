"""GpuNodePool: makes a cluster's GPU nodes usable and says how serving pods land on them.

It installs the NVIDIA device plugin (or the GPU operator, or relies on what the cluster
already runs), delivers the GPU sharing configuration (time-slicing, MPS, MIG) the way the
chart expects, creates the RuntimeClass / PriorityClass serving pods use, optionally a
Karpenter ``NodePool`` that autoprovisions GPU nodes, and outputs the scheduling contract
(``llmstack_k8s.cluster.scheduling.SchedulingContractArgs``) every serving component consumes.

With the nodes' GPU given (``gpu``), ``capacity`` states what a serving pod can get from the
pool (GPUs per node, memory per device, sharing) as plain values; the contract carries it, so the
serving components refuse, at preview, a model that cannot fit (``llmstack_k8s.sizing.gpu_fit``).
"""

import re
from enum import Enum
from typing import TypedDict, cast

import pulumi
import pulumi_kubernetes as k8s
import yaml
from typing_extensions import NotRequired

from .. import versions
from .._core.helm import ChartSourceArgs, check_chart_source, pinned_release
from .._core.package import MANAGED_BY, type_token
from .._core.validation import ComponentArgsError, validate_args

# The fit rules live in gpu_fit (pure, shared with the serving components); the sizing helpers
# stay importable from here.
# Re-exported (``X as X``: public for type checkers) where the pool's callers have always found them.
from ..sizing.gpu_fit import (
    GpuArgs as GpuArgs,
)
from ..sizing.gpu_fit import (
    GpuCapacityArgs as GpuCapacityArgs,
)
from ..sizing.gpu_fit import (
    SharingStrategy as SharingStrategy,
)
from ..sizing.gpu_fit import (
    estimate_weights_gib as estimate_weights_gib,
)
from ..sizing.gpu_fit import (
    min_gpus_to_fit as min_gpus_to_fit,
)
from .scheduling import WHOLE_GPU_RESOURCE, SchedulingContractArgs, TolerationArgs

#: Pod Security level of the namespace the device plugin / GPU operator runs in: the plugin mounts
#: hostPath (kubelet's device-plugin socket), MPS runs a privileged control daemon, the operator's
#: driver and toolkit pods are privileged. Clusters enforcing baseline/restricted by default would
#: reject them in an unlabelled namespace.
PRIVILEGED_NAMESPACE_LABELS = {"pod-security.kubernetes.io/enforce": "privileged"}
#: Resource name time-slicing and MPS advertise when they rename the shared GPU.
SHARED_GPU_RESOURCE = f"{WHOLE_GPU_RESOURCE}.shared"
#: Name of the sharing configuration inside the device plugin's ConfigMap.
SHARING_CONFIG_NAME = "default"
DEVICE_PLUGIN_NAMESPACE = "nvidia-device-plugin"
GPU_OPERATOR_NAMESPACE = "gpu-operator"
#: MIG profile names: ``<compute slices>g.<memory>gb`` (``3g.40gb``, ``1g.10gb+me``).
MIG_PROFILE = re.compile(r"^([1-7])g\.([0-9]+)gb(\+me)?$")

# The device plugin chart's own default tolerations (kept when the pool adds its own: Helm
# replaces lists instead of merging them).
_CHART_TOLERATIONS = [
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
    {"key": WHOLE_GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},
]


class GpuInstall(str, Enum):
    """What makes the GPUs schedulable on the pool's nodes."""

    DEVICE_PLUGIN = "devicePlugin"
    """Install the NVIDIA device plugin Helm chart (nodes already have the driver and container toolkit)."""
    GPU_OPERATOR = "gpuOperator"
    """Install the NVIDIA GPU Operator (driver, toolkit, device plugin, GFD) for nodes without drivers."""
    EXISTING = "existing"
    """Install nothing: the cluster already runs a device plugin (GKE, AKS GPU node pools, a shared operator)."""


class MigStrategy(str, Enum):
    """How the device plugin advertises MIG instances."""

    SINGLE = "single"
    """Every GPU of a node uses the same profile; instances are advertised as ``nvidia.com/gpu``."""
    MIXED = "mixed"
    """Instances are advertised per profile, as ``nvidia.com/mig-<profile>``."""


class ConsolidationPolicy(str, Enum):
    """When Karpenter may remove or replace a GPU node."""

    WHEN_EMPTY = "WhenEmpty"
    """Only nodes running no (non-daemon) pods: a loaded model is never moved to save money."""
    WHEN_EMPTY_OR_UNDERUTILIZED = "WhenEmptyOrUnderutilized"
    """Also repack under-used nodes (evicts servers, which then reload their weights)."""


class SharingArgs(TypedDict):
    """GPU sharing on the pool's nodes."""

    strategy: SharingStrategy
    """none, timeSlicing, mps or mig."""
    replicas: NotRequired[int]
    """timeSlicing / mps: how many pods share one GPU (at least 2)."""
    rename_resource: NotRequired[bool]
    """timeSlicing / mps: advertise shares as ``nvidia.com/gpu.shared`` so that no pod mistakes a
    share for a whole GPU (default true)."""
    mig_strategy: NotRequired[MigStrategy]
    """mig: single or mixed (default single)."""
    mig_profile: NotRequired[str]
    """mig: the profile serving pods run on (``3g.40gb``); the nodes must already be partitioned so."""


class TaintArgs(TypedDict):
    """A taint the pool's nodes carry (serving pods get the matching toleration)."""

    key: str
    """Taint key (``nvidia.com/gpu``)."""
    value: NotRequired[str]
    """Taint value (none: tolerated with ``Exists``)."""
    effect: NotRequired[str]
    """NoSchedule (default), PreferNoSchedule or NoExecute."""


class RuntimeClassArgs(TypedDict):
    """The RuntimeClass GPU pods run with (containerd clusters whose default runtime is not NVIDIA's)."""

    name: pulumi.Input[str]
    """RuntimeClass name pods refer to (``nvidia``)."""
    handler: NotRequired[pulumi.Input[str]]
    """containerd runtime handler (default: the name)."""
    create: NotRequired[bool]
    """Create the RuntimeClass (default true); false when the cluster or the GPU operator already has it."""


class PriorityClassArgs(TypedDict):
    """The PriorityClass of serving pods."""

    name: pulumi.Input[str]
    """PriorityClass name (cluster-scoped: unique per cluster)."""
    value: NotRequired[int]
    """Priority (default 100000: above ordinary workloads, far below system-critical ones)."""
    preempt: NotRequired[bool]
    """May a pending serving pod preempt lower-priority pods (default true)."""
    create: NotRequired[bool]
    """Create the PriorityClass (default true); false to refer to an existing one."""


class NodeClassRefArgs(TypedDict):
    """The cloud-specific node class a Karpenter NodePool launches nodes from."""

    group: pulumi.Input[str]
    """API group (``karpenter.k8s.aws``, ``karpenter.azure.com``)."""
    kind: pulumi.Input[str]
    """Kind (``EC2NodeClass``, ``AKSNodeClass``)."""
    name: pulumi.Input[str]
    """Name of the node class, created by the user (AMI/image with NVIDIA drivers, subnets, disks)."""


class NodeRequirementArgs(TypedDict):
    """A Karpenter node requirement (a node label selector term)."""

    key: str
    """Label key (``node.kubernetes.io/instance-type``, ``karpenter.k8s.aws/instance-gpu-name``)."""
    operator: str
    """In, NotIn, Exists, DoesNotExist, Gt, Lt."""
    values: NotRequired[list[str]]
    """Values for In / NotIn / Gt / Lt."""


class KarpenterArgs(TypedDict):
    """A Karpenter (karpenter.sh/v1) NodePool that provisions the pool's GPU nodes on demand."""

    node_class_ref: NodeClassRefArgs
    """Node class to launch from (cloud-specific, supplied by the user)."""
    gpu_limit: int
    """Most whole GPUs (``nvidia.com/gpu`` capacity) the NodePool may provision in total."""
    requirements: NotRequired[list[NodeRequirementArgs]]
    """Further requirements (instance types, GPU names, zones)."""
    capacity_types: NotRequired[list[str]]
    """``on-demand`` and/or ``spot`` (default on-demand: a reclaimed GPU drops a loaded model)."""
    consolidation_policy: NotRequired[ConsolidationPolicy]
    """When nodes may be removed (default WhenEmpty)."""
    consolidate_after: NotRequired[str]
    """How long a node must be consolidatable first (default ``10m``: a new pod may arrive after a scale-down)."""
    disruption_budget_nodes: NotRequired[str]
    """Nodes (count or percent) Karpenter may disrupt at once (default ``1``)."""
    expire_after: NotRequired[str]
    """Node lifetime before replacement (default ``720h``; ``Never`` to keep nodes)."""
    weight: NotRequired[int]
    """Priority among NodePools (higher first)."""


class GpuNodePoolArgs(TypedDict):
    """Arguments of a GpuNodePool. Every field is a plain value, not an Input, on purpose: they decide
    which children exist (plugin chart or operator, sharing config, RuntimeClass, PriorityClass,
    NodePool) and the contract and capacity serving components check against, all known at preview."""

    install: NotRequired[GpuInstall]
    """devicePlugin (default), gpuOperator or existing."""
    namespace: NotRequired[pulumi.Input[str]]
    """Namespace of the device plugin / GPU operator (default ``nvidia-device-plugin`` / ``gpu-operator``)."""
    sharing: NotRequired[SharingArgs]
    """GPU sharing (default: whole GPUs)."""
    gpu: NotRequired[GpuArgs]
    """The nodes' GPU (product, memory, GPUs per node): with it ``capacity`` carries what a pod's
    device holds and serving components refuse a model that cannot fit (default: unknown, those checks skipped)."""
    gpu_feature_discovery: NotRequired[bool]
    """Deploy GPU feature discovery (node labels ``nvidia.com/gpu.product`` etc.; always on with
    MPS, which needs its labels)."""
    node_selector: NotRequired[dict[str, pulumi.Input[str]]]
    """Labels of the pool's nodes: serving pods and the device plugin select them (the keys are plain:
    Karpenter requirements and node labels are told apart by key at preview)."""
    taints: NotRequired[list[TaintArgs]]
    """Taints of the pool's nodes (default ``nvidia.com/gpu:NoSchedule``; empty: untainted nodes)."""
    runtime_class: NotRequired[RuntimeClassArgs]
    """RuntimeClass of GPU pods (default: none, the node's default runtime)."""
    priority_class: NotRequired[PriorityClassArgs]
    """PriorityClass of serving pods (default: none)."""
    karpenter: NotRequired[KarpenterArgs]
    """Karpenter NodePool for GPU node autoprovisioning (default: none, nodes exist already)."""
    install_driver: NotRequired[bool]
    """gpuOperator only: the operator installs the NVIDIA driver (default true; false on images with drivers)."""
    chart_source: NotRequired[ChartSourceArgs]
    """Where the device plugin or GPU operator chart comes from: a directory of packaged charts or a
    private mirror (default: the pin's upstream repository)."""


def sharing_defaults(sharing: SharingArgs | None) -> SharingArgs:
    s = dict(sharing or {"strategy": SharingStrategy.NONE})
    s["strategy"] = SharingStrategy(s.get("strategy", SharingStrategy.NONE))
    return s  # type: ignore[return-value]


def gpu_resource_name(sharing: SharingArgs | None) -> str:
    """The extended resource a serving pod requests per GPU under this sharing strategy."""
    s = sharing_defaults(sharing)
    if s["strategy"] in (SharingStrategy.TIME_SLICING, SharingStrategy.MPS):
        return SHARED_GPU_RESOURCE if s.get("rename_resource", True) else WHOLE_GPU_RESOURCE
    if (
        s["strategy"] == SharingStrategy.MIG
        and MigStrategy(s.get("mig_strategy", MigStrategy.SINGLE)) == MigStrategy.MIXED
    ):
        return f"nvidia.com/mig-{s['mig_profile']}"
    return WHOLE_GPU_RESOURCE


def validate_sharing(sharing: SharingArgs | None) -> None:
    """Raise ValueError naming the argument when the sharing settings contradict each other."""
    s = sharing_defaults(sharing)
    if s["strategy"] in (SharingStrategy.TIME_SLICING, SharingStrategy.MPS):
        if int(s.get("replicas") or 0) < 2:
            raise ValueError(f"sharing.replicas must be at least 2 with strategy {s['strategy'].value} (pods per GPU)")
    elif s.get("replicas") is not None:
        raise ValueError(f"sharing.replicas applies to timeSlicing and mps only, not {s['strategy'].value}")
    if s["strategy"] == SharingStrategy.MIG:
        if not MIG_PROFILE.match(s.get("mig_profile") or ""):
            raise ValueError(f"sharing.migProfile must be a MIG profile such as 3g.40gb, not {s.get('mig_profile')!r}")
    elif s.get("mig_profile") or s.get("mig_strategy"):
        raise ValueError("sharing.migProfile / migStrategy apply to strategy mig only")


def pool_capacity(sharing: SharingArgs | None, gpu: GpuArgs | None = None) -> GpuCapacityArgs:
    """What one serving pod can get from a pool with this sharing and GPU (plain values, known at
    preview): the facts ``llmstack_k8s.gpu_fit`` measures a model against."""
    s = sharing_defaults(sharing)
    out: GpuCapacityArgs = {"gpu_resource_name": gpu_resource_name(s), "sharing": s["strategy"]}
    if s["strategy"] in (SharingStrategy.TIME_SLICING, SharingStrategy.MPS):
        out["pods_per_gpu"] = int(s["replicas"])
    if gpu:
        out["gpu"] = {
            "product": gpu["product"],
            "memory_gib": float(gpu["memory_gib"]),
            "per_node": int(gpu["per_node"]),
        }
        out["device_memory_gib"] = device_memory_gib(float(gpu["memory_gib"]), s)
    return out


def pool_charts(args: GpuNodePoolArgs) -> list[versions.Chart]:
    """The pinned charts a pool with these args installs."""
    install = GpuInstall(args.get("install", GpuInstall.DEVICE_PLUGIN))
    return {
        GpuInstall.DEVICE_PLUGIN: [versions.NVIDIA_DEVICE_PLUGIN],
        GpuInstall.GPU_OPERATOR: [versions.GPU_OPERATOR],
    }.get(install, [])


def check_pool_args(name: str, args: GpuNodePoolArgs) -> None:
    """The pool's own consistency checks, as ``ComponentArgsError`` (run before registering)."""

    def fail(path: str, problem: str) -> ComponentArgsError:
        return ComponentArgsError("GpuNodePool", name, path, problem)

    try:
        validate_sharing(args.get("sharing"))
    except ValueError as e:
        raise fail("sharing", str(e)) from None
    rc = args.get("runtime_class")
    if (
        GpuInstall(args.get("install", GpuInstall.DEVICE_PLUGIN)) == GpuInstall.GPU_OPERATOR
        and rc
        and rc.get("create", True)
    ):
        raise fail("runtime_class.create", "the GPU operator creates its RuntimeClass itself; set create to false")
    gpu = args.get("gpu")
    if gpu is None:
        return
    if gpu["memory_gib"] <= 0:
        raise fail("gpu.memory_gib", f"{gpu['memory_gib']} must be above 0 (GiB per GPU, as nvidia-smi reports it)")
    if gpu["per_node"] < 1:
        raise fail("gpu.per_node", f"{gpu['per_node']} must be at least 1")
    s = sharing_defaults(args.get("sharing"))
    if s["strategy"] == SharingStrategy.MIG and mig_profile_memory_gib(s["mig_profile"]) > gpu["memory_gib"]:
        raise fail(
            "sharing.mig_profile",
            f"{s['mig_profile']} instances hold {mig_profile_memory_gib(s['mig_profile']):.1f} GiB, more than the "
            f"whole {gpu['product']} ({gpu['memory_gib']:g} GiB): no such profile exists on this GPU",
        )
    karpenter = args.get("karpenter")
    if karpenter and karpenter["gpu_limit"] < gpu["per_node"]:
        raise fail(
            "karpenter.gpu_limit",
            f"{karpenter['gpu_limit']} is below gpu.per_node {gpu['per_node']}: Karpenter could never provision a node",
        )


def device_plugin_config(sharing: SharingArgs | None) -> str | None:
    """The device plugin's config file (``version: v1``) for the sharing strategy; None for whole GPUs."""
    s = sharing_defaults(sharing)
    strategy = s["strategy"]
    if strategy == SharingStrategy.NONE:
        return None
    if strategy == SharingStrategy.MIG:
        doc: dict = {
            "version": "v1",
            "flags": {"migStrategy": MigStrategy(s.get("mig_strategy", MigStrategy.SINGLE)).value},
        }
    else:
        resources = [{"name": WHOLE_GPU_RESOURCE, "replicas": int(s["replicas"])}]
        rename = bool(s.get("rename_resource", True))
        if strategy == SharingStrategy.TIME_SLICING:
            # A request for 2 shares could land on one physical GPU: refuse it at admission.
            sharing_doc = {
                "timeSlicing": {"renameByDefault": rename, "failRequestsGreaterThanOne": True, "resources": resources}
            }
        else:
            sharing_doc = {"mps": {"renameByDefault": rename, "resources": resources}}
        doc = {"version": "v1", "flags": {"migStrategy": "none"}, "sharing": sharing_doc}
    return yaml.safe_dump(doc, sort_keys=False)


def tolerations_for(taints: list[TaintArgs]) -> list[TolerationArgs]:
    out: list[TolerationArgs] = []
    for t in taints:
        tol: TolerationArgs = {"key": t["key"]}
        if t.get("value"):
            tol.update({"operator": "Equal", "value": t["value"]})
        else:
            tol["operator"] = "Exists"
        tol["effect"] = t.get("effect", "NoSchedule")
        out.append(tol)
    return out


def _is_well_known(key: str) -> bool:
    """Labels the cloud/Karpenter sets itself (Karpenter requirements), not labels we add to nodes."""
    domain = key.split("/", 1)[0] if "/" in key else ""
    return domain.endswith(("kubernetes.io", "k8s.io")) or "karpenter." in domain


class GpuNodePool(pulumi.ComponentResource):
    """The GPU node layer: NVIDIA device plugin (or GPU operator), GPU sharing, taints, RuntimeClass,
    PriorityClass and optionally a Karpenter NodePool; outputs the scheduling contract.

    ``contract`` (a plain ``SchedulingContractArgs``, known at preview) is what serving
    components take as their ``scheduling`` argument. ``capacity`` (plain ``GpuCapacityArgs``:
    sharing, GPU resource name, GPUs per node, memory per device) is what a serving pod can get;
    the contract carries it as ``gpu_capacity``, so serving components run the fit checks.
    """

    gpu_resource_name: pulumi.Output[str]
    """Extended resource a serving pod requests per GPU (``nvidia.com/gpu``,
    ``nvidia.com/gpu.shared``, ``nvidia.com/mig-<profile>``)."""
    node_selector: pulumi.Output[dict[str, str]]
    """Node labels serving pods must match."""
    tolerations: pulumi.Output[list[TolerationArgs]]
    """Tolerations serving pods need for the pool's taints."""
    runtime_class_name: pulumi.Output[str]
    """RuntimeClass of GPU pods (empty: the node's default runtime)."""
    priority_class_name: pulumi.Output[str]
    """PriorityClass of serving pods (empty: none)."""
    node_pool_name: pulumi.Output[str]
    """Name of the Karpenter NodePool (empty: none)."""
    gpu_shared: pulumi.Output[bool]
    """Pods share physical GPUs (time-slicing or MPS): the device plugin hands out replica devices."""

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("GpuNodePool", name, args, GpuNodePoolArgs)
        check_pool_args(name, args)
        check_chart_source("GpuNodePool", name, args.get("chart_source"), pool_charts(args))
        super().__init__(type_token("GpuNodePool"), name, {}, opts)
        install = GpuInstall(args.get("install", GpuInstall.DEVICE_PLUGIN))
        sharing = sharing_defaults(args.get("sharing"))
        node_selector = dict(args.get("node_selector") or {})
        taints: list[TaintArgs] = (
            list(args["taints"]) if "taints" in args else [{"key": WHOLE_GPU_RESOURCE, "effect": "NoSchedule"}]
        )
        tolerations = tolerations_for(taints)
        rc = args.get("runtime_class")
        pc = args.get("priority_class")
        meta_labels = _pool_labels(name)
        child = pulumi.ResourceOptions(parent=self)

        runtime_class_name, runtime_class = self._runtime_class(name, rc, node_selector, tolerations, meta_labels)
        priority_class_name = self._priority_class(name, pc, meta_labels)

        plugin_config = device_plugin_config(sharing)
        if install == GpuInstall.DEVICE_PLUGIN:
            # The plugin's pods use the RuntimeClass: it must exist before they are admitted.
            plugin_opts = pulumi.ResourceOptions(parent=self, depends_on=[runtime_class] if runtime_class else [])
            self._device_plugin(
                name, args, sharing, plugin_config, node_selector, tolerations, rc, meta_labels, plugin_opts
            )
        elif install == GpuInstall.GPU_OPERATOR:
            operator = self._gpu_operator(name, args, sharing, plugin_config, tolerations, meta_labels, child)
            if rc and not rc.get("create", True):
                # The operator creates this RuntimeClass: the name, as an output of the operator's
                # release, makes every pod using it (serving pods, the DCGM exporter) wait for it.
                runtime_class_name = operator.name.apply(lambda _, n=rc["name"]: n)  # type: ignore[misc]  # mypy cannot type a lambda with a default (it binds the loop's value)

        node_pool_name: pulumi.Input[str] = ""
        karpenter = args.get("karpenter")
        if karpenter:
            node_pool_name = self._karpenter(name, karpenter, node_selector, taints, meta_labels, child)

        # Plain facts (known at preview) for the fit checks; the contract carries them to serving components.
        self.capacity: GpuCapacityArgs = pool_capacity(sharing, args.get("gpu"))
        resource = gpu_resource_name(sharing)
        shared = sharing["strategy"] in (SharingStrategy.TIME_SLICING, SharingStrategy.MPS)
        self.contract: SchedulingContractArgs = scheduling_contract(
            resource,
            tolerations,
            shared,
            node_selector,
            runtime_class_name if rc else None,
            priority_class_name if pc else None,
            self.capacity,
        )

        self.gpu_resource_name = pulumi.Output.from_input(resource)
        # from_input resolves nested Inputs as well; its type does not say so.
        self.node_selector = pulumi.Output.from_input(node_selector)  # type: ignore[arg-type]
        self.tolerations = pulumi.Output.from_input([TolerationArgs(**t) for t in tolerations])
        self.runtime_class_name = pulumi.Output.from_input(runtime_class_name)
        self.priority_class_name = pulumi.Output.from_input(priority_class_name)
        self.node_pool_name = pulumi.Output.from_input(node_pool_name)
        self.gpu_shared = pulumi.Output.from_input(shared)
        self.register_outputs(
            {
                "gpu_resource_name": self.gpu_resource_name,
                "node_selector": self.node_selector,
                "tolerations": self.tolerations,
                "runtime_class_name": self.runtime_class_name,
                "priority_class_name": self.priority_class_name,
                "node_pool_name": self.node_pool_name,
                "gpu_shared": self.gpu_shared,
            }
        )

    def _runtime_class(
        self,
        name: str,
        rc: RuntimeClassArgs | None,
        node_selector: dict[str, pulumi.Input[str]],
        tolerations: list[TolerationArgs],
        meta_labels: dict[str, str],
    ) -> tuple[pulumi.Input[str], k8s.node.v1.RuntimeClass | None]:
        """The RuntimeClass of GPU pods where the pool creates it; its name ("": none) and the resource."""
        if not rc:
            return "", None
        if not rc.get("create", True):
            return rc["name"], None
        runtime_class = k8s.node.v1.RuntimeClass(
            f"{name}-runtime",
            metadata={"name": rc["name"], "labels": meta_labels},
            handler=rc.get("handler") or rc["name"],
            # Pods with this class land only on the pool's nodes, tolerating its taints.
            scheduling={k: v for k, v in (("nodeSelector", node_selector), ("tolerations", tolerations)) if v} or None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return runtime_class.metadata["name"], runtime_class

    def _priority_class(
        self, name: str, pc: PriorityClassArgs | None, meta_labels: dict[str, str]
    ) -> pulumi.Input[str]:
        """The PriorityClass of serving pods where the pool creates it; its name ("": none)."""
        if not pc:
            return ""
        if not pc.get("create", True):
            return pc["name"]
        return k8s.scheduling.v1.PriorityClass(
            f"{name}-priority",
            metadata={"name": pc["name"], "labels": meta_labels},
            value=pc.get("value", 100000),
            global_default=False,
            preemption_policy="PreemptLowerPriority" if pc.get("preempt", True) else "Never",
            description="LLM serving pods (llmstack): scheduled ahead of ordinary workloads on scarce GPUs.",
            opts=pulumi.ResourceOptions(parent=self),
        ).metadata["name"]

    def _device_plugin(
        self, name, args, sharing, plugin_config, node_selector, tolerations, rc, meta_labels, child
    ) -> None:
        chart = versions.NVIDIA_DEVICE_PLUGIN
        # MPS needs the nvidia.com/mps.capable label that GPU feature discovery sets.
        gfd = bool(args.get("gpu_feature_discovery")) or sharing["strategy"] == SharingStrategy.MPS
        plugin_tolerations = list(_CHART_TOLERATIONS)
        for t in tolerations:
            if dict(t) not in plugin_tolerations:
                plugin_tolerations.append(dict(t))
        values: dict = {"tolerations": plugin_tolerations}
        if node_selector:
            # Replaces the chart's NFD-label affinity: the plugin runs exactly on the pool's nodes
            # (with or without node feature discovery).
            values["affinity"] = {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": k, "operator": "In", "values": [v]}
                                    for k, v in sorted(node_selector.items())
                                ]
                            }
                        ]
                    }
                }
            }
        if plugin_config:
            values["config"] = {"map": {SHARING_CONFIG_NAME: plugin_config}, "default": SHARING_CONFIG_NAME}
        if rc:
            values["runtimeClassName"] = rc["name"]
        if gfd:
            values["gfd"] = {"enabled": True}
            values["nfd"] = {"worker": {"tolerations": plugin_tolerations}}
        ns_name = args.get("namespace") or DEVICE_PLUGIN_NAMESPACE
        # Created here, not by Helm (createNamespace sets no labels): hostPath and MPS's privileged
        # daemon need the privileged Pod Security level, as the GPU operator's namespace has.
        ns = k8s.core.v1.Namespace(
            f"{name}-device-plugin-ns",
            metadata={"name": ns_name, "labels": {**meta_labels, **PRIVILEGED_NAMESPACE_LABELS}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        pinned_release(
            f"{name}-device-plugin",
            chart,
            "nvidia-device-plugin",
            ns_name,
            pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[ns])),
            values,
            chart_source=args.get("chart_source"),
        )

    def _gpu_operator(self, name, args, sharing, plugin_config, tolerations, meta_labels, child) -> k8s.helm.v3.Release:
        chart = versions.GPU_OPERATOR
        ns_name = args.get("namespace") or GPU_OPERATOR_NAMESPACE
        # The operator's driver and toolkit pods are privileged: its namespace must allow them.
        ns = k8s.core.v1.Namespace(
            f"{name}-gpu-operator-ns",
            metadata={"name": ns_name, "labels": {**meta_labels, **PRIVILEGED_NAMESPACE_LABELS}},
            opts=child,
        )
        # No values.yaml fixture is pinned for this chart, so the values stay minimal: only keys
        # from NVIDIA's documentation (driver.enabled, mig.strategy, devicePlugin.config,
        # daemonsets.tolerations).
        values: dict = {
            "driver": {"enabled": bool(args.get("install_driver", True))},
            "daemonsets": {"tolerations": [dict(t) for t in tolerations]},
        }
        depends: list[pulumi.Resource] = [ns]
        if sharing["strategy"] == SharingStrategy.MIG:
            values["mig"] = {"strategy": MigStrategy(sharing.get("mig_strategy", MigStrategy.SINGLE)).value}
        elif plugin_config:
            cm = k8s.core.v1.ConfigMap(
                f"{name}-sharing",
                metadata={"name": f"{name}-gpu-sharing", "namespace": ns_name, "labels": meta_labels},
                data={SHARING_CONFIG_NAME: plugin_config},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
            )
            depends.append(cm)
            values["devicePlugin"] = {"config": {"name": f"{name}-gpu-sharing", "default": SHARING_CONFIG_NAME}}
        return pinned_release(
            f"{name}-gpu-operator",
            chart,
            "gpu-operator",
            ns_name,
            pulumi.ResourceOptions(parent=self, depends_on=depends),
            values,
            chart_source=args.get("chart_source"),
        )

    def _karpenter(self, name, karpenter, node_selector, taints, meta_labels, child) -> pulumi.Output[str]:
        requirements = [
            {
                "key": "karpenter.sh/capacity-type",
                "operator": "In",
                "values": list(karpenter.get("capacity_types") or ["on-demand"]),
            }
        ]
        requirements += [
            {"key": k, "operator": "In", "values": [v]} for k, v in sorted(node_selector.items()) if _is_well_known(k)
        ]
        for r in karpenter.get("requirements") or []:
            req = {"key": r["key"], "operator": r["operator"]}
            if r.get("values"):
                req["values"] = list(r["values"])
            requirements.append(req)
        node_labels = {k: v for k, v in node_selector.items() if not _is_well_known(k)}
        template: dict = {
            "spec": {
                "nodeClassRef": dict(karpenter["node_class_ref"]),
                "requirements": requirements,
                "taints": [
                    {
                        k: v
                        for k, v in {
                            "key": t["key"],
                            "value": t.get("value"),
                            "effect": t.get("effect", "NoSchedule"),
                        }.items()
                        if v
                    }
                    for t in taints
                ],
                "expireAfter": karpenter.get("expire_after", "720h"),
            }
        }
        if node_labels:
            template["metadata"] = {"labels": node_labels}
        spec: dict = {
            "template": template,
            # Karpenter counts whole GPUs of the instance types, whatever the sharing strategy.
            "limits": {WHOLE_GPU_RESOURCE: str(karpenter["gpu_limit"])},
            "disruption": {
                "consolidationPolicy": ConsolidationPolicy(
                    karpenter.get("consolidation_policy", ConsolidationPolicy.WHEN_EMPTY)
                ).value,
                "consolidateAfter": karpenter.get("consolidate_after", "10m"),
                "budgets": [{"nodes": karpenter.get("disruption_budget_nodes", "1")}],
            },
        }
        if karpenter.get("weight") is not None:
            spec["weight"] = karpenter["weight"]
        pool = k8s.apiextensions.CustomResource(
            f"{name}-nodepool",
            api_version="karpenter.sh/v1",
            kind="NodePool",
            metadata={"name": name, "labels": meta_labels},
            spec=spec,
            opts=child,
        )
        return pool.metadata["name"]  # type: ignore[attr-defined]  # a CustomResource's outputs are set at runtime


def _pool_labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "gpu-node-pool",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "gpu-nodes",
        **MANAGED_BY,
    }


def scheduling_contract(
    resource: str,
    tolerations: list[TolerationArgs],
    shared: bool,
    node_selector: dict[str, pulumi.Input[str]],
    runtime_class_name: pulumi.Input[str] | None,
    priority_class_name: pulumi.Input[str] | None,
    capacity: GpuCapacityArgs,
) -> SchedulingContractArgs:
    """What serving components take as their ``scheduling`` argument (None: the pool sets no such class)."""
    # A cast: a list[TolerationArgs] is a list of Inputs too (list is invariant).
    contract: SchedulingContractArgs = {
        "gpu_resource_name": resource,
        "tolerations": cast(list[pulumi.Input[TolerationArgs]], tolerations),
    }
    if shared:
        contract["gpu_shared"] = True
    if node_selector:
        contract["node_selector"] = node_selector
    if runtime_class_name is not None:
        contract["runtime_class_name"] = runtime_class_name
    if priority_class_name is not None:
        contract["priority_class_name"] = priority_class_name
    contract["gpu_capacity"] = capacity
    return contract


# --- what a pod's GPU device holds (the fit rules themselves are in gpu_fit) ------------------

_GIB = 1024**3


def mig_profile_memory_gib(profile: str) -> float:
    """Memory of one MIG instance: the profile's ``<n>gb`` are decimal gigabytes."""
    m = MIG_PROFILE.match(profile)
    if not m:
        raise ValueError(f"{profile!r} is not a MIG profile such as 3g.40gb")
    return int(m.group(2)) * 1e9 / _GIB


def device_memory_gib(gpu_memory_gib: float, sharing: SharingArgs | None) -> float:
    """Memory one serving pod's GPU device gives it under the sharing strategy.

    Time-slicing does not partition memory: the device is the whole GPU (but see
    ``gpu_fit.max_gpu_memory_utilization``). MPS limits each share to 1/replicas of the memory;
    MIG to the instance's memory.
    """
    s = sharing_defaults(sharing)
    if s["strategy"] == SharingStrategy.MPS:
        return gpu_memory_gib / int(s["replicas"])
    if s["strategy"] == SharingStrategy.MIG:
        return min(gpu_memory_gib, mig_profile_memory_gib(s["mig_profile"]))
    return gpu_memory_gib
