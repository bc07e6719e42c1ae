"""``llmstack_k8s.provider_host`` is :mod:`llmstack_k8s._core.provider_host`, under the path the
README and provider/ give for the provider host (every public name of that module is here)."""

from ._core.provider_host import *  # noqa: F403 (a star import re-exports every public name)
