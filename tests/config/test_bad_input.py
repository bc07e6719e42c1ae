"""Realistic mistakes in a stack file: each ends in one clear message naming the stack file
and the key, before any resource is registered (nothing half-deployed)."""

import copy
import shutil
import subprocess
import sys
from typing import ClassVar

import pytest

from conftest import ROOT, assert_refused, render_with
from stacks.config.loader import StackConfigError

GOOD_MODEL = {
    "name": "llama-8b",
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
    "weightsGiB": 15,
    "cache": {"size": "40Gi"},
}


def config(**model_overrides):
    model = copy.deepcopy(GOOD_MODEL)
    for key, value in model_overrides.items():
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value
    return {"models": [model]}


def with_model(**kw):
    return config(**kw)


CASES = {
    "typo in a top-level key": ({"modles": [GOOD_MODEL]}, "llmstack:modles: unknown key"),
    "typo in a model key": (
        with_model(tensorParalelSize=2),
        "models[0] (name: llama-8b).tensorParalelSize: unknown key; did you mean tensorParallelSize?",
    ),
    "GPU count beside tensor x pipeline parallel": (
        with_model(gpus=2, tensorParallelSize=4),
        "models[0] (name: llama-8b).gpus: removed key: GPUs per replica are tensorParallelSize x pipelineParallelSize",
    ),
    "negative replicas": (
        with_model(replicas=-1),
        "models[0] (name: llama-8b).replicas: -1 is below the least allowed, 1",
    ),
    "gated model without a token": (
        with_model(gated=True),
        "llmstack:models[0] (name: llama-8b).gated: model 'llama-8b' is gated but huggingfaceToken is not set",
    ),
    "decimal size unit": (
        with_model(cache={"size": "40G"}),
        "cache.size: '40G' is not a size in binary units; write e.g. 40Gi or 512Mi (did you mean 40Gi?)",
    ),
    "unpinned revision": (with_model(revision="main"), "revision 'main' is a moving branch"),
    "no cache size": (with_model(cache=None), "models[0] (name: llama-8b).cache: required key is missing"),
    "name that is not a DNS label": (
        with_model(name="Llama_8B"),
        "models[0] (name: Llama_8B).name: 'Llama_8B' must be a DNS label: lowercase letters",
    ),
    "duplicate model names": ({"models": [GOOD_MODEL, GOOD_MODEL]}, "two models are named 'llama-8b'"),
    "extraArgs fighting a managed flag": (
        with_model(extraArgs=["--tensor-parallel-size=2"]),
        "extraArgs sets --tensor-parallel-size, which the stack renders from its own key",
    ),
    "GPU memory utilisation above 1": (
        with_model(gpuMemoryUtilization=1.5),
        "gpuMemoryUtilization: 1.5 is above 0.98: it is a fraction from 0 to 0.98",
    ),
    "ReadWriteOnce cache with several replicas": (
        with_model(replicas=3, cache={"size": "40Gi", "accessMode": "ReadWriteOnce"}),
        "cache.accessMode ReadWriteOnce cannot serve several replicas",
    ),
    "no models": ({"namespace": "llm"}, "llmstack:models: required key is missing"),
    "CPU written as a word": (with_model(resources={"cpu": "four"}), "resources.cpu: 'four' is not a CPU quantity"),
    "a secret in plain extraEnv": (
        with_model(extraEnv={"HF_TOKEN": "hf_abc"}),
        "extraEnv.HF_TOKEN: HF_TOKEN looks like a credential",
    ),
    "image on latest": (
        with_model(image="vllm/vllm-openai:latest"),
        "image: image 'vllm/vllm-openai:latest' is not pinned",
    ),
    "bad quantization": (with_model(quantization="int3"), "models[0] (name: llama-8b).quantization: Input should be"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_message_and_registers_nothing(case):
    assert_refused(*CASES[case])


def test_token_in_plain_text_is_refused():
    cfg = {**with_model(gated=True), "huggingfaceToken": "hf_plaintext"}
    with pytest.raises(
        StackConfigError, match=r"Pulumi.test.yaml: llmstack:huggingfaceToken is plain text; it must be a secret"
    ):
        render_with(cfg)


def test_every_problem_is_reported_at_once():
    cfg = {"modles": [], "namespace": "Bad_NS"}
    with pytest.raises(StackConfigError) as err:
        render_with(cfg)
    message = str(err.value)
    for key in ("llmstack:modles", "llmstack:namespace", "llmstack:models"):
        assert key in message


def test_the_good_base_config_renders():
    """The cases above fail because of their one mistake, not because the base is broken."""
    rendered = render_with(config())
    assert rendered.of_kind("Deployment")


def test_cli_prints_the_message_without_a_traceback(tmp_path):
    for f in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / f, tmp_path / f)
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  llmstack:models:\n    - name: llama-8b\n      model: meta-llama/Llama-3.1-8B-Instruct\n"
        "      revision: main\n      cache: {size: 40G}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "stacks.tools.render", "--project-dir", str(tmp_path), "broken", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "Pulumi.broken.yaml: llmstack:models[0] (name: llama-8b).cache.size" in proc.stderr
    assert "revision 'main' is a moving branch" in proc.stderr
    assert not (tmp_path / "out").exists()


# --- the right cluster, only what the stack owns, and what would fail on the cluster or in vLLM.
# Each case: (config, full key the message names, words of the message). The message is the only
# problem reported, it names Pulumi.test.yaml and the key, and nothing was registered.
SHA = GOOD_MODEL["revision"]
AUTOSCALED = {"autoscaling": {"minReplicas": 1, "maxReplicas": 2}}
M0 = "llmstack:models[0] (name: llama-8b)"


def stack(model=None, **stack_keys):
    """The good base with model keys overridden and stack keys added (``kubernetes:x`` keys pass as they are)."""
    return {**config(**(model or {})), **stack_keys}


def knative_model(**kw):
    return {"serving": "knative", "replicas": None, **kw}


NEW_CASES = {
    # The right cluster: the Kubernetes provider's own keys, other projects' keys.
    "provider namespace key": (
        stack(**{"kubernetes:namespace": "prod"}),
        "kubernetes:namespace",
        "set llmstack:namespace instead",
    ),
    "provider render-to-directory key": (
        stack(**{"kubernetes:renderYamlToDirectory": "out"}),
        "kubernetes:renderYamlToDirectory",
        "python -m stacks.tools.render",
    ),
    "provider key typo": (
        stack(**{"kubernetes:contxt": "prod"}),
        "kubernetes:contxt",
        "did you mean kubernetes:context?",
    ),
    "provider context contradicting the stack's": (
        stack(**{"kubernetes:context": "prod", "kubernetes": {"context": "staging"}}),
        "kubernetes:context",
        "contradicts llmstack:kubernetes.context 'staging'",
    ),
    "provider adopting existing objects": (
        stack(**{"kubernetes:upsertExistingObjects": "true"}),
        "kubernetes:upsertExistingObjects",
        "would adopt objects",
    ),
    "server-side apply switched off": (
        stack(**{"kubernetes:enableServerSideApply": "false"}),
        "kubernetes:enableServerSideApply",
        "server-side apply",
    ),
    "explicit context required but missing": (
        stack(kubernetes={"requireContext": True}),
        "llmstack:kubernetes.requireContext",
        "no context is set",
    ),
    "key under another project prefix": (
        stack(**{"llm-stack:gpuPool": {"sharing": {"strategy": "none"}}}),
        "llm-stack:gpuPool",
        "did you mean llmstack:gpuPool?",
    ),
    "key of a provider the program does not use": (
        stack(**{"aws:region": "us-east-1"}),
        "aws:region",
        "reads only llmstack:* keys",
    ),
    # Namespaces the stack must not own, and collisions between its own.
    "serving in kube-system": (
        stack(namespace="kube-system"),
        "llmstack:namespace",
        "'kube-system' is the cluster's own namespace",
    ),
    "serving in default": (stack(namespace="default"), "llmstack:namespace", "existingNamespace: true"),
    "serving namespace is the monitoring one": (
        stack(namespace="monitoring"),
        "llmstack:namespace",
        "also the namespace of Prometheus and Grafana",
    ),
    "serving namespace is KEDA's": (
        stack(model=AUTOSCALED, namespace="keda"),
        "llmstack:namespace",
        "also the namespace of KEDA",
    ),
    "serving namespace is Knative's": (
        stack(model=knative_model(), namespace="knative-serving"),
        "llmstack:namespace",
        "also the namespace of Knative Serving",
    ),
    "monitoring in kube-system": (
        stack(observability={"namespace": "kube-system"}, network={"monitoringNamespaces": ["kube-system"]}),
        "llmstack:observability.namespace",
        "the cluster's own namespace",
    ),
    "KEDA in kube-public": (
        stack(model=AUTOSCALED, autoscaling={"kedaNamespace": "kube-public"}),
        "llmstack:autoscaling.kedaNamespace",
        "the cluster's own namespace",
    ),
    "GPU operator in the monitoring namespace": (
        stack(gpuPool={"install": "gpuOperator", "namespace": "monitoring"}),
        "llmstack:observability.namespace",
        "also the namespace of the GPU operator",
    ),
    # Keys in the wrong place, secrets the stack handles.
    "model key at stack level": (
        stack(replicas=2),
        "llmstack:replicas",
        "replicas belongs under llmstack:models[N].replicas",
    ),
    "stack key inside a model": (
        stack(model={"huggingfaceToken": "x"}),
        f"{M0}.huggingfaceToken",
        "belongs under llmstack:huggingfaceToken",
    ),
    "Grafana password in the stack file": (
        stack(observability={"grafanaAdminPassword": "hunter2"}),
        "llmstack:observability.grafanaAdminPassword",
        "the stack generates Grafana's admin password",
    ),
    "API key in the stack file": (stack(apiKey="abc"), "llmstack:apiKey", "secret output apiKey"),
    "Hugging Face repository id without org": (
        stack(model={"model": "llama"}),
        f"{M0}.model",
        "must be a Hugging Face repository id, org/name",
    ),
    # Sizes and times that cannot work together.
    "cache smaller than the weights": (
        stack(model={"cache": {"size": "10Gi"}}),
        f"{M0}.cache.size",
        "cannot hold the weights (weightsGiB 15)",
    ),
    "cache smaller than the catalog's weights": (
        stack(model={"weightsGiB": None, "cache": {"size": "10Gi"}}),
        f"{M0}.cache.size",
        "8.03B parameters per its config.json",
    ),
    "download deadline shorter than the download": (
        stack(model={"weightsGiB": 300, "cache": {"size": "700Gi"}}),
        "llmstack:cache.downloadDeadlineSeconds",
        "at cache.downloadMiBps 50 MiB/s",
    ),
    "download deadline at a stated throughput": (
        stack(cache={"downloadMiBps": 2}),
        "llmstack:cache.downloadDeadlineSeconds",
        "at cache.downloadMiBps 2 MiB/s",
    ),
    "startup timeout below the derived minimum": (
        stack(model={"startupTimeoutSeconds": 200}),
        f"{M0}.startupTimeoutSeconds",
        "below the 450 s",
    ),
    "/dev/shm larger than the memory limit": (
        stack(model={"shmSize": "64Gi"}),
        f"{M0}.shmSize",
        "larger than resources.memory 32Gi",
    ),
    "default /dev/shm of 8 GPUs above the memory limit": (
        stack(model={"tensorParallelSize": 8, "resources": {"memory": "16Gi"}}),
        f"{M0}.resources.memory",
        "default 32Gi for 8 GPU(s)",
    ),
    "memory without a unit": (
        stack(model={"resources": {"memory": 32}}),
        f"{M0}.resources.memory",
        "has no unit, so Kubernetes reads it as 32 bytes",
    ),
    "Prometheus volume without a unit": (
        stack(observability={"prometheus": {"storageSize": "100"}}),
        "llmstack:observability.prometheus.storageSize",
        "has no unit",
    ),
    "CPU meant as millicores": (
        stack(model={"resources": {"cpu": 4000}}),
        f"{M0}.resources.cpu",
        "for millicores write 4000m",
    ),
    # Secrets in plain text, env vars the stack manages.
    "API key of another service in extraEnv": (
        stack(model={"extraEnv": {"OPENAI_API_KEY": "x"}}),
        f"{M0}.extraEnv.OPENAI_API_KEY",
        "looks like a credential",
    ),
    "password in extraEnv": (
        stack(model={"extraEnv": {"DB_PASSWORD": "x"}}),
        f"{M0}.extraEnv.DB_PASSWORD",
        "looks like a credential",
    ),
    "Hugging Face token value under a harmless name": (
        stack(model={"extraEnv": {"EXTRA": "hf_" + "a" * 34}}),
        f"{M0}.extraEnv.EXTRA",
        "looks like a Hugging Face token",
    ),
    "sk- secret value": (
        stack(model={"extraEnv": {"UPSTREAM": "sk-" + "b" * 40}}),
        f"{M0}.extraEnv.UPSTREAM",
        "looks like an API secret key",
    ),
    "offline mode overridden": (
        stack(model={"extraEnv": {"HF_HUB_OFFLINE": "0"}}),
        f"{M0}.extraEnv.HF_HUB_OFFLINE",
        "managed by the stack (the server runs offline",
    ),
    "API key env overridden": (
        stack(model={"extraEnv": {"VLLM_API_KEY": "abc"}}),
        f"{M0}.extraEnv.VLLM_API_KEY",
        "managed by the stack",
    ),
    "GPU visibility overridden": (
        stack(model={"extraEnv": {"CUDA_VISIBLE_DEVICES": "0,1"}}),
        f"{M0}.extraEnv.CUDA_VISIBLE_DEVICES",
        "device plugin sets it",
    ),
    "managed env duplicated in another case": (
        stack(model={"extraEnv": {"nvidia_visible_devices": "all"}}),
        f"{M0}.extraEnv.nvidia_visible_devices",
        "duplicates NVIDIA_VISIBLE_DEVICES",
    ),
    # GPU pool.
    "MIG profile the GPU does not have": (
        stack(
            gpuPool={
                "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 79, "perNode": 8},
                "sharing": {"strategy": "mig", "migStrategy": "mixed", "migProfile": "3g.20gb"},
            }
        ),
        "llmstack:gpuPool.sharing.migProfile",
        "'3g.20gb' does not exist on NVIDIA-H100-80GB-HBM3 (H100-80GB); its profiles are 1g.10gb",
    ),
    "MIG on a GPU without MIG": (
        stack(
            gpuPool={
                "gpu": {"product": "NVIDIA-L4", "memoryGiB": 22, "perNode": 1},
                "sharing": {"strategy": "mig", "migProfile": "1g.5gb"},
            }
        ),
        "llmstack:gpuPool.sharing.strategy",
        "NVIDIA-L4 has no MIG",
    ),
    "Karpenter limit below the models' minimum": (
        stack(
            model={"replicas": 3, "tensorParallelSize": 4, "resources": {"memory": "64Gi"}},
            gpuPool={
                "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 79, "perNode": 8},
                "nodeSelector": {"pool": "h100"},
                "karpenter": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                    "gpuLimit": 8,
                },
            },
        ),
        "llmstack:gpuPool.karpenter.gpuLimit",
        "below the 12 GPUs the models need",
    ),
    "image on a nightly tag": (
        stack(model={"image": "vllm/vllm-openai:nightly"}),
        f"{M0}.image",
        "tag 'nightly' moves",
    ),
    "image without a tag": (stack(model={"image": "vllm/vllm-openai"}), f"{M0}.image", "has no tag"),
    "system PriorityClass for serving pods": (
        stack(gpuPool={"priorityClass": {"name": "system-node-critical", "create": False}}),
        "llmstack:gpuPool.priorityClass.name",
        "is a system PriorityClass",
    ),
    # Revisions: only full commit SHAs.
    "revision is a tag": (stack(model={"revision": "v1.0"}), f"{M0}.revision", "branch or tag name"),
    "revision is a pull-request ref": (stack(model={"revision": "refs/pr/3"}), f"{M0}.revision", "pull-request ref"),
    "revision is an abbreviated SHA": (stack(model={"revision": SHA[:12]}), f"{M0}.revision", "abbreviated commit SHA"),
    "revision is a branch ref": (stack(model={"revision": "refs/heads/main"}), f"{M0}.revision", "moving branch"),
    # Autoscaling and monitoring.
    "existing Prometheus without KEDA's URL": (
        stack(
            model=AUTOSCALED,
            observability={"installPrometheusStack": False, "prometheusUrl": "http://prometheus.mon:9090"},
        ),
        "llmstack:autoscaling.prometheusUrl",
        "KEDA would query the stack's own Prometheus",
    ),
    "TTFT autoscaling target in milliseconds": (
        stack(model={"autoscaling": {"metric": "ttftP95", "target": 500, "maxReplicas": 2}}),
        f"{M0}.autoscaling.target",
        "write 0.5",
    ),
    "TTFT SLO in milliseconds": (stack(model={"sloTtftP95Seconds": 1500}), f"{M0}.sloTtftP95Seconds", "write 1.5"),
    "TTFT alert in milliseconds": (
        stack(observability={"alerts": {"ttftP95Seconds": 2000}}),
        "llmstack:observability.alerts.ttftP95Seconds",
        "write 2",
    ),
    "ratio written as a percentage": (
        stack(observability={"alerts": {"kvCacheUsageRatio": 85}}),
        "llmstack:observability.alerts.kvCacheUsageRatio",
        "did you mean 0.85?",
    ),
    # Network allow-lists: exact namespace names.
    "wildcard client namespace": (
        stack(network={"clientNamespaces": ["*"]}),
        "llmstack:network.clientNamespaces[0]",
        "is a pattern",
    ),
    "monitoring namespace not a DNS label": (
        stack(network={"monitoringNamespaces": ["Monitoring"]}),
        "llmstack:network.monitoringNamespaces[0]",
        "is not a namespace name",
    ),
    "wildcard Knative namespace": (
        stack(knative={"namespaces": ["kourier-*"]}),
        "llmstack:knative.namespaces[0]",
        "is a pattern",
    ),
    # Charts from a directory or a mirror (air-gapped clusters; tests/stack/test_chart_source.py has the rest).
    "charts from a directory and a mirror": (
        stack(charts={"directory": "tests/fixtures/charts", "mirror": "https://charts.example.internal"}),
        "llmstack:charts",
        "both directory and mirror are set",
    ),
    "charts directory that does not exist": (
        stack(charts={"directory": "air-gap/charts"}),
        "llmstack:charts.directory",
        "does not exist",
    ),
    "charts directory without a chart the stack installs": (
        stack(gpuPool={"install": "gpuOperator"}, charts={"directory": "tests/fixtures/charts"}),
        "llmstack:charts.directory",
        "has no package of gpu-operator-",
    ),
    "charts mirror that is no repository": (
        stack(charts={"mirror": "registry.example.internal/charts"}),
        "llmstack:charts.mirror",
        "nor an OCI registry prefix",
    ),
}


