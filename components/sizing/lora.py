"""GPU memory vLLM reserves for LoRA adapters, for the fit check.

With ``--enable-lora`` vLLM allocates, before the KV cache, a slot of LoRA weights for each of
``--max-loras`` adapters at ``--max-lora-rank`` on every linear layer it can adapt (the fused
attention projection, the output projection, the fused gate/up projection, the down projection):
``A`` is rank x in, ``B`` is out x rank. That memory is gone for the KV cache whatever the
adapters' own ranks are, so the fit check counts it beside the weights.
"""

_GIB = 1024**3
#: bfloat16/float16 (``--lora-dtype auto`` follows the model's dtype).
LORA_BYTES_PER_PARAMETER = 2


def lora_slots_gib(
    *,
    layers: int,
    hidden_size: int,
    intermediate_size: int,
    kv_dim: int,
    max_loras: int,
    max_lora_rank: int,
    bytes_per_parameter: int = LORA_BYTES_PER_PARAMETER,
) -> float:
    """GiB of the LoRA slots: per layer and slot, rank x (in + out) summed over
    qkv (h -> h + 2 kv_dim), o (h -> h), gate_up (h -> 2 i) and down (i -> h)."""
    in_plus_out = (
        (hidden_size + hidden_size + 2 * kv_dim)
        + 2 * hidden_size
        + (hidden_size + 2 * intermediate_size)
        + (intermediate_size + hidden_size)
    )
    return max_loras * max_lora_rank * in_plus_out * layers * bytes_per_parameter / _GIB


def lora_slots_gib_of(arch, max_loras: int, max_lora_rank: int) -> float | None:
    """The same from a ``ModelArchitecture``; None when its shape (layers, hidden and
    intermediate size) is not known."""
    if not (arch and arch.layers and arch.hidden_size and arch.intermediate_size):
        return None
    head_dim = arch.head_dim or arch.hidden_size // arch.attention_heads
    return lora_slots_gib(
        layers=arch.layers,
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        kv_dim=arch.kv_heads * head_dim,
        max_loras=max_loras,
        max_lora_rank=max_lora_rank,
    )
