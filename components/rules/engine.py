"""The cross-object rules as one check over a whole rendered stack."""

from collections.abc import Callable, Mapping, Sequence

from .gpus import dcgm_maps_gpu_resources
from .inference import body_routers_reach_routes, inference_pools_reach_servers, objectives_select_pools
from .knative import knative_traffic
from .network import network_policies_admit, teams_stay_apart
from .references import lws_headless_service_free, namespaces_exist, references_exist
from .routes import routes_reach_servers
from .selection import pdb_selects_one_controller, services_select_templates
from .stack import Declared
from .timing import awaits_cover_budgets

StackRule = Callable[[list[dict], Declared], list[str]]


def each_object(rule: Callable[[Mapping], list[str]]) -> StackRule:
    """A rule over one object as a rule over a stack: every object's problems."""

    def over_stack(manifests: Sequence[Mapping], declared: Declared = Declared()) -> list[str]:
        return [p for o in manifests for p in rule(o)]

    over_stack.__name__ = over_stack.__qualname__ = f"each_object({rule.__name__})"
    return over_stack


#: Every rule :func:`check_all` runs, in the order their problems are listed.
RULES: tuple[StackRule, ...] = (
    pdb_selects_one_controller,
    services_select_templates,
    references_exist,
    namespaces_exist,
    network_policies_admit,
    awaits_cover_budgets,
    dcgm_maps_gpu_resources,
    routes_reach_servers,
    inference_pools_reach_servers,
    teams_stay_apart,
    body_routers_reach_routes,
    objectives_select_pools,
    each_object(knative_traffic),
    lws_headless_service_free,
)


def check_all(manifests: list[dict], declared: Declared = Declared()) -> list[str]:
    """Every cross-object rule over one stack's manifests (Kubernetes objects, and Helm releases as
    ``kind: Release`` manifests) and what the stack declares outside itself; the problems of all of
    them, one sentence each naming the object (``[]``: the stack holds together)."""
    return [p for rule in RULES for p in rule(manifests, declared)]
