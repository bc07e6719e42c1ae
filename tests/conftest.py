import functools
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stacks.tools import render as render_mod  # noqa: E402

STACKS = ("dev", "prod")


@functools.cache
def rendered_stack(stack: str) -> render_mod.Rendered:
    return render_mod.render(stack)


#: The placeholder dev's adapter example carries until its commit is pinned (README: LoRA adapters).
ADAPTER_SHA_PLACEHOLDER = "PASTE-ITS-COMMIT-SHA"
#: What the tests render in its place: any full SHA (the render never reaches the Hub).
ADAPTER_TEST_SHA = "0" * 40


#: The examples the stack files keep commented (user-facing, not deployed as they are), as files the tests
#: render; tests/config/test_stack_file_examples.py keeps each the same as its commented block.
STACK_EXAMPLES = ROOT / "tests" / "fixtures" / "stack-examples"


def stack_example(name: str):
    """A commented example of a stack file, parsed from its fixture file (``STACK_EXAMPLES / name``)."""
    import yaml

    return yaml.safe_load((STACK_EXAMPLES / name).read_text())


def example_adapter_block(as_written: bool = False) -> list[dict]:
    """The ``loraAdapters`` example of Pulumi.dev.yaml's first model, from its fixture file. The stack
    file keeps it commented until its commit is pinned (no Hub access where it was written); unless
    ``as_written``, the placeholder revision is replaced by a test SHA."""
    adapters = stack_example("dev-lora-adapters.yaml")["loraAdapters"]
    if not as_written:
        for a in adapters:
            if a.get("revision") == ADAPTER_SHA_PLACEHOLDER:
                a["revision"] = ADAPTER_TEST_SHA
    return adapters


@functools.cache
def rendered_dev_with_adapter() -> render_mod.Rendered:
    """Pulumi.dev.yaml with its commented LoRA adapter example switched on (first model)."""
    import json

    project, config, secrets = render_mod.stack_config_env("dev")
    models = json.loads(config[f"{project}:models"])
    models[0]["loraAdapters"] = example_adapter_block()
    config[f"{project}:models"] = json.dumps(models)
    return render_mod.run_program(project, "dev", config, secrets)


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
    from llmstack_k8s._core.testing import RecordingMocks
    from stacks.config.loader import StackConfigError

    mocks = RecordingMocks()
    with pytest.raises(StackConfigError) as err:
        render_with(config, mocks=mocks)
    message = str(err.value)
    assert "Pulumi.test.yaml" in message and expected in message, message
    assert mocks.registrations == [], "resources were registered before the config was refused"
    return message
