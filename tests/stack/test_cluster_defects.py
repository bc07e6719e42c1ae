"""Defects a first real cluster showed, one test each; every test fails without its fix."""

import contextlib
import copy
import re
from pathlib import Path

import pytest

from conftest import render_with, rendered_stack
from llmstack_k8s._core.awaits import SCHEDULING_SECONDS, SKIP_AWAIT_ANNOTATION, TIMEOUT_ANNOTATION
from llmstack_k8s.cluster.knative_serving import DATA_PLANE_NAMESPACES
from llmstack_k8s.observability import alerts, metrics
from llmstack_k8s.observability.observability import (
    DCGM_RESOURCE_NAMES_ENV,
    DCGM_VIRTUAL_GPUS_ENV,
    dashboard_queries,
    dashboards,
)
from llmstack_k8s.rules import matches, workloads
from llmstack_k8s.serving.knative_vllm_service import DEFAULT_KNATIVE_NAMESPACES, QUEUE_PROXY_HTTP_PORT
from stacks.tools import render as render_mod

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@contextlib.contextmanager
def recorded_dependencies():
    """``{resource name: names of what it depends on}`` as the engine is told (explicit
    depends_on and the resources of every Output among the inputs), filled while rendering."""
    from pulumi.runtime import mocks as pulumi_mocks

    deps: dict[str, set[str]] = {}
    original = pulumi_mocks.MockMonitor.RegisterResource

    def record(self, request):
        deps[request.name] = {urn.split("::")[-1] for urn in request.dependencies}
        return original(self, request)

    pulumi_mocks.MockMonitor.RegisterResource = record
    try:
        yield deps
    finally:
        pulumi_mocks.MockMonitor.RegisterResource = original


def render_stack_file(stack: str):
    project, config, secrets = render_mod.stack_config_env(stack)
    return render_mod.run_program(project, stack, config, secrets)


def release(rendered, chart: str) -> dict:
    (r,) = [r for r in rendered.helm_releases if r["chart"] == chart]
    return r


def named(rendered, kind: str, name: str) -> dict:
    (o,) = [o for o in rendered.of_kind(kind) if o["metadata"]["name"] == name]
    return o


# --- 1. a PodDisruptionBudget selects the server pods only -----------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pdb_selects_the_server_pods_and_not_the_download_job(stack):
    r = rendered_stack(stack)
    pdbs = r.of_kind("PodDisruptionBudget")
    assert pdbs
    for pdb in pdbs:
        ns = pdb["metadata"]["namespace"]
        hit = [w for w in workloads(r.objects) if w.namespace == ns and matches(pdb["spec"]["selector"], w.labels)]
        assert [(w.kind, w.name) for w in hit] == [("Deployment", pdb["metadata"]["name"])], (
            f"{pdb['metadata']['name']} selects {[str(w) for w in hit]}: a completed download Job pod among them "
            "makes the disruption controller allow no eviction"
        )


def test_deployment_selector_is_unchanged():
    """Deployment selectors are immutable: the fix leaves them as they were (name + instance)."""
    dep = named(rendered_stack("prod"), "Deployment", "llama-70b")
    assert dep["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "llama-70b"}
    }


def test_download_pods_are_not_selected_by_anything_of_the_servers():
    r = rendered_stack("dev")
    job = named(r, "Job", "qwen-0-5b-download")
    labels = job["spec"]["template"]["metadata"]["labels"]
    svc = named(r, "Service", "qwen-0-5b")
    netpol = named(r, "NetworkPolicy", "qwen-0-5b")
    (podmonitor,) = r.of_kind("PodMonitor")
    assert not matches({"matchLabels": svc["spec"]["selector"]}, labels)
    assert not matches(netpol["spec"]["podSelector"], labels)
    assert not matches(podmonitor["spec"]["selector"], labels)


# --- 2. pulumi up waits as long as the download and the model load may take ----------------------


