"""Will a model run on the GPUs a serving pod gets? The fit rules, over plain numbers.

A model that does not fit surfaces hours after ``pulumi up`` as a pod that never schedules or a
server that dies with CUDA out-of-memory. Known at preview, the same facts refuse it first:

- a replica needing more GPUs (tensor x pipeline parallel) than one node of the pool has;
- tensor/pipeline parallelism on a shared pool (a pod gets one share of a GPU, never several);
- time-sliced GPUs whose sharing pods would together claim more than the whole GPU;
- weights / GPUs per replica that leave no room for a KV cache within the engine's
  ``gpu_memory_utilization`` of the memory a pod's device has.

``GpuNodePool.capacity`` states what a pod can get from the pool (``GpuCapacityArgs``: plain
values, known at preview, also carried by the scheduling contract); ``VllmService`` and
``KnativeVllmService`` run ``fit_problems`` on their args before registering anything, and the
stack program runs the same rules to word its refusal in stack-file keys.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypedDict

from typing_extensions import NotRequired

from .._core.validation import ComponentArgsError

#: vLLM's default ``--gpu-memory-utilization`` (the engine arg's default where none is given).
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
#: GPU memory (GiB) vLLM needs per GPU besides weights and KV cache: CUDA context, activations
#: of a profiling batch, CUDA graphs, NCCL buffers.
RUNTIME_RESERVE_GIB = 1.0
#: The KV cache must get at least this share of what vLLM may use (and at least MIN_KV_CACHE_GIB):
#: below it a server starts but holds only a handful of sequences, or refuses its max length.
MIN_KV_CACHE_FRACTION = 0.10
MIN_KV_CACHE_GIB = 1.0
#: Time-slicing: share of each GPU kept free for the CUDA contexts of the pods sharing it
#: (vLLM refuses to start when less than its gpu_memory_utilization is free).
TIME_SLICING_MARGIN = 0.05
#: GPU counts the fit hint tries (tensor parallel sizes are powers of two in practice).
_GPU_COUNTS = (1, 2, 4, 8, 16)
_GIB = 1024**3


class SharingStrategy(str, Enum):
    """How one physical GPU is shared between pods."""

    NONE = "none"
    """Whole GPUs: one pod per GPU."""
    TIME_SLICING = "timeSlicing"
    """Each GPU is advertised ``replicas`` times; pods interleave in time and share (unisolated) memory."""
    MPS = "mps"
    """CUDA MPS: each GPU is advertised ``replicas`` times, each slice gets 1/replicas of the memory."""
    MIG = "mig"
    """Multi-Instance GPU: each GPU is partitioned into isolated instances (A100/H100/H200 class)."""


class GpuArgs(TypedDict):
    """The GPU of a pool's nodes (plain values: the fit checks run at preview)."""

    product: str
    """GPU product, for people and messages (``NVIDIA-L4``, ``NVIDIA-H100-80GB-HBM3``)."""
    memory_gib: float
    """Memory per GPU in GiB, as nvidia-smi reports it (L4: 22, H100 80GB: 79)."""
    per_node: int
    """GPUs per node: the most one replica (one pod) can use."""


class GpuCapacityArgs(TypedDict):
    """What one serving pod can get from a GPU pool (``GpuNodePool.capacity``). Plain values, not
    Inputs: the serving components measure their engine against them at preview, before anything
    is registered."""

    gpu_resource_name: str
    """Extended resource a pod requests per GPU (``nvidia.com/gpu``, ``nvidia.com/gpu.shared``,
    ``nvidia.com/mig-<profile>``)."""
    sharing: NotRequired[SharingStrategy]
    """How the pool shares a GPU (default none: whole GPUs)."""
    pods_per_gpu: NotRequired[int]
    """timeSlicing / mps: pods sharing one GPU."""
    gpu: NotRequired[GpuArgs]
    """The nodes' GPU (not given: the GPU count and memory checks cannot run)."""
    device_memory_gib: NotRequired[float]
    """GPU memory one pod's device gives it: the whole GPU, an MPS share or a MIG instance (default
    ``gpu.memory_gib``)."""


def floor_to(x: float, digits: int = 2) -> float:
    """``x`` rounded down (a limit quoted to a user must itself pass the check)."""
    f = 10**digits
    return int(x * f) / f


def estimate_weights_gib(parameters_billions: float, dtype: object = "auto", quantization: object = None) -> float:
    """Size in GPU memory of a checkpoint from its parameter count, dtype and quantization (estimate)."""
    from .model_catalog import bytes_per_parameter  # one table for every dtype/quantization vLLM accepts

    return parameters_billions * 1e9 * bytes_per_parameter(dtype, quantization) / _GIB


