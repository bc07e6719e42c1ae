"""Another language uses the components through the real engine: a TypeScript program
(tests/cluster/programs/typescript-consumer) gets them with `pulumi package add <repository>/provider`,
compiles against the generated SDK, and `pulumi up` builds a ModelCache and a VllmService on the local
cluster through the package's Python provider host; `pulumi destroy` removes them.

The package comes from a copy of the working tree's library (``pyproject.toml``, ``components/``,
``provider/``), so the provider's venv is created afresh from the code under test, never a stale
``provider/venv``. ``PIP_CONSTRAINT`` pins the Pulumi SDKs in that venv to the toolchain's versions: the
engine here installs only those plugins and downloads none (online, the engine would fetch whichever
plugin version the SDK asks for).

First run: npm and pip download from their registries (a minute or two); later runs hit their caches.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import engine
import local_cluster
import observe
import pytest
import yaml
from harness import ROOT

import llmstack_k8s
from llmstack_k8s import versions

#: The suite's backend (the one tests/cluster/conftest.py resets when it starts the cluster).
TEST_STATE = engine.STATE / f"state-{local_cluster.NAME}"

PROGRAM = ROOT / "tests" / "cluster" / "programs" / "typescript-consumer"
STACK = "ts-consumer"
#: The program names the node-selector label; its value is the stack's name (the label of the GPU nodes
#: this test creates, so ``release_gpu_nodes`` removes them).
GPU_LABEL = local_cluster.GPU_NODE_LABEL
GPU_NODES = 1
#: A plain value in the stack file on purpose: the schema marks ``hfToken`` secret, so neither the SDK
#: nor the engine may write it into the state.
HF_TOKEN = "hf_plainTokenFromTheTypeScriptStackFile"
NAMESPACE = f"llm-{STACK}"
#: What the program asks for (index.ts), as the cluster must show it.
MAX_MODEL_LEN = 4096
TIMEOUT = 1200  # first runs download npm and pip packages on 2 busy cores


def stack_file() -> str:
    config = {
        "typescript-consumer:gpuNodeLabel": GPU_LABEL,
        "typescript-consumer:hfToken": HF_TOKEN,
        # Every child must use the provider the program passes to the components.
        "pulumi:disable-default-providers": ["kubernetes"],
    }
    return yaml.safe_dump({"config": config}, sort_keys=False)


def library_copy(target: Path) -> Path:
    """What `pulumi package add` needs of this repository: the plugin folder and the library it installs."""
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, target / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "venv", ".venv")
    for name in ("components", "provider"):
        shutil.copytree(ROOT / name, target / name, ignore=skip)
    return target / "provider"


def gpu_nodes() -> list[dict]:
    return [
        local_cluster._node(
            f"{STACK}-gpu-{n}",
            {GPU_LABEL: STACK},
            {**local_cluster.GPU_NODE, "nvidia.com/gpu": "1"},
            [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        )
        for n in range(GPU_NODES)
    ]


class Consumer:
    def __init__(self, project: engine.Project, provider_dir: Path):
        self.project = project
        self.provider_dir = provider_dir
        self.timings: dict[str, float] = {}

    @property
    def directory(self) -> Path:
        return self.project.directory

    def sh(self, what: str, *cmd: str) -> subprocess.CompletedProcess:
        started = time.monotonic()
        result = subprocess.run(
            cmd, cwd=self.directory, env=self.project.env, capture_output=True, text=True, timeout=TIMEOUT
        )
        self.timings[what] = time.monotonic() - started
        assert result.returncode == 0, (
            f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        return result

    def pulumi(self, what: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        started = time.monotonic()
        try:
            return self.project.run(*args, check=check, timeout=TIMEOUT)
        finally:
            self.timings[what] = time.monotonic() - started


@pytest.fixture(scope="module")
def consumer(tmp_path_factory, cluster):
    if not shutil.which("npm") or not (engine.BIN / "pulumi-language-nodejs").exists():
        message = "needs npm and the toolchain's pulumi-language-nodejs"
        if os.environ.get("LLMSTACK_REQUIRE_CLUSTER"):
            pytest.fail(message)
        pytest.skip(message)
    base = tmp_path_factory.mktemp("typescript-consumer")
    provider_dir = library_copy(base / "llmstack")
    program = base / "program"
    shutil.copytree(PROGRAM, program, ignore=shutil.ignore_patterns("node_modules", "sdks", "bin"))
    (program / f"Pulumi.{STACK}.yaml").write_text(stack_file())
    constraints = base / "constraints.txt"
    constraints.write_text(
        f"pulumi=={versions.PULUMI_VERSION}\npulumi-kubernetes=={versions.PULUMI_KUBERNETES_VERSION}\n"
        f"pulumi-random=={versions.PULUMI_RANDOM_VERSION}\n"
    )
    env = engine.environment(backend=TEST_STATE)
    env.update(
        {
            "PIP_CONSTRAINT": str(constraints),
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
            "npm_config_audit": "false",
        }
    )
    made = Consumer(engine.Project(program, STACK, env=env), provider_dir)
    made.sh("npm install", "npm", "install")
    made.pulumi("package add", "package", "add", str(provider_dir))
    try:
        local_cluster.apply(gpu_nodes())
        local_cluster.kubectl("wait", "--for=condition=Ready", "--timeout=60s", "node", "-l", f"{GPU_LABEL}={STACK}")
        made.project.select()
        yield made
    finally:
        made.project.destroy(check=False)
        made.project.remove()
        local_cluster.release_gpu_nodes(STACK)
        print("\ntypescript consumer timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in made.timings.items()))


@pytest.fixture(scope="module")
def deployed(consumer):
    consumer.sh("tsc", "npx", "--no-install", "tsc", "--noEmit", "-p", ".")
    consumer.preview_result = consumer.pulumi("preview", "preview", "--stack", STACK, "--diff")
    consumer.pulumi("up", "up", "--stack", STACK, "--yes", "--skip-preview")
    return consumer


def one(kind: str, name: str) -> dict:
    found = [o for o in observe.get(kind, NAMESPACE) if o["metadata"]["name"] == name]
    assert found, f"no {kind} {NAMESPACE}/{name} in the cluster"
    return found[0]


def test_package_add_generates_and_links_the_typescript_sdk(consumer):
    project_file = yaml.safe_load((consumer.directory / "Pulumi.yaml").read_text())
    assert Path(project_file["packages"]["llmstack"]) == consumer.provider_dir
    manifest = json.loads((consumer.directory / "package.json").read_text())
    assert manifest["dependencies"]["@pulumi/llmstack"] == "file:sdks/llmstack"
    modules = consumer.directory / "node_modules" / "@pulumi"
    sdk = json.loads((modules / "llmstack" / "package.json").read_text())
    assert sdk["pulumi"] == {"resource": True, "name": "llmstack", "version": llmstack_k8s.__version__}
    assert (modules / "llmstack" / "bin" / "index.js").exists(), "the generated SDK was not compiled"
    # The program's pins are the toolchain's versions (components/versions.py), installed as pinned.
    pinned = {"@pulumi/pulumi": versions.PULUMI_VERSION, "@pulumi/kubernetes": versions.PULUMI_KUBERNETES_VERSION}
    for name, version in pinned.items():
        assert manifest["dependencies"][name] == version, (name, manifest["dependencies"][name])
        assert json.loads((modules / name.split("/")[1] / "package.json").read_text())["version"] == version


def test_the_program_type_checks_against_the_generated_sdk(deployed):
    assert deployed.timings["tsc"] > 0  # `tsc --noEmit` exited 0 (asserted where it ran)


def test_up_builds_the_components_children_with_the_programs_provider(deployed):
    resources = deployed.project.resources()
    by_urn = {r["urn"]: r for r in resources}
    components = {r["urn"].split("::")[-1]: r for r in resources if r["type"].startswith("llmstack:index:")}
    assert sorted((c["type"], name) for name, c in components.items()) == [
        ("llmstack:index:GpuNodePool", "gpu"),
        ("llmstack:index:ModelCache", "qwen-cache"),
        ("llmstack:index:VllmService", "qwen"),
    ]
    children = [r for r in resources if r.get("parent") in {c["urn"] for c in components.values()}]
    kinds = sorted(r["type"] for r in children)
    for kind in (
        "kubernetes:apps/v1:Deployment",
        "kubernetes:core/v1:Service",
        "kubernetes:core/v1:PersistentVolumeClaim",
        "kubernetes:batch/v1:Job",
        "kubernetes:core/v1:Secret",
        "random:index/randomPassword:RandomPassword",
    ):
        assert kind in kinds, (kind, kinds)
    for child in children:
        if child["type"].startswith("kubernetes:"):
            provider_urn = child["provider"].rsplit("::", 1)[0]
            assert by_urn[provider_urn]["type"] == "pulumi:providers:kubernetes"
            assert provider_urn.endswith("::cluster"), (child["urn"], child["provider"])


def test_the_cluster_runs_the_server_on_a_gpu_node_after_the_download(deployed):
    claim = one("persistentvolumeclaims", "qwen-cache-weights")
    assert claim["status"].get("phase") == "Bound", claim["status"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    job = one("Job.v1.batch", "qwen-cache-download")
    complete = [c for c in job["status"].get("conditions", []) if c["type"] == "Complete"]
    assert complete and complete[0]["status"] == "True", job["status"]
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (2, 1800)
    deployment = one("Deployment.v1.apps", "qwen")
    status = deployment["status"]
    assert status.get("readyReplicas") == status.get("replicas") == deployment["spec"]["replicas"] == 1, status
    # The server was created only once its weights were there (dependsOn across the language boundary).
    assert deployment["metadata"]["creationTimestamp"] >= job["status"]["completionTime"]
    one("services", "qwen")
    deadline = time.monotonic() + 60
    while observe.ready_endpoints(NAMESPACE, "qwen") < 1:
        assert time.monotonic() < deadline, "Service qwen has no ready endpoint"
        time.sleep(1)
    nodes = observe.nodes()
    servers = [
        p for p in observe.pods({NAMESPACE}) if p["metadata"]["labels"].get("app.kubernetes.io/instance") == "qwen"
    ]
    assert servers and all(p["status"].get("phase") == "Running" for p in servers), [p["status"] for p in servers]
    for pod in servers:
        node = nodes[pod["spec"]["nodeName"]]
        assert node["metadata"]["labels"].get(GPU_LABEL) == STACK, pod["spec"]["nodeName"]
        assert "nvidia.com/gpu" in node["status"]["allocatable"]
        assert observe.gpu_resource(pod) == "nvidia.com/gpu"


def test_the_pools_contract_placed_the_server_from_its_outputs(deployed):
    # gpuResourceName, nodeSelector and tolerations came from the GpuNodePool as Outputs (the resource name
    # is a key of the container's resources: an Output there once broke the component, see test_wire_construct).
    spec = one("Deployment.v1.apps", "qwen")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {GPU_LABEL: STACK}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_numbers_and_enums_from_typescript_arrive_as_the_components_types(deployed):
    # Every number travels as a double and enums as strings: the server's flags show what the host made of them.
    args = one("Deployment.v1.apps", "qwen")["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = dict(zip(args[::2], args[1::2], strict=False))
    assert flags["--max-model-len"] == str(MAX_MODEL_LEN), args
    assert flags["--tensor-parallel-size"] == "1" and flags["--dtype"] == "bfloat16", args
    assert flags["--gpu-memory-utilization"] == "0.85", args


def test_outputs_reach_the_program_and_name_what_exists(deployed):
    outputs = deployed.project.outputs()
    assert outputs["namespace"] == NAMESPACE
    assert outputs["gpuResourceName"] == "nvidia.com/gpu"
    assert outputs["endpoint"] == f"http://qwen.{NAMESPACE}.svc.cluster.local:8000/v1"
    assert (outputs["claimName"], outputs["jobName"], outputs["deploymentName"], outputs["serviceName"]) == (
        "qwen-cache-weights",
        "qwen-cache-download",
        "qwen",
        "qwen",
    )
    assert outputs["modelPath"].endswith("/Qwen--Qwen2.5-0.5B-Instruct/7ae557604adf67be50417f59c2c2f167def9a775")
    assert outputs["apiKey"] == "[secret]", "the API key output is not a secret"
    secret = one("secrets", outputs["apiKeySecretName"])
    in_cluster = base64.b64decode(next(iter(secret["data"].values()))).decode()
    assert deployed.project.outputs(show_secrets=True)["apiKey"] == in_cluster
    # An Output inside a list input (the clients' namespace, derived from the Namespace's name).
    policy = one("NetworkPolicy.v1.networking.k8s.io", "qwen")
    peers = policy["spec"]["ingress"][0]["from"]
    values = [e["values"] for p in peers for e in (p.get("namespaceSelector") or {}).get("matchExpressions", [])]
    assert values == [[f"{NAMESPACE}-apps", "monitoring"]], peers


def test_credentials_stay_out_of_the_state(deployed):
    state = deployed.project.run("stack", "export", "--stack", STACK).stdout
    token = one("secrets", "qwen-cache-hf-token")
    assert base64.b64decode(token["data"]["token"]).decode() == HF_TOKEN
    api_key = deployed.project.outputs(show_secrets=True)["apiKey"]
    assert HF_TOKEN not in state, "the HF token (plain text in the stack file) is in the state"
    assert api_key not in state


def test_a_second_preview_shows_no_changes(deployed):
    deployed.pulumi("second preview", "preview", "--stack", STACK, "--expect-no-changes")


def test_a_refused_argument_names_the_property_and_changes_nothing(deployed):
    stack_path = deployed.directory / f"Pulumi.{STACK}.yaml"
    before_text = stack_path.read_text()
    before = {
        o["metadata"]["uid"]: o["metadata"]["resourceVersion"] for o in observe.get("Deployment.v1.apps", NAMESPACE)
    }
    count = len(deployed.project.resources())
    doc = yaml.safe_load(before_text)
    doc["config"]["typescript-consumer:maxModelLen"] = "4096.5"  # a fraction where vLLM takes an integer
    stack_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        result = deployed.project.up(check=False)
    finally:
        stack_path.write_text(before_text)
    assert result.returncode != 0
    assert "engine.maxModelLen" in result.stdout and "expected an integer" in result.stdout, result.stdout[-3000:]
    after = {
        o["metadata"]["uid"]: o["metadata"]["resourceVersion"] for o in observe.get("Deployment.v1.apps", NAMESPACE)
    }
    assert after == before
    assert len(deployed.project.resources()) == count


def test_destroy_removes_everything(deployed):
    deployed.pulumi("destroy", "destroy", "--stack", STACK, "--yes", "--skip-preview")
    assert deployed.project.resources() == []
    deadline = time.monotonic() + 120
    while True:
        left = [
            f"{kind} {o['metadata']['name']}"
            for kind in ("Deployment.v1.apps", "services", "persistentvolumeclaims", "Job.v1.batch", "secrets", "pods")
            for o in observe.get(kind, NAMESPACE)
        ]
        namespaces = {n["metadata"]["name"] for n in observe.get("namespaces")}
        volumes = [
            v["metadata"]["name"]
            for v in observe.get("persistentvolumes")
            if (v["spec"].get("claimRef") or {}).get("namespace") == NAMESPACE
        ]
        if not left and NAMESPACE not in namespaces and not volumes:
            break
        assert time.monotonic() < deadline, (
            f"left after destroy: {left}, namespace: {NAMESPACE in namespaces}, {volumes}"
        )
        time.sleep(2)
