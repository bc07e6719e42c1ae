"""The stack program's own code (``__main__.py`` runs it): what a stack file may say, and the stack
made of the components (``llmstack_k8s``) from it.

- ``config/``: the stack file's models (pydantic), read from Pulumi and validated by ``config.loader``
- ``compose/``: a validated config turned into components, one module per concern (``compose.stack.build``)
- ``tools/``: developer commands: offline render, render diff, chart expansion, README generators
"""
