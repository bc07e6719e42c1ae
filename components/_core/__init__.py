"""Plumbing every component shares: the package's identity (type tokens, labels), argument
checking, pinned Helm releases, ``pulumi up``'s waits, typed wiring between components, the
provider host that serves them to other languages, and the mocks that render a program offline.
Nothing here is a component; the public paths are ``llmstack_k8s.testing`` and
``llmstack_k8s.provider_host``."""
