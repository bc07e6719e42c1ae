"""`pulumi preview`, `up`, a second `preview` and `destroy` of the shipped stacks by the real engine, judged
by the local cluster's API server, scheduler and controllers (not by mocks)."""

from __future__ import annotations

import json
import time

import local_cluster
import observe
import pytest
import yaml
from harness import deploy, teardown
from variants import VARIANTS

#: The shipped stacks and the variants that switch on what they leave off (tests/cluster/variants.py).
STACKS = ("dev", "prod", *VARIANTS)


@pytest.fixture(scope="module", params=STACKS)
def deployed(request, tmp_path_factory, cluster):
    stack = request.param
    base, edit = VARIANTS.get(stack, (stack, None))
    result = deploy(tmp_path_factory, cluster, stack, local_cluster.stack_file(base, edit))
    yield result
    teardown(result, cluster)


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_up_succeeds_and_outputs_name_objects_that_exist(deployed):
    outputs = deployed.project.outputs()
    assert outputs, "the stack exported nothing"
    urls = [s for s in _strings(outputs) if ".svc.cluster.local" in s]
    assert urls, outputs
    for url in urls:
        # http://<service>.<namespace>.svc.cluster.local[:<port>]/...: that Service exists, or the Knative
        # Service whose controller makes it (Knative's controllers do not run here)
        host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        service, namespace = host.split(".")[:2]
        names = {s["metadata"]["name"] for s in observe.get("services", namespace)}
        names |= {s["metadata"]["name"] for s in observe.get("Service.v1.serving.knative.dev", namespace)}
        assert service in names, f"output {url}: no Service {namespace}/{service}"


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
        (c["metadata"]["name"], c["status"].get("phase")) for c in claims
    ]
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
        backing = [
            w
            for w in workloads
            if w["metadata"].get("namespace") == svc["metadata"].get("namespace")
            and observe.selects(selector, w["spec"]["template"]["metadata"].get("labels") or {})
        ]
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


