"""The package's identity: the name in every type token and the labels every child carries.

The type token ``<PACKAGE>:index:<Class>`` is part of every URN; once released it never changes.
"""

PACKAGE = "llmstack"

#: Label keys the components put on what they create (``app.kubernetes.io/*`` recommended labels).
MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": PACKAGE}


def type_token(cls_name: str) -> str:
    return f"{PACKAGE}:index:{cls_name}"


def labels(name: str, component: str) -> dict[str, str]:
    """Recommended labels; ``selector_labels`` is the stable subset used in selectors."""
    return {**selector_labels(name), "app.kubernetes.io/component": component, **MANAGED_BY}


def selector_labels(name: str) -> dict[str, str]:
    # Selectors are immutable on Deployments: keep them to the name, never to versions.
    return {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": name}
