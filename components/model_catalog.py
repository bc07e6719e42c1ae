"""``llmstack_k8s.model_catalog`` is :mod:`llmstack_k8s.sizing.model_catalog`, under the path the
component reference names (every public name of that module is here)."""

from .sizing.model_catalog import *  # noqa: F403 (a star import re-exports every public name)
