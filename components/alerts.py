"""``llmstack_k8s.alerts`` is :mod:`llmstack_k8s.observability.alerts`, under the path the component reference names
(every public name of that module is here)."""

from .observability.alerts import *  # noqa: F403 (a star import re-exports every public name)
