"""Multi-node models: a replica wider than one node runs as a LeaderWorkerSet of the shared
vLLM pod. The component's objects and their wiring, the stack's rendering (validated against the pinned
CRD, the cross-object checks, the chart expansion with the pinned lws chart), team quotas, and every
refusal of a shape or setting a group of nodes cannot serve."""

import copy
import json
import re
from pathlib import Path

import pulumi
import pytest

from conftest import assert_refused, render_with, stack_example
from llmstack_k8s import rules, versions
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.rules import check_all, manifests_of, pdb_selects_one_controller
from llmstack_k8s.serving import multi_node
from llmstack_k8s.serving.multi_node import MultiNodeVllmService
from stack.test_cross_objects import declared_for, render_with_config
from stacks.tools import charts
from stacks.tools import render as render_mod
from support import chart_connections as cc
from support.schemas import validate_object
from unit.test_components import objects

ROOT = Path(__file__).resolve().parents[2]
H100 = {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 79, "perNode": 8}
REVISION = "0123456789abcdef0123456789abcdef01234567"  # a stand-in (never deployed)
BIG = {
    "name": "llama-405b",
    "model": "meta-llama/Llama-3.1-405B-Instruct",
    "revision": REVISION,
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
    "maxModelLen": 16384,
    "cache": {"size": "1600Gi"},
    "resources": {"cpu": "32", "memory": "512Gi"},
}
WHERE = "llmstack:models[0] (name: llama-405b)"
POOL_WHERE = "models[0] (name: llama-405b)"  # the pool's fit check words the model so (stacks/config/gpu_pool.py)


def stack(**model_over) -> dict:
    m = copy.deepcopy(BIG)
    for k, v in model_over.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return {
        "namespace": "llm",
        "gpuPool": {"gpu": dict(H100)},
        "cache": {"downloadDeadlineSeconds": 20000},
        "network": {"clientNamespaces": ["apps"], "monitoringNamespaces": ["monitoring"]},
        "models": [m],
    }


# --- the component --------------------------------------------------------------------------------


@pytest.fixture
def mocks():
    """The unit tests' recording mocks (as tests/unit/test_components.py sets them)."""
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="llmstack", stack="unit", preview=True)
    return m


ENGINE = {"served_model_name": "big", "tensor_parallel_size": 8, "pipeline_parallel_size": 2, "max_model_len": 8192}


def make(mocks, **over):
    args = {
        "namespace": "llm",
        "engine": dict(ENGINE),
        "model_path": "/models/big",
        "cache_claim_name": "big-weights",
        "gpus_per_node": 8,
        "startup_budget_seconds": 1800,
        **over,
    }

    @pulumi.runtime.test
    def run():
        return MultiNodeVllmService("big", args).endpoint

    run()
    return {o["kind"] + "/" + o["metadata"]["name"]: o for o in objects(mocks)}


def _templates(lws):
    t = lws["spec"]["leaderWorkerTemplate"]
    return t["leaderTemplate"], t["workerTemplate"]


