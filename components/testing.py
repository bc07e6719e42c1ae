"""``llmstack_k8s.testing`` is :mod:`llmstack_k8s._core.testing`, under the path the README gives
consumers for their tests (every public name of that module is here)."""

from ._core.testing import *  # noqa: F403 (a star import re-exports every public name)
