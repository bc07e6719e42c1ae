"""``llmstack_k8s.body_router`` is :mod:`llmstack_k8s.edge.body_router`, under the path the README's
config reference names (every public name of that module is here)."""

from .edge.body_router import *  # noqa: F403 (a star import re-exports every public name)
