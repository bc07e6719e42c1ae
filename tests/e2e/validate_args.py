"""Check vLLM server command lines with vLLM's own argument parser (run in the vLLM venv).

    .venv-vllm/bin/python tests/e2e/validate_args.py CASES.json RESULTS.json

CASES.json is a list of ``{"id": str, "command": [...], "args": [...]}`` (the container's
command and args as rendered, ``--model`` pointing at a local model directory). For each case:
the command's ``-m`` module must exist in this vLLM; the args go through the serve parser
(unknown flags end in argparse's exit 2), ``validate_parsed_serve_args`` and the engine config
(bad values, e.g. a ``--max-model-len`` above the model's). RESULTS.json gets one entry per
case: ``{"id", "ok", "error", "resolved"}``. Results go to a file because vLLM logs to stdout.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from smoke import CPU_ENV, validate_in_process  # noqa: E402


def check(case: dict) -> dict:
    out = {"id": case["id"], "ok": False, "error": None, "resolved": None}
    cmd = case.get("command") or []
    if len(cmd) >= 3 and cmd[1] == "-m" and importlib.util.find_spec(cmd[2]) is None:
        out["error"] = f"command runs module {cmd[2]!r}, which this vLLM does not have"
        return out
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            out["resolved"] = validate_in_process(list(case["args"]))
    except SystemExit as e:  # argparse: unknown flag or bad choice
        out["error"] = f"vLLM's argument parser exited with {e.code}: {err.getvalue().strip().splitlines()[-1:]}"
        return out
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"[:2000]
        return out
    out["ok"] = True
    return out


def main(argv: list[str]) -> int:
    cases_path, results_path = argv
    for k, v in CPU_ENV.items():
        os.environ.setdefault(k, v)
    with open(cases_path) as f:
        cases = json.load(f)
    results = [check(c) for c in cases]
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
