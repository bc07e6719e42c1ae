"""``llmstack_k8s.cold_start`` is :mod:`llmstack_k8s.sizing.cold_start`, under the path the README
and the component reference name (every public name of that module is here)."""

from .sizing.cold_start import *  # noqa: F403 (a star import re-exports every public name)
