"""Unit tests of ModelCache, VllmService and the shared pod builder, under Pulumi mocks."""

import itertools
import math

import pulumi
import pytest

from llmstack_k8s._core.testing import RecordingMocks, to_manifest
from llmstack_k8s.serving import vllm_pod
from llmstack_k8s.serving.model_cache import ModelCache, model_dir
from llmstack_k8s.serving.vllm_service import VllmService


@pytest.fixture
def mocks():
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="llmstack", stack="unit", preview=True)
    return m


def objects(mocks, kind=None):
    out = [to_manifest(r) for r in mocks.registrations if r.custom and r.type.startswith("kubernetes:")]
    return [o for o in out if kind is None or o["kind"] == kind]


ENGINE = {"served_model_name": "llama", "tensor_parallel_size": 4, "pipeline_parallel_size": 2, "max_model_len": 4096}


def make_service(**overrides):
    args = {
        "namespace": "llm",
        "engine": ENGINE,
        "model_path": "/models/org--m/abc",
        "cache_claim_name": "m-weights",
        "startup_budget_seconds": 905,
        **overrides,
    }
    return VllmService("m", args)


def test_model_cache_pvc_and_job(mocks):
    @pulumi.runtime.test
    def run():
        c = ModelCache(
            "m",
            {
                "namespace": "llm",
                "model": "org/name",
                "revision": "abc123",
                "size": "20Gi",
                "access_mode": "ReadWriteOnce",
                "storage_class_name": "fast",
            },
        )
        return pulumi.Output.all(c.claim_name, c.model_path)

    run()
    (pvc,) = objects(mocks, "PersistentVolumeClaim")
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "fast",
    }
    (job,) = objects(mocks, "Job")
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MODEL_REVISION"] == "abc123" and env["MODEL_DIR"] == model_dir("org/name", "abc123")
    assert "HF_TOKEN" not in env, "no token Secret for a public model"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert job["spec"]["backoffLimit"] == 4 and job["spec"]["activeDeadlineSeconds"] == 3600
    assert not objects(mocks, "Secret")
    # The component itself is registered under the package's type token, children under it.
    assert any(r.type == "llmstack:index:ModelCache" for r in mocks.registrations)


def test_model_cache_token_comes_from_a_secret(mocks):
    @pulumi.runtime.test
    def run():
        return ModelCache(
            "m", {"namespace": "llm", "model": "org/name", "revision": "abc", "size": "1Gi", "hf_token": "hf_x"}
        ).job_name

    run()
    (secret,) = objects(mocks, "Secret")
    (job,) = objects(mocks, "Job")
    token_env = next(e for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "HF_TOKEN")
    assert token_env["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert "hf_x" not in str(job), "the token must never be in the Job spec"


def test_model_dir_is_per_repo_and_revision():
    assert model_dir("meta-llama/Llama-3.1-8B-Instruct", "0e9e") == "/models/meta-llama--Llama-3.1-8B-Instruct/0e9e"
    assert model_dir("a/b", "r1") != model_dir("a/b", "r2")


def test_vllm_service_children_and_wiring(mocks):
    @pulumi.runtime.test
    def run():
        s = make_service(replicas=2, network={"client_namespaces": ["apps"], "monitoring_namespaces": ["monitoring"]})
        return pulumi.Output.all(s.endpoint, s.served_model_name)

    run()
    kinds = sorted(o["kind"] for o in objects(mocks))
    assert kinds == ["Deployment", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Service"]
    assert any(r.type == "random:index/randomPassword:RandomPassword" for r in mocks.registrations), "API key generated"
    (dep,) = objects(mocks, "Deployment")
    (svc,) = objects(mocks, "Service")
    (pdb,) = objects(mocks, "PodDisruptionBudget")
    (netpol,) = objects(mocks, "NetworkPolicy")
    (secret,) = objects(mocks, "Secret")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    for selector in (
        svc["spec"]["selector"],
        pdb["spec"]["selector"]["matchLabels"],
        netpol["spec"]["podSelector"]["matchLabels"],
        dep["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    container = dep["spec"]["template"]["spec"]["containers"][0]
    key_env = next(e for e in container["env"] if e["name"] == "VLLM_API_KEY")
    assert key_env["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    allowed = netpol["spec"]["ingress"][0]["from"][1]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert allowed == ["apps", "monitoring"]
    assert netpol["spec"]["ingress"][0]["ports"] == [{"port": 8000, "protocol": "TCP"}]


def test_gpu_count_is_tensor_times_pipeline_parallel(mocks):
    @pulumi.runtime.test
    def run():
        return make_service(
            scheduling={"gpu_resource_name": "nvidia.com/gpu.shared", "node_selector": {"gpu": "h100"}}
        ).endpoint

    run()
    (dep,) = objects(mocks, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    res = pod["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu.shared"] == "8" and res["requests"]["nvidia.com/gpu.shared"] == "8"
    assert pod["nodeSelector"] == {"gpu": "h100"}
    assert "tolerations" not in pod, "the contract decides tolerations; none given, none set"


def test_startup_probe_covers_the_budget_and_no_initial_delay():
    p = vllm_pod.probes(905)
    startup = p["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 905
    for probe in p.values():
        assert "initialDelaySeconds" not in probe
        assert probe["httpGet"]["path"] == vllm_pod.HEALTH_PATH
    assert p["livenessProbe"]["periodSeconds"] * p["livenessProbe"]["failureThreshold"] <= 120


def test_startup_budget_derivation():
    assert vllm_pod.startup_budget_seconds(None) == vllm_pod.STARTUP_UNKNOWN_SIZE_SECONDS
    assert vllm_pod.startup_budget_seconds(132) == 300 + 1320
    assert vllm_pod.startup_budget_seconds(132, override=600) == 600


def test_args_render_the_engine_config():
    args = vllm_pod.vllm_args(
        {**ENGINE, "quantization": "awq", "enable_prefix_caching": False, "extra_args": ["--seed", "1"]}, "/models/x"
    )
    pairs = dict(itertools.pairwise(args))
    assert pairs["--model"] == "/models/x" and pairs["--served-model-name"] == "llama"
    assert pairs["--tensor-parallel-size"] == "4" and pairs["--pipeline-parallel-size"] == "2"
    assert pairs["--max-model-len"] == "4096" and pairs["--quantization"] == "awq"
    assert "--no-enable-prefix-caching" in args and args[-2:] == ["--seed", "1"]


def test_shm_grows_with_parallelism():
    assert vllm_pod.default_shm_size({"served_model_name": "x"}) == "2Gi"
    assert vllm_pod.default_shm_size(ENGINE) == "32Gi"


def test_pod_is_non_root_and_serves_offline():
    spec = vllm_pod.vllm_pod_spec(
        {"engine": ENGINE, "model_path": "/models/m", "claim_name": "c", "api_key_secret_name": "k"}
    )
    c = spec["containers"][0]
    assert c["securityContext"]["runAsNonRoot"] and not c["securityContext"]["allowPrivilegeEscalation"]
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HF_HUB_OFFLINE"] == "1"
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert spec["initContainers"][0]["name"] == "wait-for-weights"
    assert any(m["mountPath"] == "/models" and m["readOnly"] for m in c["volumeMounts"])
    assert spec["terminationGracePeriodSeconds"] >= 60
    assert math.isclose(float(dict(itertools.pairwise(c["args"]))["--gpu-memory-utilization"]), 0.9)
