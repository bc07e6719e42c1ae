"""Generate a tiny LoRA adapter with peft on the tiny model (tiny_model.py), for the real-vLLM suite.

Random LoRA weights (fixed seed, B not zero-initialised, so the adapter really changes the output);
no download. Run with the vLLM venv's python (torch, transformers, peft):

    .venv-vllm/bin/python tests/e2e/tiny_lora.py MODEL_DIR OUT_DIR --rank 8
"""

from __future__ import annotations

import argparse
import json
import sys

SEED = 4321
#: The attention and MLP projections of a Llama layer (what adapters usually fine-tune).
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_tiny_lora(model_dir: str, out: str, rank: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=TARGET_MODULES,
        lora_dropout=0.0,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    model.save_pretrained(out)
    with open(f"{out}/adapter_config.json") as f:
        saved = json.load(f)
    return {"r": saved["r"], "target_modules": sorted(saved["target_modules"])}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model_dir")
    p.add_argument("out")
    p.add_argument("--rank", type=int, default=8)
    a = p.parse_args(argv)
    print(json.dumps(make_tiny_lora(a.model_dir, a.out, a.rank)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
