"""Weight-loading time of a generated ~2 GB model with the CPU build of vLLM: the default loader
(``--load-format auto``, safetensors through the page cache) against the Run:ai model streamer
(``--load-format runai_streamer``), both from local disk, best of N, runs interleaved.

The page cache is equalised rather than dropped (dropping needs root on the host): before every
run each weight file is read once, so both loaders start from the same hot cache and the figure
compares the loaders, not the disk.

    .venv-vllm/bin/python benchmarks/weight_loading.py --out /tmp/wl [--runs 3] [--layers 30]

Needs ``runai-model-streamer`` in the vLLM venv (``pip install runai-model-streamer``). Prints one
JSON object: per-run seconds (the loader's ``load_weights``, timed in the engine's process, and the
process wall time),
the best of each, their ratio, and the load average while it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

LOADERS = ("auto", "runai_streamer")
LOAD_LINE = re.compile(r"BENCH weights ([0-9.]+) seconds")


def make_model(outdir: Path, layers: int, hidden: int = 1024, intermediate: int = 4096) -> float:
    """A random float32 Llama of ``layers`` layers (~67 MiB each at the defaults) with the tiny
    model's tokenizer; returns its size in GiB."""
    import torch
    from safetensors.torch import save_file
    from tiny_model import make_tiny_model

    make_tiny_model(str(outdir))
    cfg = json.loads((outdir / "config.json").read_text())
    cfg.update(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        torch_dtype="float32",
    )
    (outdir / "config.json").write_text(json.dumps(cfg, indent=2))
    vocab = cfg["vocab_size"]
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    tensors = {
        "model.embed_tokens.weight": rand(vocab, hidden),
        "model.norm.weight": torch.ones(hidden),
        "lm_head.weight": rand(vocab, hidden),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[p + f"self_attn.{n}.weight"] = rand(hidden, hidden)
        tensors[p + "mlp.gate_proj.weight"] = rand(intermediate, hidden)
        tensors[p + "mlp.up_proj.weight"] = rand(intermediate, hidden)
        tensors[p + "mlp.down_proj.weight"] = rand(hidden, intermediate)
        tensors[p + "input_layernorm.weight"] = torch.ones(hidden)
        tensors[p + "post_attention_layernorm.weight"] = torch.ones(hidden)
    for f in outdir.glob("*.safetensors"):
        f.unlink()
    save_file(tensors, str(outdir / "model.safetensors"), metadata={"format": "pt"})
    return sum(f.stat().st_size for f in outdir.glob("*.safetensors")) / 2**30


def warm_page_cache(model: Path) -> None:
    for f in model.glob("*.safetensors"):
        with open(f, "rb") as fh:
            while fh.read(64 << 20):
                pass


# One engine in one process (no engine-core or worker subprocess), so both loaders' load_weights can
# be timed the same way: the default loader logs its time, the streamer's loader does not.
LOAD_ONE = """
import sys, time
from vllm.model_executor.model_loader.default_loader import DefaultModelLoader
from vllm.model_executor.model_loader.runai_streamer_loader import RunaiModelStreamerLoader
for cls in (DefaultModelLoader, RunaiModelStreamerLoader):
    def timed(self, model, model_config, _orig=cls.load_weights):
        t0 = time.perf_counter()
        _orig(self, model, model_config)
        print(f"BENCH weights {time.perf_counter() - t0:.3f} seconds", flush=True)
    cls.load_weights = timed
from vllm import LLM
LLM(model=sys.argv[1], load_format=sys.argv[2], dtype="float32", enforce_eager=True, max_model_len=256,
    distributed_executor_backend="uni")
"""


def load_once(model: Path, loader: str, log: Path) -> tuple[float, float]:
    """(vLLM's weight-loading seconds, process wall seconds) of one engine start with ``loader``."""
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", LOAD_ONE, str(model), loader], env=env, capture_output=True, text=True, timeout=900
    )
    wall = time.monotonic() - t0
    log.write_text(out.stdout + out.stderr)
    m = LOAD_LINE.findall(out.stdout + out.stderr)
    if out.returncode != 0 or not m:
        raise SystemExit(f"{loader}: exit {out.returncode}, no timed load_weights; see {log}")
    return float(m[-1]), wall


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--layers", type=int, default=30)
    a = ap.parse_args(argv)
    model = a.out / "model"
    model.mkdir(parents=True, exist_ok=True)
    gib = make_model(model, a.layers)
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {loader: [] for loader in LOADERS}
    for i in range(a.runs):
        for loader in LOADERS:  # interleaved: a slow phase of the machine hits both
            warm_page_cache(model)
            weights, wall = load_once(model, loader, a.out / f"{loader}-{i}.log")
            runs[loader].append(
                {"weights_s": round(weights, 2), "wall_s": round(wall, 1), "loadavg_1m": round(os.getloadavg()[0], 2)}
            )
    best = {loader: min(r["weights_s"] for r in runs[loader]) for loader in LOADERS}
    result = {
        "model_gib": round(gib, 2),
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "runs": runs,
        "best_weights_s": best,
        "streamer_over_default": round(best["runai_streamer"] / best["auto"], 2),
    }
    print(json.dumps(result, indent=2))
    (a.out / "result.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
