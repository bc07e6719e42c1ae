"""The one vLLM pod spec, shared by every serving component (Deployment and Knative).

A change to the container's args, probes, volumes or security context lands here and so
reaches every way a model is served. Everything here is plain data (dicts whose leaves may
be Pulumi Inputs), so it can be unit-tested without a Pulumi runtime.
"""

import inspect
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypedDict

import pulumi
from typing_extensions import NotRequired

from .. import versions
from ..cluster.scheduling import SchedulingContractArgs, apply_contract, default_contract
from ..sizing.cold_start import ENGINE_START_SECONDS, UNKNOWN_WEIGHTS_LOAD_SECONDS, ColdStartArgs, cold_start_budget
from ..sizing.gpu_fit import DEFAULT_GPU_MEMORY_UTILIZATION
from .object_storage import ObjectStoragePod
from .warmup import warmup_startup_probe

#: Port vLLM's OpenAI-compatible server listens on (API, /health and /metrics share it).
HTTP_PORT = 8000
#: Name of the server's port. Knative accepts only "", "http1" or "h2c" as the serving port's name
#: (vLLM speaks HTTP/1.1), and the container is shared with KnativeVllmService, so "http1".
PORT_NAME = "http1"
#: Where the model cache volume is mounted in every pod.
CACHE_MOUNT_PATH = "/models"
#: vLLM's liveness endpoint: 200 once the engine is up, 5xx if the engine died.
HEALTH_PATH = "/health"
#: File the download Job writes last; its presence means the weights are complete.
COMPLETE_MARKER = ".download-complete"

# Startup budget: engine start (CUDA init, graph capture, compile warm-up) plus reading the
# weights from the cache volume at >= 100 MiB/s. Periods are in seconds.
# The figures and their defaults live in cold_start.py (one function for probe, await and cooldown).
STARTUP_BASE_SECONDS = ENGINE_START_SECONDS
STARTUP_SECONDS_PER_GIB = 10
STARTUP_UNKNOWN_SIZE_SECONDS = ENGINE_START_SECONDS + UNKNOWN_WEIGHTS_LOAD_SECONDS
STARTUP_PERIOD_SECONDS = 10


class Dtype(str, Enum):
    """Weight/activation dtype vLLM loads the model in (vLLM's ``--dtype`` choices; ``half`` is
    float16 and ``float`` float32 there). Kept equal to the pinned vLLM's flag table by a test."""

    AUTO = "auto"
    BFLOAT16 = "bfloat16"
    FLOAT = "float"
    FLOAT16 = "float16"
    FLOAT32 = "float32"
    HALF = "half"


class Quantization(str, Enum):
    """Quantization method of the checkpoint (must match how the weights were produced), or an
    online method that quantizes at load. Every method the pinned vLLM accepts (its flag table;
    ``fbgemm_fp8`` and ``fp_quant`` are deprecated there and need ``--allow-deprecated-quantization``)."""

    AUTO_AWQ = "auto_awq"
    AUTO_GPTQ = "auto_gptq"
    AWQ = "awq"
    AWQ_MARLIN = "awq_marlin"
    COMPRESSED_TENSORS = "compressed-tensors"
    DEEPSEEK_V4_FP8 = "deepseek_v4_fp8"
    EXPERTS_INT8 = "experts_int8"
    FBGEMM_FP8 = "fbgemm_fp8"
    FP8 = "fp8"
    FP8_PER_BLOCK = "fp8_per_block"
    FP8_PER_CHANNEL = "fp8_per_channel"
    FP8_PER_TENSOR = "fp8_per_tensor"
    FP_QUANT = "fp_quant"
    GPT_OSS_MXFP4 = "gpt_oss_mxfp4"
    GPTQ = "gptq"
    GPTQ_MARLIN = "gptq_marlin"
    HUMMING = "humming"
    INC = "inc"
    INT8_PER_CHANNEL_WEIGHT_ONLY = "int8_per_channel_weight_only"
    MODELOPT = "modelopt"
    MODELOPT_FP4 = "modelopt_fp4"
    MODELOPT_MIXED = "modelopt_mixed"
    MODELOPT_MXFP8 = "modelopt_mxfp8"
    MOE_WNA16 = "moe_wna16"
    MXFP4 = "mxfp4"
    MXFP8 = "mxfp8"
    NVFP4_PER_TOKEN = "nvfp4_per_token"
    ONLINE = "online"
    QUARK = "quark"
    TORCHAO = "torchao"


