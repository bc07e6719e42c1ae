"""The cross-object checks (``llmstack_k8s.rules``) over every rendered stack: dev, prod and generated
stacks that exercise every serving mode, sharing strategy and install path; and the checker's own
rules, each shown to catch the problem it is for."""

import copy
import json
from urllib.parse import urlparse

import pytest

from conftest import render_with
from llmstack_k8s.cluster.knative_serving import DATA_PLANE_NAMESPACES
from llmstack_k8s.rules import (
    Declared,
    awaits_cover_budgets,
    check_all,
    dcgm_maps_gpu_resources,
    declared_flows,
    manifests_of,
    matches,
    namespaces_exist,
    network_policies_admit,
    pdb_selects_one_controller,
    pod_template,
    references_exist,
    services_select_templates,
    workloads,
)
from stacks.config import StackConfig
from stacks.tools.render import render

# --- what each stack declares ---------------------------------------------------------------------


def declared_for(cfg: StackConfig) -> Declared:
    """What a stack file says exists outside the stack, and who calls and scrapes its pods."""
    o, net, kn, a, pool = cfg.observability, cfg.network, cfg.knative, cfg.autoscaling, cfg.gpu_pool
    namespaces = set(net.client_namespaces) | set(net.monitoring_namespaces)
    if o.install_prometheus_stack:
        namespaces.discard(o.namespace)  # the stack creates it
        scrapers = [o.namespace]
    else:
        namespaces.add(o.namespace)
        scrapers = [urlparse(o.prometheus_url).hostname.split(".")[1]]
    if not a.install_keda:
        namespaces.add(a.keda_namespace)
    data_plane: list[str] = []
    if any(m.serving == "knative" for m in cfg.models):
        explicit = list(kn.namespaces) if "namespaces" in kn.model_fields_set else []
        data_plane = sorted(set(DATA_PLANE_NAMESPACES) | set(explicit)) if kn.install else list(kn.namespaces)
        namespaces |= set(explicit if kn.install else kn.namespaces)
    objects = set()
    if pool.runtime_class and not pool.runtime_class.create:
        objects.add(("RuntimeClass", None, pool.runtime_class.name))
    if not pool.priority_class.create:
        objects.add(("PriorityClass", None, pool.priority_class.name))
    if (
        cfg.object_storage is not None and cfg.object_storage.existing_secret
    ):  # the user's S3 keys, in each such model's namespace
        for m in cfg.models:
            if m.is_object_storage:
                team = cfg.team_of(m.name)
                objects.add(
                    ("Secret", team.effective_namespace if team else cfg.namespace, cfg.object_storage.existing_secret)
                )
    to_zero = any(m.keda_autoscaling and m.scaling.min_replicas == 0 for m in cfg.models)  # through KEDA's add-on
    if cfg.gateway is not None:  # the Gateway (or ingress controller) the stack routes through exists
        namespaces.add(cfg.gateway.edge_namespace)
        if cfg.gateway.gateway_ref is not None:
            objects.add(("Gateway", cfg.gateway.gateway_ref.namespace, cfg.gateway.gateway_ref.name))
    return Declared(
        namespaces=frozenset(namespaces),
        objects=frozenset(objects),
        scrapers=tuple(scrapers),
        callers=tuple(net.client_namespaces),
        knative_data_plane=tuple(data_plane),
        http_interceptors=(a.keda_namespace,) if a.http_add_on and to_zero else (),
        ingress_controllers=(cfg.gateway.edge_namespace,)
        if cfg.gateway is not None and cfg.gateway.kind == "ingress"
        else (),
        # an existing Knative's cluster-local ingress (routes to exposed Knative models go there)
        knative_local_gateways=()
        if kn.install
        else ((kn.effective_local_gateway.namespace, kn.effective_local_gateway.name),),
    )


def render_with_config(render):
    """Run ``render()`` and return (its result, the StackConfig the program built the stack from)."""
    from stacks.compose import stack as composition

    seen = []
    build = composition.build

    def recording(cfg):
        seen.append(cfg)
        return build(cfg)

    composition.build = recording
    try:
        result = render()
    finally:
        composition.build = build
    return result, seen[-1]


# --- generated stacks: every serving mode, sharing strategy and install path ---------------------

REVISION = "0123456789abcdef0123456789abcdef01234567"


def model(name: str, **over) -> dict:
    m = {
        "name": name,
        "model": f"org/{name}",
        "revision": REVISION,
        "servedModelName": name,
        "weightsGiB": 2,
        "maxModelLen": 4096,
        "gpuMemoryUtilization": 0.85,
        "cache": {"size": "20Gi"},
        "resources": {"cpu": "2", "memory": "16Gi"},
    }
    m.update(over)
    return m


