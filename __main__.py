"""Pulumi entry point: read the stack's config, build the stack, export its outputs."""

from pathlib import Path

import pulumi

from stacks.compose import stack
from stacks.config import loader

# The project directory (beside Pulumi.yaml) anchors relative paths in the stack file.
config = loader.load(pulumi.get_project(), pulumi.get_stack(), Path(__file__).resolve().parent)
for key, value in stack.build(config).items():
    pulumi.export(key, value)
