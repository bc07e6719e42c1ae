"""The package's identity: the name in every type token and the labels every child carries.

The type token ``<PACKAGE>:index:<Class>`` is part of every URN; once released it never changes.
"""

PACKAGE = "llmstack"

#: Label keys the components put on what they create (``app.kubernetes.io/*`` recommended labels).
MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": PACKAGE}


def type_token(cls_name: str) -> str:
    return f"{PACKAGE}:index:{cls_name}"


#: ``app.kubernetes.io/name`` of vLLM server pods (the PodMonitor selects it). Only server pods
#: carry it: anything else of a model (the download Job's pods) has a name of its own, so no
#: Service, PodDisruptionBudget or NetworkPolicy of the servers selects it.
SERVER_APP = "vllm"
#: ``app.kubernetes.io/component`` of the server pods.
SERVER_COMPONENT = "server"


#: Pod labels of a canary's server pods: which variant it is and which model it is a variant of. The
#: PodMonitor copies them into every series (``variant``, and the model's name), so dashboards and
#: alerts compare the variants under one model. Stable pods carry neither (adding a canary must not
#: roll the stable pods): the PodMonitor labels them ``variant="stable"``.
VARIANT_POD_LABEL = "llmstack.dev/variant"
VARIANT_OF_POD_LABEL = "llmstack.dev/variant-of"
CANARY_VARIANT = "canary"
STABLE_VARIANT = "stable"


def labels(name: str, component: str, app: str = SERVER_APP) -> dict[str, str]:
    """Recommended labels; ``selector_labels`` is the stable subset used in selectors."""
    return {**selector_labels(name, app), "app.kubernetes.io/component": component, **MANAGED_BY}


def selector_labels(name: str, app: str = SERVER_APP) -> dict[str, str]:
    # Selectors are immutable on Deployments: keep them to the name, never to versions.
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": name}


def server_pod_selector(name: str) -> dict[str, str]:
    """Labels only a model's server pods carry: what a PodDisruptionBudget selects. (Its
    selector may change in place, unlike the Deployment's, which stays ``selector_labels``.)"""
    return {**selector_labels(name), "app.kubernetes.io/component": SERVER_COMPONENT}
