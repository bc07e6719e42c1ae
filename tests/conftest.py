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
    """Run the program with an in-memory stack config (``{"models": [...]}`` etc.; a key with a
    namespace, such as ``kubernetes:context``, is passed as it is)."""
    project = "llmstack"
    wire = {(k if ":" in k else f"{project}:{k}"): render_mod._wire(v) for k, v in config.items()}
    return render_mod.run_program(project, stack, wire, [f"{project}:{k}" for k in secret_keys], mocks=mocks)


def assert_refused(config: dict, expected: str) -> str:
    """The config is refused with one message naming the stack file and containing ``expected``,
    and nothing was registered before it (nothing half-deployed). Returns the message."""
    from stacks.loader import StackConfigError
    from llmstack_k8s.testing import RecordingMocks

    mocks = RecordingMocks()
    with pytest.raises(StackConfigError) as err:
        render_with(config, mocks=mocks)
    message = str(err.value)
    assert "Pulumi.test.yaml" in message and expected in message, message
    assert mocks.registrations == [], "resources were registered before the config was refused"
    return message
