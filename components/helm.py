"""``llmstack_k8s.helm`` is :mod:`llmstack_k8s._core.helm`, under the path docs/local-cluster.md names
(every public name of that module is here)."""

from ._core.helm import *  # noqa: F403 (a star import re-exports every public name)
