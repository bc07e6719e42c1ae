"""``llmstack_k8s.warmup`` is :mod:`llmstack_k8s.serving.warmup`, under the path the README names
(every public name of that module is here)."""

from .serving.warmup import *  # noqa: F403 (a star import re-exports every public name)
