"""The stack file's ``gpuPool`` key, and the preview-time checks that every model fits the pool.

The fit rules are the components' (``llmstack_k8s.gpu_fit``: GPUs per node, parallelism on a
shared pool, time-sliced memory, KV-cache room), so a project importing the components gets
them too; here they are worded in the stack file's keys (``models[0] (name: x).weightsGiB``).
"""

import math
import re
from typing import Literal, Protocol

from pydantic import Field, model_validator

from llmstack_k8s.cluster import gpu_node_pool as gp
from llmstack_k8s.cluster.gpu_node_pool import ConsolidationPolicy, GpuInstall, MigStrategy, SharingStrategy
from llmstack_k8s.sizing import gpu_fit

from .base import ConfigProblem
from .base import StackModel as _Model
from .engine import _EngineModel, unknown_size_message, weights_estimate
from .lora import lora_gib
from .mig_profiles import MIG_PROFILES, has_no_mig, product_family

#: PriorityClasses Kubernetes reserves for cluster components (names with the system- prefix).
SYSTEM_PRIORITY_CLASSES = ("system-cluster-critical", "system-node-critical")

_DURATION = r"^(([0-9]+(s|m|h))+|Never)$"
_LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


class GpuConfig(_Model):
    """The GPU of the pool's nodes: what the fit checks measure models against."""

    product: str = Field(
        min_length=1, description="GPU product, for people and error messages (e.g. NVIDIA-L4, NVIDIA-H100-80GB-HBM3)."
    )
    memory_gib: float = Field(
        gt=0, alias="memoryGiB", description="Memory per GPU in GiB, as nvidia-smi reports it (L4: 22, H100 80GB: 79)."
    )
    per_node: int = Field(ge=1, le=16, description="GPUs per node.")

    def args(self) -> gp.GpuArgs:
        """GpuArgs for the component."""
        return {"product": self.product, "memory_gib": self.memory_gib, "per_node": self.per_node}


