"""The platform's rules over rendered Kubernetes manifests (and Helm releases): one source for each.

The policy pack (``policy/``, run by ``pulumi preview --policy-pack``), the test suite's
cross-object checks and an importing project's own pack or tests all call these. Each rule takes
plain manifests (dicts as ``kubectl get -o yaml`` shows them) and returns a list of problems, each
a sentence naming the object and saying what is wrong; ``[]`` means it holds. Values a preview
cannot know yet arrive as :data:`UNKNOWN`; a rule never reports on a value it cannot see (it is
checked again at ``pulumi up``, when every value is known).

Per-object rules take one manifest (``images_pinned(m)``); stack rules take every manifest of a
stack and a :class:`Declared` (what the stack says exists outside it, and who calls and scrapes
its pods). :func:`check_all` runs every cross-object rule over one stack::

    from llmstack_k8s.rules import Declared, check_all, manifests_of

    problems = check_all(manifests_of(rendered), Declared(namespaces={"default"}, scrapers=("monitoring",)))

Modules: ``manifests`` (reading one object), ``stack`` (the stack: workloads, ports, what exists),
``selection``, ``references``, ``network``, ``timing`` (probes and awaits), ``gpus``, ``pins``,
``security``, ``routes``, ``knative``, ``inference``, and ``engine`` (:data:`RULES`, :func:`check_all`).
"""

from .engine import RULES, check_all, each_object
from .gpus import (
    DEFAULT_GPU_TAINTS,
    GPU_RESOURCE_PREFIXES,
    dcgm_maps_gpu_resources,
    gpu_pods_tolerate_pool_taints,
    gpu_pool_taints,
    gpu_request_matches_parallelism,
    gpu_requests,
    tolerates,
    untolerated_gpu_taints,
    vllm_gpus_needed,
)
from .inference import (
    POOL_GROUP,
    POOL_KIND,
    body_routers_reach_routes,
    inference_objectives_name_pools,
    inference_pools_reach_servers,
    objectives_select_pools,
)
from .knative import knative_traffic
from .manifests import (
    HELM_TYPES,
    UNKNOWN,
    containers,
    describe,
    flag_value,
    is_headless_vllm,
    is_knative_service,
    is_leader_worker_set,
    is_vllm_container,
    matches,
    pod_template,
    pod_templates,
    pulumi_manifest,
    selector_matches,
    serving_pods,
)
from .network import Flow, declared_flows, network_policies_admit, serving_pods_have_network_policy, teams_stay_apart
from .pins import MOVING_TAGS, helm_chart_pinned, image_tag, images_pinned
from .references import lws_headless_service_free, namespaces_exist, references_exist
from .routes import (
    INGRESS_NGINX_TIMEOUTS,
    MIN_ROUTE_TIMEOUT_SECONDS,
    route_timeouts,
    routes_reach_servers,
    timeout_seconds,
)
from .security import is_credential_name, no_plain_credentials, pod_security, serving_pod_security
from .selection import SCALABLE_KINDS, pdb_selects_one_controller, services_select_templates
from .stack import CLUSTER_SCOPED, Declared, Workload, manifests_of, selected, workloads
from .timing import STARTUP_BASE_SECONDS, awaits_cover_budgets, startup_budget_seconds, vllm_startup_probe

__all__ = [
    "CLUSTER_SCOPED",
    "DEFAULT_GPU_TAINTS",
    "GPU_RESOURCE_PREFIXES",
    "HELM_TYPES",
    "INGRESS_NGINX_TIMEOUTS",
    "MIN_ROUTE_TIMEOUT_SECONDS",
    "MOVING_TAGS",
    "POOL_GROUP",
    "POOL_KIND",
    "RULES",
    "SCALABLE_KINDS",
    "STARTUP_BASE_SECONDS",
    "UNKNOWN",
    "Declared",
    "Flow",
    "Workload",
    "awaits_cover_budgets",
    "body_routers_reach_routes",
    "check_all",
    "containers",
    "dcgm_maps_gpu_resources",
    "declared_flows",
    "describe",
    "each_object",
    "flag_value",
    "gpu_pods_tolerate_pool_taints",
    "gpu_pool_taints",
    "gpu_request_matches_parallelism",
    "gpu_requests",
    "helm_chart_pinned",
    "image_tag",
    "images_pinned",
    "inference_objectives_name_pools",
    "inference_pools_reach_servers",
    "is_credential_name",
    "is_headless_vllm",
    "is_knative_service",
    "is_leader_worker_set",
    "is_vllm_container",
    "knative_traffic",
    "lws_headless_service_free",
    "manifests_of",
    "matches",
    "namespaces_exist",
    "network_policies_admit",
    "no_plain_credentials",
    "objectives_select_pools",
    "pdb_selects_one_controller",
    "pod_security",
    "pod_template",
    "pod_templates",
    "pulumi_manifest",
    "references_exist",
    "route_timeouts",
    "routes_reach_servers",
    "selected",
    "selector_matches",
    "services_select_templates",
    "serving_pod_security",
    "serving_pods",
    "serving_pods_have_network_policy",
    "startup_budget_seconds",
    "teams_stay_apart",
    "timeout_seconds",
    "tolerates",
    "untolerated_gpu_taints",
    "vllm_gpus_needed",
    "vllm_startup_probe",
    "workloads",
]
