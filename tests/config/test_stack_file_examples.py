"""The examples a stack file keeps commented (user-facing: what to uncomment, and how) are fixture files
under tests/fixtures/stack-examples, which the tests render. Each commented block, uncommented, says
exactly what its fixture file says, line for line, so the two cannot drift apart."""

import re

import pytest

from conftest import ROOT, STACK_EXAMPLES

#: (stack file, the block's first line, what its further lines look like, fixture file)
EXAMPLES = [
    ("Pulumi.dev.yaml", "loraAdapters:", r"#.*", "dev-lora-adapters.yaml"),
    ("Pulumi.dev.yaml", "canary:", r"#  .*", "dev-knative-canary.yaml"),
    ("Pulumi.prod.yaml", "canary:", r"#  .*", "prod-canary.yaml"),
    ("Pulumi.prod.yaml", "- name: llama-405b", r"#  .*", "prod-multi-node-model.yaml"),
]


def commented_block(stack_file: str, first: str, further: str) -> list[str]:
    """The lines of the commented block that starts with ``# <first>`` in a stack file, uncommented."""
    text = (ROOT / stack_file).read_text()
    block = re.search(rf"^(\s*)# {re.escape(first)}\n((?:\1{further}\n)+)", text, re.M)
    assert block, f"{stack_file} lost its commented {first.removeprefix('- ')} example"
    return [first] + [re.sub(r"^\s*# ?", "", line, count=1) for line in block.group(2).splitlines()]


@pytest.mark.parametrize(
    ("stack_file", "first", "further", "fixture"), EXAMPLES, ids=[e[3].removesuffix(".yaml") for e in EXAMPLES]
)
def test_commented_example_says_what_its_fixture_says(stack_file, first, further, fixture):
    lines = (STACK_EXAMPLES / fixture).read_text().splitlines()
    in_fixture = lines[lines.index(first) :]
    assert commented_block(stack_file, first, further) == in_fixture, (
        f"{stack_file}'s commented example and tests/fixtures/stack-examples/{fixture} differ; change both"
    )


def test_every_fixture_is_a_commented_example():
    assert sorted(p.name for p in STACK_EXAMPLES.glob("*.yaml")) == sorted(e[3] for e in EXAMPLES)
