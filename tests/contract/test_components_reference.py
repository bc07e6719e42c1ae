"""docs/components.md, the args reference, is generated from the components' TypedDicts and stays
in sync; every component has a Python example there, and every example runs."""

import importlib.util
import runpy

import pulumi
import pytest

from conftest import ROOT
from llmstack_k8s._core.provider_host import COMPONENTS
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import type_hints


def _generator():
    spec = importlib.util.spec_from_file_location("components_reference", ROOT / "scripts" / "components_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_matches_the_components():
    assert _generator().main(["--check"]) == 0, "run `.venv/bin/python scripts/components_reference.py`"


def test_reference_documents_every_component_and_every_key():
    import typing

    text = (ROOT / "docs" / "components.md").read_text()
    for component in COMPONENTS:
        assert f"\n## {component.__name__}\n" in text
        args = typing.get_type_hints(component.__init__)["args"]
        for key in type_hints(args):
            assert f"| `{key}` |" in text, f"{component.__name__}.{key} is not documented"


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.__name__)
def test_example_runs_and_builds_its_component(component):
    example = _generator().example_file(component)
    assert example.exists(), f"{component.__name__} has no example ({example.relative_to(ROOT)})"
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="example", stack="test", preview=True)

    @pulumi.runtime.test
    def run():
        runpy.run_path(str(example), run_name="__main__")

    run()
    assert f"llmstack:index:{component.__name__}" in {r.type for r in mocks.registrations}
    assert any(r.custom for r in mocks.registrations), "the example created no resources"
