"""Warm-up gate: a new vLLM replica serves one real request before it is Ready.

vLLM answers ``/health`` as soon as the engine is up, but the first real request still pays for
lazy initialisation (CUDA-graph replay paths, allocator growth, tokenizer load). The articles run a
postStart hook for it; a hook does not hold readiness back. Here the *startup probe* is the
warm-up: it sends one tiny completion (one token, with the replica's own API key) and succeeds
only when it is answered. Readiness and liveness probes run only after the startup probe has
succeeded, so a cold replica never joins the Service's endpoints before it has served a request.
"""

import pulumi

#: Stdlib only (the vLLM image has python3); argv: served model name, port, timeout in seconds.
WARMUP_SCRIPT = """
import json, os, sys, urllib.request
name, port, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
body = json.dumps({"model": name, "prompt": "Hello", "max_tokens": 1, "temperature": 0}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body, headers={
    "Content-Type": "application/json", "Authorization": "Bearer " + os.environ.get("VLLM_API_KEY", "")})
try:
    with urllib.request.urlopen(req, timeout=timeout) as r:
        sys.exit(0 if json.load(r).get("choices") else 1)
except Exception as e:
    print(f"warm-up request not answered yet: {e}", file=sys.stderr)
    sys.exit(1)
""".strip()
#: The probe's own timeout; the request gives up a little earlier so the probe reports its error.
WARMUP_TIMEOUT_SECONDS = 30


def warmup_command(served_model_name: pulumi.Input[str], port: int) -> list:
    """The exec probe's command (the served name may be an Output: one list element)."""
    return ["python3", "-c", WARMUP_SCRIPT, served_model_name, str(port), str(WARMUP_TIMEOUT_SECONDS - 5)]


def warmup_startup_probe(
    served_model_name: pulumi.Input[str], port: int, period_seconds: int, failure_threshold: int
) -> dict:
    return {
        "exec": {"command": warmup_command(served_model_name, port)},
        "periodSeconds": period_seconds,
        "timeoutSeconds": WARMUP_TIMEOUT_SECONDS,
        "failureThreshold": failure_threshold,
    }


def is_warmup_probe(probe: dict | None) -> bool:
    cmd = ((probe or {}).get("exec") or {}).get("command") or []
    return len(cmd) > 2 and cmd[2] == WARMUP_SCRIPT