H100_POOL = {
    "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 79, "perNode": 8},
    "nodeSelector": {"pool": "h100"},
}
BASE = {"namespace": "llm", "network": {"clientNamespaces": ["apps"], "monitoringNamespaces": ["monitoring"]}}

GENERATED = {
    # Always-on Deployment with fixed replicas, whole GPUs, an existing Prometheus.
    "fixed-replicas-existing-prometheus": {
        **BASE,
        "gpuPool": {**H100_POOL, "runtimeClass": {"name": "nvidia"}},
        "observability": {
            "installPrometheusStack": False,
            "prometheusUrl": "http://prometheus-operated.monitoring.svc.cluster.local:9090",
            "monitorLabels": {"release": "prom"},
        },
        "models": [model("fixed", replicas=3)],
    },
    # KEDA on queue depth (1..4) on MPS-shared GPUs; a second model with whole-replica rollouts.
    "keda-autoscaled-mps": {
        **BASE,
        "gpuPool": {**H100_POOL, "sharing": {"strategy": "mps", "replicas": 2}},
        "models": [
            model("scaled", autoscaling={"metric": "queueDepth", "minReplicas": 1, "maxReplicas": 4}),
            model("rolled", replicas=4, rollout={"maxSurge": 1, "maxUnavailable": 1}),
        ],
    },
    # Scale to zero through the KEDA HTTP add-on, time-sliced GPUs.
    "scale-to-zero-time-slicing": {
        **BASE,
        "autoscaling": {"httpAddOn": True},
        "gpuPool": {**H100_POOL, "sharing": {"strategy": "timeSlicing", "replicas": 4}},
        "models": [
            model(
                "zero",
                gpuMemoryUtilization=0.2,
                cache={"size": "20Gi", "accessMode": "ReadWriteOnce"},
                autoscaling={"minReplicas": 0, "maxReplicas": 1},
            )
        ],
    },
    # Knative installed by the stack, MIG (mixed) instances.
    "knative-installed-mig": {
        **BASE,
        "gpuPool": {**H100_POOL, "sharing": {"strategy": "mig", "migStrategy": "mixed", "migProfile": "3g.40gb"}},
        "models": [model("kn", serving="knative", autoscaling={"minReplicas": 0, "maxReplicas": 2})],
    },
    # The cluster's Knative, the GPU operator (its RuntimeClass), the cluster's KEDA for a second model.
    "knative-existing-gpu-operator": {
        **BASE,
        "gpuPool": {
            **H100_POOL,
            "install": "gpuOperator",
            "runtimeClass": {"name": "nvidia", "create": False},
            "sharing": {"strategy": "mig", "migStrategy": "single", "migProfile": "3g.40gb"},
        },
        "observability": {"dcgmExporter": False},
        "autoscaling": {"installKeda": False},
        "knative": {
            "install": False,
            "features": sorted(
                [
                    "kubernetes.podspec-init-containers",
                    "kubernetes.podspec-securitycontext",
                    "kubernetes.podspec-tolerations",
                    "kubernetes.podspec-nodeselector",
                    "kubernetes.podspec-runtimeclassname",
                    "kubernetes.podspec-priorityclassname",
                    "kubernetes.podspec-persistent-volume-claim",
                    "kubernetes.podspec-volumes-emptydir",
                ]
            ),
            "maxRevisionTimeoutSeconds": 3600,
        },
        "models": [
            model("kn-existing", serving="knative", autoscaling={"minReplicas": 1, "maxReplicas": 1}),
            model("keda-existing", autoscaling={"minReplicas": 1, "maxReplicas": 2}),
        ],
    },
    # gateway: ingress-nginx with TLS from cert-manager; one model exposed, one in-cluster only.
    "ingress-one-model-exposed": {
        **BASE,
        "gpuPool": H100_POOL,
        "gateway": {
            "kind": "ingress",
            "hostname": "llm.example.com",
            "requestTimeoutSeconds": 1200,
            "ingress": {"tlsSecretName": "llm-tls", "clusterIssuer": "letsencrypt", "namespace": "ingress-nginx"},
        },
        "models": [model("public", replicas=2), model("internal", route={"expose": False})],
    },
    # canary: one model with a canary on other weights (its own cache) behind the Gateway's weighted
    # backends; a second with a canary on another image, both variants KV-cache-aware (a pool each).
    "gateway-canary": {
        **BASE,
        "gpuPool": H100_POOL,
        "gateway": {"gatewayRef": {"name": "inference-gateway", "namespace": "gateway"}, "hostname": "llm.example.com"},
        "models": [
            model("split", replicas=2, canary={"weight": 10, "revision": "fedcba9876543210fedcba9876543210fedcba98"}),
            model(
                "pooled",
                replicas=2,
                route={"kvCacheAwareRouting": True},
                canary={
                    "weight": 25,
                    "image": "vllm/vllm-openai:v0.11.1",
                    "extraArgs": ["--max-num-batched-tokens", "8192"],
                },
            ),
        ],
    },
}


