"""Smoke test: start a REAL vLLM (CPU build) OpenAI server on loopback and probe it.

Steps (each bounded in time):
  1. generate the tiny random-weight Llama (tests/e2e/tiny_model.py) unless
     --model-dir points at an existing one;
  2. validate the server flags in-process with vLLM's own arg parser
     (`make_arg_parser` + `validate_parsed_serve_args` + engine config);
  3. launch `python -m vllm.entrypoints.openai.api_server` on 127.0.0.1;
  4. wait until GET /v1/models answers 200 (time-to-ready);
  5. GET /health, GET /v1/models with and without the API key (expect 401),
     POST /v1/completions, POST /v1/chat/completions, GET /metrics;
  6. stop the server (SIGTERM to its process group, SIGKILL after a grace).

The driver itself needs only the standard library; vLLM runs from the venv
made by scripts/setup-vllm-cpu.sh (default <repo>/.venv-vllm/bin/python).

    python3 tests/e2e/smoke.py                       # full run
    python3 tests/e2e/smoke.py --metrics-out tests/e2e/observed-metrics.txt
    .venv-vllm/bin/python tests/e2e/smoke.py validate -- --model X --dtype float32 ...

Exit status 0 when every check passed; a JSON summary is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_PY = os.path.join(os.environ.get("VLLM_VENV", os.path.join(REPO, ".venv-vllm")), "bin", "python")

HOST = "127.0.0.1"  # loopback only, always
SERVED_NAME = "tiny"
API_KEY = "secret"

# Environment that a CPU-only, offline vLLM needs.
CPU_ENV = {
    "HF_HUB_OFFLINE": "1",  # never try the hub (no network here); local paths work
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_TARGET_DEVICE": "cpu",
    # Without a KV size, the CPU worker reserves gpu_memory_utilization (0.9)
    # x total RAM. Either this (integer GiB, legacy) or --kv-cache-memory-bytes.
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def server_args(model_dir: str, port: int, extra: list[str] | None = None) -> list[str]:
    """Flags known to work on this CPU-only machine (vllm-cpu 0.32.0)."""
    return [
        "--model",
        model_dir,
        "--served-model-name",
        SERVED_NAME,
        "--host",
        HOST,
        "--port",
        str(port),
        "--api-key",
        API_KEY,
        "--dtype",
        "float32",  # 'auto' downcasts fp32 -> bf16 on CPU; no AVX512-BF16 here
        "--max-model-len",
        "512",
        "--max-num-seqs",
        "4",
        "--max-num-batched-tokens",
        "512",
        "--enforce-eager",  # skip torch.compile warm-up (much faster start)
        "--enable-prefix-caching",
        "--tensor-parallel-size",
        "1",
        "--generation-config",
        "auto",
        *(extra or []),
    ]


# --------------------------------------------------------------------------
# in-process validation (runs inside the vLLM venv)
# --------------------------------------------------------------------------
def validate_in_process(argv: list[str], engine_config: bool = True) -> dict:
    """Parse/validate serve flags exactly like the server does, without serving.

    Works with vllm 0.32 (module moved from vllm.entrypoints.openai.cli_args).
    Raises SystemExit(2) for unknown flags (argparse) or ValueError/TypeError/
    pydantic.ValidationError for bad values.
    """
    try:  # vllm >= 0.2x "launchers" layout (0.32.0)
        from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    except ImportError:  # older vLLM
        from vllm.entrypoints.openai.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm-serve"))
    args = parser.parse_args(argv)
    validate_parsed_serve_args(args)
    out = {"model": args.model, "dtype": args.dtype, "max_model_len": args.max_model_len}
    if engine_config:
        from vllm.engine.arg_utils import AsyncEngineArgs

        cfg = AsyncEngineArgs.from_cli_args(args).create_engine_config()
        out.update(
            resolved_dtype=str(cfg.model_config.dtype),
            resolved_max_model_len=cfg.model_config.max_model_len,
            device=str(cfg.device_config.device),
            tensor_parallel_size=cfg.parallel_config.tensor_parallel_size,
            prefix_caching=cfg.cache_config.enable_prefix_caching,
            kv_cache_memory_bytes=cfg.cache_config.kv_cache_memory_bytes,
        )
    return out


# --------------------------------------------------------------------------
# HTTP helpers (stdlib only)
# --------------------------------------------------------------------------
def http(method: str, url: str, body: dict | None = None, key: str | None = None, timeout: float = 30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def tail(path: str, n: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def stop(proc: subprocess.Popen, grace: float = 10) -> float:
    """SIGTERM the server's process group; SIGKILL after `grace` seconds."""
    t0 = time.monotonic()
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    # reap stragglers in the group (engine core / worker children)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return time.monotonic() - t0


