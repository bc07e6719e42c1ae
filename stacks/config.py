"""Everything a stack file (``Pulumi.<stack>.yaml``) can say, validated before anything is created.

Keys are camelCase under the project's namespace (``llmstack:models``). Unknown keys are
refused, so a typo ends in an error naming the key instead of a silently ignored setting.
"""

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from components.model_cache import AccessMode
from components.vllm_pod import Dtype, Quantization

DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_BINARY_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi)?$")
_CPU_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]{1,3})?|[0-9]+m)$")
# Flags the stack renders itself; setting them again in extraArgs would silently fight the config.
MANAGED_FLAGS = {
    "--model", "--served-model-name", "--host", "--port", "--tensor-parallel-size", "-tp",
    "--pipeline-parallel-size", "-pp", "--gpu-memory-utilization", "--dtype", "--max-model-len",
    "--quantization", "-q", "--enable-prefix-caching", "--no-enable-prefix-caching", "--max-num-seqs",
    "--api-key", "--revision",
}
UNPINNED_REVISIONS = {"", "main", "master", "latest", "head"}


def _binary_quantity(v: str) -> str:
    if not _BINARY_QUANTITY.match(v):
        hint = ""
        m = re.match(r"^([0-9.]+)([KMGTP])B?$", v, re.IGNORECASE)
        if m:
            hint = f" (did you mean {m.group(1)}{m.group(2).upper()}i?)"
        raise ValueError(f"{v!r} is not a size in binary units; write e.g. 40Gi or 512Mi{hint}")
    return v


def _cpu_quantity(v: str) -> str:
    if not _CPU_QUANTITY.match(str(v)):
        raise ValueError(f"{v!r} is not a CPU quantity; write e.g. 4, 0.5 or 500m")
    return str(v)


def _pinned_revision(v: str) -> str:
    if v.strip().lower() in UNPINNED_REVISIONS:
        raise ValueError(f"revision {v!r} is a moving branch; pin a commit sha or release tag")
    return v