STACKS = ["dev", "prod", *GENERATED]


def render_named(name: str):
    """(manifests, declaration) of a stack file or a generated stack, rendered once."""
    return _render(name)[:2]


_CACHE: dict = {}


def _render(name: str):
    if name not in _CACHE:
        if name in GENERATED:
            rendered, cfg = render_with_config(lambda: render_with(copy.deepcopy(GENERATED[name])))
        else:
            rendered, cfg = render_with_config(lambda: render(name))
        _CACHE[name] = (manifests_of(rendered), declared_for(cfg), cfg)
    return _CACHE[name]


@pytest.mark.parametrize("name", STACKS)
def test_cross_object_checks_pass(name):
    manifests, declared = render_named(name)
    assert manifests
    problems = check_all(manifests, declared)
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def test_generated_stacks_cover_every_serving_mode():
    """The generated stacks are what makes the checks cover the modes dev and prod do not use."""
    kinds, sharing, installs = set(), set(), set()
    for name in STACKS:
        manifests, _ = render_named(name)
        for o in manifests:
            if o["kind"] == "ScaledObject":
                kinds.add("keda-to-zero" if o["spec"]["minReplicaCount"] == 0 else "keda")
            if o["kind"] == "Deployment" and "replicas" in o["spec"]:
                kinds.add("fixed")
            if o["kind"] == "Service" and o["apiVersion"].startswith("serving.knative.dev"):
                kinds.add("knative")
            if o["kind"] == "Release":
                installs.add(o["chart"])
                if o["chart"] == "nvidia-device-plugin":
                    sharing.add(next((s for s in ("timeSlicing", "mps") if s in json.dumps(o.get("values"))), "none"))
        cfg = _render(name)[2]
        sharing.add(cfg.gpu_pool.sharing.strategy.value)
        installs.add(
            "existing-prometheus" if not cfg.observability.install_prometheus_stack else "kube-prometheus-stack"
        )
        installs.add(
            "existing-knative" if any(m.serving == "knative" for m in cfg.models) and not cfg.knative.install else ""
        )
    assert {"fixed", "keda", "keda-to-zero", "knative"} <= kinds
    assert {"none", "timeSlicing", "mps", "mig"} <= sharing
    assert {"gpu-operator", "knative-operator", "existing-prometheus", "existing-knative"} <= installs


# --- each rule catches what it is for (a broken copy of a real render) ----------------------------


def broken(name: str, kind: str, obj_name: str, change) -> tuple[list[dict], Declared]:
    manifests, declared = render_named(name)
    manifests = copy.deepcopy(manifests)
    (obj,) = [
        o for o in manifests if o["kind"] == kind and (o.get("metadata", {}).get("name") or o.get("name")) == obj_name
    ]
    if change(obj) == "remove":
        manifests.remove(obj)
    return manifests, declared


def test_rule_pdb_selecting_the_download_job_too():
    def widen(pdb):
        pdb["spec"]["selector"] = {"matchLabels": {"app.kubernetes.io/instance": "qwen-0-5b"}}

    (problem,) = pdb_selects_one_controller(*broken("dev", "PodDisruptionBudget", "qwen-0-5b", widen))
    assert "Job llm-dev/qwen-0-5b-download" in problem and "Deployment llm-dev/qwen-0-5b" in problem


def test_rule_pdb_selecting_nothing():
    def miss(pdb):
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] = "typo"

    assert "selects no pods" in pdb_selects_one_controller(*broken("dev", "PodDisruptionBudget", "qwen-0-5b", miss))[0]