#: ``--max-lora-rank`` values the pinned vLLM accepts (its flag table's choices; a test keeps them equal).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class LoraAdapterArgs(TypedDict):
    """A LoRA adapter served on top of the base model, under its own model name."""

    name: pulumi.Input[str]
    """Name clients pass as ``model`` to get the adapter (unique beside the base model's)."""
    path: pulumi.Input[str]
    """Directory of the adapter inside the cache volume (``ModelCache.adapter_paths``)."""
    rank: int
    """The adapter's LoRA rank ``r`` (its ``adapter_config.json``); sizes ``--max-lora-rank``."""


class VllmEngineArgs(TypedDict):
    """The vLLM engine options a model is served with (rendered as ``vllm`` CLI flags)."""

    served_model_name: pulumi.Input[str]
    """Name clients pass as ``model`` in OpenAI requests."""
    tensor_parallel_size: NotRequired[int]
    """GPUs one model shard spans within a node (default 1)."""
    pipeline_parallel_size: NotRequired[int]
    """Pipeline stages (default 1). GPUs per replica = tensor x pipeline parallel size."""
    max_model_len: NotRequired[int]
    """Context length; bounds KV-cache per sequence (default: the model's own)."""
    gpu_memory_utilization: NotRequired[float]
    """Fraction of each GPU's memory vLLM may use for weights + KV cache (default 0.9)."""
    dtype: NotRequired[Dtype]
    """Weight dtype (default auto)."""
    quantization: NotRequired[Quantization]
    """Quantization method of the checkpoint, if any."""
    enable_prefix_caching: NotRequired[bool]
    """Reuse KV cache across requests sharing a prefix (default true)."""
    max_num_seqs: NotRequired[int]
    """Most sequences batched at once (default: vLLM's)."""
    lora_adapters: NotRequired[list[LoraAdapterArgs]]
    """LoRA adapters served beside the base model (``--enable-lora --lora-modules``)."""
    max_loras: NotRequired[int]
    """Adapters active in one batch (``--max-loras``; default: every adapter, so none waits for a slot)."""
    extra_args: NotRequired[list[str]]
    """Escape hatch: further vLLM flags, appended after the component's own. Checked on entry as the pinned
    vLLM parses them: unknown flags, flags the component renders itself, flags that change the GPU
    count or stop serving, and abbreviations are refused (``llmstack_k8s.vllm_flags.check_extra_args``)."""


class ResourcesArgs(TypedDict):
    """CPU and memory for the server container (GPUs come from the parallelism)."""

    cpu: NotRequired[pulumi.Input[str]]
    """CPU request (e.g. ``"8"``)."""
    memory: NotRequired[pulumi.Input[str]]
    """Memory request and limit (e.g. ``"48Gi"``); must cover the /dev/shm volume."""


def gpus_per_replica(engine: Mapping[str, Any]) -> int:
    """tensor x pipeline parallel size of VllmEngineArgs (or any mapping with those keys)."""
    return engine.get("tensor_parallel_size", 1) * engine.get("pipeline_parallel_size", 1)


def startup_budget_seconds(
    weights_gib: float | None, override: int | None = None, figures: ColdStartArgs | None = None
) -> int:
    """Seconds a pod may take from container start to healthy before the kubelet restarts it: the
    startup part of the cold start (weights at the stated storage throughput + engine start)."""
    return cold_start_budget(weights_gib, figures, override).startup_seconds


def default_shm_size(engine: Mapping[str, Any]) -> str:
    # NCCL moves tensors through /dev/shm between ranks; one GPU needs little.
    gpus = gpus_per_replica(engine)
    return "2Gi" if gpus == 1 else f"{min(4 * gpus, 32)}Gi"


def vllm_command() -> list[str]:
    return ["python3", "-m", "vllm.entrypoints.openai.api_server"]