@pytest.mark.parametrize("case", sorted(NEW_CASES))
def test_refused_with_one_message_naming_file_and_key(case):
    cfg, key, words = NEW_CASES[case]
    message = assert_refused(cfg, f"Pulumi.test.yaml: {key}: ")
    assert words in message, message
    problems = message.split("\n  ")[1:]
    assert len(problems) == 1, f"expected exactly one problem:\n{message}"
    assert "String should match pattern" not in message and "Input should be" not in message


class _ProviderMocks:
    """RecordingMocks that also keep the inputs of the Kubernetes provider the program builds."""

    def __new__(cls):
        from llmstack_k8s._core.testing import RecordingMocks

        class Mocks(RecordingMocks):
            providers: ClassVar[list] = []

            def new_resource(self, args):
                if args.typ == "pulumi:providers:kubernetes":
                    self.providers.append(dict(args.inputs))
                return super().new_resource(args)

        m = Mocks()
        m.providers = []
        return m


def test_provider_keys_of_the_stack_file_reach_the_provider():
    mocks = _ProviderMocks()
    cfg = stack(
        **{
            "kubernetes:context": "prod-admin",
            "kubernetes:kubeconfig": "/etc/kube/prod",
            "kubernetes:deleteUnreachable": "true",
        },
        kubernetes={"requireContext": True},
    )
    render_with(cfg, mocks=mocks)
    (provider,) = mocks.providers
    assert provider["context"] == "prod-admin"
    assert provider["kubeconfig"] == "/etc/kube/prod"
    assert provider["deleteUnreachable"] in (True, "true")