def test_rule_pdb_without_a_selector_selects_nothing():
    """policy/v1: a PodDisruptionBudget without a selector selects no pods, not every pod."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "m", "namespace": "llm"},
        "spec": {"template": {"metadata": {"labels": {"app": "m"}}, "spec": {"containers": [{"name": "c"}]}}},
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "m", "namespace": "llm"},
        "spec": {"maxUnavailable": 1},
    }
    (problem,) = pdb_selects_one_controller([deployment, pdb])
    assert "selects no pods" in problem


def test_workloads_see_knative_pods_with_knatives_labels():
    """The rules see a pod as the policy pack does (Knative adds its own labels to a revision's pods);
    a missing podSelector selects every pod."""
    assert matches(None, {"app": "x"}) and matches({"matchLabels": {"app": "x"}}, {"app": "x"})
    ksvc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "m", "namespace": "llm"},
        "spec": {"template": {"metadata": {"labels": {"app": "m"}}, "spec": {"containers": [{"name": "c"}]}}},
    }
    (w,) = workloads([ksvc])
    assert (w.labels, w.pod) == (pod_template(ksvc)[0], dict(pod_template(ksvc)[1]))
    assert w.labels["serving.knative.dev/service"] == "m"


def test_rule_service_selecting_pods_without_its_port():
    def widen(svc):
        if svc["apiVersion"] == "v1":
            svc["spec"]["selector"] = {"app.kubernetes.io/instance": "qwen-0-5b"}

    problems = services_select_templates(*broken("dev", "Service", "qwen-0-5b", widen))
    assert any("qwen-0-5b-download" in p and "'http1'" in p for p in problems), problems


def test_rule_missing_secret_and_runtime_class():
    problems = references_exist(*broken("dev", "Secret", "qwen-0-5b-api-key", lambda o: "remove"))
    assert any("Secret llm-dev/qwen-0-5b-api-key" in p for p in problems), problems
    manifests, declared = render_named("knative-existing-gpu-operator")
    assert references_exist(manifests, declared) == []
    undeclared = Declared(**{**declared.__dict__, "objects": frozenset()})
    assert any("RuntimeClass nvidia" in p for p in references_exist(manifests, undeclared))


def test_rule_namespace_not_created_nor_declared():
    problems = namespaces_exist(*broken("dev", "Namespace", "llm-dev", lambda o: "remove"))
    assert any("lands in namespace 'llm-dev'" in p for p in problems), problems

    def kourier(np):
        np["spec"]["ingress"][0]["from"][1]["namespaceSelector"]["matchExpressions"][0]["values"].append(
            "kourier-system"
        )

    problems = namespaces_exist(*broken("dev", "NetworkPolicy", "qwen-1-5b", kourier))
    assert problems == [
        "NetworkPolicy llm-dev/qwen-1-5b names namespace 'kourier-system', which the stack neither creates nor declares"
    ]


def test_rule_network_policy_blocking_prometheus():
    def drop_monitoring(np):
        for rule in np["spec"]["ingress"]:
            for peer in rule["from"]:
                for e in peer.get("namespaceSelector", {}).get("matchExpressions", []):
                    e["values"] = [v for v in e["values"] if v != "monitoring"]

    problems = network_policies_admit(*broken("prod", "NetworkPolicy", "llama-70b", drop_monitoring))
    assert problems and all("'monitoring'" in p and "llama-70b" in p and "port 8000" in p for p in problems), problems


def test_rule_awaits_shorter_than_budgets():
    def drop_timeout(o):
        o["metadata"]["annotations"].pop("pulumi.com/timeoutSeconds")

    (p,) = awaits_cover_budgets(*broken("prod", "Job", "llama-70b-download", drop_timeout))
    assert "awaited 600 s, less than its activeDeadlineSeconds 7200" in p
    (p,) = awaits_cover_budgets(*broken("prod", "Deployment", "llama-70b", drop_timeout))
    assert "Deployment research/llama-70b is awaited 600 s" in p  # prod: the research team's namespace
    (p,) = awaits_cover_budgets(*broken("dev", "Service", "qwen-0-5b", lambda s: s["metadata"].pop("annotations")))
    assert "scales to zero" in p
    (p,) = awaits_cover_budgets(*broken("dev", "Release", "keda", lambda r: r.pop("timeout")))
    assert "Release keda/keda is awaited 300 s" in p


def test_rule_dcgm_not_told_the_shared_resource():
    (a, b) = dcgm_maps_gpu_resources(*broken("dev", "Release", "dcgm-exporter", lambda r: r["values"].pop("extraEnv")))
    assert "nvidia.com/gpu.shared" in a and "KUBERNETES_VIRTUAL_GPUS" in b


def test_flows_cover_scrapers_callers_knative_and_the_interceptor():
    manifests, declared = render_named("dev")
    flows = {(f.source, f.target.name, f.port) for f in declared_flows(manifests, declared)}
    assert flows == {
        ("monitoring", "qwen-0-5b", 8000),
        ("monitoring", "qwen-1-5b", 8000),  # PodMonitor, both port names
        ("default", "qwen-0-5b", 8000),  # network.clientNamespaces
        ("keda", "qwen-0-5b", 8000),  # the HTTP add-on routes scale-to-zero traffic
        ("knative-serving", "qwen-1-5b", 8012),  # activator / Kourier -> queue-proxy
    }
