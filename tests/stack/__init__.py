"""Whole stacks rendered offline under the SDK's mocks: each feature as the stack program renders it, render
validation, cross-object rules, charts and their connections, the render diff."""
