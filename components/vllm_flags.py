"""``llmstack_k8s.vllm_flags`` is :mod:`llmstack_k8s.serving.vllm_flags`, under the path the component reference names
(every public name of that module is here)."""

from .serving.vllm_flags import *  # noqa: F403 (a star import re-exports every public name)