def _quantity(text: str) -> float:
    """An HPA target as the API server writes it (``4``, ``850m``)."""
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _scaled_object_ready(namespace: str, name: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = [o for o in observe.get("ScaledObject.v1alpha1.keda.sh", namespace) if o["metadata"]["name"] == name]
        conditions = {c["type"]: c for c in ((found[0].get("status") or {}).get("conditions") or [])} if found else {}
        if conditions.get("Ready", {}).get("status") == "True" or time.monotonic() > deadline:
            return conditions
        time.sleep(1)


def test_kedas_own_operator_accepts_every_scaled_object_and_makes_the_hpa_it_names(deployed):
    """KEDA's operator (the chart's version, a process against this API server) judges each ScaledObject:
    Ready, and an HPA on the model's Deployment with the stack's bounds, each trigger's metric at the
    trigger's threshold and the scale-down window the stack sets."""
    scaled = [o for o in deployed.objects if o["kind"] == "ScaledObject"]
    if not scaled:
        pytest.skip(f"{deployed.project.stack} scales nothing with KEDA")
    for so in scaled:
        namespace, name, spec = so["metadata"]["namespace"], so["metadata"]["name"], so["spec"]
        conditions = _scaled_object_ready(namespace, name)
        assert conditions.get("Ready", {}).get("status") == "True", (name, conditions)
        hpa_config = (spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
        hpa_name = hpa_config.get("name") or f"keda-hpa-{name}"
        hpas = {h["metadata"]["name"]: h for h in observe.get("HorizontalPodAutoscaler.v2.autoscaling", namespace)}
        assert hpa_name in hpas, (name, sorted(hpas))
        hpa = hpas[hpa_name]["spec"]
        assert hpa["scaleTargetRef"]["name"] == spec["scaleTargetRef"]["name"]
        assert hpa["minReplicas"] == max(spec.get("minReplicaCount", 0), 1)
        assert hpa["maxReplicas"] == spec["maxReplicaCount"]
        # One External metric per trigger, named and targeted as KEDA derives it from the trigger. An external
        # scaler's trigger (the HTTP add-on's) has none here: its gRPC scaler runs in the cluster, out of reach.
        # KEDA names them s<index>-<type>[-<what the trigger says>] (a cron's adds its zone and schedule).
        wanted = {
            f"s{i}-{t['type']}": t
            for i, t in enumerate(spec["triggers"])
            if t["type"] not in ("external", "external-push")
        }
        got = {
            "-".join(m["external"]["metric"]["name"].split("-")[:2]): m["external"]["target"] for m in hpa["metrics"]
        }
        assert set(got) == set(wanted), (name, hpa["metrics"])
        for metric, trigger in wanted.items():
            kind = trigger.get("metricType", "AverageValue")
            value = _quantity(got[metric].get("averageValue" if kind == "AverageValue" else "value"))
            assert got[metric]["type"] == kind, metric
            if "threshold" in trigger["metadata"]:  # a cron trigger has none: its value is the replicas it asks
                assert value == float(trigger["metadata"]["threshold"]), (metric, got[metric])
        for direction, wanted in (hpa_config.get("behavior") or {}).items():
            if "stabilizationWindowSeconds" in wanted:
                assert hpa["behavior"][direction]["stabilizationWindowSeconds"] == wanted["stabilizationWindowSeconds"]


def test_a_second_preview_shows_no_changes(deployed):
    deployed.project.preview("--expect-no-changes")


def test_awaits_finished_well_inside_their_timeouts(deployed):
    # the whole `up` took less than the shortest await timeout the stack sets (minutes): no await ran out
    seconds = dict(deployed.project.log)["up --stack"]
    assert seconds < 600, f"up took {seconds:.0f} s"


def _fill_spare_gpus(stack: str) -> list[str]:
    """Pods that take every GPU the stack's pods left free on its nodes: from now on, no spare GPU."""
    nodes = [n for n in observe.get("nodes") if n["metadata"]["labels"].get(local_cluster.GPU_NODE_LABEL) == stack]
    pods = observe.get("pods")
    fillers = []
    for node in nodes:
        name = node["metadata"]["name"]
        resource = next(k for k in node["status"]["allocatable"] if k.startswith("nvidia.com/"))
        used = sum(
            int(((c.get("resources") or {}).get("requests") or {}).get(resource, 0))
            for p in pods
            if p["spec"].get("nodeName") == name and p["status"].get("phase") in ("Pending", "Running")
            for c in p["spec"]["containers"]
        )
        free = int(node["status"]["allocatable"][resource]) - used
        if free <= 0:
            continue
        fillers.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"gpu-filler-{name}", "namespace": "default", "labels": {"app": "gpu-filler"}},
                "spec": {
                    "nodeName": name,
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [
                        {
                            "name": "fill",
                            "image": "registry.k8s.io/pause:3.10",
                            "resources": {"limits": {resource: str(free)}, "requests": {resource: str(free)}},
                        }
                    ],
                },
            }
        )
    local_cluster.apply(fillers)
    return [f["metadata"]["name"] for f in fillers]


def test_a_typical_change_previews_exactly_and_rolls_out_on_gpu_nodes_with_no_spare_gpu(deployed):
    stack = deployed.project.stack
    if stack not in TYPICAL_CHANGE:
        pytest.skip("the typical change is made to the shipped stacks")
    model = TYPICAL_CHANGE[stack]
    stack_path = deployed.project.directory / f"Pulumi.{stack}.yaml"
    before = stack_path.read_text()
    doc = yaml.safe_load(before)
    entry = next(m for m in doc["config"]["llmstack:models"] if m["name"] == model)
    entry["maxModelLen"] = entry["maxModelLen"] // 2
    stack_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    _fill_spare_gpus(stack)
    try:
        changes = deployed.project.changes()
        assert changes == EXPECTED_CHANGES[stack], changes
        deployed.project.up()
        live = next(d for d in observe.get("Deployment.v1.apps") if d["metadata"]["name"] == model)
        status = live["status"]
        assert (
            status.get("updatedReplicas")
            == status.get("replicas")
            == status.get("readyReplicas")
            == live["spec"]["replicas"]
        )
        assert (
            f"--max-model-len={entry['maxModelLen']}"
            in " ".join(live["spec"]["template"]["spec"]["containers"][0]["args"])
            or str(entry["maxModelLen"]) in live["spec"]["template"]["spec"]["containers"][0]["args"]
        )
    finally:
        local_cluster.kubectl("delete", "pod", "-n", "default", "-l", "app=gpu-filler", "--wait=false", check=False)
        stack_path.write_text(before)