Size = Annotated[str, AfterValidator(_binary_quantity)]
Cpu = Annotated[str, AfterValidator(_cpu_quantity)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class KubernetesConfig(_Model):
    """How to reach the cluster (default: the ambient kubeconfig and its current context)."""

    kubeconfig: Optional[str] = Field(None, description="Path to a kubeconfig file.")
    context: Optional[str] = Field(None, description="kubeconfig context to use.")


class CacheDefaults(_Model):
    """Defaults for every model's weight cache."""

    storage_class: Optional[str] = Field(None, description="StorageClass of cache volumes (default: the cluster's default).")
    access_mode: AccessMode = Field(AccessMode.READ_WRITE_MANY, description="ReadWriteMany (replicas on several nodes) or ReadWriteOnce.")
    download_retries: int = Field(4, ge=0, le=20, description="Retries of the download Job.")
    download_deadline_seconds: int = Field(3600, ge=300, description="Deadline of the whole download.")


class NetworkConfig(_Model):
    """Who may reach the vLLM servers."""

    client_namespaces: list[str] = Field(default_factory=list, description="Namespaces allowed to call the API.")
    monitoring_namespaces: list[str] = Field(default_factory=lambda: ["monitoring"], description="Namespaces allowed to scrape /metrics.")


class ModelCacheConfig(_Model):
    """Per-model cache settings (override the stack's cache defaults)."""

    size: Size = Field(description="Volume size, binary units (e.g. 20Gi); weights plus room for a second revision.")
    storage_class: Optional[str] = Field(None, description="StorageClass of this model's cache volume.")
    access_mode: Optional[AccessMode] = Field(None, description="Access mode of this model's cache volume.")


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


class ModelConfig(_Model):
    """One model served by vLLM."""

    name: str = Field(pattern=DNS_LABEL, max_length=40, description="Short DNS-label name; prefixes every object of this model.")
    model: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", description="Hugging Face repository id (org/name).")
    revision: Annotated[str, AfterValidator(_pinned_revision)] = Field(description="Pinned revision to serve: a commit sha (preferred) or a release tag; never a branch.")
    served_model_name: Optional[str] = Field(None, description="Name clients send as `model` (default: the model id).")
    gated: bool = Field(False, description="The repository needs a Hugging Face token (set huggingfaceToken as a secret).")
    replicas: int = Field(1, ge=1, le=64, description="Always-on replicas.")
    gpus: Optional[int] = Field(None, ge=1, description="GPUs per replica; if given must equal tensor x pipeline parallel size.")
    tensor_parallel_size: int = Field(1, ge=1, le=16, description="Tensor parallel size.")
    pipeline_parallel_size: int = Field(1, ge=1, le=16, description="Pipeline parallel size.")
    max_model_len: Optional[int] = Field(None, ge=128, description="Context length (default: the model's).")
    gpu_memory_utilization: float = Field(0.9, gt=0.1, le=0.98, description="Fraction of GPU memory vLLM may use.")
    dtype: Dtype = Field(Dtype.AUTO, description="auto, bfloat16, float16 or float32.")
    quantization: Optional[Quantization] = Field(None, description="Quantization method of the checkpoint.")
    enable_prefix_caching: bool = Field(True, description="Reuse KV cache across shared prompt prefixes.")
    max_num_seqs: Optional[int] = Field(None, ge=1, description="Most sequences batched at once.")
    weights_gib: Optional[float] = Field(None, gt=0, alias="weightsGiB", description="Size of the weights in GiB; sizes the startup budget.")
    startup_timeout_seconds: Optional[int] = Field(None, ge=60, le=7200, description="Override of the derived startup budget.")
    cache: ModelCacheConfig = Field(description="Weight cache volume.")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="CPU and memory.")
    shm_size: Optional[Size] = Field(None, description="Size of /dev/shm (default from the parallelism).")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Rollout settings.")
    extra_args: list[str] = Field(default_factory=list, description="Further vLLM flags (not ones the stack manages).")
    extra_env: dict[str, str] = Field(default_factory=dict, description="Further environment variables (no secrets).")
    image: Optional[str] = Field(None, description="vLLM image override (pinned tag or digest).")

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model

    @model_validator(mode="after")
    def _consistent(self):
        if self.gpus is not None and self.gpus != self.gpus_per_replica:
            raise ValueError(
                f"gpus is {self.gpus} but tensorParallelSize x pipelineParallelSize is "
                f"{self.tensor_parallel_size} x {self.pipeline_parallel_size} = {self.gpus_per_replica}; vLLM uses exactly that many"
            )
        for arg in self.extra_args:
            flag = arg.split("=", 1)[0]
            if flag in MANAGED_FLAGS:
                raise ValueError(f"extraArgs sets {flag}, which the stack renders from its own key; set that key instead")
        for key in self.extra_env:
            if key in {"VLLM_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}:
                raise ValueError(f"extraEnv sets {key}: secrets come from Pulumi secrets, never plain config")
        if self.image and (self.image.endswith(":latest") or (":" not in self.image.rsplit("/", 1)[-1] and "@" not in self.image)):
            raise ValueError(f"image {self.image!r} is not pinned; give a version tag or digest")
        if self.cache.access_mode == AccessMode.READ_WRITE_ONCE and self.replicas > 1:
            raise ValueError("cache.accessMode ReadWriteOnce cannot serve several replicas across nodes; use ReadWriteMany")
        return self


class StackConfig(_Model):
    """The whole stack file."""

    namespace: str = Field("llm", pattern=DNS_LABEL, max_length=63, description="Namespace of the vLLM servers and caches.")
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig, description="Cluster access.")
    huggingface_token: Optional[str] = Field(None, description="Hugging Face token (set with --secret).")
    cache: CacheDefaults = Field(default_factory=CacheDefaults, description="Cache defaults.")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="Network policy.")
    models: list[ModelConfig] = Field(min_length=1, description="Models to serve.")

    @model_validator(mode="after")
    def _cross_model(self):
        seen: dict[str, str] = {}
        for m in self.models:
            if m.name in seen:
                raise ValueError(f"two models are named {m.name!r}; names must be unique")
            seen[m.name] = m.name
        served = [m.served_name for m in self.models]
        dup = {s for s in served if served.count(s) > 1}
        if dup:
            raise ValueError(f"servedModelName {sorted(dup)[0]!r} is used by two models")
        gated = [m.name for m in self.models if m.gated]
        if gated and not self.huggingface_token:
            raise ValueError(
                f"model {gated[0]!r} is gated but huggingfaceToken is not set; "
                "run `pulumi config set --secret huggingfaceToken hf_...`"
            )
        for m in self.models:
            mode = m.cache.access_mode or self.cache.access_mode
            if mode == AccessMode.READ_WRITE_ONCE and m.replicas > 1:
                raise ValueError(f"model {m.name!r}: cache accessMode ReadWriteOnce cannot serve {m.replicas} replicas; use ReadWriteMany")
        return self
