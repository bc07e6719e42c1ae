"""The platform's rules under the name they were first published as: ``llmstack_k8s.checks`` is
:mod:`llmstack_k8s.rules` (import from there; every public name here is that package's)."""

from .rules import *  # noqa: F403 (a star import re-exports every name of rules.__all__)
from .rules import __all__ as __all__
