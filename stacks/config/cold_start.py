"""The stack file's cold-start figures (stack-wide ``coldStart``, a model's own ``coldStart`` on top)
and the image pre-pull (``imagePrePull``).

The figures feed ``llmstack_k8s.cold_start.cold_start_budget``, the one function the startup
probe, the await and the autoscaling cooldown derive from.
"""

from pydantic import Field

from llmstack_k8s.sizing import cold_start as cs
from llmstack_k8s.sizing.cold_start import ColdStartArgs

from .base import StackModel as _Model


class ColdStartConfig(_Model):
    """Stated figures of a replica's cold start; unset ones take the measured defaults."""

    node_provisioning_seconds: int | None = Field(
        None,
        ge=0,
        le=3600,
        description=(
            "Seconds until a new GPU node is schedulable (0 where the nodes always exist; default "
            f"{cs.NODE_PROVISIONING_SECONDS})."
        ),
    )
    image_gib: float | None = Field(
        None,
        gt=0,
        le=100,
        alias="imageGiB",
        description=f"Compressed size of the vLLM image in GiB (default {cs.IMAGE_GIB:g}).",
    )
    image_pull_mib_per_second: float | None = Field(
        None,
        gt=0,
        alias="imagePullMiBps",
        description=f"Registry pull throughput onto a node, MiB/s (default {cs.IMAGE_PULL_MIBPS:g}).",
    )
    storage_mib_per_second: float | None = Field(
        None,
        gt=0,
        alias="storageMiBps",
        description=f"Throughput reading the weights from the cache volume, MiB/s (default {cs.STORAGE_MIBPS:g}).",
    )
    object_storage_mib_per_second: float | None = Field(
        None,
        gt=0,
        alias="objectStorageMiBps",
        description=(
            "Throughput streaming the weights of a model in object storage (s3://, gs://) with the Run:ai "
            f"streamer, MiB/s (default {cs.OBJECT_STORAGE_MIBPS:g})."
        ),
    )
    engine_start_seconds: int | None = Field(
        None,
        ge=10,
        le=3600,
        description=(
            "Engine start besides reading weights: CUDA init, profiling, graph capture (default "
            f"{cs.ENGINE_START_SECONDS})."
        ),
    )

    def args(self) -> ColdStartArgs:
        """The component's figures (only the stated ones)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}  # type: ignore[return-value]

    def over(self, base: "ColdStartConfig") -> "ColdStartConfig":
        """These figures, falling back to ``base``'s (a model's own over the stack-wide ones)."""
        return base.model_copy(update={k: v for k, v in self.model_dump().items() if v is not None})


class ImagePrePullConfig(_Model):
    """Keep the vLLM image on every GPU node before a replica needs it."""

    enabled: bool = Field(
        False,
        description=(
            "Run a DaemonSet on the GPU pool's nodes that pulls every model's vLLM image (tiny requests; "
            "tolerates the pool's taints)."
        ),
    )
