"""Teams: each team's namespace, quota, limits, API key and network boundary; its models are placed there."""

from dataclasses import dataclass

from llmstack_k8s.cluster.gpu_node_pool import gpu_resource_name
from llmstack_k8s.cluster.team import Team
from stacks.config import StackConfig

from .cluster import Cluster, Placement


@dataclass(frozen=True)
class Teams:
    #: model name -> its team's namespace and key (models of no team are not listed).
    placements: dict[str, Placement]
    #: The ``teams`` output: each team's namespace and API key.
    outputs: dict

    def placement(self, model_name: str, cluster: Cluster) -> Placement:
        """Where a model goes: its team's namespace with the team's key, else the stack's."""
        return self.placements.get(model_name) or cluster.placement


def gpu_resource(cfg: StackConfig) -> str:
    """The resource name the quota counts GPUs in: the pool's (renamed for shared GPUs)."""
    return gpu_resource_name(cfg.gpu_pool.sharing.args())


def teams(cfg: StackConfig, cluster: Cluster) -> Teams:
    placements: dict[str, Placement] = {}
    outputs: dict = {}
    for t in cfg.teams:
        team = Team(
            t.name,
            {"namespace": t.effective_namespace, "quota": t.quota.args(), "gpu_resource_name": gpu_resource(cfg)},
            opts=cluster.on_cluster,
        )
        for name in t.models:
            placements[name] = Placement(team.namespace, team, team.api_key, t)
        outputs[t.name] = {"namespace": team.namespace, "apiKey": team.api_key}
    return Teams(placements, outputs)
