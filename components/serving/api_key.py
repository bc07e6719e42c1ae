"""The API key a vLLM server enforces on ``/v1``: one Secret per server, from a given key or a
generated one (pulumi-random), never in plain pod specs."""

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from .vllm_pod import API_KEY_SECRET_KEY


def api_key_secret(
    name: str,
    namespace: pulumi.Input[str],
    labels: dict[str, str],
    api_key: pulumi.Input[str] | None,
    parent: pulumi.Resource,
) -> tuple[k8s.core.v1.Secret, pulumi.Output[str]]:
    """Create ``<name>-api-key`` (a child of ``parent``); returns it and the key as a secret Output."""
    child = pulumi.ResourceOptions(parent=parent)
    if api_key is None:
        api_key = random.RandomPassword(f"{name}-api-key", length=40, special=False, opts=child).result
    secret = k8s.core.v1.Secret(
        f"{name}-api-key",
        metadata={"name": f"{name}-api-key", "namespace": namespace, "labels": labels},
        type="Opaque",
        string_data={API_KEY_SECRET_KEY: pulumi.Output.secret(api_key)},
        opts=child,
    )
    return secret, pulumi.Output.secret(api_key)