def test_prod_awaits_cover_the_70b_download_and_startup():
    r = rendered_stack("prod")
    job = named(r, "Job", "llama-70b-download")
    assert int(job["metadata"]["annotations"][TIMEOUT_ANNOTATION]) >= job["spec"]["activeDeadlineSeconds"] == 7200
    dep = named(r, "Deployment", "llama-70b")
    probe = dep["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    budget = probe["periodSeconds"] * probe["failureThreshold"]
    assert budget >= 1620
    # one pod: a node, the image, the model load; an update replaces up to 4 replicas one by one
    assert dep["spec"]["progressDeadlineSeconds"] >= SCHEDULING_SECONDS + budget
    assert int(dep["metadata"]["annotations"][TIMEOUT_ANNOTATION]) >= 4 * (SCHEDULING_SECONDS + budget)
    # the Service is not awaited (its endpoints are the Deployment's pods, already awaited)
    assert named(r, "Service", "llama-70b")["metadata"]["annotations"][SKIP_AWAIT_ANNOTATION] == "true"


def test_knative_service_is_awaited_for_its_progress_deadline():
    ksvc = next(
        o for o in rendered_stack("dev").of_kind("Service") if o["apiVersion"].startswith("serving.knative.dev")
    )
    deadline = int(
        ksvc["spec"]["template"]["metadata"]["annotations"]["serving.knative.dev/progress-deadline"].rstrip("s")
    )
    assert int(ksvc["metadata"]["annotations"][TIMEOUT_ANNOTATION]) >= deadline


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_helm_release_waits_for_a_node_and_images(stack):
    for rel in rendered_stack(stack).helm_releases:
        assert rel.get("timeout", 300) >= SCHEDULING_SECONDS, rel["chart"]


# --- 3. the DCGM exporter maps shared GPUs to their pods --------------------------------------------


def dcgm_env(rendered) -> dict:
    return {e["name"]: e["value"] for e in release(rendered, "dcgm-exporter")["values"]["extraEnv"]}


def test_dcgm_maps_time_sliced_gpus_to_pods():
    env = dcgm_env(rendered_stack("dev"))  # dev: time-slicing, pods request nvidia.com/gpu.shared
    assert env[DCGM_RESOURCE_NAMES_ENV] == "nvidia.com/gpu.shared"
    assert env[DCGM_VIRTUAL_GPUS_ENV] == "true"


def test_dcgm_on_whole_gpus_needs_no_virtual_gpus():
    env = dcgm_env(rendered_stack("prod"))
    assert env[DCGM_RESOURCE_NAMES_ENV] == "nvidia.com/gpu" and DCGM_VIRTUAL_GPUS_ENV not in env


def test_dcgm_maps_shared_gpus_even_without_the_renamed_resource():
    """Time-slicing without renaming hands out nvidia.com/gpu replicas (<uuid>::<n>): still virtual."""
    cfg = copy.deepcopy(DEV_LIKE)
    cfg["gpuPool"]["sharing"]["renameResource"] = False
    env = dcgm_env(render_with(cfg))
    assert env[DCGM_RESOURCE_NAMES_ENV] == "nvidia.com/gpu" and env[DCGM_VIRTUAL_GPUS_ENV] == "true"


DEV_LIKE = {
    "namespace": "llm",
    "gpuPool": {
        "gpu": {"product": "NVIDIA-L4", "memoryGiB": 22, "perNode": 1},
        "sharing": {"strategy": "timeSlicing", "replicas": 2},
    },
    "models": [
        {
            "name": "m",
            "model": "org/m",
            "revision": "0123456789abcdef0123456789abcdef01234567",
            "weightsGiB": 1,
            "maxModelLen": 2048,
            "gpuMemoryUtilization": 0.4,
            "cache": {"size": "10Gi"},
            "resources": {"cpu": "2", "memory": "8Gi"},
        }
    ],
}


# --- 4. ordering: KEDA after the Prometheus Operator's CRDs; DCGM after its RuntimeClass ----------


def test_keda_is_installed_after_the_prometheus_operator_crds():
    with recorded_dependencies() as deps:
        render_stack_file("prod")
    assert "observability-kube-prometheus-stack" in deps["autoscaling-keda"]


def test_dcgm_exporter_waits_for_the_runtime_class_it_uses():
    with recorded_dependencies() as deps:
        render_stack_file("prod")  # RuntimeClass nvidia created by the pool
    assert "gpu-runtime" in deps["observability-dcgm-exporter"]


def test_with_the_gpu_operator_dcgm_and_servers_wait_for_the_operator_runtime_class():
    cfg = copy.deepcopy(DEV_LIKE)
    cfg["gpuPool"] = {
        "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 79, "perNode": 8},
        "install": "gpuOperator",
        "runtimeClass": {"name": "nvidia", "create": False},
    }
    cfg["models"][0]["gpuMemoryUtilization"] = 0.9
    with recorded_dependencies() as deps:
        render_with(cfg)
    assert "gpu-gpu-operator" in deps["observability-dcgm-exporter"]
    assert "gpu-gpu-operator" in deps["m-deploy"]


# --- 5. the device plugin's namespace admits its privileged pods -----------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_device_plugin_namespace_is_labelled_privileged(stack):
    r = rendered_stack(stack)
    rel = release(r, "nvidia-device-plugin")
    assert not rel.get("createNamespace"), "Helm would create it without a Pod Security label"
    ns = named(r, "Namespace", rel["namespace"])
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


# --- 6. Knative installed by the operator: Kourier runs in knative-serving ------------------------


def knative_policy_namespaces(rendered, name: str) -> set:
    np = named(rendered, "NetworkPolicy", name)
    out = set()
    for rule in np["spec"]["ingress"]:
        if any(p["port"] == QUEUE_PROXY_HTTP_PORT for p in rule["ports"]):
            out |= {
                v
                for s in rule["from"]
                for e in s.get("namespaceSelector", {}).get("matchExpressions", [])
                for v in e["values"]
            }
    return out


def test_installed_knative_admits_its_own_namespace_only():
    assert (
        knative_policy_namespaces(rendered_stack("dev"), "qwen-1-5b")
        == set(DATA_PLANE_NAMESPACES)
        == {"knative-serving"}
    )


def test_existing_knative_keeps_the_release_yaml_namespaces():
    cfg = copy.deepcopy(DEV_LIKE)
    cfg["gpuPool"] = {"gpu": {"product": "NVIDIA-L4", "memoryGiB": 22, "perNode": 1}, "taints": []}
    cfg["models"][0].update(serving="knative", gpuMemoryUtilization=0.9)
    cfg["knative"] = {
        "install": False,
        "maxRevisionTimeoutSeconds": 3600,
        "features": [
            "kubernetes.podspec-init-containers",
            "kubernetes.podspec-securitycontext",
            "kubernetes.podspec-priorityclassname",
            "kubernetes.podspec-persistent-volume-claim",
            "kubernetes.podspec-volumes-emptydir",
        ],
    }
    assert knative_policy_namespaces(render_with(cfg), "m") == set(DEFAULT_KNATIVE_NAMESPACES)


# --- 7. the DCGM node label is one constant; alerts and dashboards use the pinned exporter's labels -


def dcgm_series_labels() -> set[str]:
    line = next(
        row
        for row in (FIXTURES / "dcgm-exporter-4.8.2-gpu-series.txt").read_text().splitlines()
        if row and not row.startswith("#")
    )
    return set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="', line))


def dcgm_queries() -> list[str]:
    rules = [r["expr"] for r in alerts.gpu_rules()]
    panels = [q for d in dashboards().values() for q in dashboard_queries(d)]
    return [q for q in rules + panels if "DCGM_" in q]


def labels_used(query: str) -> set[str]:
    used = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", query):
        used |= {x.strip() for x in group.split(",") if x.strip()}
    for matcher in re.findall(r"DCGM_[A-Z_]+\{([^}]*)\}", query):
        used |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matcher))
    used |= set(re.findall(r"label_values\(\s*DCGM_[A-Z_]+\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", query))
    return used


def test_alerts_and_dashboards_use_only_labels_the_pinned_dcgm_exporter_exports():
    exported = dcgm_series_labels()
    assert metrics.DCGM_HOSTNAME_LABEL in exported
    queries = dcgm_queries()
    assert queries and any(metrics.DCGM_HOSTNAME_LABEL in labels_used(q) for q in queries)
    for q in queries:
        assert labels_used(q) <= exported, f"{q}: {labels_used(q) - exported} not exported by dcgm-exporter 4.8.2"


def test_renaming_the_hostname_label_is_one_line(monkeypatch):
    """dcgm-exporter after 4.8.2 calls it ``hostname``: changing the constant moves every alert,
    annotation and dashboard (queries, legends, variables) with it."""
    monkeypatch.setattr(metrics, "DCGM_HOSTNAME_LABEL", "hostname")
    texts = [str(alerts.gpu_rules()), *(str(d) for d in dashboards().values())]
    assert not any("Hostname" in t for t in texts)
    assert "hostname" in texts[0] and "{{hostname}}" in texts[1] and "hostname=~" in texts[1]
