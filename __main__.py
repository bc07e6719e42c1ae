"""Pulumi entry point: read the stack's config, build the stack, export its outputs."""

import pulumi

from stacks import composition, loader

config = loader.load(pulumi.get_project(), pulumi.get_stack())
for key, value in composition.build(config).items():
    pulumi.export(key, value)
