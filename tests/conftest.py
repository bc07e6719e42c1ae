import functools
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stacks import render as render_mod  # noqa: E402

STACKS = ("dev", "prod")


@functools.cache
def rendered_stack(stack: str) -> render_mod.Rendered:
    return render_mod.render(stack)


@pytest.fixture(params=STACKS)
def rendered(request) -> render_mod.Rendered:
    """The whole stack rendered offline under mocks, once per stack file."""
    return rendered_stack(request.param)


def render_with(config: dict, stack: str = "test", secret_keys: tuple = (), mocks=None) -> render_mod.Rendered:
    """Run the program with an in-memory stack config (``{"models": [...]}`` etc.)."""
    project = "llmstack"
    wire = {f"{project}:{k}": render_mod._wire(v) for k, v in config.items()}
    return render_mod.run_program(project, stack, wire, [f"{project}:{k}" for k in secret_keys], mocks=mocks)
