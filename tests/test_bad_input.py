"""Realistic mistakes in a stack file: each ends in one clear message naming the stack file
and the key, before any resource is registered (nothing half-deployed)."""

import copy
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, assert_refused, render_with

from stacks.loader import StackConfigError

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
    "typo in a model key": (with_model(tensorParalelSize=2), "models[0] (name: llama-8b).tensorParalelSize: unknown key"),
    "GPU count does not match tensor x pipeline parallel": (
        with_model(gpus=2, tensorParallelSize=4),
        "gpus is 2 but tensorParallelSize x pipelineParallelSize is 4 x 1 = 4",
    ),
    "negative replicas": (with_model(replicas=-1), "models[0] (name: llama-8b).replicas: Input should be greater than or equal to 1"),
    "gated model without a token": (with_model(gated=True), "model 'llama-8b' is gated but huggingfaceToken is not set"),
    "decimal size unit": (with_model(cache={"size": "40G"}), "cache.size: '40G' is not a size in binary units; write e.g. 40Gi or 512Mi (did you mean 40Gi?)"),
    "unpinned revision": (with_model(revision="main"), "revision 'main' is a moving branch"),
    "no cache size": (with_model(cache=None), "models[0] (name: llama-8b).cache: required key is missing"),
    "name that is not a DNS label": (with_model(name="Llama_8B"), "models[0] (name: Llama_8B).name: String should match pattern"),
    "duplicate model names": ({"models": [GOOD_MODEL, GOOD_MODEL]}, "two models are named 'llama-8b'"),
    "extraArgs fighting a managed flag": (
        with_model(extraArgs=["--tensor-parallel-size=2"]),
        "extraArgs sets --tensor-parallel-size, which the stack renders from its own key",
    ),
    "GPU memory utilisation above 1": (with_model(gpuMemoryUtilization=1.5), "gpuMemoryUtilization: Input should be less than or equal to 0.98"),
    "ReadWriteOnce cache with several replicas": (
        with_model(replicas=3, cache={"size": "40Gi", "accessMode": "ReadWriteOnce"}),
        "cache.accessMode ReadWriteOnce cannot serve several replicas",
    ),
    "no models": ({"namespace": "llm"}, "llmstack:models: required key is missing"),
    "CPU written as a word": (with_model(resources={"cpu": "four"}), "resources.cpu: 'four' is not a CPU quantity"),
    "a secret in plain extraEnv": (with_model(extraEnv={"HF_TOKEN": "hf_abc"}), "extraEnv sets HF_TOKEN: secrets come from Pulumi secrets"),
    "image on latest": (with_model(image="vllm/vllm-openai:latest"), "image 'vllm/vllm-openai:latest' is not pinned"),
    "bad quantization": (with_model(quantization="int3"), "quantization: Input should be 'awq', 'gptq'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_message_and_registers_nothing(case):
    assert_refused(*CASES[case])


def test_token_in_plain_text_is_refused():
    cfg = {**with_model(gated=True), "huggingfaceToken": "hf_plaintext"}
    with pytest.raises(StackConfigError, match=r"Pulumi.test.yaml: llmstack:huggingfaceToken is plain text; it must be a secret"):
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
        [sys.executable, "-m", "stacks.render", "--project-dir", str(tmp_path), "broken", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "Pulumi.broken.yaml: llmstack:models[0] (name: llama-8b).cache.size" in proc.stderr
    assert "revision 'main' is a moving branch" in proc.stderr
    assert not (tmp_path / "out").exists()
