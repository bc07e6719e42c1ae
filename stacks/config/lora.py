"""LoRA adapters a model serves on top of its base weights, each under its own model name."""

from typing import Annotated

from pydantic import AfterValidator, Field

from llmstack_k8s.edge.inference_objective import PRIORITY_RANGE
from llmstack_k8s.serving.vllm_pod import LORA_RANKS, lora_rank_slot
from llmstack_k8s.sizing.lora import lora_slots_gib_of

from .base import StackModel as _Model
from .engine import architecture_of
from .pinning import pinned_revision  # the same rule as the base weights' revision


class LoraAdapterConfig(_Model):
    """One LoRA adapter: downloaded into the model's cache, served by the model's vLLM under `name`."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][\w.:-]*$",
        max_length=128,
        description="Name clients send as `model` to get the adapter; unique across the stack's served names.",
    )
    model: str = Field(
        pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$",
        description="Hugging Face repository id of the adapter (org/name); trained on this model's base weights.",
    )
    revision: Annotated[str, AfterValidator(pinned_revision)] = Field(
        description="Full 40-character commit SHA of the adapter."
    )
    rank: int = Field(
        ge=1,
        le=LORA_RANKS[-1],
        description="The adapter's LoRA rank r (`r` in its adapter_config.json); the largest one sets --max-lora-rank.",
    )
    gated: bool = Field(False, description="The adapter's repository needs the Hugging Face token (huggingfaceToken).")
    priority: int | None = Field(
        None,
        ge=PRIORITY_RANGE[0],
        le=PRIORITY_RANGE[1],
        description=(
            "Priority of this adapter's requests in the model's InferencePool (an InferenceObjective; see "
            "route.priority)."
        ),
    )


def lora_problem(model) -> tuple[str, str] | None:
    """(key, message) when a model's adapters cannot be served as configured."""
    adapters = model.lora_adapters
    if model.max_loras is not None and not adapters:
        return "maxLoras", "is set but the model has no loraAdapters"
    if model.max_loras is not None and model.max_loras > len(adapters):
        return "maxLoras", (
            f"{model.max_loras} is more than the model's {len(adapters)} loraAdapters: vLLM would reserve GPU "
            "memory for adapter slots nothing can fill"
        )
    seen: dict[str, int] = {}
    for i, a in enumerate(adapters):
        if a.name == model.served_name:
            return (
                f"loraAdapters[{i}].name",
                f"{a.name!r} is the model's own served name; an adapter needs a name of its own",
            )
        if a.name in seen:
            return (
                f"loraAdapters[{i}].name",
                f"{a.name!r} is also loraAdapters[{seen[a.name]}]'s name; names must be unique",
            )
        seen[a.name] = i
    return None


def lora_gib(model) -> tuple[float, str] | None:
    """(GiB vLLM reserves for the model's LoRA slots, how that is known) for the fit check; (0, "")
    without adapters; None when neither loraMemoryGiB nor the model's shape (the catalog) tells it."""
    if not model.lora_adapters:
        return 0.0, ""
    if model.lora_memory_gib is not None:
        return model.lora_memory_gib, f"loraMemoryGiB {model.lora_memory_gib:g}"
    slots = model.max_loras or len(model.lora_adapters)
    rank = lora_rank_slot(max(a.rank for a in model.lora_adapters))
    gib = lora_slots_gib_of(architecture_of(model), slots, rank)
    if gib is None:
        return None
    return gib, f"{slots} LoRA slot(s) at rank {rank} ~ {gib:.2f} GiB"
