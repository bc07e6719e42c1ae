"""GpuNodePool: device plugin / GPU operator, GPU sharing modes, taints, classes, Karpenter,
the scheduling contract the serving pods carry, and the preview-time fit checks."""

import copy

import jsonschema
import pulumi
import pytest
import yaml

from conftest import assert_refused, render_with, rendered_stack
from llmstack_k8s import versions
from llmstack_k8s._core.testing import RELEASE_TYPE, RecordingMocks, to_manifest
from llmstack_k8s.cluster import gpu_node_pool as gp
from llmstack_k8s.cluster.gpu_node_pool import GpuNodePool
from stacks.config.loader import StackConfigError
from support.schemas import chart_defaults, unknown_values_keys, validate_object


@pytest.fixture
def mocks():
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="llmstack", stack="unit", preview=True)
    return m


def make_pool(args: dict) -> GpuNodePool:
    holder = {}

    @pulumi.runtime.test
    def run():
        holder["pool"] = GpuNodePool("gpu", args)
        return holder["pool"].gpu_resource_name

    run()
    return holder["pool"]


def objects(mocks, kind=None):
    out = [
        to_manifest(r)
        for r in mocks.registrations
        if r.custom and r.type.startswith("kubernetes:") and r.type != RELEASE_TYPE
    ]
    return [o for o in out if kind is None or o["kind"] == kind]


def releases(mocks):
    return [r.inputs for r in mocks.registrations if r.type == RELEASE_TYPE]


def plugin_values(mocks) -> dict:
    (release,) = releases(mocks)
    assert (release["chart"], release["version"]) == (
        versions.NVIDIA_DEVICE_PLUGIN.chart,
        versions.NVIDIA_DEVICE_PLUGIN.version,
    )
    assert release["repositoryOpts"]["repo"] == "https://nvidia.github.io/k8s-device-plugin"
    # Every value the pool sets exists in the pinned chart's values.yaml.
    bad = unknown_values_keys(release["values"], chart_defaults(release["chart"], release["version"]))
    assert not bad, bad
    return release["values"]


def sharing_config(values: dict) -> dict:
    """The device plugin config file the chart mounts (config.map.<default>)."""
    assert values["config"]["default"] in values["config"]["map"]
    return yaml.safe_load(values["config"]["map"][values["config"]["default"]])


# --- the component, one sharing mode at a time ------------------------------------------------


