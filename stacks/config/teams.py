"""The stack file's ``teams``: tenants of the GPU cluster, each with its namespace, models, quota,
API key and network boundary (``llmstack_k8s.cluster.team.Team``)."""

import difflib
from dataclasses import replace
from typing import cast

from pydantic import Field

from llmstack_k8s.cluster.team import Footprint, TeamQuotaArgs, quota_problems

from .base import ConfigProblem
from .base import StackModel as _Model
from .cluster import DnsLabel
from .knative import ServingMode
from .multi_node import group_size
from .quantities import Cpu, Size, size_gib


def cpu_cores(v: str) -> float:
    return float(v[:-1]) / 1000 if v.endswith("m") else float(v)


class TeamQuotaConfig(_Model):
    """What the team's namespace may request in total; models are checked to fit it at their maximum."""

    gpus: int | None = Field(
        None, ge=0, description="GPUs (counted in the GPU pool's resource name: whole GPUs, or shared/MIG slices)."
    )
    cpu: Cpu | None = Field(None, description="CPU requests (e.g. 64).")
    memory: Size | None = Field(None, description="Memory requests (e.g. 512Gi).")
    storage: Size | None = Field(
        None, description="Requested storage of the team's volumes (the weight caches), e.g. 2Ti."
    )

    def args(self) -> TeamQuotaArgs:
        # A cast: the model's field names are TeamQuotaArgs' keys.
        return cast(TeamQuotaArgs, {k: v for k, v in self.model_dump().items() if v is not None})

    def figures(self) -> dict:
        """The quota in GPUs, cores and GiB (for the fit check)."""
        out: dict = {}
        if self.gpus is not None:
            out["gpus"] = self.gpus
        if self.cpu is not None:
            out["cpu"] = cpu_cores(self.cpu)
        if self.memory is not None:
            out["memory"] = size_gib(self.memory)
        if self.storage is not None:
            out["storage"] = size_gib(self.storage)
        return out


class TeamConfig(_Model):
    """One team: its own namespace, models, quota, API key and network boundary."""

    name: str = Field(
        pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length=40, description="Team name (DNS label); names its objects."
    )
    namespace: DnsLabel | None = Field(
        None, description="The team's namespace, created and owned by the stack (default: the team's name)."
    )
    models: list[str] = Field(
        min_length=1, description="Names of entries of `models` served in the team's namespace with the team's API key."
    )
    quota: TeamQuotaConfig = Field(
        description=(
            "ResourceQuota of the namespace; preview refuses models that cannot fit it at their autoscaling "
            "maximum plus the rollout surge."
        )
    )
    client_namespaces: list[DnsLabel] = Field(
        default_factory=list,
        description=(
            "Namespaces allowed to call this team's models (besides network.clientNamespaces); other teams never are."
        ),
    )

    @property
    def effective_namespace(self) -> str:
        return self.namespace or self.name


def footprint(m, group: int = 1) -> Footprint:
    """A model's most pods (autoscaling maximum or replicas, plus the rollout surge) and each pod's requests;
    a model across nodes (multi-node) runs ``group`` pods per replica, each with its share of the GPUs."""
    if m.serving == ServingMode.KNATIVE:
        pods = m.scaling.max_replicas
    else:
        pods = (m.autoscaling.max_replicas if m.autoscaling is not None else m.replicas) + m.rollout.max_surge
    return Footprint(
        name=m.name,
        pods=pods * group,
        gpus=m.gpus_per_replica // group,
        cpu_cores=cpu_cores(m.resources.cpu),
        memory_gib=size_gib(m.resources.memory),
        storage_gib=size_gib(m.cache.size) if m.cache else 0.0,  # object storage: no volume
    )


def footprints(m, group: int = 1) -> list[Footprint]:
    """What a model runs in its namespace at its most: the model, and its canary (``<name>-canary``:
    its replicas plus the rollout surge, the model's per-pod requests, and its own cache volume when
    it serves another revision; the same revision shares the model's volume)."""
    out = [footprint(m, group)]
    cv = m.canary_variant
    if cv is not None:
        out.append(
            replace(
                footprint(cv),
                name=f"{m.name}-canary",
                # a Knative canary's weights go into the model's own volume (knative_canary)
                storage_gib=size_gib(cv.cache.size)
                if cv.revision != m.revision and m.serving != ServingMode.KNATIVE
                else 0.0,
            )
        )
    return out


def check_teams(cfg) -> None:
    """Every team's models exist and belong to one team only, and fit the team's quota at their most."""
    names = [m.name for m in cfg.models]
    owner: dict[str, str] = {}
    for i, t in enumerate(cfg.teams):
        where = f"teams[{i}] (name: {t.name})"
        if t.name in {u.name for u in cfg.teams[:i]}:
            raise ConfigProblem(f"teams[{i}].name", f"two teams are named {t.name!r}")
        for j, name in enumerate(t.models):
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; models are {', '.join(names)}"
                raise ConfigProblem(f"{where}.models[{j}]", f"{name!r} is not the name of an entry of models{hint}")
            if name in owner:
                raise ConfigProblem(
                    f"{where}.models[{j}]",
                    f"{name!r} is already a model of {owner[name]}; a model is served in one namespace",
                )
            owner[name] = where
        models = [m for m in cfg.models if m.name in t.models]
        problems = quota_problems(
            t.quota.figures(), [f for m in models for f in footprints(m, group_size(cfg, m))]
        )  # canaries count
        if problems:
            raise ConfigProblem(
                f"{where}.quota",
                "the team's models (and their canaries) cannot fit its quota at their autoscaling maximum plus the "
                "rollout surge, so a scale-up or rollout would leave pods pending: "
                + "; ".join(problems)
                + "; raise the quota or lower maxReplicas / maxSurge / the models' resources",
            )