def max_gpu_memory_utilization(capacity: Mapping[str, Any]) -> float | None:
    """Time-slicing: N pods on one GPU each claim their gpu_memory_utilization of the *whole* GPU,
    so the N-th starts only if each stays within 1/N (less a margin for their CUDA contexts).
    None where no such bound applies."""
    if SharingStrategy(capacity.get("sharing", SharingStrategy.NONE)) != SharingStrategy.TIME_SLICING:
        return None
    return (1.0 / int(capacity["pods_per_gpu"])) * (1 - TIME_SLICING_MARGIN)


def device_memory_of(capacity: Mapping[str, Any]) -> float | None:
    """GiB of GPU memory one pod's device gives it (None: the pool's GPU is not known)."""
    if capacity.get("device_memory_gib") is not None:
        return float(capacity["device_memory_gib"])
    gpu = capacity.get("gpu")
    return float(gpu["memory_gib"]) if gpu else None


@dataclass(frozen=True)
class KvCacheRoom:
    """How GPU memory divides per GPU of a replica: weights, runtime reserve, KV cache."""

    weights_gib: float
    gpus: int
    device_gib: float
    gpu_memory_utilization: float

    @property
    def per_gpu_gib(self) -> float:
        """Weights per GPU (split over tensor x pipeline parallel GPUs)."""
        return self.weights_gib / self.gpus

    @property
    def budget_gib(self) -> float:
        """What vLLM may use per GPU: gpu_memory_utilization x the device's memory."""
        return self.gpu_memory_utilization * self.device_gib

    @property
    def room_gib(self) -> float:
        """KV-cache room left per GPU after the weights and the runtime reserve."""
        return self.budget_gib - self.per_gpu_gib - RUNTIME_RESERVE_GIB

    @property
    def need_gib(self) -> float:
        """The least KV-cache room a useful server needs."""
        return max(MIN_KV_CACHE_GIB, MIN_KV_CACHE_FRACTION * self.budget_gib)

    @property
    def fits(self) -> bool:
        return self.room_gib >= self.need_gib

    @property
    def holds_weights(self) -> bool:
        return self.per_gpu_gib < self.budget_gib


def min_gpus_to_fit(weights_gib: float, device_gib: float, gpu_memory_utilization: float) -> int | None:
    """Smallest power-of-two GPU count on which the weights leave the required KV-cache room."""
    return next((n for n in _GPU_COUNTS if KvCacheRoom(weights_gib, n, device_gib, gpu_memory_utilization).fits), None)


@dataclass(frozen=True)
class FitProblem:
    """One way a model does not fit: the rule, the engine arg it concerns, the numbers, and the
    component's wording (the stack words the same numbers in its own keys)."""

    rule: str
    """``parallel_on_shared_gpu``, ``gpus_per_node``, ``time_slicing_utilization`` or ``kv_cache``."""
    arg: str
    """The serving component's arg path (``engine.tensor_parallel_size``, ``weights_gib``, ...)."""
    message: str
    gpus: int
    """GPUs per replica (tensor x pipeline parallel)."""
    limit: float | None = None
    """time_slicing_utilization: the highest gpu_memory_utilization that fits (rounded down)."""
    kv: KvCacheRoom | None = None
    """kv_cache: how the memory divides."""
    gpus_that_fit: int | None = None
    """kv_cache on whole GPUs: a GPU count within a node on which the weights fit (None: none does)."""


def fit_problems(
    capacity: Mapping[str, Any],
    *,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    weights_gib: float | None = None,
    multi_node: bool = False,
) -> list[FitProblem]:
    """Every rule a replica breaks on a pod's share of the pool, in the order to fix them.
    The KV-cache rule runs only where the weights and the pool's GPU memory are both known.
    ``multi_node``: the replica is a group of whole nodes (MultiNodeVllmService), so more GPUs than
    one node holds is its point; the node rules are ``multi_node_problems``'."""
    gpus = tensor_parallel_size * pipeline_parallel_size
    out = _placement_problems(capacity, tensor_parallel_size, pipeline_parallel_size, multi_node)
    time_slicing = _time_slicing_problem(capacity, gpus, gpu_memory_utilization)
    if time_slicing is not None:
        out.append(time_slicing)
    if weights_gib is not None:
        kv_cache = _kv_cache_problem(capacity, float(weights_gib), gpus, gpu_memory_utilization)
        if kv_cache is not None:
            out.append(kv_cache)
    return out