def test_existing_namespace_is_read_never_created():
    rendered = render_with(stack(namespace="default", existingNamespace=True))
    assert not [n for n in rendered.of_kind("Namespace") if n["metadata"]["name"] == "default"]
    assert all(
        d["metadata"]["namespace"] == "default"
        for d in rendered.of_kind("Deployment")
        if d["metadata"]["name"] == "llama-8b"
    )
    reads = [r for r in rendered.registrations if r.type == "kubernetes:core/v1:Namespace" and not r.custom]
    assert [r.name for r in reads] == ["namespace"], "the existing namespace is read (a missing one fails the preview)"


def test_harmless_env_and_stack_namespaces_are_accepted():
    """The secret rules match whole words: TOKENIZERS_PARALLELISM is no token."""
    rendered = render_with(
        stack(
            model={"extraEnv": {"TOKENIZERS_PARALLELISM": "false", "VLLM_LOGGING_LEVEL": "INFO"}},
            network={"clientNamespaces": ["gateway", "apps"]},
        )
    )
    env = {
        e["name"] for d in rendered.of_kind("Deployment") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert {"TOKENIZERS_PARALLELISM", "VLLM_LOGGING_LEVEL"} <= env


def test_at_least_thirty_new_classes_of_bad_input():
    assert len(NEW_CASES) >= 30


# --- keys the stack file no longer has: each refused with what replaces it, before anything is registered.
KNATIVE = {"serving": "knative", "cache": {"size": "40Gi", "accessMode": "ReadWriteMany"}}
REMOVED = {  # removed key (as messages.REMOVED_KEYS names it): (model keys, what the message says replaces it)
    "models[].knative.minScale": (
        {**KNATIVE, "knative": {"minScale": 0}},
        "write autoscaling.minReplicas: 0 in this model instead",
    ),
    "models[].knative.maxScale": (
        {**KNATIVE, "knative": {"maxScale": 2}},
        "write autoscaling.maxReplicas: 2 in this model instead",
    ),
    "models[].knative.targetConcurrency": (
        {**KNATIVE, "knative": {"targetConcurrency": 8}},
        "write autoscaling.target: 8 in this model instead",
    ),
    "models[].knative.scaleDownDelay": (
        {**KNATIVE, "knative": {"scaleDownDelay": "15m"}},
        "write autoscaling.cooldownSeconds: 900 in this model instead",
    ),
    "models[].gpus": ({"gpus": 1}, "GPUs per replica are tensorParallelSize x pipelineParallelSize"),
    "models[].parametersBillions": (
        {"weightsGiB": None, "parametersBillions": 8},
        "write weightsGiB (~14.9 GiB for 8B parameters in 16 bits",
    ),
}


@pytest.mark.parametrize("path", sorted(REMOVED))
def test_a_removed_key_is_refused_naming_what_replaces_it(path):
    model, replacement = REMOVED[path]
    key = path.removeprefix("models[].")
    message = assert_refused(stack(model=model), f"Pulumi.test.yaml: {M0}.{key}: removed key")
    assert replacement in message, message
    assert len(message.split("\n  ")[1:]) == 1, f"expected exactly one problem:\n{message}"


def test_every_removed_key_has_a_case_and_the_same_settings_in_new_keys_render():
    from stacks.config.messages import REMOVED_KEYS

    assert set(REMOVED) == set(REMOVED_KEYS)
    # What each message says to write is accepted (the model above, in the new keys).
    new = stack(
        model={**KNATIVE, "autoscaling": {"minReplicas": 0, "maxReplicas": 2, "target": 8, "cooldownSeconds": 900}}
    )
    assert render_with(new).of_kind("Service")


def test_the_old_knative_scaling_keys_are_refused_together_one_message_each():
    old = {**KNATIVE, "knative": {"minScale": 0, "maxScale": 1, "scaleDownDelay": "15m", "initialScale": 1}}
    message = assert_refused(stack(model=old), "removed key")
    problems = message.split("\n  ")[1:]
    assert len(problems) == 3, message  # initialScale stays a Knative-only knob
    for problem, key in zip(problems, ("minScale", "maxScale", "scaleDownDelay"), strict=True):
        assert problem.startswith(f"Pulumi.test.yaml: {M0}.knative.{key}: removed key; write autoscaling."), message
