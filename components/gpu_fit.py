"""``llmstack_k8s.gpu_fit`` is :mod:`llmstack_k8s.sizing.gpu_fit`, under the path the component reference names
(every public name of that module is here)."""

from .sizing.gpu_fit import *  # noqa: F403 (a star import re-exports every public name)
