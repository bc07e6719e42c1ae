"""Where the stack deploys: the cluster it talks to, the namespaces it owns, who may reach its servers."""

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from .base import ConfigProblem
from .base import StackModel as _Model
from .quantities import dns_label

#: Namespaces of the cluster itself: the stack never creates, labels or deletes them.
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
#: Namespaces the stack refuses to own (create, label, delete with the stack).
RESERVED_NAMESPACES = ("default", *SYSTEM_NAMESPACES)

#: pulumi-kubernetes provider keys (``kubernetes:<key>`` in the stack file) the stack passes to its provider.
HONOURED_PROVIDER_KEYS = (
    "kubeconfig",
    "context",
    "cluster",
    "clusterIdentifier",
    "deleteUnreachable",
    "skipUpdateUnreachable",
    "suppressDeprecationWarnings",
    "suppressHelmHookWarnings",
    "enableConfigMapMutable",
    "enableSecretMutable",
    "kubeClientSettings",
    "helmReleaseSettings",
)
#: Provider keys that cannot work with this stack, and what to do instead.
REFUSED_PROVIDER_KEYS = {
    "namespace": (
        "sets the provider's default namespace, which no object of this stack uses (each names its own); "
        "set llmstack:namespace instead"
    ),
    "renderYamlToDirectory": (
        "would write YAML instead of deploying, and the stack's Helm releases cannot be rendered "
        "that way; use `python -m stacks.tools.render <stack> <dir>` for offline YAML"
    ),
    "alwaysRender": (
        "belongs to renderYamlToDirectory; use `python -m stacks.tools.render <stack> <dir>` for offline YAML"
    ),
    "upsertExistingObjects": (
        "would adopt objects that already exist on the cluster, and `pulumi destroy` would then "
        "delete them; the stack creates and owns its objects (llmstack:existingNamespace uses an "
        "existing namespace without owning it)"
    ),
    "enableDryRun": "was removed in pulumi-kubernetes v4 (previews are always server-side); remove it",
    "enableReplaceCRD": "was removed in pulumi-kubernetes v4; remove it",
}
#: Provider keys that are accepted and need nothing from the stack.
SATISFIED_PROVIDER_KEYS = {"strictMode"}  # every resource already gets the stack's explicit provider

DnsLabel = Annotated[str, AfterValidator(dns_label)]


class KubernetesConfig(_Model):
    """How to reach the cluster. Also read from the provider's own keys (``kubernetes:context`` ...);
    without a context, the kubeconfig's current context is used (whatever kubectl points at)."""

    kubeconfig: str | None = Field(
        None, description="Path to a kubeconfig file, or its contents (also kubernetes:kubeconfig)."
    )
    context: str | None = Field(None, description="kubeconfig context to use (also kubernetes:context).")
    cluster: str | None = Field(None, description="kubeconfig cluster to use (also kubernetes:cluster).")
    require_context: bool = Field(
        False,
        description=(
            "Refuse to run without an explicit context, so the stack never deploys to whatever kubectl points at."
        ),
    )
    cluster_identifier: str | None = Field(
        None, description="Provider replacement control (also kubernetes:clusterIdentifier)."
    )
    delete_unreachable: bool | None = Field(
        None, description="Drop resources of an unreachable cluster from state (also kubernetes:deleteUnreachable)."
    )
    skip_update_unreachable: bool | None = Field(
        None, description="Skip updates of an unreachable cluster (also kubernetes:skipUpdateUnreachable)."
    )
    suppress_deprecation_warnings: bool | None = Field(None, description="Also kubernetes:suppressDeprecationWarnings.")
    suppress_helm_hook_warnings: bool | None = Field(None, description="Also kubernetes:suppressHelmHookWarnings.")
    enable_config_map_mutable: bool | None = Field(
        None, description="Update ConfigMaps in place (also kubernetes:enableConfigMapMutable)."
    )
    enable_secret_mutable: bool | None = Field(
        None, description="Update Secrets in place (also kubernetes:enableSecretMutable)."
    )
    kube_client_settings: dict | None = Field(
        None, description="burst, qps, timeout of the Kubernetes client (also kubernetes:kubeClientSettings)."
    )
    helm_release_settings: dict | None = Field(
        None, description="Helm driver and paths (also kubernetes:helmReleaseSettings)."
    )

    @model_validator(mode="after")
    def _context_required(self):
        if self.require_context and not self.context:
            raise ConfigProblem(
                "requireContext",
                "true, but no context is set; set one with `pulumi config set kubernetes:context <name>` so this stack "
                "never deploys to whatever kubectl currently points at",
            )
        return self

    def provider_args(self) -> dict:
        """Keyword arguments of ``pulumi_kubernetes.Provider`` (only what is set)."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name != "require_context" and value is not None:
                if isinstance(value, dict):  # camelCase keys of the stack file -> the SDK's snake_case
                    value = {_snake(k): v for k, v in value.items()}
                out[name] = value
        return out


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


class NetworkConfig(_Model):
    """Who may reach the vLLM servers (exact namespace names: a NetworkPolicy matches by name, no wildcards)."""

    client_namespaces: list[DnsLabel] = Field(default_factory=list, description="Namespaces allowed to call the API.")
    monitoring_namespaces: list[DnsLabel] = Field(
        default_factory=lambda: ["monitoring"], description="Namespaces allowed to scrape /metrics."
    )