def test_leader_serves_and_workers_join_it_with_vllms_own_multi_node_flags(mocks):
    objs = make(mocks)
    lws = objs["LeaderWorkerSet/big-lws"]
    validate_object(lws)  # the pinned leaderworkerset.x-k8s.io CRD
    spec = lws["spec"]
    assert spec["leaderWorkerTemplate"]["size"] == 2 and spec["replicas"] == 1
    assert spec["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"
    assert spec["startupPolicy"] == "LeaderCreated"  # workers must join a leader that is not Ready yet
    leader, worker = (t["spec"]["containers"][0] for t in _templates(lws))
    assert leader["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert worker["command"] == ["python3", "-m", "vllm.entrypoints.cli.main", "serve"]
    flags = lambda c, n: c["args"][c["args"].index(n) + 1]  # noqa: E731
    assert [flags(leader, f) for f in ("--nnodes", "--node-rank", "--master-addr", "--master-port")] == [
        "2",
        "0",
        "$(LWS_LEADER_ADDRESS)",
        "29501",
    ]
    assert [flags(worker, f) for f in ("--nnodes", "--node-rank", "--master-addr", "--master-port")] == [
        "2",
        "$(LWS_WORKER_INDEX)",
        "$(LWS_LEADER_ADDRESS)",
        "29501",
    ]
    assert "--headless" in worker["args"] and "--headless" not in leader["args"]
    # The same builder: identical engine flags, image, volumes, security; only the multi-node tail differs.
    assert leader["args"][:-8] == worker["args"][:-9]
    assert leader["image"] == worker["image"] == versions.VLLM_IMAGE
    assert leader["volumeMounts"] == worker["volumeMounts"] and leader["securityContext"] == worker["securityContext"]
    # The leader serves: port, startup (warm-up) / readiness / liveness probes; a worker has none it could pass.
    assert leader["ports"][0]["containerPort"] == 8000
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(leader)
    assert not {"ports", "startupProbe", "readinessProbe", "livenessProbe"} & set(worker)
    assert "VLLM_API_KEY" not in {e["name"] for e in worker["env"]}
    # Every pod takes its node's 8 GPUs (not tensor x pipeline = 16), /dev/shm sized for those 8.
    for t in _templates(lws):
        c = t["spec"]["containers"][0]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == c["resources"]["requests"]["nvidia.com/gpu"] == "8"
        assert next(v for v in t["spec"]["volumes"] if v["name"] == "dshm")["emptyDir"]["sizeLimit"] == "32Gi"
        assert t["spec"]["initContainers"][0]["name"] == "wait-for-weights"  # every node reads the cache
    assert rules.gpu_request_matches_parallelism(lws) == []


def test_placement_one_pod_per_node_and_a_group_in_one_domain(mocks):
    lws = make(mocks, group_topology_key="example.com/rack")["LeaderWorkerSet/big-lws"]
    for t in _templates(lws):
        aff = t["spec"]["affinity"]
        (anti,) = aff["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert anti == {
            "labelSelector": {"matchLabels": {multi_node.LWS_NAME_LABEL: "big-lws"}},
            "topologyKey": "kubernetes.io/hostname",
        }
        (together,) = aff["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert (
            together["matchLabelKeys"] == [multi_node.LWS_GROUP_KEY_LABEL]
            and together["topologyKey"] == "example.com/rack"
        )
        assert t["spec"]["tolerations"]  # the pool's contract still applies


def test_group_topology_off_keeps_one_pod_per_node_only(mocks):
    lws = make(mocks, group_topology_key="")["LeaderWorkerSet/big-lws"]
    for t in _templates(lws):
        assert "podAffinity" not in t["spec"]["affinity"] and "podAntiAffinity" in t["spec"]["affinity"]


def test_rdma_is_requested_by_every_pod(mocks):
    lws = make(mocks, rdma={"resource_name": "rdma/ib", "per_pod": 2})["LeaderWorkerSet/big-lws"]
    for t in _templates(lws):
        res = t["spec"]["containers"][0]["resources"]
        assert res["requests"]["rdma/ib"] == res["limits"]["rdma/ib"] == "2"


def test_service_selects_leaders_the_pdb_and_group_policy_the_whole_set(mocks):
    objs = make(mocks)
    lws = objs["LeaderWorkerSet/big-lws"]
    leader_labels, worker_labels = (t["metadata"]["labels"] for t in _templates(lws))
    svc = objs["Service/big"]["spec"]
    assert rules.selector_matches({"matchLabels": svc["selector"]}, leader_labels)
    assert not rules.selector_matches({"matchLabels": svc["selector"]}, worker_labels)
    api = objs["NetworkPolicy/big"]["spec"]
    assert rules.selector_matches(api["podSelector"], leader_labels) and not rules.selector_matches(
        api["podSelector"], worker_labels
    )
    assert api["ingress"][0]["ports"] == [{"port": 8000, "protocol": "TCP"}]
    group = objs["NetworkPolicy/big-group"]["spec"]
    for labels in (leader_labels, worker_labels):
        assert rules.selector_matches(group["podSelector"], labels)
        assert rules.selector_matches(group["ingress"][0]["from"][0]["podSelector"], labels)
    assert "ports" not in group["ingress"][0]  # NCCL/Gloo and vLLM's queues listen on ephemeral ports
    assert len(group["ingress"][0]["from"]) == 1  # the group's own pods, nobody else
    pdb = objs["PodDisruptionBudget/big"]["spec"]
    assert pdb["maxUnavailable"] == 1
    assert all(rules.selector_matches(pdb["selector"], labels) for labels in (leader_labels, worker_labels))
    # The download Job's pods carry the model's instance label too: never selected.
    job_pod = {
        "app.kubernetes.io/name": "model-download",
        "app.kubernetes.io/instance": "big",
        "app.kubernetes.io/component": "download",
    }
    assert not rules.selector_matches(pdb["selector"], job_pod)
    # The LWS is not named like the Service: its controller creates a headless Service of its own name.
    assert rules.lws_headless_service_free(list(objs.values())) == []
    # The await waits for every group (the controller's Available condition: all groups ready).
    ann = lws["metadata"]["annotations"]
    assert ann["pulumi.com/waitFor"] == "condition=Available" and int(ann["pulumi.com/timeoutSeconds"]) >= 600 + 1800


@pytest.mark.parametrize(
    "over, key, words",
    [
        (
            {"engine": {**ENGINE, "tensor_parallel_size": 16, "pipeline_parallel_size": 1}},
            "engine.tensor_parallel_size",
            "must stay within a node",
        ),
        (
            {"engine": {**ENGINE, "tensor_parallel_size": 4, "pipeline_parallel_size": 3}},
            "engine.pipeline_parallel_size",
            "do not fill whole nodes",
        ),
        (
            {"engine": {**ENGINE, "tensor_parallel_size": 3, "pipeline_parallel_size": 8}},
            "engine.pipeline_parallel_size",
            "tensor_parallel_size dividing 8",
        ),
        (
            {"engine": {**ENGINE, "tensor_parallel_size": 8, "pipeline_parallel_size": 1}},
            "engine.pipeline_parallel_size",
            "fit on one node",
        ),
        ({"gpus_per_node": None}, "gpus_per_node", "a group needs it to know its size"),
        ({"max_unavailable": 0}, "max_unavailable", "could never start"),
    ],
)
def test_component_refuses_shapes_a_group_of_nodes_cannot_run(mocks, over, key, words):
    args = {k: v for k, v in over.items() if v is not None}
    with pytest.raises(ComponentArgsError) as err:
        if over.get("gpus_per_node", 1) is None:
            MultiNodeVllmService(
                "big", {"namespace": "llm", "engine": dict(ENGINE), "model_path": "/m", "cache_claim_name": "c"}
            )
        else:
            MultiNodeVllmService(
                "big",
                {
                    "namespace": "llm",
                    "engine": dict(ENGINE),
                    "model_path": "/m",
                    "cache_claim_name": "c",
                    "gpus_per_node": 8,
                    **args,
                },
            )
    assert key in str(err.value) and words in str(err.value), str(err.value)
    assert mocks.registrations == []


def test_component_takes_the_node_size_from_the_pools_capacity_and_refuses_a_contradiction(mocks):
    capacity = {"gpu_resource_name": "nvidia.com/gpu", "gpu": {"product": "H100", "memory_gib": 79, "per_node": 8}}
    scheduling = {"gpu_resource_name": "nvidia.com/gpu", "gpu_capacity": capacity}
    lws = make(mocks, gpus_per_node=None, scheduling=scheduling)["LeaderWorkerSet/big-lws"]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    with pytest.raises(ComponentArgsError, match="a pod takes every GPU of its node"):
        MultiNodeVllmService(
            "b2",
            {
                "namespace": "llm",
                "engine": dict(ENGINE),
                "model_path": "/m",
                "cache_claim_name": "c",
                "gpus_per_node": 4,
                "scheduling": scheduling,
            },
        )
    # The fit check divides the weights over every GPU of the group: 756 GiB / 16 fits an H100, / 8 would not.
    with pytest.raises(ComponentArgsError, match="does not fit"):
        MultiNodeVllmService(
            "b3",
            {
                "namespace": "llm",
                "engine": {**ENGINE, "pipeline_parallel_size": 2},
                "model_path": "/m",
                "cache_claim_name": "c",
                "scheduling": scheduling,
                "weights_gib": 1400,
            },
        )


# --- the stack ------------------------------------------------------------------------------------


def _render(config):
    rendered, cfg = render_with_config(lambda: render_with(config))
    return rendered, manifests_of(rendered), cfg


def test_stack_renders_a_wide_model_as_a_leader_worker_set_that_validates_and_passes_the_cross_checks():
    rendered, manifests, cfg = _render(stack())
    kinds = {(o["kind"], o["metadata"]["name"]) for o in manifests if "metadata" in o}
    assert ("LeaderWorkerSet", "llama-405b-lws") in kinds and ("Deployment", "llama-405b") not in kinds
    for o in manifests:
        if o["kind"] != "Release":
            validate_object(o)
    problems = check_all(manifests, declared_for(cfg))
    assert not problems, "\n".join(problems)
    (release,) = [r for r in rendered.helm_releases if r["name"] == "lws"]
    assert (release["chart"], release["version"], release["namespace"]) == (
        "oci://registry.k8s.io/lws/charts/lws",
        "0.10.0",
        "lws-system",
    )
    assert "repositoryOpts" not in release  # an OCI reference, not a chart repository
    assert release["values"]["image"]["manager"]["tag"] == "v0.10.0"


def test_lws_waits_on_the_controller_install(monkeypatch):
    """LWS objects are refused until the controller's webhook answers: the server depends on the
    install (Helm --wait holds the release until the controller is ready)."""
    from llmstack_k8s.cluster.multi_node_controller import LeaderWorkerSetController
    from stacks.compose import deployment as composition

    seen = []

    class Spy(MultiNodeVllmService):
        def __init__(self, name, args, opts=None):
            seen.append(opts)
            super().__init__(name, args, opts)

    monkeypatch.setattr(composition, "MultiNodeVllmService", Spy)
    render_with(stack())
    (opts,) = seen
    assert any(isinstance(d, LeaderWorkerSetController) for d in opts.depends_on), opts.depends_on


def test_existing_controller_is_not_installed():
    rendered, manifests, _ = _render({**stack(), "leaderWorkerSet": {"install": False}})
    assert not [r for r in rendered.helm_releases if r["name"] == "lws"]
    assert any(o["kind"] == "LeaderWorkerSet" for o in manifests)


def test_stack_expands_with_the_pinned_lws_chart_and_the_chart_connections_hold():
    rendered, _, _ = _render(stack())
    cluster = charts.expand(rendered)
    release = cluster.release("lws")
    assert release is not None and any(o["kind"] == "Deployment" for o in release.objects)
    assert any(c["metadata"]["name"] == "leaderworkersets.leaderworkerset.x-k8s.io" for c in release.crds)
    objects = [o for o in cluster.objects if o["kind"] != "Release"]
    for o in release.objects:
        validate_object(o)
    for rule in (
        cc.prometheus_selects_monitors,
        cc.monitors_reach_targets,
        cc.network_policies_admit_chart_callers,
        cc.pods_admitted_by_namespace_pod_security,
    ):
        assert rule(objects) == [], rule.__name__


def test_one_node_models_are_untouched_beside_a_wide_one():
    small = {
        "name": "small",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
        "weightsGiB": 15,
        "cache": {"size": "40Gi"},
    }
    config = stack()
    config["models"].append(small)
    _, manifests, cfg = _render(config)
    assert [
        o["metadata"]["name"] for o in manifests if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "llm"
    ] == ["small"]
    assert [o["metadata"]["name"] for o in manifests if o["kind"] == "LeaderWorkerSet"] == ["llama-405b-lws"]
    assert check_all(manifests, declared_for(cfg)) == []


def test_team_quota_counts_every_pod_of_a_group():
    team = {
        "name": "research",
        "models": ["llama-405b"],
        "quota": {"gpus": 16, "cpu": "64", "memory": "1024Gi", "storage": "1600Gi"},
    }
    _, manifests, cfg = _render({**stack(), "teams": [team]})
    assert any(o["kind"] == "LeaderWorkerSet" and o["metadata"]["namespace"] == "research" for o in manifests)
    assert check_all(manifests, declared_for(cfg)) == []
    # One group is 2 pods of 32 CPU: 64, not 32; 8 GPUs each, 16 in all.
    msg = assert_refused(
        {**stack(), "teams": [{**team, "quota": {**team["quota"], "cpu": "48"}}]}, "teams[0] (name: research).quota"
    )
    assert "64" in msg and "48" in msg, msg
    assert_refused(
        {**stack(), "teams": [{**team, "quota": {**team["quota"], "gpus": 8}}]}, "teams[0] (name: research).quota"
    )


# --- refusals -------------------------------------------------------------------------------------

REFUSALS = {
    "tensor parallel above a node": (
        stack(tensorParallelSize=16, pipelineParallelSize=1),
        f"{POOL_WHERE}.tensorParallelSize: tensorParallelSize 16 is above gpuPool.gpu.perNode 8",
    ),
    "more than a node but not whole nodes": (
        stack(tensorParallelSize=4, pipelineParallelSize=3),
        f"{POOL_WHERE}.pipelineParallelSize: a replica needs 12 GPUs",
    ),
    "tensor groups straddling nodes": (
        {
            **stack(tensorParallelSize=4, pipelineParallelSize=3, weightsGiB=300),
            "gpuPool": {"gpu": {**H100, "perNode": 6}},
        },
        "not whole nodes in whole tensor-parallel groups",
    ),
    "pipeline stages do not divide the layers": (
        stack(tensorParallelSize=4, pipelineParallelSize=4),
        f"{WHERE}.pipelineParallelSize: 4 pipeline stages do not divide the model's 126 layers",
    ),
    "pipeline stages vs stated architecture layers": (
        stack(
            model="org/big", architecture={"attentionHeads": 64, "kvHeads": 8, "layers": 61}, weightsGiB=700, gated=None
        ),
        "2 pipeline stages do not divide the model's 61 layers",
    ),
    "time-sliced GPUs": (
        {**stack(), "gpuPool": {"gpu": dict(H100), "sharing": {"strategy": "timeSlicing", "replicas": 4}}},
        f"{POOL_WHERE}.tensorParallelSize: tensorParallelSize 8 on a pool with gpuPool.sharing.strategy timeSlicing",
    ),
    "MPS": (
        {**stack(), "gpuPool": {"gpu": dict(H100), "sharing": {"strategy": "mps", "replicas": 2}}},
        "gpuPool.sharing.strategy mps",
    ),
    "MIG": (
        {
            **stack(),
            "gpuPool": {
                "gpu": dict(H100),
                "sharing": {"strategy": "mig", "migStrategy": "single", "migProfile": "3g.40gb"},
            },
        },
        "gpuPool.sharing.strategy mig",
    ),
    "knative": (stack(serving="knative"), f"{WHERE}.serving: knative cannot run this model: a replica spans 2 nodes"),
    "autoscaling": (
        stack(autoscaling={"minReplicas": 1, "maxReplicas": 2}),
        f"{WHERE}.autoscaling: is not supported for a model across nodes",
    ),
    "canary": (
        {
            **stack(canary={"weight": 10, "extraArgs": ["--enforce-eager"]}),
            "gateway": {"gatewayRef": {"name": "gw", "namespace": "gateway"}},
        },
        f"{WHERE}.canary: is not supported for a model across nodes",
    ),
    "ReadWriteOnce cache (the model's)": (
        stack(cache={"size": "1600Gi", "accessMode": "ReadWriteOnce"}),
        f"{WHERE}.cache.accessMode: ReadWriteOnce cannot serve llama-405b",
    ),
    "ReadWriteOnce cache (the stack's default)": (
        {**stack(), "cache": {"downloadDeadlineSeconds": 20000, "accessMode": "ReadWriteOnce"}},
        "llmstack:cache.accessMode: ReadWriteOnce cannot serve llama-405b: a replica spans 2 nodes",
    ),
    "multiNode on a model that fits one node": (
        stack(
            tensorParallelSize=8,
            pipelineParallelSize=1,
            multiNode={"groupTopologyKey": "example.com/rack"},
            weightsGiB=400,
        ),
        f"{WHERE}.multiNode: is set, but a replica of 8 GPU(s) fits on one node",
    ),
    "multiNode without gpuPool.gpu": (
        {**stack(multiNode={}), "gpuPool": {}},
        f"{WHERE}.multiNode: is set, but gpuPool.gpu (perNode) is not",
    ),
    "multiNode typo": (stack(multiNode={"groupTopology": "x"}), "groupTopology"),
    "rdma resource not a resource name": (
        stack(multiNode={"rdma": {"resourceName": "ib"}}),
        "multiNode.rdma.resourceName",
    ),
    "leaderWorkerSet namespace not a DNS label": (
        {**stack(), "leaderWorkerSet": {"namespace": "LWS_System"}},
        "leaderWorkerSet.namespace",
    ),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_refused(name):
    config, expected = REFUSALS[name]
    assert_refused(config, expected)


def test_uneven_stages_pass_with_an_explicit_layer_partition():
    _, manifests, _ = _render(
        stack(tensorParallelSize=4, pipelineParallelSize=4, extraEnv={"VLLM_PP_LAYER_PARTITION": "31,32,32,31"})
    )
    assert any(o["kind"] == "LeaderWorkerSet" for o in manifests)


# --- the cross-object rules that know groups ------------------------------------------------------


def test_pdb_rule_counts_a_leader_worker_set_as_one_controller_and_catches_a_stray_selector(mocks):
    objs = list(make(mocks).values())
    assert pdb_selects_one_controller(objs) == []
    pdb = next(o for o in objs if o["kind"] == "PodDisruptionBudget")
    pdb["spec"]["selector"] = {"matchLabels": {"app.kubernetes.io/instance": "nobody"}}
    assert pdb_selects_one_controller(objs)


def test_lws_named_like_a_service_is_caught(mocks):
    objs = list(make(mocks).values())
    lws = next(o for o in objs if o["kind"] == "LeaderWorkerSet")
    lws["metadata"]["name"] = "big"
    (problem,) = rules.lws_headless_service_free(objs)
    assert "headless Service" in problem


def test_gpu_rule_reads_gpus_per_pod_from_nnodes(mocks):
    lws = make(mocks)["LeaderWorkerSet/big-lws"]
    worker = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
    worker["resources"]["limits"]["nvidia.com/gpu"] = worker["resources"]["requests"]["nvidia.com/gpu"] = "16"
    (problem,) = rules.gpu_request_matches_parallelism(lws)
    assert "(worker)" in problem and "needs 8" in problem
    assert rules.vllm_startup_probe(lws) == []  # the headless worker needs none; the leader has one


# --- prod's commented example -----------------------------------------------------------------------


def _prod_example() -> dict:
    """The commented multi-node model of Pulumi.prod.yaml, from its fixture file."""
    (model,) = stack_example("prod-multi-node-model.yaml")
    return model


def _prod_with_example(deadline=None):
    project, config, secrets = render_mod.stack_config_env("prod")
    models = json.loads(config[f"{project}:models"])
    models.append(_prod_example())
    config[f"{project}:models"] = json.dumps(models)
    if deadline is not None:
        cache = json.loads(config[f"{project}:cache"])
        cache["downloadDeadlineSeconds"] = deadline
        config[f"{project}:cache"] = json.dumps(cache)
    return project, "prod", config, secrets


def test_prod_example_says_the_download_deadline_it_needs_and_preview_agrees():
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    stated = int(re.search(r"downloadDeadlineSeconds >= (\d+)", text).group(1))
    from stacks.config.loader import StackConfigError

    with pytest.raises(StackConfigError) as err:
        render_mod.run_program(*_prod_with_example())
    need = int(re.search(r"raise downloadDeadlineSeconds to at least (\d+)", str(err.value)).group(1))
    assert need <= stated <= need + 1, (need, stated)  # the preview's figure, rounded up


def test_prod_example_renders_validates_and_passes_the_cross_and_chart_checks():
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    stated = int(re.search(r"downloadDeadlineSeconds >= (\d+)", text).group(1))
    rendered, cfg = render_with_config(lambda: render_mod.run_program(*_prod_with_example(stated)))
    manifests = manifests_of(rendered)
    (lws,) = [o for o in manifests if o["kind"] == "LeaderWorkerSet"]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    for o in manifests:
        if o["kind"] != "Release":
            validate_object(o)
    problems = check_all(manifests, declared_for(cfg))
    assert not problems, "\n".join(problems)
    cluster = charts.expand(rendered)
    objects = [o for o in cluster.objects if o["kind"] != "Release"]
    for rule in (
        cc.prometheus_selects_monitors,
        cc.monitors_reach_targets,
        cc.network_policies_admit_chart_callers,
        cc.pods_admitted_by_namespace_pod_security,
    ):
        assert rule(objects) == [], rule.__name__


def test_rollout_surges_and_drains_whole_groups_and_the_await_covers_the_waves(mocks):
    objs = make(mocks, replicas=3, max_surge=1, max_unavailable=0)
    lws = objs["LeaderWorkerSet/big-lws"]
    assert lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"] == {"maxUnavailable": 0, "maxSurge": 1}
    # 3 groups one at a time: 3 waves of node + image + startup budget.
    assert int(lws["metadata"]["annotations"]["pulumi.com/timeoutSeconds"]) >= 3 * (600 + 1800)


def test_stack_rollout_reaches_the_group_and_the_quota_counts_the_surge_group():
    _, manifests, _ = _render(stack(rollout={"maxSurge": 1, "maxUnavailable": 0}))
    (lws,) = [o for o in manifests if o["kind"] == "LeaderWorkerSet"]
    assert lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"] == {"maxUnavailable": 0, "maxSurge": 1}
    team = {"name": "research", "models": ["llama-405b"], "quota": {"gpus": 16}}
    msg = assert_refused(
        {**stack(rollout={"maxSurge": 1, "maxUnavailable": 0}), "teams": [team]}, "teams[0] (name: research).quota"
    )
    assert "32" in msg, msg  # (1 group + 1 surge group) x 2 pods x 8 GPUs


def test_policy_pack_passes_on_the_prod_example_and_catches_an_lws_named_like_a_service():
    """Every policy of the pack, run as the CLI's analyzer runs it, passes on prod with its multi-node example
    switched on (GPU count per pod from --nnodes, probes on the leader only, images, credentials...); the LWS
    rule fails once the LeaderWorkerSet takes its Service's name."""
    import copy

    from contract.test_policy import POLICIES, run

    text = (ROOT / "Pulumi.prod.yaml").read_text()
    stated = int(re.search(r"downloadDeadlineSeconds >= (\d+)", text).group(1))
    rendered, _ = render_with_config(lambda: render_mod.run_program(*_prod_with_example(stated)))
    res = [(r.type, r.name, copy.deepcopy(r.inputs)) for r in rendered.registrations if r.custom]
    assert any(t.endswith(":LeaderWorkerSet") for t, _, _ in res)
    for name, policy in POLICIES.items():
        assert run(policy, "prod", res) == [], name
    (lws,) = [i for t, _, i in res if t.endswith(":LeaderWorkerSet")]
    lws["metadata"]["name"] = lws["metadata"]["name"].removesuffix("-lws")
    (problem,) = run(POLICIES["lws-headless-service-free"], "prod", res)
    assert "headless Service" in problem[0]
