"""`pulumi preview`, `up`, a second `preview` and `destroy` of the shipped stacks by the real engine, judged
by the local cluster's API server, scheduler and controllers (not by mocks)."""

from __future__ import annotations

import time

import pytest

import observe
from harness import deploy, stack_text, teardown

#: Kinds the offline render carries that are no cluster objects (Helm releases are checked through
#: their workloads below).
STACKS = ("dev", "prod")


@pytest.fixture(scope="module", params=STACKS)
def deployed(request, tmp_path_factory, cluster):
    stack = request.param
    result = deploy(tmp_path_factory, cluster, stack, stack_text(stack))
    yield result
    teardown(result, cluster)


def test_up_succeeds_and_outputs_name_objects_that_exist(deployed):
    outputs = deployed.project.outputs()
    assert outputs, "the stack exported nothing"
    namespaces = {o["metadata"]["name"] for o in observe.get("namespaces")}
    for key, value in outputs.items():
        if isinstance(value, str) and ".svc.cluster.local" in value:
            # http://<service>.<namespace>.svc.cluster.local:<port>/...: that Service exists
            host = value.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
            service, namespace = host.split(".")[:2]
            assert namespace in namespaces, f"output {key}={value}: no namespace {namespace}"
            names = {s["metadata"]["name"] for s in observe.get("services", namespace)}
            assert service in names, f"output {key}={value}: no Service {namespace}/{service}"


def test_every_rendered_object_was_admitted(deployed):
    absent = observe.missing(deployed.objects)
    assert not absent, f"objects of the render the API server does not hold: {absent}"


def test_no_pod_is_left_pending_and_gpu_pods_run_on_their_pools_gpu_nodes(deployed):
    namespaces = observe.namespaces_of(deployed.objects)
    pods = observe.pods(namespaces | {"monitoring", "keda", "kube-system", "knative-operator", "knative-serving"})
    assert not observe.pending(pods), observe.pending(pods)
    nodes = observe.nodes()
    gpu_pods = [p for p in pods if observe.gpu_resource(p)]
    for pod in gpu_pods:
        node = nodes[pod["spec"]["nodeName"]]
        resource = observe.gpu_resource(pod)
        assert resource in node["status"]["allocatable"], (pod["metadata"]["name"], node["metadata"]["name"])
        for key, value in (pod["spec"].get("nodeSelector") or {}).items():
            assert node["metadata"]["labels"].get(key) == value


def test_claims_are_bound_and_downloads_complete_before_their_servers_start(deployed):
    namespaces = observe.namespaces_of(deployed.objects)
    claims = [c for c in observe.get("persistentvolumeclaims") if c["metadata"]["namespace"] in namespaces]
    assert all(c["status"].get("phase") == "Bound" for c in claims), [
        (c["metadata"]["name"], c["status"].get("phase")) for c in claims]
    jobs = {j["metadata"]["name"]: j for j in observe.get("Job.v1.batch") if j["metadata"]["namespace"] in namespaces}
    rendered_jobs = [o for o in deployed.objects if o["kind"] == "Job"]
    for job in rendered_jobs:
        live = jobs[job["metadata"]["name"]]
        complete = [c for c in live["status"].get("conditions", []) if c["type"] == "Complete"]
        assert complete and complete[0]["status"] == "True", (job["metadata"]["name"], live["status"])


def test_every_service_of_a_running_workload_has_ready_endpoints(deployed):
    workloads = [o for o in deployed.objects if o["kind"] in ("Deployment", "StatefulSet")]
    for svc in (o for o in deployed.objects if o["kind"] == "Service" and o["apiVersion"] == "v1"):
        selector = (svc.get("spec") or {}).get("selector") or {}
        backing = [w for w in workloads if w["metadata"].get("namespace") == svc["metadata"].get("namespace")
                   and observe.selects(selector, w["spec"]["template"]["metadata"].get("labels") or {})]
        if not backing or all(w["spec"].get("replicas", 1) == 0 for w in backing):
            continue  # no pods by design (scaled to zero) or selected pods come from a chart
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        assert observe.ready_endpoints(ns, name) >= 1, f"Service {ns}/{name} has no ready endpoint"


def test_budgets_of_replicated_models_allow_a_disruption(deployed):
    namespaces = observe.namespaces_of(deployed.objects)
    for pdb in observe.get("PodDisruptionBudget.v1.policy"):
        if pdb["metadata"]["namespace"] not in namespaces:
            continue
        status = pdb.get("status") or {}
        if status.get("expectedPods", 0) >= 2:
            assert status.get("disruptionsAllowed", 0) >= 1, (pdb["metadata"]["name"], status)


def test_a_second_preview_shows_no_changes(deployed):
    deployed.project.preview("--expect-no-changes")


def test_awaits_finished_well_inside_their_timeouts(deployed):
    # the whole `up` took less than the shortest await timeout the stack sets (minutes): no await ran out
    seconds = dict(deployed.project.log)["up --stack"]
    assert seconds < 600, f"up took {seconds:.0f} s"