#: The model whose ``maxModelLen`` the typical change halves, per stack.
TYPICAL_CHANGE = {"dev": "qwen-0-5b", "prod": "llama-8b"}
#: What that change is, and only that: the server's args (its Deployment updated in place, nothing replaced).
EXPECTED_CHANGES = {
    "dev": [("update", "kubernetes:apps/v1:Deployment", "qwen-0-5b-deploy")],
    "prod": [("update", "kubernetes:apps/v1:Deployment", "llama-8b-deploy")],
}


#: Field managers of what a `pulumi up` writes: the provider's server-side applies and its Helm releases.
WRITERS = ("pulumi", "helm")


def _written(obj: dict) -> str:
    """What the stack's writers last wrote to an object (their managedFields entries: fields and time).
    Controllers keep writing too, and rightly (the HPA KEDA makes raises a new Deployment to its minimum;
    KEDA and the HPA controller report status): those entries are theirs, not the stack's."""
    entries = [e for e in obj["metadata"].get("managedFields") or [] if e.get("manager", "").startswith(WRITERS)]
    return json.dumps(sorted(entries, key=lambda e: json.dumps(e, sort_keys=True)), sort_keys=True)


def _snapshot(objects: list[dict]) -> dict[str, str]:
    """uid -> what the stack's writers wrote, of every object of the kinds the stack renders, in the whole
    cluster: a refused stack file must create, delete and write nothing."""
    kinds = {observe.kubectl_kind(o["apiVersion"], o["kind"]) for o in objects}
    return {o["metadata"]["uid"]: _written(o) for k in sorted(kinds) for o in observe.get(k)}


def test_a_refused_stack_file_leaves_the_cluster_untouched(deployed):
    stack = deployed.project.stack
    stack_path = deployed.project.directory / f"Pulumi.{stack}.yaml"
    before_text = stack_path.read_text()
    doc = yaml.safe_load(before_text)
    doc["config"]["llmstack:models"][0]["maxModelLenn"] = 4096  # a typo'd key
    stack_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    before = _snapshot(deployed.objects)
    resources = len(deployed.project.resources())
    try:
        result = deployed.project.up(check=False)
    finally:
        stack_path.write_text(before_text)
    assert result.returncode != 0
    assert "maxModelLenn" in result.stdout and f"Pulumi.{stack}.yaml" in result.stdout, result.stdout[-2000:]
    assert _snapshot(deployed.objects) == before
    assert len(deployed.project.resources()) == resources


#: What `pulumi destroy` leaves on purpose: CRDs a chart installs from its crds/ folder (kube-prometheus-stack's
#: monitoring.coreos.com, lws's): Helm never deletes them, since deleting a CRD deletes every object of it in
#: the cluster, other teams' too. Known from the charts themselves (the render's ``crd_folder_groups``).


def test_destroy_leaves_nothing_behind(deployed):
    stack_namespaces = observe.namespaces_of(deployed.objects) | {r["namespace"] for r in deployed.rendered["releases"]}
    deployed.project.destroy()
    assert deployed.project.resources() == []
    rendered = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in deployed.objects}
    assert len(observe.missing(deployed.objects)) == len(rendered), "objects of the stack outlived destroy"
    namespaces = {n["metadata"]["name"]: n for n in observe.get("namespaces")}
    left = {
        n
        for n in stack_namespaces & set(namespaces)
        if not (namespaces[n]["metadata"].get("labels") or {}).get(local_cluster.PROVIDED_LABEL)
    }
    assert not left, f"namespaces left after destroy (or stuck Terminating): {sorted(left)}"
    assert not observe.get("persistentvolumeclaims") and not observe.get("persistentvolumes")
    crds = {
        c["spec"]["group"]
        for c in observe.get("customresourcedefinitions")
        if c["metadata"]["name"] not in deployed.crds_before
        and not (c["metadata"].get("labels") or {}).get(local_cluster.PROVIDED_LABEL)
    }
    kept = set(deployed.rendered["crd_folder_groups"]) | {"kwok.x-k8s.io"}
    assert crds <= kept, f"CRDs left after destroy: {sorted(crds - kept)}"
