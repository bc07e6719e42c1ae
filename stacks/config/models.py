"""One entry of the stack file's ``models`` list: what vLLM serves, its cache, resources, rollout.

Each thing about a model is said once, in the words people reason in:

- Scaling: one ``autoscaling`` block for a Deployment (KEDA) and a Knative Service alike --
  ``minReplicas`` (0: scale to zero), ``maxReplicas``, ``metric``/``target``, ``cooldownSeconds``
  (``autoscaling.py`` says how each maps); ``knative`` holds only what Knative alone has (initial
  scale, container concurrency, stable and panic windows, a revision's deadlines). The Knative
  spellings ``knative.minScale/maxScale/targetConcurrency/scaleDownDelay`` are gone.
- GPUs per replica are ``tensorParallelSize x pipelineParallelSize``, never a separate ``gpus``:
  vLLM is started with the two sizes, and the layout is what the checks need (tensor parallel within
  a node and dividing the attention heads, pipeline stages across nodes and dividing the layers);
  a bare GPU count cannot say it, and could only repeat or contradict the product.
- Weights are sized by ``weightsGiB`` alone (GiB in GPU memory: the checkpoint's safetensors), with
  the catalog's figure as the default for the models it knows. ``parametersBillions`` is gone: it
  estimated the same number from bytes per parameter, which a quantization format's scales and
  unquantized layers make wrong, and every check (GPU fit, cache, download deadline, startup
  budget and its override) now reads the one size.

A removed key is refused by the loader with its replacement (``messages.REMOVED_KEYS``).
"""

import re
from typing import Annotated, Optional

from pydantic import AfterValidator, Field, model_validator

from llmstack_k8s.serving import knative_vllm_service as knative
from llmstack_k8s.serving import object_storage as objstore
from llmstack_k8s.serving.model_cache import AccessMode
from llmstack_k8s.serving.vllm_flags import load_table, managed_dests
from llmstack_k8s.serving.vllm_pod import Dtype, Quantization, default_shm_size
from llmstack_k8s.sizing.cold_start import ColdStartBudget, cold_start_budget

from .autoscaling import (
    KNATIVE_MAX_COOLDOWN_SECONDS,
    ModelAutoscalingConfig,
    Scaling,
    ScalingMetric,
    effective_scaling,
    serving_problem,
)
from .base import ConfigProblem
from .base import StackModel as _Model
from .cold_start import ColdStartConfig
from .engine import ArchitectureConfig, check_engine
from .engine import weights_estimate as engine_weights_estimate
from .gateway import ModelRouteConfig
from .knative import KnativeModelConfig, ServingMode
from .lora import LoraAdapterConfig, lora_gib, lora_problem
from .multi_node import MultiNodeConfig
from .object_storage import model_source_problem
from .pinning import UNPINNED_REVISIONS, image_problem, pinned_revision  # noqa: F401
from .quantities import DNS_LABEL, TTFT_MAX_SECONDS, Cpu, Size, size_gib, ttft_unit_message
from .secrets import env_problem

# Flags the stack sets itself (every spelling, from the pinned vLLM's flag table; see engine.py).
MANAGED_FLAGS = frozenset(o for f in load_table().flags.values() if f.dest in managed_dests() for o in f.options)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _model_source(v: str) -> str:
    """A Hugging Face repository id (org/name), or an object-storage URL the Run:ai streamer reads."""
    if objstore.is_object_storage(v):
        problem = objstore.uri_problem(v)
        if problem:
            raise ValueError(problem)
        return v
    if not _HUB_ID.match(v):
        raise ValueError(
            f"{v!r} must be a Hugging Face repository id, org/name (e.g. meta-llama/Llama-3.1-8B-Instruct), "
            "or object storage: s3://bucket/prefix/ or gs://bucket/prefix/"
        )
    return v


#: Throughput assumed for a Hugging Face download from a cluster when checking the deadline:
#: conservative for one huggingface_hub process (cloud regions usually see 100+ MiB/s).
DEFAULT_DOWNLOAD_MIBPS = 50
#: Time the download Job needs besides the transfer: scheduling, image pull, start-up.
DOWNLOAD_START_SECONDS = 300