def vllm_args(
    engine: VllmEngineArgs, model_path: pulumi.Input[str], loader_args: tuple = ()
) -> list[pulumi.Input[str]]:
    """The server's CLI flags, in a stable order (rendered diffs stay small). The model path and
    served name may be Outputs: each is one list element, which Pulumi resolves in place.
    ``loader_args``: how the weights are loaded (object storage: the Run:ai streamer), before extra args."""
    args = [
        "--model",
        model_path,
        "--served-model-name",
        engine["served_model_name"],
        "--host",
        "0.0.0.0",
        "--port",
        str(HTTP_PORT),
        "--tensor-parallel-size",
        str(engine.get("tensor_parallel_size", 1)),
        "--pipeline-parallel-size",
        str(engine.get("pipeline_parallel_size", 1)),
        "--gpu-memory-utilization",
        str(engine.get("gpu_memory_utilization", DEFAULT_GPU_MEMORY_UTILIZATION)),
        "--dtype",
        Dtype(engine.get("dtype", Dtype.AUTO)).value,
    ]
    if engine.get("max_model_len"):
        args += ["--max-model-len", str(engine["max_model_len"])]
    if engine.get("quantization"):
        args += ["--quantization", Quantization(engine["quantization"]).value]
    args.append(
        "--enable-prefix-caching" if engine.get("enable_prefix_caching", True) else "--no-enable-prefix-caching"
    )
    if engine.get("max_num_seqs"):
        args += ["--max-num-seqs", str(engine["max_num_seqs"])]
    adapters = engine.get("lora_adapters") or []
    if adapters:
        args += [
            "--enable-lora",
            "--lora-modules",
            *[lora_module(a) for a in adapters],
            "--max-loras",
            str(engine.get("max_loras", len(adapters))),
            "--max-lora-rank",
            str(lora_rank_slot(max(a["rank"] for a in adapters))),
        ]
    return args + list(loader_args) + list(engine.get("extra_args", []))


def lora_rank_slot(rank: int) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds an adapter of this rank."""
    for r in LORA_RANKS:
        if r >= rank:
            return r
    raise ValueError(f"LoRA rank {rank} is above the largest vLLM supports ({LORA_RANKS[-1]})")


def lora_module(adapter: LoraAdapterArgs) -> pulumi.Input[str]:
    """``name=path`` for ``--lora-modules`` (an Output when either part is one)."""
    name, path = adapter["name"], adapter["path"]
    if any(isinstance(v, pulumi.Output) or inspect.isawaitable(v) for v in (name, path)):
        return pulumi.Output.concat(name, "=", path)
    return f"{name}={path}"


def probes(startup_budget: int, warmup_served_name: pulumi.Input[str] | None = None) -> dict:
    """Startup probe with the whole budget; then tight readiness/liveness (no initial delay). With
    ``warmup_served_name`` the startup probe is one real completion (warmup.py): not Ready before it."""
    # By number, not name: Knative renames the serving port on the pods it creates.
    http = {"path": HEALTH_PATH, "port": HTTP_PORT}
    failures = math.ceil(startup_budget / STARTUP_PERIOD_SECONDS)
    return {
        "startupProbe": warmup_startup_probe(warmup_served_name, HTTP_PORT, STARTUP_PERIOD_SECONDS, failures)
        if warmup_served_name is not None
        else {
            "httpGet": http,
            "periodSeconds": STARTUP_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": failures,
        },
        "readinessProbe": {"httpGet": http, "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": http, "periodSeconds": 10, "timeoutSeconds": 10, "failureThreshold": 6},
    }


#: Non-root, no escalation, no capabilities. The vLLM image runs as any UID once HOME is writable.
RUN_AS_UID = 1000
CONTAINER_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_UID,
    "runAsGroup": RUN_AS_UID,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# fsGroup makes the cache volume's files readable/writable by that UID.
POD_SECURITY_CONTEXT = {"fsGroup": RUN_AS_UID, "fsGroupChangePolicy": "OnRootMismatch"}


def offline_env() -> list[dict]:
    """Serve only what is in the cache: never reach for the hub at start-up."""
    return [
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
        {"name": "HOME", "value": "/tmp"},  # writable scratch for torch/triton/vLLM caches
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]


class PodSpecInputs(TypedDict):
    """Everything the builder needs; plain Python apart from Input-valued names."""

    engine: VllmEngineArgs
    model_path: NotRequired[pulumi.Input[str]]
    claim_name: NotRequired[pulumi.Input[str] | None]
    api_key_secret_name: pulumi.Input[str]
    #: Weights streamed from a bucket instead of the cache volume (no claim, no wait-for-weights).
    object_storage: NotRequired[ObjectStoragePod | None]
    image: NotRequired[str | None]
    resources: NotRequired[ResourcesArgs | None]
    scheduling: NotRequired[SchedulingContractArgs | None]
    startup_budget_seconds: NotRequired[int | None]
    shm_size: NotRequired[str | None]
    extra_env: NotRequired[dict[str, str] | None]
    termination_grace_period_seconds: NotRequired[int]
    warmup: NotRequired[bool]


API_KEY_SECRET_KEY = "api-key"


def serving_pod_inputs(
    args: Mapping[str, Any],
    api_key_secret_name: pulumi.Input[str],
    startup_budget: int | None,
    object_storage: ObjectStoragePod | None = None,
) -> PodSpecInputs:
    """The builder's inputs from a serving component's args (VllmService and KnativeVllmService
    share these field names), so both serve a model from the very same pod. ``object_storage``: the
    component's streamer access (``object_storage.object_storage_access``) when the weights are in a bucket."""
    return {
        "engine": args["engine"],
        "model_path": object_storage["uri"] if object_storage else args["model_path"],
        "claim_name": None if object_storage else args["cache_claim_name"],
        "object_storage": object_storage,
        "api_key_secret_name": api_key_secret_name,
        "image": args.get("image"),
        "resources": args.get("resources"),
        "scheduling": args.get("scheduling"),
        "startup_budget_seconds": startup_budget,
        "warmup": args.get("warmup", True),  # not Ready before one real completion (warmup.py)
        "shm_size": args.get("shm_size"),
        "extra_env": args.get("extra_env"),
    }


