"""What every part of the stack stands on: the Kubernetes provider, the serving namespace and the
stack's API key; and where a model is placed (that namespace and key, or its team's)."""

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from llmstack_k8s._core.helm import ChartSourceArgs
from llmstack_k8s._core.package import MANAGED_BY
from stacks.config import StackConfig
from stacks.config.teams import TeamConfig


@dataclass(frozen=True)
class Placement:
    """Where a model's objects go: a namespace (its name and the resource that makes it) and the API key."""

    ns: Any  # the namespace's name (an Output)
    namespace: pulumi.Resource
    api_key: Any  # an Output
    team: TeamConfig | None = None


@dataclass(frozen=True)
class Cluster:
    provider: k8s.Provider
    #: On the cluster, through the stack's provider.
    on_cluster: pulumi.ResourceOptions
    #: The serving namespace (created, or read when it exists) and its name.
    namespace: pulumi.Resource
    ns: Any
    #: Once the serving namespace exists.
    in_ns: pulumi.ResourceOptions
    api_key: random.RandomPassword
    #: Where every chart comes from (chart-installing components' args; default: the pins' repositories).
    charts: dict

    @property
    def chart_source(self) -> ChartSourceArgs | None:
        """Where every chart comes from, a component's ``chart_source`` (None: the pins' repositories)."""
        source: ChartSourceArgs | None = self.charts.get("chart_source")
        return source

    @property
    def placement(self) -> Placement:
        """The serving namespace with the stack's API key (a model of no team)."""
        return Placement(self.ns, self.namespace, self.api_key.result)


def connect(cfg: StackConfig) -> Cluster:
    """The provider, the serving namespace and the API key."""
    # The stack file's kubernetes:* / llmstack:kubernetes keys (context, kubeconfig, ...): the
    # default provider's config would not reach this explicit provider.
    provider = k8s.Provider("k8s", **cfg.kubernetes.provider_args(), enable_server_side_apply=True)
    on_cluster = pulumi.ResourceOptions(provider=provider)

    if cfg.existing_namespace:
        # Read, never created or deleted: a preview fails here if it does not exist.
        namespace = k8s.core.v1.Namespace.get("namespace", cfg.namespace, opts=on_cluster)
        ns = pulumi.Output.from_input(cfg.namespace)
    else:
        namespace = k8s.core.v1.Namespace(
            "namespace",
            metadata={
                "name": cfg.namespace,
                # Every pod the stack runs meets the restricted Pod Security Standard.
                "labels": {**MANAGED_BY, "pod-security.kubernetes.io/enforce": "restricted"},
            },
            opts=on_cluster,
        )
        ns = namespace.metadata["name"]
    api_key = random.RandomPassword("api-key", length=48, special=False)
    in_ns = pulumi.ResourceOptions(provider=provider, depends_on=[namespace])
    return Cluster(provider, on_cluster, namespace, ns, in_ns, api_key, charts=cfg.charts.component_args())
