"""How long a new replica takes from "needed" to "serving", from figures the user states.

One function, :func:`cold_start_budget`, turns the figures (node provisioning, image size and pull
bandwidth, weights size and storage throughput, engine start) into the budget every time-based
setting derives from: the startup probe (weights + engine), the await and the progress deadline
(node + image + startup probe), and the default autoscaling cooldown (the whole cold start: a
replica removed sooner than a new one takes to come back makes the model flap).

The defaults are measured figures from the articles this stack follows: a GPU node through
Karpenter in 5-7 min, the ~10 GB vLLM image at ~57 MiB/s (3 min), weights from a network volume at
~100 MiB/s, and up to 5 min of CUDA init, graph capture and compile warm-up.
"""

import math
from dataclasses import dataclass
from typing import TypedDict

from typing_extensions import NotRequired

#: A new GPU node: Karpenter launch, boot, driver and device plugin ready (p5/g6 on EKS: 5-7 min).
NODE_PROVISIONING_SECONDS = 420
#: Compressed size of the pinned vLLM image (vllm/vllm-openai is 8-10 GB).
IMAGE_GIB = 10.0
#: Registry pull throughput onto a fresh node (MiB/s), decompression included.
IMAGE_PULL_MIBPS = 57.0
#: Reading weights from the cache volume: 10 s per GiB.
STORAGE_MIBPS = 102.4
#: Streaming weights from object storage (Run:ai streamer, same region): below the streamer's published
#: S3 figure (15 GB in 28 s at concurrency 4, ~540 MiB/s), as a replica shares the node's network.
OBJECT_STORAGE_MIBPS = 400.0
#: CUDA init, memory profiling, CUDA-graph capture and compile warm-up.
ENGINE_START_SECONDS = 300
#: Loading weights of unknown size: assume the largest model one node holds.
UNKNOWN_WEIGHTS_LOAD_SECONDS = 1500


class ColdStartArgs(TypedDict):
    """Stated figures of a replica's cold start (every one has a measured default)."""

    node_provisioning_seconds: NotRequired[int]
    """Seconds for a new GPU node to become schedulable (0 where nodes are always there; default 420)."""
    image_gib: NotRequired[float]
    """Compressed size of the vLLM image in GiB (default 10)."""
    image_pull_mib_per_second: NotRequired[float]
    """Registry pull throughput onto a node in MiB/s (default 57)."""
    storage_mib_per_second: NotRequired[float]
    """Throughput reading the weights from the cache volume in MiB/s (default 102.4)."""
    object_storage_mib_per_second: NotRequired[float]
    """Throughput streaming the weights from object storage (s3://, gs://) in MiB/s (default 400)."""
    engine_start_seconds: NotRequired[int]
    """Seconds vLLM takes besides reading weights: CUDA init, profiling, graph capture (default 300)."""


@dataclass(frozen=True)
class ColdStartBudget:
    """The parts of one replica's cold start, in seconds."""

    node_seconds: int
    image_seconds: int
    weights_seconds: int
    engine_seconds: int
    #: Set when the user overrode the startup budget (startupTimeoutSeconds).
    startup_override: int | None = None

    @property
    def scheduling_seconds(self) -> int:
        """Before the container starts: a node for the pod, then its image."""
        return self.node_seconds + self.image_seconds

    @property
    def startup_seconds(self) -> int:
        """From container start to healthy: the startup probe's budget."""
        return self.startup_override or (self.weights_seconds + self.engine_seconds)

    @property
    def total_seconds(self) -> int:
        """From a pod being created to serving, on a node that did not exist yet."""
        return self.scheduling_seconds + self.startup_seconds

    def as_output(self) -> dict:
        """The stack output's shape (camelCase, seconds)."""
        return {
            "nodeSeconds": self.node_seconds,
            "imagePullSeconds": self.image_seconds,
            "weightsSeconds": self.weights_seconds,
            "engineSeconds": self.engine_seconds,
            "startupProbeSeconds": self.startup_seconds,
            "totalSeconds": self.total_seconds,
        }


def _transfer_seconds(gib: float, mib_per_second: float) -> int:
    return math.ceil(round(gib * 1024 / mib_per_second, 6))  # round: 1.0000000002 s is 1 s


def cold_start_budget(
    weights_gib: float | None,
    figures: ColdStartArgs | None = None,
    startup_override: int | None = None,
    object_storage: bool = False,
) -> ColdStartBudget:
    """The cold start of one replica whose weights are ``weights_gib`` (None: unknown), from the
    stated ``figures`` (defaults where unset). ``startup_override`` replaces the startup probe's part;
    ``object_storage``: the weights are streamed from a bucket (at the object-storage figure), not
    read from the cache."""
    f = figures or {}
    storage = (
        f.get("object_storage_mib_per_second", OBJECT_STORAGE_MIBPS)
        if object_storage
        else f.get("storage_mib_per_second", STORAGE_MIBPS)
    )
    return ColdStartBudget(
        node_seconds=int(f.get("node_provisioning_seconds", NODE_PROVISIONING_SECONDS)),
        image_seconds=_transfer_seconds(
            f.get("image_gib", IMAGE_GIB), f.get("image_pull_mib_per_second", IMAGE_PULL_MIBPS)
        ),
        weights_seconds=UNKNOWN_WEIGHTS_LOAD_SECONDS
        if weights_gib is None
        else _transfer_seconds(weights_gib, storage),
        engine_seconds=int(f.get("engine_start_seconds", ENGINE_START_SECONDS)),
        startup_override=startup_override,
    )


#: The budget of a replica whose figures are all defaults (what a component assumes when told nothing).
DEFAULT_SCHEDULING_SECONDS = cold_start_budget(None).scheduling_seconds