def _placement_problems(capacity: Mapping[str, Any], tp: int, pp: int, multi_node: bool) -> list[FitProblem]:
    """Where a replica's GPUs can be: never several shares of a GPU, within a node (or whole nodes)."""
    out: list[FitProblem] = []
    gpus = tp * pp
    strategy = SharingStrategy(capacity.get("sharing", SharingStrategy.NONE))
    shared = strategy != SharingStrategy.NONE
    gpu = capacity.get("gpu")
    parallel_arg = "engine.tensor_parallel_size" if tp > 1 else "engine.pipeline_parallel_size"
    if shared and gpus > 1:
        out.append(
            FitProblem(
                "parallel_on_shared_gpu",
                parallel_arg,
                f"{gpus} GPUs per replica (tensor_parallel_size {tp} x pipeline_parallel_size {pp}) on a pool sharing "
                f"GPUs ({strategy.value}): a pod gets one share of a GPU, never several GPUs; serve the model from "
                "whole GPUs or on one GPU",
                gpus,
            )
        )
    if gpu and multi_node and not shared:
        out += multi_node_problems(int(gpu["per_node"]), tp, pp, gpu["product"])
    elif gpu and gpus > int(gpu["per_node"]):
        out.append(
            FitProblem(
                "gpus_per_node",
                parallel_arg,
                f"a replica needs {gpus} GPUs (tensor_parallel_size {tp} x pipeline_parallel_size {pp}) but a node of "
                f"the pool has {gpu['per_node']} ({gpu['product']}); one replica runs on one node, so its pod would "
                "never schedule",
                gpus,
            )
        )
    return out


def _time_slicing_problem(capacity: Mapping[str, Any], gpus: int, gpu_memory_utilization: float) -> FitProblem | None:
    """Time-sliced GPUs: each pod's gpu_memory_utilization within its 1/N of the GPU."""
    bound = max_gpu_memory_utilization(capacity)
    if bound is None or gpu_memory_utilization <= bound:
        return None
    limit = floor_to(bound)
    return FitProblem(
        "time_slicing_utilization",
        "engine.gpu_memory_utilization",
        f"{gpu_memory_utilization} on GPUs time-sliced {capacity['pods_per_gpu']} ways: each pod sharing a GPU "
        "claims that fraction of the whole GPU, so the pods after the first would not start; use at most "
        f"{limit}",
        gpus,
        limit=limit,
    )


def _kv_cache_problem(
    capacity: Mapping[str, Any], weights_gib: float, gpus: int, gpu_memory_utilization: float
) -> FitProblem | None:
    """The weights leave the KV cache its room on each GPU (None also where the pool's GPU memory is unknown)."""
    device = device_memory_of(capacity)
    if device is None:
        return None
    kv = KvCacheRoom(weights_gib, gpus, device, gpu_memory_utilization)
    if kv.fits:
        return None
    strategy = SharingStrategy(capacity.get("sharing", SharingStrategy.NONE))
    shared = strategy != SharingStrategy.NONE
    gpu = capacity.get("gpu")
    fit = None if shared else min_gpus_to_fit(kv.weights_gib, device, gpu_memory_utilization)
    if fit is not None and (fit <= gpus or (gpu and fit > int(gpu["per_node"]))):
        fit = None
    left = (
        f"which leaves {kv.room_gib:.1f} GiB for the KV cache after a {RUNTIME_RESERVE_GIB:.0f} GiB runtime reserve"
        if kv.holds_weights
        else "which does not even hold the weights"
    )
    if shared:
        hint = "give each pod a bigger share of a GPU, serve it from whole GPUs, or use a quantized checkpoint"
    elif fit:
        hint = f"use tensor_parallel_size {fit}"
    else:
        hint = "use a GPU with more memory or a quantized checkpoint"
    product = gpu["product"] if gpu else "the pool's GPU"
    share = "" if not shared else f", per {strategy.value} share"
    return FitProblem(
        "kv_cache",
        "weights_gib",
        f"does not fit: {kv.weights_gib:.1f} GiB of weights / {gpus} GPU(s) = {kv.per_gpu_gib:.1f} GiB per "
        f"GPU, but vLLM may use gpu_memory_utilization {gpu_memory_utilization} x {device:.1f} GiB "
        f"({product}{share}) = {kv.budget_gib:.1f} GiB, {left}; the KV cache needs at least "
        f"{kv.need_gib:.1f} GiB. Fix: {hint}",
        gpus,
        kv=kv,
        gpus_that_fit=fit,
    )