class SharingConfig(_Model):
    """How one GPU is shared between serving pods."""

    strategy: SharingStrategy = Field(SharingStrategy.NONE, description="none, timeSlicing, mps or mig.")
    replicas: int | None = Field(None, ge=2, le=48, description="timeSlicing / mps: pods per GPU.")
    rename_resource: bool = Field(
        True, description="timeSlicing / mps: pods request nvidia.com/gpu.shared instead of nvidia.com/gpu."
    )
    mig_strategy: MigStrategy | None = Field(
        None, description="mig: single (instances as nvidia.com/gpu) or mixed (nvidia.com/mig-<profile>)."
    )
    mig_profile: str | None = Field(None, description="mig: profile of the instances serving pods use (e.g. 3g.40gb).")

    def args(self) -> gp.SharingArgs:
        out: gp.SharingArgs = {"strategy": self.strategy, "rename_resource": self.rename_resource}
        for key in ("replicas", "mig_strategy", "mig_profile"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


class TaintConfig(_Model):
    """A taint of the pool's nodes."""

    key: str = Field(pattern=_LABEL_KEY, description="Taint key.")
    value: str | None = Field(None, description="Taint value (none: tolerated with Exists).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field("NoSchedule", description="Taint effect.")


class RuntimeClassConfig(_Model):
    """RuntimeClass of GPU pods."""

    name: str = Field("nvidia", description="RuntimeClass name.")
    handler: str | None = Field(None, description="containerd runtime handler (default: the name).")
    create: bool = Field(True, description="Create it (false when the cluster or GPU operator provides it).")


class PriorityClassConfig(_Model):
    """PriorityClass of serving pods."""

    name: str | None = Field(
        None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", description="Name (default: <namespace>-serving)."
    )
    value: int = Field(100000, ge=0, le=1000000000, description="Priority (user classes may go up to 1e9).")
    preempt: bool = Field(True, description="A pending serving pod may preempt lower-priority pods.")
    create: bool = Field(True, description="Create it (false: refer to an existing class).")


class NodeClassRefConfig(_Model):
    """Karpenter node class (cloud-specific, created by you)."""

    group: str = Field(min_length=1, description="e.g. karpenter.k8s.aws.")
    kind: str = Field(min_length=1, description="e.g. EC2NodeClass.")
    name: str = Field(min_length=1, description="Name of your node class.")


class RequirementConfig(_Model):
    """A Karpenter node requirement."""

    key: str = Field(pattern=_LABEL_KEY, description="Node label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(description="Operator.")
    values: list[str] = Field(default_factory=list, description="Values.")


CapacityType = Literal["on-demand", "spot", "reserved"]


class KarpenterConfig(_Model):
    """A Karpenter (karpenter.sh/v1) NodePool for GPU node autoprovisioning."""

    node_class_ref: NodeClassRefConfig = Field(description="Node class to launch GPU nodes from.")
    gpu_limit: int = Field(ge=1, description="Most whole GPUs the NodePool may provision.")
    requirements: list[RequirementConfig] = Field(default_factory=list, description="Instance types, GPU names, zones.")
    capacity_types: list[CapacityType] = Field(
        default_factory=lambda: list[CapacityType](["on-demand"]),
        min_length=1,
        description="Capacity types (default on-demand).",
    )
    consolidation_policy: ConsolidationPolicy = Field(
        ConsolidationPolicy.WHEN_EMPTY, description="WhenEmpty or WhenEmptyOrUnderutilized."
    )
    consolidate_after: str = Field("10m", pattern=_DURATION, description="Wait before consolidating a node.")
    disruption_budget_nodes: str = Field(
        "1", pattern=r"^((100|[0-9]{1,2})%|[0-9]+)$", description="Nodes disrupted at once."
    )
    expire_after: str = Field("720h", pattern=_DURATION, description="Node lifetime (Never: unlimited).")
    weight: int | None = Field(None, ge=1, le=100, description="Priority among NodePools.")

    @model_validator(mode="after")
    def _keys_karpenter_accepts(self):
        for i, r in enumerate(self.requirements):
            domain = r.key.split("/", 1)[0] if "/" in r.key else ""
            restricted = r.key in ("kubernetes.io/hostname", "karpenter.sh/nodepool") or (
                domain.endswith("karpenter.sh") and r.key != "karpenter.sh/capacity-type"
            )
            if restricted:
                raise ValueError(f"requirements[{i}].key {r.key!r} is restricted by Karpenter")
            if r.key == "karpenter.sh/capacity-type":
                raise ValueError(f"requirements[{i}]: set capacity types with capacityTypes, not a requirement")
            if r.operator in ("In", "NotIn", "Gt", "Lt") and not r.values:
                raise ValueError(f"requirements[{i}] ({r.key} {r.operator}) needs values")
        return self


class GpuPoolConfig(_Model):
    """The GPU nodes: what makes them schedulable, how GPUs are shared, how pods land on them."""

    install: GpuInstall = Field(
        GpuInstall.DEVICE_PLUGIN,
        description=(
            "devicePlugin (NVIDIA device plugin chart), gpuOperator (drivers too) or existing (install nothing)."
        ),
    )
    namespace: str | None = Field(
        None, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", description="Namespace of the plugin/operator."
    )
    gpu: GpuConfig | None = Field(None, description="The nodes' GPU; enables the fit checks (strongly recommended).")
    sharing: SharingConfig = Field(default_factory=SharingConfig, description="GPU sharing.")
    gpu_feature_discovery: bool = Field(False, description="Deploy GPU feature discovery (always on with mps).")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Labels of the pool's nodes (serving pods and the plugin select them)."
    )
    taints: list[TaintConfig] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
        validate_default=True,
        description="Taints of the pool's nodes (empty list: untainted nodes).",
    )
    runtime_class: RuntimeClassConfig | None = Field(
        None, description="RuntimeClass of GPU pods (default: the node's default runtime)."
    )
    priority_class: PriorityClassConfig = Field(
        default_factory=PriorityClassConfig, description="PriorityClass of serving pods."
    )
    karpenter: KarpenterConfig | None = Field(None, description="Karpenter NodePool for GPU node autoprovisioning.")
    install_driver: bool = Field(True, description="gpuOperator: the operator installs the NVIDIA driver.")

    @model_validator(mode="after")
    def _consistent(self):
        gp.validate_sharing(self.sharing.args())
        self._mig_profile_exists()
        name = self.priority_class.name or ""
        if name.startswith("system-"):
            raise ConfigProblem(
                "priorityClass.name",
                f"{name!r} is a system PriorityClass ({', '.join(SYSTEM_PRIORITY_CLASSES)}): Kubernetes reserves the "
                "system- prefix for cluster components and admits pods using them only in kube-system, while the "
                "serving pods run in llmstack:namespace; leave name unset (<namespace>-serving) or name your own class",
            )
        for key in self.node_selector:
            if not re.match(_LABEL_KEY, key):
                raise ValueError(f"nodeSelector key {key!r} is not a valid label key")
        if self.install == GpuInstall.GPU_OPERATOR and self.runtime_class and self.runtime_class.create:
            raise ValueError(
                "runtimeClass.create: the GPU operator creates RuntimeClass 'nvidia' itself; set create: false"
            )
        if self.karpenter:
            if not self.node_selector:
                raise ValueError(
                    "karpenter needs nodeSelector: the labels that tie serving pods to the nodes the NodePool creates"
                )
            for key in self.node_selector:
                if key.split("/", 1)[0].endswith("karpenter.sh") or key == "kubernetes.io/hostname":
                    raise ValueError(f"nodeSelector key {key!r} is restricted by Karpenter")
            if self.gpu and self.karpenter.gpu_limit < self.gpu.per_node:
                raise ValueError(
                    f"karpenter.gpuLimit {self.karpenter.gpu_limit} is below gpu.perNode {self.gpu.per_node}: no node "
                    "could ever be provisioned"
                )
        return self

    def _mig_profile_exists(self) -> None:
        s = self.sharing
        if s.strategy != SharingStrategy.MIG or not self.gpu or not s.mig_profile:
            return
        if has_no_mig(self.gpu.product):
            raise ConfigProblem(
                "sharing.strategy",
                f"mig, but gpu.product {self.gpu.product} has no MIG (MIG needs an A30, A100, H100, H200 or newer); "
                "use timeSlicing or mps to share it",
            )
        family = product_family(self.gpu.product, self.gpu.memory_gib)
        if family and s.mig_profile not in MIG_PROFILES[family]:
            raise ConfigProblem(
                "sharing.migProfile",
                f"{s.mig_profile!r} does not exist on {self.gpu.product} ({family}); its profiles are "
                f"{', '.join(MIG_PROFILES[family])}",
            )

    def gpus_needed(self, pods: int, gpus_per_pod: int) -> float:
        """Whole GPUs that ``pods`` pods take on this pool (a share of one under time-slicing/MPS/MIG)."""
        s = self.sharing
        if s.strategy == SharingStrategy.NONE:
            return pods * gpus_per_pod
        if s.strategy == SharingStrategy.MIG:
            family = self.gpu and product_family(self.gpu.product, self.gpu.memory_gib)
            per_gpu = MIG_PROFILES.get(family or "", {}).get(s.mig_profile or "", 7)  # unknown: the most MIG allows
            return pods / per_gpu
        return pods / (s.replicas or 1)

    def args(self, namespace: str) -> dict:
        """GpuNodePoolArgs for the component (the PriorityClass name defaults from the stack's namespace)."""
        out: dict = {
            "install": self.install,
            "sharing": self.sharing.args(),
            "gpu_feature_discovery": self.gpu_feature_discovery,
            "node_selector": dict(self.node_selector),
            "taints": [{k: v for k, v in t.model_dump().items() if v is not None} for t in self.taints],
            "priority_class": {
                "name": self.priority_class.name or f"{namespace}-serving",
                "value": self.priority_class.value,
                "preempt": self.priority_class.preempt,
                "create": self.priority_class.create,
            },
            "install_driver": self.install_driver,
        }
        if self.namespace:
            out["namespace"] = self.namespace
        if self.gpu:
            out["gpu"] = self.gpu.args()
        if self.runtime_class:
            out["runtime_class"] = {k: v for k, v in self.runtime_class.model_dump().items() if v is not None}
        if self.karpenter:
            k = self.karpenter
            out["karpenter"] = {
                "node_class_ref": k.node_class_ref.model_dump(),
                "gpu_limit": k.gpu_limit,
                "requirements": [r.model_dump() for r in k.requirements],
                "capacity_types": list(k.capacity_types),
                "consolidation_policy": k.consolidation_policy,
                "consolidate_after": k.consolidate_after,
                "disruption_budget_nodes": k.disruption_budget_nodes,
                "expire_after": k.expire_after,
                **({"weight": k.weight} if k.weight is not None else {}),
            }
        return out


class _ModelLike(_EngineModel, Protocol):
    """What the GPU fit check reads of a model (ModelConfig, frozen: read-only members)."""

    @property
    def name(self) -> str: ...

    @property
    def gpu_memory_utilization(self) -> float: ...

    @property
    def gpus_per_replica(self) -> int: ...


def fit_weights(m: _ModelLike) -> tuple[float, str, str] | None:
    """(GiB of weights in GPU memory, the key that states them, how) for the fit check: weightsGiB,
    else the catalog's architecture (one source:
    ``engine.weights_estimate``); None when nothing tells the size."""
    weights = weights_estimate(m)
    if weights is None:
        return None
    gib, source, key = weights
    lora = lora_gib(m) if getattr(m, "lora_adapters", None) else None  # lora: the adapter slots take GPU memory too
    if lora and lora[0]:
        return gib + lora[0], key, f"{source} + {lora[1]}"
    return gib, key, source


def check_models_fit(pool: GpuPoolConfig, models: list[_ModelLike]) -> None:
    """Raise ValueError naming the model and the key for the first model the pool cannot run
    (the rules and numbers are ``gpu_fit``'s, the words the stack file's)."""
    capacity = gp.pool_capacity(pool.sharing.args(), pool.gpu.args() if pool.gpu else None)
    for i, m in enumerate(models):
        where = f"models[{i}] (name: {m.name})"
        weights = fit_weights(m)
        if weights is None and gpu_fit.device_memory_of(capacity) is not None:
            # A model of unknown size would pass the memory check by default and die with CUDA
            # out of memory at start-up: say the check could not run, and which key lets it.
            raise ValueError(f"{where}.{unknown_size_message(m.model)}")
        problems = gpu_fit.fit_problems(
            capacity,
            tensor_parallel_size=m.tensor_parallel_size,
            pipeline_parallel_size=m.pipeline_parallel_size,
            gpu_memory_utilization=m.gpu_memory_utilization,
            weights_gib=weights[0] if weights else None,
            # multi-node: a replica beyond one node is a LeaderWorkerSet group of whole nodes (multi_node.py)
            multi_node=pool.gpu is not None and m.gpus_per_replica > pool.gpu.per_node,
        )
        if problems:
            raise ValueError(
                _sharing_message(pool, m, where, problems[0])
                or _node_shape_message(pool, m, where, problems[0])
                or _kv_cache_message(pool, m, where, problems[0], weights)
            )


def _sharing_message(pool: GpuPoolConfig, m: _ModelLike, where: str, p: gpu_fit.FitProblem) -> str | None:
    """What a shared GPU (time-slicing, MPS, MIG) cannot give a model."""
    tp, pp, strategy = m.tensor_parallel_size, m.pipeline_parallel_size, pool.sharing.strategy
    if p.rule == "parallel_on_shared_gpu":
        key, size = ("tensorParallelSize", tp) if tp > 1 else ("pipelineParallelSize", pp)
        return (
            f"{where}.{key}: {key} {size} on a pool with gpuPool.sharing.strategy {strategy.value}: a pod gets one "
            "share of a GPU, never several GPUs; serve this model from a pool with whole GPUs (sharing strategy "
            "none) or on one GPU"
        )
    if p.rule == "time_slicing_utilization":
        return (
            f"{where}.gpuMemoryUtilization: {m.gpu_memory_utilization} on GPUs time-sliced {pool.sharing.replicas} "
            "ways (gpuPool.sharing.replicas): each pod sharing a GPU claims that fraction of the whole GPU, so "
            f"the pods after the first would not start; set gpuMemoryUtilization to at most {p.limit}"
        )
    return None


def _node_shape_message(pool: GpuPoolConfig, m: _ModelLike, where: str, p: gpu_fit.FitProblem) -> str | None:
    """A replica's GPUs against the pool's nodes: one node, or whole nodes in whole tensor-parallel groups."""
    gpu, tp, pp = pool.gpu, m.tensor_parallel_size, m.pipeline_parallel_size
    if p.rule not in ("gpus_per_node", "tensor_across_nodes", "partial_node"):
        return None
    assert gpu is not None  # these rules measure against the pool's GPU
    if p.rule == "gpus_per_node":
        return (
            f"{where}.tensorParallelSize: a replica needs {p.gpus} GPUs (tensorParallelSize {tp} x "
            f"pipelineParallelSize {pp}) but a node of the pool has gpuPool.gpu.perNode {gpu.per_node} "
            f"({gpu.product}); one replica runs on one node, so its pod would never schedule"
        )
    if p.rule == "tensor_across_nodes":
        return (
            f"{where}.tensorParallelSize: tensorParallelSize {tp} is above gpuPool.gpu.perNode {gpu.per_node} "
            f"({gpu.product}): tensor parallelism all-reduces every layer and must stay within a node; use "
            f"tensorParallelSize {gpu.per_node} (or less) and spread the replica across nodes with "
            "pipelineParallelSize"
        )
    return (
        f"{where}.pipelineParallelSize: a replica needs {p.gpus} GPUs (tensorParallelSize {tp} x "
        f"pipelineParallelSize {pp}), which is more than one node (gpuPool.gpu.perNode {gpu.per_node}, "
        f"{gpu.product}) but not whole nodes in whole tensor-parallel groups: a replica across nodes takes every "
        f"GPU of each node; make tensorParallelSize x pipelineParallelSize a multiple of {gpu.per_node} with "
        f"tensorParallelSize dividing {gpu.per_node}"
    )


def _kv_cache_message(
    pool: GpuPoolConfig, m: _ModelLike, where: str, p: gpu_fit.FitProblem, weights: tuple[float, str, str] | None
) -> str:
    """The weights leave too little GPU memory for the KV cache: the numbers, and what would fit."""
    gpu, strategy, kv = pool.gpu, pool.sharing.strategy, p.kv
    assert gpu is not None and kv is not None and weights is not None
    _, size_key, source = weights
    left = (
        f"which leaves {kv.room_gib:.1f} GiB for the KV cache after a {gpu_fit.RUNTIME_RESERVE_GIB:.0f} GiB "
        "runtime reserve"
        if kv.holds_weights
        else "which does not even hold the weights"
    )
    if strategy != SharingStrategy.NONE:
        hint = (
            "give each pod a bigger share (fewer gpuPool.sharing.replicas or a larger MIG profile), serve it "
            "from whole GPUs, or use a quantized checkpoint"
        )
    else:
        hint = (
            f"use tensorParallelSize {p.gpus_that_fit}"
            if p.gpus_that_fit
            else "use a GPU with more memory or a quantized checkpoint"
        )
    return (
        f"{where}.{size_key}: does not fit: {source} / {kv.gpus} GPU(s) = {kv.per_gpu_gib:.1f} GiB per GPU, but "
        f"vLLM may use gpuMemoryUtilization {m.gpu_memory_utilization} x {kv.device_gib:.1f} GiB "
        f"({gpu.product}{'' if strategy == SharingStrategy.NONE else f', per {strategy.value} share'}) = "
        f"{kv.budget_gib:.1f} GiB, {left}; the KV cache needs at least {kv.need_gib:.1f} GiB. Fix: {hint}"
    )


def check_karpenter_floor(pool: GpuPoolConfig, models: list) -> None:
    """The NodePool's GPU limit must cover every model at its minimum (else pods stay Pending forever)."""
    k = pool.karpenter
    if k is None:
        return
    needed = math.ceil(sum(pool.gpus_needed(m.min_pods, m.gpus_per_replica) for m in models) - 1e-9)
    usable = (k.gpu_limit // pool.gpu.per_node) * pool.gpu.per_node if pool.gpu else k.gpu_limit
    if usable < needed:
        detail = ", ".join(f"{m.name} {m.min_pods} x {m.gpus_per_replica}" for m in models if m.min_pods)
        whole = (
            f" ({usable} in whole nodes of gpu.perNode {pool.gpu.per_node})"
            if pool.gpu and usable != k.gpu_limit
            else ""
        )
        raise ConfigProblem(
            "gpuPool.karpenter.gpuLimit",
            f"{k.gpu_limit}{whole} is below the {needed} GPUs the models need at their minimum replicas "
            f"({detail} GPUs per pod); Karpenter would stop provisioning and those pods would stay Pending. "
            f"Raise gpuLimit to at least {needed}",
        )