class CacheDefaults(_Model):
    """Defaults for every model's weight cache."""

    storage_class: str | None = Field(
        None, description="StorageClass of cache volumes (default: the cluster's default)."
    )
    access_mode: AccessMode = Field(
        AccessMode.READ_WRITE_MANY, description="ReadWriteMany (replicas on several nodes) or ReadWriteOnce."
    )
    download_retries: int = Field(4, ge=0, le=20, description="Retries of the download Job.")
    download_deadline_seconds: int = Field(
        3600,
        ge=300,
        description=(
            "Deadline of the whole download; must cover every model's weights at downloadMiBps plus 5 min to start."
        ),
    )
    download_mib_per_second: float = Field(
        DEFAULT_DOWNLOAD_MIBPS,
        gt=0,
        alias="downloadMiBps",
        description="Download throughput assumed when checking downloadDeadlineSeconds (MiB/s; measure yours).",
    )


class ModelCacheConfig(_Model):
    """Per-model cache settings (override the stack's cache defaults)."""

    size: Size = Field(description="Volume size, binary units (e.g. 20Gi); weights plus room for a second revision.")
    storage_class: str | None = Field(None, description="StorageClass of this model's cache volume.")
    access_mode: AccessMode | None = Field(None, description="Access mode of this model's cache volume.")


class ResourcesConfig(_Model):
    """CPU and memory of a vLLM server container."""

    cpu: Cpu = Field("4", description="CPU request.")
    memory: Size = Field("32Gi", description="Memory request and limit; must exceed shmSize.")


class RolloutConfig(_Model):
    """Rollout on scarce GPUs."""

    max_surge: int = Field(0, ge=0, description="Extra pods during a rollout (0: no spare GPU needed).")
    max_unavailable: int = Field(1, ge=0, description="Pods down at once during a rollout or drain.")

    @model_validator(mode="after")
    def _can_progress(self):
        if self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError("maxSurge and maxUnavailable are both 0: a rollout could never make progress")
        return self


class CanaryConfig(_Model):
    """A second variant of the model (other weights, image or engine args) taking a share of its traffic."""

    weight: int = Field(
        ge=1,
        le=99,
        description="Percent of the model's requests the canary gets (1-99); the stable variant gets the rest.",
    )
    replicas: int = Field(1, ge=1, le=64, description="Replicas of the canary (always on; not autoscaled).")
    revision: Annotated[str, AfterValidator(pinned_revision)] | None = Field(
        None,
        description=(
            "Commit SHA of the canary's weights (default: the model's); another revision gets its own cache volume."
        ),
    )
    image: str | None = Field(
        None, description="vLLM image of the canary, pinned tag or digest (default: the model's)."
    )
    extra_args: list[str] | None = Field(
        None, description="vLLM flags of the canary, replacing the model's extraArgs (default: the model's)."
    )