def metric_value(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            try:
                total += float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return total


def run_smoke(a) -> int:
    summary: dict = {"checks": {}}
    failures: list[str] = []

    def check(name: str, ok: bool, detail=None):
        summary["checks"][name] = {"ok": bool(ok), **({"detail": detail} if detail is not None else {})}
        print(
            f"[smoke] {'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail is not None and not ok else ""),
            flush=True,
        )
        if not ok:
            failures.append(name)

    if not os.path.exists(a.python):
        print(f"[smoke] no vLLM python at {a.python}; run scripts/setup-vllm-cpu.sh", file=sys.stderr)
        return 2

    # refuse to run if something already listens on the port (we would probe it)
    with socket.socket() as s:
        if s.connect_ex((HOST, a.port)) == 0:
            print(f"[smoke] port {a.port} on {HOST} is already in use", file=sys.stderr)
            return 2

    # SIGTERM/SIGHUP (e.g. from `timeout`) -> SystemExit so the server is still stopped
    def _on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    workdir = tempfile.mkdtemp(prefix="vllm-smoke-")
    env = dict(os.environ, **CPU_ENV)

    # 1. model
    model_dir = a.model_dir or os.path.join(workdir, "tiny-model")
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        t0 = time.monotonic()
        subprocess.run(
            [a.python, os.path.join(HERE, "tiny_model.py"), model_dir],
            check=True,
            env=env,
            timeout=300,
            stdout=subprocess.DEVNULL,
        )
        summary["model_gen_s"] = round(time.monotonic() - t0, 1)
    summary["model_dir"] = model_dir
    argv = server_args(model_dir, a.port, a.extra)
    summary["server_argv"] = argv

    # 2. in-process validation of the flags (in the vLLM venv)
    if not a.skip_validate:
        t0 = time.monotonic()
        p = subprocess.run(
            [a.python, os.path.abspath(__file__), "validate", "--", *argv],
            env=env,
            timeout=300,
            capture_output=True,
            text=True,
        )
        summary["validate_s"] = round(time.monotonic() - t0, 1)
        last = (p.stdout.strip().splitlines() or [""])[-1]
        check("validate_args_in_process", p.returncode == 0, last if p.returncode == 0 else p.stderr[-800:])

    # 3. launch (new session => own process group, killed as a whole)
    log_path = a.log or os.path.join(workdir, "server.log")
    cmd = [a.python, "-m", "vllm.entrypoints.openai.api_server", *argv]
    print("[smoke] launching: " + " ".join(cmd), flush=True)
    logf = open(log_path, "w")
    t_launch = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True)
    base = f"http://{HOST}:{a.port}"
    try:
        # 4. readiness: /v1/models answers 200 with the key
        ready = False
        deadline = t_launch + a.ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                st, _ = http("GET", base + "/v1/models", key=API_KEY, timeout=3)
                if st == 200:
                    ready = True
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(1)
        summary["time_to_ready_s"] = round(time.monotonic() - t_launch, 1)
        check("server_ready", ready, None if ready else f"rc={proc.poll()} log tail:\n{tail(log_path)}")
        if not ready:
            return 1

        # 5. endpoints
        st, body = http("GET", base + "/health")
        check("health_200", st == 200, st)

        st, body = http("GET", base + "/v1/models")
        check("models_without_key_401", st == 401, (st, body[:200]))
        st, body = http("GET", base + "/v1/models", key="wrong-key")
        check("models_wrong_key_401", st == 401, (st, body[:200]))
        st, body = http("GET", base + "/v1/models", key=API_KEY)
        ids = [m.get("id") for m in json.loads(body).get("data", [])] if st == 200 else []
        check("models_with_key_200", st == 200 and SERVED_NAME in ids, (st, ids))

        st, body = http(
            "POST",
            base + "/v1/completions",
            key=API_KEY,
            timeout=120,
            body={
                "model": SERVED_NAME,
                "prompt": "Hello, world",
                "max_tokens": 8,
                "temperature": 0,
                "ignore_eos": True,
            },
        )
        ok = st == 200 and json.loads(body)["usage"]["completion_tokens"] == 8
        check("completions_200", ok, (st, body[:300]))
        if ok:
            summary["completion_text"] = json.loads(body)["choices"][0]["text"]

        st, body = http(
            "POST",
            base + "/v1/chat/completions",
            key=API_KEY,
            timeout=120,
            body={
                "model": SERVED_NAME,
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "Hi there"},
                ],
                "max_tokens": 8,
                "temperature": 0,
            },
        )
        ok = st == 200 and json.loads(body)["choices"][0]["message"]["role"] == "assistant"
        check("chat_completions_200", ok, (st, body[:300]))
        if ok:
            summary["chat_usage"] = json.loads(body)["usage"]

        st, body = http("POST", base + "/v1/completions", body={"model": SERVED_NAME, "prompt": "x", "max_tokens": 1})
        check("completions_without_key_401", st == 401, st)

        # metrics: request counters are updated asynchronously -> short poll
        text, success = "", 0.0
        for _ in range(20):
            st, text = http("GET", base + "/metrics")
            success = metric_value(text, "vllm:request_success_total")
            if st == 200 and success >= 2:
                break
            time.sleep(0.5)
        families = sorted({m.group(1) for m in re.finditer(r"^# TYPE (vllm:\S+) ", text, re.M)})
        summary["metric_families"] = families
        summary["request_success_total"] = success
        check(
            "metrics_200_with_vllm_families",
            st == 200 and len(families) > 0 and success >= 2,
            (st, len(families), success),
        )
        if a.metrics_out:
            with open(a.metrics_out, "w") as f:
                f.write(text)
    finally:
        # 6. stop
        summary["stop_s"] = round(stop(proc), 1)
        logf.close()
        summary["server_log"] = log_path

    summary["passed"] = not failures
    summary["failures"] = failures
    print(json.dumps(summary, indent=1))
    print(f"smoke: {len(summary['checks']) - len(failures)} passed, {len(failures)} failed")
    if not failures and not a.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not failures else 1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["validate"]:
        rest = argv[1:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        os.environ.update({k: v for k, v in CPU_ENV.items() if k not in os.environ})
        print(json.dumps(validate_in_process(rest), default=str))
        return 0

    ap = argparse.ArgumentParser(description="vLLM CPU smoke test (loopback only)")
    ap.add_argument("--python", default=DEFAULT_PY, help="python of the vLLM venv")
    ap.add_argument("--model-dir", default=None, help="existing tiny model dir (else generated in a temp dir)")
    ap.add_argument("--port", type=int, default=18000)
    ap.add_argument("--ready-timeout", type=float, default=420, help="seconds to wait for /v1/models")
    ap.add_argument("--metrics-out", default=None, help="write the /metrics text here")
    ap.add_argument("--log", default=None, help="server log path")
    ap.add_argument("--skip-validate", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (model, log) after a pass")
    ap.add_argument("extra", nargs="*", help="extra server flags (after --)")
    return run_smoke(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
