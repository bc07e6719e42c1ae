"""Where the stack deploys: the cluster it talks to and who may reach its servers."""

from typing import Optional

from pydantic import Field

from .base import StackModel as _Model


class KubernetesConfig(_Model):
    """How to reach the cluster (default: the ambient kubeconfig and its current context)."""

    kubeconfig: Optional[str] = Field(None, description="Path to a kubeconfig file.")
    context: Optional[str] = Field(None, description="kubeconfig context to use.")


class NetworkConfig(_Model):
    """Who may reach the vLLM servers."""

    client_namespaces: list[str] = Field(default_factory=list, description="Namespaces allowed to call the API.")
    monitoring_namespaces: list[str] = Field(default_factory=lambda: ["monitoring"], description="Namespaces allowed to scrape /metrics.")