def vllm_container(p: PodSpecInputs) -> dict:
    """The vLLM server container: identical wherever the model is served."""
    engine = p["engine"]
    contract = p.get("scheduling") or default_contract()
    source = p.get("object_storage")
    env = (
        offline_env()
        + [
            {
                "name": "VLLM_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": p["api_key_secret_name"], "key": API_KEY_SECRET_KEY}},
            }
        ]
        + (source["env"] if source else [])
        + [{"name": k, "value": v} for k, v in sorted((p.get("extra_env") or {}).items())]
    )
    return {
        "name": "vllm",
        "image": p.get("image") or versions.VLLM_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": vllm_command(),
        "args": vllm_args(engine, p["model_path"], tuple(source["loader_args"]) if source else ()),
        "env": env,
        "ports": [{"name": PORT_NAME, "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": container_resources(
            p.get("resources") or {}, contract["gpu_resource_name"], gpus_per_replica(engine)
        ),
        **probes(
            p.get("startup_budget_seconds") or STARTUP_UNKNOWN_SIZE_SECONDS,
            engine["served_model_name"] if p.get("warmup") else None,
        ),
        "volumeMounts": [
            *([] if source else [{"name": "model-cache", "mountPath": CACHE_MOUNT_PATH, "readOnly": True}]),
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": CONTAINER_SECURITY_CONTEXT,
    }


def container_resources(
    res: ResourcesArgs, gpu_resource_name: pulumi.Input[str], gpus: int, extra: dict[str, str] | None = None
) -> pulumi.Input[dict]:
    """Requests and limits of a server container: CPU, memory, ``gpus`` of the contract's GPU resource and
    ``extra`` devices. The resource name is a key of both maps: when it is an Output (a pool's
    ``gpu_resource_name`` passed from another language) the whole block is built inside it, since a key
    cannot be an Output; a plain name gives a plain block."""
    memory = res.get("memory", "32Gi")

    def build(gpu: str) -> dict:
        devices = {gpu: str(gpus), **(extra or {})}
        return {
            "requests": {"cpu": res.get("cpu", "4"), "memory": memory, **devices},
            "limits": {"memory": memory, **devices},
        }

    if isinstance(gpu_resource_name, pulumi.Output) or inspect.isawaitable(gpu_resource_name):
        # from_input resolves the CPU and memory Inputs inside the block as well. (Its overloads do not
        # take the narrowed Awaitable[str] | Output[str].)
        return pulumi.Output.from_input(gpu_resource_name).apply(  # type: ignore[arg-type]
            lambda gpu: pulumi.Output.from_input(build(gpu))
        )
    return build(gpu_resource_name)


def wait_for_weights_script(model_path: str, *more_paths: str) -> str:
    """Wait for the base weights' marker and then each adapter's (every one the server loads)."""
    waits = []
    for path in (model_path, *more_paths):
        marker = f"{path}/{COMPLETE_MARKER}"
        waits.append(f'until test -f "{marker}"; do echo "waiting for {marker}"; sleep 10; done')
    return "; ".join(waits)


def resolved(value: pulumi.Input, fn):
    """``fn(value)`` now for a plain value, inside an apply for an Output (never ``str()`` of an Output)."""
    if isinstance(value, pulumi.Output) or inspect.isawaitable(value):
        return pulumi.Output.from_input(value).apply(fn)
    return fn(value)


def cache_ready_init_container(model_path: pulumi.Input[str], adapter_paths: list | None = None) -> dict:
    """Wait (visibly) until the weights are complete in the cache, instead of a vLLM crash loop."""
    return {
        "name": "wait-for-weights",
        "image": versions.BUSYBOX_IMAGE,
        "command": [
            "sh",
            "-c",
            resolved(model_path, wait_for_weights_script)
            if not adapter_paths
            else pulumi.Output.all(model_path, *adapter_paths).apply(lambda ps: wait_for_weights_script(*ps)),
        ],
        "volumeMounts": [{"name": "model-cache", "mountPath": CACHE_MOUNT_PATH, "readOnly": True}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
        "securityContext": CONTAINER_SECURITY_CONTEXT,
    }


#: The Deployment's one addition to the shared container: let the endpoint drop out of Services
#: before the server stops taking requests. Knative refuses ``lifecycle`` on a revision's container
#: and injects its own preStop (queue-proxy drains requests first), so it is not in vllm_container.
DEPLOYMENT_DRAIN_LIFECYCLE = {"preStop": {"exec": {"command": ["sleep", "10"]}}}


def vllm_pod_spec(p: PodSpecInputs) -> dict:
    """The pod spec (without metadata) for one vLLM server replica."""
    engine = p["engine"]
    source = p.get("object_storage")  # weights streamed from a bucket: no cache volume to wait for or mount
    spec = {
        **(
            {}
            if source
            else {
                "initContainers": [
                    cache_ready_init_container(p["model_path"], [a["path"] for a in engine.get("lora_adapters") or []])
                ]
            }
        ),
        "containers": [{**vllm_container(p), "lifecycle": DEPLOYMENT_DRAIN_LIFECYCLE}],
        "volumes": [
            *(
                []
                if source
                else [
                    {"name": "model-cache", "persistentVolumeClaim": {"claimName": p["claim_name"], "readOnly": True}}
                ]
            ),
            {
                "name": "dshm",
                "emptyDir": {"medium": "Memory", "sizeLimit": p.get("shm_size") or default_shm_size(engine)},
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}},
        ],
        "securityContext": POD_SECURITY_CONTEXT,
        # Long generations stream for minutes: give in-flight requests time to finish.
        "terminationGracePeriodSeconds": p.get("termination_grace_period_seconds", 120),
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        # Workload identity for the bucket (IRSA / GKE): the ServiceAccount carrying it.
        **(
            {"serviceAccountName": source["service_account_name"]}
            if source and source.get("service_account_name") is not None
            else {}
        ),
    }
    return apply_contract(spec, p.get("scheduling"))


#: Pod-level security fields Knative admits (behind ``kubernetes.podspec-securitycontext``).
KNATIVE_POD_SECURITY_FIELDS = (
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "fsGroup",
    "supplementalGroups",
    "seccompProfile",
)


def knative_pod_spec(p: PodSpecInputs) -> dict:
    """The same pod for a Knative revision (KnativeVllmService): the identical vLLM container,
    volumes, cache-ready init container and placement. Knative owns the container's preStop and
    ``terminationGracePeriodSeconds`` (from the request timeout), and admits fewer pod security
    fields (``fsGroupChangePolicy`` is dropped: the cache is read-only, the emptyDirs start empty)."""
    spec = vllm_pod_spec(p)
    spec["containers"] = [vllm_container(p)]
    del spec["terminationGracePeriodSeconds"]
    spec["securityContext"] = {k: v for k, v in spec["securityContext"].items() if k in KNATIVE_POD_SECURITY_FIELDS}
    return spec