def test_whole_gpus_by_default(mocks):
    pool = make_pool({})
    values = plugin_values(mocks)
    assert "config" not in values, "whole GPUs need no sharing config"
    assert pool.contract["gpu_resource_name"] == "nvidia.com/gpu"
    assert pool.contract["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    kinds = [o["kind"] for o in objects(mocks)]
    assert kinds == ["Namespace"], (
        "no RuntimeClass, PriorityClass or NodePool unless asked (only the plugin's namespace)"
    )


def test_time_slicing_renames_the_resource_and_refuses_multi_share_requests(mocks):
    pool = make_pool({"sharing": {"strategy": "timeSlicing", "replicas": 4}})
    cfg = sharing_config(plugin_values(mocks))
    ts = cfg["sharing"]["timeSlicing"]
    assert cfg["version"] == "v1"
    assert ts["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    assert ts["renameByDefault"] is True and ts["failRequestsGreaterThanOne"] is True
    assert pool.contract["gpu_resource_name"] == "nvidia.com/gpu.shared"


def test_time_slicing_without_rename_keeps_nvidia_com_gpu(mocks):
    pool = make_pool({"sharing": {"strategy": "timeSlicing", "replicas": 2, "rename_resource": False}})
    cfg = sharing_config(plugin_values(mocks))
    assert cfg["sharing"]["timeSlicing"]["renameByDefault"] is False
    assert pool.contract["gpu_resource_name"] == "nvidia.com/gpu"


def test_mps_config_and_feature_discovery(mocks):
    pool = make_pool({"sharing": {"strategy": "mps", "replicas": 3}, "node_selector": {"pool": "a10g"}})
    values = plugin_values(mocks)
    cfg = sharing_config(values)
    assert cfg["sharing"]["mps"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 3}]
    # The MPS control daemon runs on nodes GFD labels nvidia.com/mps.capable: GFD is forced on,
    # and NFD's worker tolerates the pool's taint.
    assert values["gfd"] == {"enabled": True}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["nfd"]["worker"][
        "tolerations"
    ]
    assert pool.contract["gpu_resource_name"] == "nvidia.com/gpu.shared"


@pytest.mark.parametrize("strategy, resource", [("single", "nvidia.com/gpu"), ("mixed", "nvidia.com/mig-3g.40gb")])
def test_mig_strategies(mocks, strategy, resource):
    pool = make_pool({"sharing": {"strategy": "mig", "mig_strategy": strategy, "mig_profile": "3g.40gb"}})
    cfg = sharing_config(plugin_values(mocks))
    assert cfg["flags"]["migStrategy"] == strategy
    assert "sharing" not in cfg
    assert pool.contract["gpu_resource_name"] == resource


@pytest.mark.parametrize(
    "sharing, message",
    [
        ({"strategy": "timeSlicing"}, "sharing.replicas must be at least 2"),
        ({"strategy": "mps", "replicas": 1}, "sharing.replicas must be at least 2"),
        ({"strategy": "mig", "mig_profile": "big"}, "sharing.migProfile must be a MIG profile"),
        ({"strategy": "none", "replicas": 4}, "sharing.replicas applies to timeSlicing and mps only"),
    ],
)
def test_contradictory_sharing_is_refused(mocks, sharing, message):
    with pytest.raises(ValueError, match=message):
        make_pool({"sharing": sharing})


def test_device_plugin_runs_only_on_the_pool_and_tolerates_its_taints(mocks):
    pool = make_pool(
        {
            "node_selector": {"llmstack/gpu-pool": "l4"},
            "taints": [{"key": "dedicated", "value": "llm", "effect": "NoExecute"}],
        }
    )
    values = plugin_values(mocks)
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "llmstack/gpu-pool", "operator": "In", "values": ["l4"]}]}]
    toleration = {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoExecute"}
    assert toleration in values["tolerations"]
    assert pool.contract["tolerations"] == [toleration]
    assert pool.contract["node_selector"] == {"llmstack/gpu-pool": "l4"}


def test_untainted_nodes_need_no_toleration(mocks):
    pool = make_pool({"taints": []})
    assert pool.contract["tolerations"] == []


def test_runtime_and_priority_classes(mocks):
    pool = make_pool(
        {
            "node_selector": {"pool": "h100"},
            "runtime_class": {"name": "nvidia"},
            "priority_class": {"name": "llm-serving", "value": 500000, "preempt": False},
        }
    )
    (rc,) = objects(mocks, "RuntimeClass")
    (pc,) = objects(mocks, "PriorityClass")
    for obj in (rc, pc):
        validate_object(obj)
    assert rc["handler"] == "nvidia" and rc["scheduling"]["nodeSelector"] == {"pool": "h100"}
    assert pc["value"] == 500000 and pc["preemptionPolicy"] == "Never" and pc["globalDefault"] is False
    assert plugin_values(mocks)["runtimeClassName"] == "nvidia"
    assert set(pool.contract) >= {"runtime_class_name", "priority_class_name"}


def test_existing_classes_are_referenced_not_created(mocks):
    pool = make_pool(
        {
            "install": "existing",
            "runtime_class": {"name": "nvidia", "create": False},
            "priority_class": {"name": "high", "create": False},
        }
    )
    assert not objects(mocks) and not releases(mocks), "install existing creates nothing"
    assert pool.contract["runtime_class_name"] == "nvidia" and pool.contract["priority_class_name"] == "high"


def test_gpu_operator_with_time_slicing(mocks):
    make_pool(
        {"install": "gpuOperator", "install_driver": False, "sharing": {"strategy": "timeSlicing", "replicas": 2}}
    )
    (release,) = releases(mocks)
    assert (release["chart"], release["version"]) == (versions.GPU_OPERATOR.chart, versions.GPU_OPERATOR.version)
    (ns,) = objects(mocks, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    (cm,) = objects(mocks, "ConfigMap")
    for obj in (ns, cm):
        validate_object(obj)
    values = release["values"]
    assert values["devicePlugin"]["config"] == {"name": cm["metadata"]["name"], "default": "default"}
    assert yaml.safe_load(cm["data"]["default"])["sharing"]["timeSlicing"]["resources"][0]["replicas"] == 2
    assert values["driver"] == {"enabled": False} and release["namespace"] == ns["metadata"]["name"]


def test_gpu_operator_refuses_a_second_runtime_class(mocks):
    with pytest.raises(ValueError, match=r"runtime_class.create"):
        make_pool({"install": "gpuOperator", "runtime_class": {"name": "nvidia"}})


def test_karpenter_node_pool_validates_against_its_crd(mocks):
    make_pool(
        {
            "node_selector": {"llmstack/gpu-pool": "h100", "node.kubernetes.io/instance-type": "p5.48xlarge"},
            "taints": [{"key": "nvidia.com/gpu"}],
            "karpenter": {
                "node_class_ref": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                "gpu_limit": 16,
                "requirements": [{"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": ["h100"]}],
                "consolidate_after": "30m",
            },
        }
    )
    (node_pool,) = objects(mocks, "NodePool")
    validate_object(node_pool)
    spec = node_pool["spec"]
    # Our own label goes on the nodes; the well-known one is a requirement Karpenter satisfies.
    assert spec["template"]["metadata"]["labels"] == {"llmstack/gpu-pool": "h100"}
    reqs = {r["key"]: r for r in spec["template"]["spec"]["requirements"]}
    assert reqs["node.kubernetes.io/instance-type"]["values"] == ["p5.48xlarge"]
    assert reqs["karpenter.sh/capacity-type"]["values"] == ["on-demand"]
    assert reqs["karpenter.k8s.aws/instance-gpu-name"]["values"] == ["h100"]
    assert spec["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    assert spec["limits"] == {"nvidia.com/gpu": "16"}
    assert spec["disruption"] == {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "30m",
        "budgets": [{"nodes": "1"}],
    }


def test_crd_validation_is_not_a_rubber_stamp():
    bad = {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "x"},
        "spec": {
            "template": {
                "spec": {"nodeClassRef": {"group": "g", "kind": "k", "name": "n"}, "requirements": [], "taint": []}
            }
        },
    }
    with pytest.raises(jsonschema.ValidationError):
        validate_object(bad)


# --- sizing --------------------------------------------------------------------------------------


def test_weight_estimates():
    assert gp.estimate_weights_gib(8, "bfloat16") == pytest.approx(14.9, abs=0.1)
    assert gp.estimate_weights_gib(8, "auto", "awq") == pytest.approx(5.2, abs=0.1)
    assert gp.estimate_weights_gib(1, "float32") == pytest.approx(2 * gp.estimate_weights_gib(1, "float16"))
    assert gp.mig_profile_memory_gib("3g.40gb") == pytest.approx(37.25, abs=0.01)
    mps = {"strategy": "mps", "replicas": 4}
    assert gp.device_memory_gib(80, mps) == 20
    assert gp.min_gpus_to_fit(132, 79, 0.92) == 4


# --- the stacks ----------------------------------------------------------------------------------


def server_pods(rendered):
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in rendered.of_kind("Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "server"
    }


def test_dev_pods_request_a_time_sliced_share_on_the_pool():
    r = rendered_stack("dev")
    values = next(rel["values"] for rel in r.helm_releases if rel["chart"] == "nvidia-device-plugin")
    assert sharing_config(values)["sharing"]["timeSlicing"]["resources"][0]["replicas"] > 1
    (pc,) = r.of_kind("PriorityClass")
    for name, pod in server_pods(r).items():
        res = pod["containers"][0]["resources"]
        assert res["limits"]["nvidia.com/gpu.shared"] == "1" and "nvidia.com/gpu" not in res["limits"], name
        assert pod["nodeSelector"] == {"llmstack/gpu-pool": "l4-shared"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert pod["priorityClassName"] == pc["metadata"]["name"]


def test_prod_pods_use_whole_gpus_on_karpenter_nodes():
    r = rendered_stack("prod")
    (node_pool,) = r.of_kind("NodePool")
    (rc,) = r.of_kind("RuntimeClass")
    (pc,) = r.of_kind("PriorityClass")
    node_labels = node_pool["spec"]["template"]["metadata"]["labels"]
    taints = node_pool["spec"]["template"]["spec"]["taints"]
    pods = server_pods(r)
    assert len(pods) >= 2
    for name, pod in pods.items():
        # The pods select exactly the labels Karpenter puts on the nodes, and tolerate its taints.
        assert pod["nodeSelector"].items() <= node_labels.items(), name
        for t in taints:
            assert any(tol["key"] == t["key"] and tol["effect"] == t["effect"] for tol in pod["tolerations"]), name
        assert pod["runtimeClassName"] == rc["metadata"]["name"] and pod["priorityClassName"] == pc["metadata"]["name"]
        assert "nvidia.com/gpu" in pod["containers"][0]["resources"]["limits"]


# --- refusals at preview -------------------------------------------------------------------------

MODEL = {
    "name": "llama-8b",
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
    "weightsGiB": 15,
    "cache": {"size": "300Gi"},  # holds every weightsGiB the cases below use
}
L4_SHARED = {
    "gpu": {"product": "NVIDIA-L4", "memoryGiB": 22, "perNode": 1},
    "sharing": {"strategy": "timeSlicing", "replicas": 4},
}
H100 = {"gpu": {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 79, "perNode": 8}}


def stack(pool: dict, **model) -> dict:
    m = copy.deepcopy(MODEL)
    for k, v in model.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return {"gpuPool": pool, "models": [m]}


REFUSALS = {
    "tensor parallelism on a time-sliced pool": (
        stack(L4_SHARED, tensorParallelSize=2, weightsGiB=1, gpuMemoryUtilization=0.2),
        "models[0] (name: llama-8b).tensorParallelSize: tensorParallelSize 2 on a pool with gpuPool.sharing.strategy "
        "timeSlicing",
    ),
    "pipeline parallelism on an MPS pool": (
        stack({"sharing": {"strategy": "mps", "replicas": 2}}, pipelineParallelSize=2),
        "models[0] (name: llama-8b).pipelineParallelSize: pipelineParallelSize 2 on a pool with "
        "gpuPool.sharing.strategy mps",
    ),
    "more GPUs than a node has": (  # multi-node: a replica may span nodes, but tensor parallelism stays within one
        stack({"gpu": {"product": "NVIDIA-A10G", "memoryGiB": 22, "perNode": 4}}, tensorParallelSize=8),
        "models[0] (name: llama-8b).tensorParallelSize: tensorParallelSize 8 is above gpuPool.gpu.perNode 4 "
        "(NVIDIA-A10G)",
    ),
    "time-sliced pods that together claim more than the GPU": (
        stack(L4_SHARED, weightsGiB=1, gpuMemoryUtilization=0.85),
        "models[0] (name: llama-8b).gpuMemoryUtilization: 0.85 on GPUs time-sliced 4 ways",
    ),
    "70B weights on two H100s": (
        stack(
            H100,
            model="meta-llama/Llama-3.1-70B-Instruct",
            weightsGiB=132,
            tensorParallelSize=2,
            gpuMemoryUtilization=0.92,
        ),
        "models[0] (name: llama-8b).weightsGiB: does not fit: weightsGiB 132 / 2 GPU(s) = 66.0 GiB per GPU",
    ),
    "8B bf16 estimated from the catalog on a time-sliced L4 share": (
        stack(L4_SHARED, weightsGiB=None, dtype="bfloat16", gpuMemoryUtilization=0.2),
        "models[0] (name: llama-8b).weightsGiB: does not fit: meta-llama/Llama-3.1-8B-Instruct (8.03B parameters per "
        "its config.json) ~ 15.0 GiB",
    ),
    "a model larger than an MPS share": (
        stack(
            {
                "gpu": {"product": "NVIDIA-A100-80GB", "memoryGiB": 79, "perNode": 8},
                "sharing": {"strategy": "mps", "replicas": 4},
            },
            weightsGiB=17,
        ),
        "per mps share",
    ),
    "a restricted Karpenter label": (
        stack(
            {
                **H100,
                "nodeSelector": {"pool": "h100"},
                "karpenter": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                    "gpuLimit": 16,
                    "requirements": [{"key": "karpenter.sh/nodepool", "operator": "In", "values": ["x"]}],
                },
            }
        ),
        "llmstack:gpuPool.karpenter: requirements[0].key 'karpenter.sh/nodepool' is restricted by Karpenter",
    ),
    "a typo in the pool": (
        stack({"sharing": {"strategy": "timeslicing", "replicas": 4}}),
        "llmstack:gpuPool.sharing.strategy",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_at_preview_with_the_model_and_key(case):
    assert_refused(*REFUSALS[case])


def test_the_fit_hint_names_a_gpu_count_that_fits():
    cfg, _ = REFUSALS["70B weights on two H100s"]
    with pytest.raises(StackConfigError, match="Fix: use tensorParallelSize 4"):
        render_with(cfg)


@pytest.mark.parametrize(
    "pool, model",
    [
        (H100, {"weightsGiB": 132, "tensorParallelSize": 4, "gpuMemoryUtilization": 0.92}),
        (L4_SHARED, {"weightsGiB": 1, "gpuMemoryUtilization": 0.22}),
        # 4-bit 8B on a whole L4, estimated from the catalog's parameter count.
        ({"gpu": {"product": "NVIDIA-L4", "memoryGiB": 22, "perNode": 1}}, {"weightsGiB": None, "quantization": "awq"}),
        (
            {
                "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 79, "perNode": 8},
                "sharing": {"strategy": "mig", "migStrategy": "mixed", "migProfile": "3g.40gb"},
            },
            {"weightsGiB": 15},
        ),
    ],
)
def test_models_that_fit_render(pool, model):
    r = render_with(stack(pool, **model))
    assert server_pods(r)
