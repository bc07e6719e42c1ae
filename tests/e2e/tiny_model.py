"""Generate a tiny random-weight Llama model that a real vLLM server can load.

No network access is needed: the weights are random (fixed seed) and the
tokenizer is a byte-level BPE trained from scratch on a small built-in corpus
with the `tokenizers` library.

Run with the vLLM venv's python (it needs torch, transformers, tokenizers,
safetensors):

    .venv-vllm/bin/python tests/e2e/tiny_model.py OUTDIR

or import it:

    from tiny_model import make_tiny_model
    make_tiny_model("/tmp/tiny")

The layout written to OUTDIR:
    config.json, generation_config.json, model.safetensors,
    tokenizer.json, tokenizer_config.json (with a chat_template),
    special_tokens_map.json (depending on the transformers version)

Shape notes: vLLM's CPU attention backend rejects head_dim 16 ("Unsupported
CPU attention configuration"); head_dim 64 works, hence hidden 256 / 4 heads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

SEED = 1234
VOCAB_SIZE = 512
HIDDEN_SIZE = 256
NUM_HEADS = 4  # head_dim = 256 / 4 = 64 (needed by vLLM's CPU attention)
NUM_KV_HEADS = 4
NUM_LAYERS = 2
INTERMEDIATE_SIZE = 512
MAX_POSITIONS = 2048

BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [BOS, EOS, UNK, PAD, IM_START, IM_END]  # ids 0..5

# ChatML-style template; ends the assistant turn with <|im_end|>, which is
# also listed as an EOS id in generation_config.json.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "Hello, world! This is a tiny test model for vLLM.",
    "The quick brown fox jumps over the lazy dog.",
    "Pulumi deploys infrastructure as code with Python.",
    "user: What is the capital of France? assistant: Paris.",
    "system: You are a helpful assistant.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 and symbols {}[]()<>:;,.?!-_=+*/\\'\"",
    "Kubernetes, containers, GPUs, CPUs, tokens, latency, throughput, metrics.",
    "Once upon a time there was a small language model that said random things.",
]


def build_tokenizer():
    """Byte-level BPE trained from scratch (deterministic, no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer, length=len(_CORPUS) * 20)
    return tok


def make_tiny_model(outdir: str, seed: int = SEED, max_positions: int = MAX_POSITIONS) -> str:
    """Write the tiny model + tokenizer into `outdir`; return `outdir`.

    `max_positions` bounds the `--max-model-len` vLLM accepts (RoPE: no weights depend on it).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(seed)

    raw_tok = build_tokenizer()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw_tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=max_positions,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(outdir)
    # transformers 5 writes the template to chat_template.jinja only; also put
    # it into tokenizer_config.json for loaders that look there.
    tc_path = os.path.join(outdir, "tokenizer_config.json")
    with open(tc_path) as f:
        tc = json.load(f)
    tc["chat_template"] = CHAT_TEMPLATE
    with open(tc_path, "w") as f:
        json.dump(tc, f, indent=2, sort_keys=True)
        f.write("\n")

    vocab = len(tokenizer)
    assert vocab <= VOCAB_SIZE, vocab
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}

    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        head_dim=HIDDEN_SIZE // NUM_HEADS,
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOS],
        pad_token_id=ids[PAD],
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS],
        eos_token_id=[ids[EOS], ids[IM_END]],
        pad_token_id=ids[PAD],
    )
    model.save_pretrained(outdir, safe_serialization=True)
    return outdir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--max-positions", type=int, default=MAX_POSITIONS)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    make_tiny_model(args.outdir, seed=args.seed, max_positions=args.max_positions)
    dt = time.monotonic() - t0
    files = sorted(os.listdir(args.outdir))
    print(json.dumps({"outdir": os.path.abspath(args.outdir), "files": files, "seconds": round(dt, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
