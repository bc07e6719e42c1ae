"""Parse extra-args lists with vLLM's own server parser (run in the vLLM venv), parse step only.

    .venv-vllm/bin/python tests/e2e/vllm_parse.py CASES.json RESULTS.json

CASES.json: ``{"base": [...], "cases": [[...], ...]}``; each case is appended to ``base`` (the
rendered flags) and parsed by ``make_arg_parser(FlexibleArgumentParser())``, as the container's
``python -m vllm.entrypoints.openai.api_server`` does. RESULTS.json: one ``{"ok", "error",
"values"}`` per case, ``values`` mapping every dest the case changed from the base to its value.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from smoke import CPU_ENV  # noqa: E402


def parser():
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser(description="vLLM OpenAI-Compatible RESTful API server."))


def parse(argv: list[str]):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return vars(parser().parse_args(argv)), None
    except SystemExit as e:
        return None, f"exit {e.code}: {err.getvalue().strip().splitlines()[-1:]}"
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"


def main(argv: list[str]) -> int:
    src, dst = argv
    for k, v in CPU_ENV.items():
        os.environ.setdefault(k, v)
    spec = json.load(open(src))
    base, _ = parse(spec["base"])
    assert base is not None, "the base args do not parse"
    out = []
    for case in spec["cases"]:
        ns, error = parse(spec["base"] + case)
        changed = {k: v for k, v in (ns or {}).items() if base.get(k) != v}
        out.append({"ok": ns is not None, "error": error, "values": json.loads(json.dumps(changed, default=str))})
    json.dump(out, open(dst, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