class ModelConfig(_Model):
    """One model served by vLLM."""

    name: str = Field(
        pattern=DNS_LABEL, max_length=40, description="Short DNS-label name; prefixes every object of this model."
    )
    model: Annotated[str, AfterValidator(_model_source)] = Field(
        description=(
            "Hugging Face repository id (org/name), or object storage: s3://bucket/prefix/ or "
            "gs://bucket/prefix/ (streamed by the Run:ai model streamer; settings under objectStorage)."
        )
    )
    revision: Annotated[str, AfterValidator(pinned_revision)] | None = Field(
        None,
        description=(
            "Full 40-character commit SHA of the weights to serve (required for a Hub model; none for object "
            "storage); branches, tags and refs/pr/N move and are refused."
        ),
    )
    served_model_name: str | None = Field(None, description="Name clients send as `model` (default: the model id).")
    gated: bool = Field(
        False, description="The repository needs a Hugging Face token (set huggingfaceToken as a secret)."
    )
    replicas: int = Field(1, ge=1, le=64, description="Always-on replicas.")
    tensor_parallel_size: int = Field(
        1,
        ge=1,
        le=16,
        description="Tensor parallel size; GPUs per replica are tensorParallelSize x pipelineParallelSize.",
    )
    pipeline_parallel_size: int = Field(
        1, ge=1, le=16, description="Pipeline parallel size (stages, across nodes for a multi-node model)."
    )
    max_model_len: int | None = Field(None, ge=128, description="Context length (default: the model's).")
    gpu_memory_utilization: float = Field(0.9, gt=0.1, le=0.98, description="Fraction of GPU memory vLLM may use.")
    dtype: Dtype = Field(Dtype.AUTO, description="auto, bfloat16, float16 or float32.")
    quantization: Quantization | None = Field(None, description="Quantization method of the checkpoint.")
    enable_prefix_caching: bool = Field(True, description="Reuse KV cache across shared prompt prefixes.")
    max_num_seqs: int | None = Field(None, ge=1, description="Most sequences batched at once.")
    weights_gib: float | None = Field(
        None,
        gt=0,
        alias="weightsGiB",
        description=(
            "Size of the weights in GPU memory, GiB (the checkpoint's safetensors): sizes the GPU fit check, "
            "cache, download deadline and startup budget (default: the catalog's figure for the models it knows; a "
            "model of unknown size on a pool with gpuPool.gpu is refused)."
        ),
    )
    startup_timeout_seconds: int | None = Field(
        None,
        ge=60,
        le=7200,
        description=(
            "Override of the derived startup budget (coldStart: engine start + weightsGiB at storageMiBps); "
            "never below it."
        ),
    )
    cold_start: ColdStartConfig = Field(
        default_factory=ColdStartConfig,
        description=(
            "This model's cold-start figures over the stack-wide coldStart (startup probe, await, cooldown "
            "derive from them)."
        ),
    )
    cache: ModelCacheConfig | None = Field(
        None, description="Weight cache volume (required for a Hub model; none for object storage)."
    )
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="CPU and memory.")
    shm_size: Size | None = Field(None, description="Size of /dev/shm (default from the parallelism).")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Rollout settings.")
    extra_args: list[str] = Field(
        default_factory=list,
        description=(
            "Further vLLM flags, one word per item (`--flag`, `value`) or `--flag=value`; checked against the "
            "pinned vLLM's flags (not ones the stack manages)."
        ),
    )
    architecture: ArchitectureConfig | None = Field(
        None,
        description=(
            "The model's shape from its config.json, for models the built-in catalog does not know (enables "
            "the tensor-parallel and context-length checks)."
        ),
    )
    extra_env: dict[str, str] = Field(default_factory=dict, description="Further environment variables (no secrets).")
    image: str | None = Field(None, description="vLLM image override (pinned tag or digest).")
    slo_ttft_p95_seconds: float | None = Field(
        None,
        gt=0,
        description=(
            "Time-to-first-token p95 SLO in seconds (at most 60); alerts when breached (default: "
            "observability.alerts.ttftP95Seconds)."
        ),
    )
    autoscaling: ModelAutoscalingConfig | None = Field(
        None,
        description=(
            "How the model scales, the same keys for serving: deployment (KEDA; replaces replicas) and knative "
            "(default 0..1 replicas)."
        ),
    )
    serving: ServingMode = Field(
        ServingMode.DEPLOYMENT,
        description=(
            "deployment (always on, or scaled by KEDA) or knative (a Knative Service; scales to zero when idle)."
        ),
    )
    knative: KnativeModelConfig | None = Field(
        None,
        description=(
            "Knative-only knobs (initial scale, container concurrency, stable and panic windows, revision "
            "deadlines), with serving: knative."
        ),
    )
    route: ModelRouteConfig | None = Field(
        None, description="Exposure through llmstack:gateway (default: exposed, with the gateway's request budget)."
    )
    lora_adapters: list[LoraAdapterConfig] = Field(
        default_factory=list,
        description=(
            "LoRA adapters served on top of these weights, each under its own model name (downloaded into this "
            "model's cache)."
        ),
    )
    max_loras: int | None = Field(
        None, ge=1, description="Adapters active in one batch (--max-loras; default: all loraAdapters)."
    )
    canary: CanaryConfig | None = Field(
        None,
        description=(
            "Canary release: a second variant under the same served name taking canary.weight percent of the "
            "traffic through the gateway; promote by copying its revision/image/extraArgs here and removing canary."
        ),
    )
    multi_node: MultiNodeConfig | None = Field(
        None,
        description=(
            "Settings of a model whose GPUs per replica exceed gpuPool.gpu.perNode: it runs as a "
            "LeaderWorkerSet, one pod per node (group placement, RDMA)."
        ),
    )
    lora_memory_gib: float | None = Field(
        None,
        gt=0,
        alias="loraMemoryGiB",
        description=(
            "GPU memory vLLM reserves for the LoRA slots, GiB (default: computed from the model's shape in the "
            "catalog); counted by the GPU fit check."
        ),
    )

    @property
    def is_object_storage(self) -> bool:
        """The weights are streamed from a bucket (s3://, gs://), not downloaded into a cache volume."""
        return objstore.is_object_storage(self.model)

    @model_validator(mode="after")
    def _source_consistent(self):
        """Hub models need a pinned revision and a cache; object-storage models refuse the Hub-only keys."""
        if self.is_object_storage:
            problem = model_source_problem(self)
            if problem:
                raise ConfigProblem(*problem)
            return self
        for key in ("revision", "cache"):
            if getattr(self, key) is None:
                raise ConfigProblem(
                    key,
                    "required key is missing (a Hugging Face model needs its "
                    f"{'pinned commit SHA' if key == 'revision' else 'cache volume'})",
                )
        return self

    @model_validator(mode="after")
    def _lora_consistent(self):
        problem = lora_problem(self)
        if problem:
            raise ConfigProblem(*problem)
        if lora_gib(self) is None:  # the fit check must count the adapter slots: never skipped for want of a size
            raise ConfigProblem(
                "loraMemoryGiB",
                (
                    f"not set, and the shape of {self.model} is not in the catalog, so the GPU memory vLLM reserves "
                    "for the LoRA slots (maxLoras x max rank on every layer) cannot be computed for the fit check; "
                    "set loraMemoryGiB"
                ),
            )
        return self

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model

    @property
    def cold_start_budget(self) -> ColdStartBudget:
        """Node, image, weights and engine start of one replica, from the stated figures."""
        weights = self.weights_estimate
        return cold_start_budget(
            weights[0] if weights else None,
            self.cold_start.args(),
            self.startup_timeout_seconds,
            object_storage=self.is_object_storage,
        )

    @property
    def startup_budget(self) -> int:
        return self.cold_start_budget.startup_seconds

    @property
    def is_knative(self) -> bool:
        return self.serving == ServingMode.KNATIVE

    @property
    def scaling(self) -> Scaling | None:
        """The model's scaling with its serving mode's defaults (None: a Deployment running ``replicas``).
        Cooldown default: a replica removed sooner than a new one takes to come back (node, image, load)
        makes the model flap."""
        return effective_scaling(
            self.autoscaling, self.is_knative, self.max_num_seqs, self.cold_start_budget.total_seconds
        )

    @property
    def keda_autoscaling(self) -> ModelAutoscalingConfig | None:
        """The autoscaling block KEDA carries out: a Deployment model's (Knative scales its own)."""
        return None if self.is_knative else self.autoscaling

    @property
    def cooldown_seconds(self) -> int | None:
        """Effective autoscaling cooldown (None when not autoscaled)."""
        s = self.scaling
        return s.cooldown_seconds if s is not None else None

    # serving: knative
    @property
    def knative_scaling(self) -> KnativeModelConfig:
        """Effective Knative-only settings (defaults filled in); only meaningful with serving: knative."""
        k = self.knative or KnativeModelConfig()
        return k.model_copy(
            update={
                "progress_deadline_seconds": k.progress_deadline_seconds or self.cold_start_budget.total_seconds,
                # At zero the activator holds a request through the whole cold start (node, image, load).
                "request_timeout_seconds": k.request_timeout_seconds
                or knative.default_request_timeout(self.cold_start_budget.total_seconds),
            }
        )

    @model_validator(mode="after")
    def _autoscaling_consistent(self):
        """What the block asks of the model, the same for both serving modes, and what its mode cannot do."""
        a = self.autoscaling
        if a is None:
            return self
        problem = serving_problem(a, self.is_knative)
        if problem:
            raise ConfigProblem(*problem)
        if "replicas" in self.model_fields_set:
            raise ValueError(
                "replicas and autoscaling are both set; with autoscaling, autoscaling.minReplicas/maxReplicas own the "
                "count"
            )
        s = self.scaling
        if a.cooldown_seconds is not None and a.cooldown_seconds < self.startup_budget:
            raise ValueError(
                f"autoscaling.cooldownSeconds {a.cooldown_seconds} is shorter than the model's startup budget "
                f"({self.startup_budget} s, from weightsGiB/startupTimeoutSeconds): a replica removed sooner than one "
                "takes to start makes the model flap; raise cooldownSeconds"
            )
        if self.is_knative and s.cooldown_seconds > KNATIVE_MAX_COOLDOWN_SECONDS:
            raise ConfigProblem(
                "autoscaling.cooldownSeconds",
                (
                    f"{s.cooldown_seconds} is above {KNATIVE_MAX_COOLDOWN_SECONDS}: Knative's scale-down delay is at "
                    "most 1 h"
                ),
            )
        if s.metric == ScalingMetric.CONCURRENCY and s.target != int(s.target):
            raise ConfigProblem(
                "autoscaling.target",
                (
                    f"{s.target:g} is in-flight requests per pod (metric concurrency), a whole number; write "
                    f"{max(1, round(s.target))}"
                ),
            )
        if s.metric == ScalingMetric.CONCURRENCY and self.max_num_seqs and s.target > self.max_num_seqs:
            raise ConfigProblem(
                "autoscaling.target",
                (
                    f"{s.target:g} in-flight requests per pod exceeds maxNumSeqs {self.max_num_seqs}: requests would "
                    "queue inside vLLM before Knative adds a pod"
                ),
            )
        return self

    @model_validator(mode="after")
    def _knative_consistent(self):
        if not self.is_knative:
            if self.knative is not None:
                raise ValueError("knative is set but serving is deployment; set serving: knative or remove knative")
            return self
        for key in ("replicas", "rollout"):
            if key in self.model_fields_set:
                raise ValueError(
                    f"{key} applies to serving: deployment; with serving: knative use "
                    "autoscaling.minReplicas/maxReplicas"
                )
        reserved = knative.KNATIVE_RESERVED_ENV & set(self.extra_env)
        if reserved:
            raise ValueError(
                f"extraEnv sets {sorted(reserved)[0]}, which Knative sets itself and refuses in a revision"
            )
        k, s, budget = self.knative_scaling, self.scaling, self.startup_budget
        if k.initial_scale > s.max_replicas:
            raise ConfigProblem(
                "knative.initialScale", f"{k.initial_scale} exceeds autoscaling.maxReplicas {s.max_replicas}"
            )
        if k.container_concurrency and s.target > k.container_concurrency:
            given = (
                ""
                if self.autoscaling is not None and self.autoscaling.target is not None
                else " (the default, half of maxNumSeqs)"
            )
            raise ConfigProblem(
                "autoscaling.target",
                (
                    f"{s.target:g} in-flight requests per pod{given} exceeds knative.containerConcurrency "
                    f"{k.container_concurrency}: "
                    "Knative could never reach its target; lower the target or raise containerConcurrency"
                ),
            )
        if k.progress_deadline_seconds < budget:
            raise ValueError(
                f"knative.progressDeadlineSeconds {k.progress_deadline_seconds} is shorter than the startup budget "
                f"({budget} s, from weightsGiB/startupTimeoutSeconds): Knative would fail the revision while the model "
                "loads"
            )
        if s.min_replicas == 0 and k.request_timeout_seconds < budget:
            raise ValueError(
                f"knative.requestTimeoutSeconds {k.request_timeout_seconds} is shorter than the startup budget "
                f"({budget} s): the first request after scaling to zero would time out while the model loads"
            )
        return self

    @model_validator(mode="after")
    def _consistent(self):
        check_engine(self)  # extraArgs as vLLM parses them; parallelism and context vs the architecture
        for key, value in self.extra_env.items():
            problem = env_problem(key, value)
            if problem:
                raise ConfigProblem(f"extraEnv.{key}", problem)
        if self.image and image_problem(self.image):
            raise ConfigProblem("image", image_problem(self.image))
        self._check_canary()
        if self.cache is not None and self.cache.access_mode == AccessMode.READ_WRITE_ONCE and self.replicas > 1:
            raise ValueError(
                "cache.accessMode ReadWriteOnce cannot serve several replicas across nodes; use ReadWriteMany"
            )
        return self

    def _check_canary(self) -> None:
        c = self.canary
        if c is None:
            return
        if self.is_knative:
            self._check_knative_canary(c)
        if all(getattr(c, k) is None or getattr(c, k) == getattr(self, k) for k in ("revision", "image", "extra_args")):
            raise ConfigProblem(
                "canary", "differs from the model in nothing: set canary.revision, canary.image or canary.extraArgs"
            )
        problem = image_problem(c.image) if c.image else None
        if problem:
            raise ConfigProblem("canary.image", problem)
        if c.extra_args is not None:
            try:
                check_engine(self.model_copy(update={"extra_args": list(c.extra_args)}))
            except ValueError as e:
                raise ConfigProblem("canary.extraArgs", str(e)) from None

    def _check_knative_canary(self, c: CanaryConfig) -> None:
        """A Knative canary is a second revision of the model's Knative Service (knative_canary)."""
        if "replicas" in c.model_fields_set:
            raise ConfigProblem(
                "canary.replicas",
                (
                    "applies to serving: deployment; a Knative canary is a revision of the model's Knative Service and "
                    "scales like it (autoscaling.minReplicas/maxReplicas, knative.initialScale); remove canary.replicas"
                ),
            )
        weights = self.weights_estimate
        if (
            c.revision not in (None, self.revision)
            and weights is not None
            and self.cache is not None
            and size_gib(self.cache.size) < 2 * weights[0]
        ):
            raise ConfigProblem(
                "cache.size",
                (
                    f"{self.cache.size} cannot hold two revisions of the weights ({weights[1]}, each): a Knative "
                    "canary of another revision downloads it beside the model's into the same volume (so that "
                    f"promoting it reuses the canary's revision); give at least {2 * weights[0]:.0f}Gi"
                ),
            )

    @property
    def canary_variant(self) -> Optional["ModelConfig"]:
        """The canary as a model of its own (same name and served name; its revision, image, extraArgs), or None."""
        c = self.canary
        if c is None:
            return None
        return self.model_copy(
            update={
                "revision": c.revision or self.revision,
                "image": c.image or self.image,
                "extra_args": list(c.extra_args) if c.extra_args is not None else list(self.extra_args),
                # a Deployment canary runs canary.replicas; a Knative canary revision scales like the model
                "replicas": c.replicas,
                "autoscaling": self.autoscaling if self.is_knative else None,
                "canary": None,
            }
        )

    @property
    def min_pods(self) -> int:
        """Pods the model runs at its lowest (what must fit the GPU pool at all times)."""
        s = self.scaling
        if self.is_knative:
            assert s is not None  # a Knative model always scales (effective_scaling)
            # a canary is a second revision, scaled by the same settings (its initial pods included)
            return max(s.min_replicas, self.knative_scaling.initial_scale) * (2 if self.canary is not None else 1)
        stable = s.min_replicas if s is not None else self.replicas
        return stable + (self.canary.replicas if self.canary is not None else 0)  # the canary's GPUs count too

    @property
    def weights_estimate(self) -> tuple[float, str] | None:
        """(GiB of the weights, how that is known) from weightsGiB, else the catalog
        (``engine.weights_estimate``, the fit check's source too); None if unknown."""
        weights = engine_weights_estimate(self)
        return None if weights is None else weights[:2]

    @property
    def effective_shm_size(self) -> str:
        return self.shm_size or default_shm_size(
            {"tensor_parallel_size": self.tensor_parallel_size, "pipeline_parallel_size": self.pipeline_parallel_size}
        )

    @model_validator(mode="after")
    def _sizes_and_times_fit(self):
        weights = self.weights_estimate
        if weights is not None and self.cache is not None:
            gib, source = weights
            if size_gib(self.cache.size) < gib:
                raise ConfigProblem(
                    "cache.size",
                    f"{self.cache.size} cannot hold the weights ({source}); the download would fail with the volume "
                    f"full. Give at least {gib:.0f}Gi, better twice that (room for the next revision)",
                )
        if self.startup_timeout_seconds is not None and weights is not None:  # the size the budget is derived from
            derived = cold_start_budget(
                weights[0], self.cold_start.args(), object_storage=self.is_object_storage
            ).startup_seconds
            if self.startup_timeout_seconds < derived:
                figure = "coldStart.objectStorageMiBps" if self.is_object_storage else "coldStart.storageMiBps"
                raise ConfigProblem(
                    "startupTimeoutSeconds",
                    f"{self.startup_timeout_seconds} s is below the {derived} s that loading the weights "
                    f"({weights[1]}) needs (engine start + weights at {figure}); the kubelet would restart the server "
                    f"while it loads. Remove it (the budget is derived) or give at least {derived}",
                )
        shm, memory = self.effective_shm_size, self.resources.memory
        if size_gib(shm) > size_gib(memory):
            which = "shmSize" if self.shm_size else f"/dev/shm (default {shm} for {self.gpus_per_replica} GPU(s))"
            raise ConfigProblem(
                "shmSize" if self.shm_size else "resources.memory",
                f"{which} is larger than resources.memory {memory}: /dev/shm is memory-backed and counts against the "
                "container's memory limit, so filling it would OOM-kill the server; raise resources.memory or lower "
                "shmSize",
            )
        if self.slo_ttft_p95_seconds is not None and self.slo_ttft_p95_seconds > TTFT_MAX_SECONDS:
            raise ConfigProblem("sloTtftP95Seconds", ttft_unit_message(self.slo_ttft_p95_seconds))
        return self