def multi_node_problems(per_node: int, tp: int, pp: int, product: str = "GPU") -> list[FitProblem]:
    """How a replica spread over whole nodes breaks the node boundary: tensor parallelism stays
    within a node (its all-reduce runs every layer, too often for the network between nodes), the
    replica takes whole nodes, and a node holds whole tensor-parallel groups (vLLM numbers ranks
    tensor-innermost, so a group that does not divide the node would straddle two)."""
    gpus = tp * pp
    if tp > per_node:
        return [
            FitProblem(
                "tensor_across_nodes",
                "engine.tensor_parallel_size",
                f"tensor_parallel_size {tp} is above the {per_node} GPUs of a node ({product}): tensor parallelism "
                f"all-reduces every layer and must stay within a node; use tensor_parallel_size {per_node} (or less) "
                "and spread the replica across nodes with pipeline_parallel_size",
                gpus,
            )
        ]
    if gpus % per_node or per_node % tp:
        return [
            FitProblem(
                "partial_node",
                "engine.pipeline_parallel_size",
                f"{gpus} GPUs per replica (tensor_parallel_size {tp} x pipeline_parallel_size {pp}) do not fill whole "
                f"nodes of {per_node} GPUs ({product}) in whole tensor-parallel groups: a replica across nodes takes "
                f"every GPU of each node it uses; make tensor x pipeline parallel size a multiple of {per_node} with "
                f"tensor_parallel_size dividing {per_node}",
                gpus,
            )
        ]
    return []


def capacity_problems(capacity: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, problem) for capacity facts that contradict each other (a capacity written by hand
    rather than taken from ``GpuNodePool.capacity``)."""
    out: list[tuple[str, str]] = []
    strategy = SharingStrategy(capacity.get("sharing", SharingStrategy.NONE))
    pods = capacity.get("pods_per_gpu")
    if strategy in (SharingStrategy.TIME_SLICING, SharingStrategy.MPS) and (pods is None or pods < 2):
        out.append(
            ("pods_per_gpu", f"{strategy.value} shares each GPU between 2 or more pods; give their number (got {pods})")
        )
    elif strategy not in (SharingStrategy.TIME_SLICING, SharingStrategy.MPS) and pods is not None:
        out.append(("pods_per_gpu", f"applies to timeSlicing and mps only, not {strategy.value}"))
    gpu = capacity.get("gpu")
    if gpu is not None and gpu["memory_gib"] <= 0:
        out.append(("gpu.memory_gib", f"{gpu['memory_gib']} must be above 0"))
    if gpu is not None and gpu["per_node"] < 1:
        out.append(("gpu.per_node", f"{gpu['per_node']} must be at least 1"))
    device = capacity.get("device_memory_gib")
    if device is not None and (device <= 0 or (gpu is not None and device > gpu["memory_gib"])):
        out.append(("device_memory_gib", f"{device} must be above 0 and at most the GPU's memory"))
    return out


def check_serving_fit(component: str, name: str, args: Mapping[str, Any], multi_node: bool = False) -> None:
    """A serving component's fit check on its validated args: the engine against the capacity the
    scheduling contract carries (``scheduling.gpu_capacity``) and ``weights_gib``. Raises
    ``ComponentArgsError`` for the first rule broken; no capacity, nothing to check."""
    weights = args.get("weights_gib")
    if weights is not None and weights <= 0:
        raise ComponentArgsError(
            component, name, "weights_gib", f"{weights} must be above 0 (GiB of weights in GPU memory)"
        )
    scheduling = args.get("scheduling") or {}
    capacity = scheduling.get("gpu_capacity")
    if capacity is None:
        return
    for key, problem in capacity_problems(capacity):
        raise ComponentArgsError(component, name, f"scheduling.gpu_capacity.{key}", problem)
    resource = scheduling.get("gpu_resource_name")
    if isinstance(resource, str) and resource != capacity["gpu_resource_name"]:
        raise ComponentArgsError(
            component,
            name,
            "scheduling.gpu_capacity.gpu_resource_name",
            f"{capacity['gpu_resource_name']!r} but the contract requests {resource!r}: the capacity describes another "
            "pool than the one the pods are placed on; pass one GpuNodePool's contract unchanged",
        )
    engine = args["engine"]
    problems = fit_problems(
        capacity,
        tensor_parallel_size=engine.get("tensor_parallel_size", 1),
        pipeline_parallel_size=engine.get("pipeline_parallel_size", 1),
        gpu_memory_utilization=engine.get("gpu_memory_utilization", DEFAULT_GPU_MEMORY_UTILIZATION),
        weights_gib=args.get("weights_gib"),
        multi_node=multi_node,
    )
    if problems:
        raise ComponentArgsError(component, name, problems[0].arg, problems[0].message)
