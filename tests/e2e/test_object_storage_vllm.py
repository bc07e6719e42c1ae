"""End to end: a model whose weights are in S3, served by the real CPU vLLM exactly as the stack
renders it (``--model s3://...``, ``--load-format runai_streamer``, the streamer's env and keys).

A local S3 (moto's server, pinned in scripts/setup-vllm-cpu.sh, listening on 127.0.0.1) holds the
tiny random model; the stack file points ``objectStorage.endpoint`` at it and gives the keys as
secrets, so the rendered ``AWS_ENDPOINT_URL``, ``AWS_REGION`` and path-style addressing are used as
they are. Substituted, as in test_real_vllm.py: the interpreter, ``--host``/``--port``, ``--dtype
auto`` -> float32, ``--enforce-eager``, HOME (a temp dir), the Secret-held values (API key and the
two S3 keys, whose values the test itself put in the stack config), ``VLLM_CPU_KVCACHE_SPACE``.
``--model`` is NOT substituted: config and tokenizer come from the bucket, the weights are streamed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import smoke  # noqa: E402
from test_real_vllm import HOST, TEST_API_KEY, VLLM_PYTHON, _missing, flag_value, free_port, set_flag  # noqa: E402

from conftest import render_with  # noqa: E402

pytestmark = pytest.mark.e2e

BUCKET, PREFIX = "llm-weights", "tiny-llama/0e9e39f"
SERVED = "tiny/llama"
KEYS = {"objectStorageAccessKeyId": "AKIAIOSFODNN7EXAMPLE", "objectStorageSecretAccessKey": "e2e-secret-access-key"}
SECRET_VALUES = {
    "AWS_ACCESS_KEY_ID": KEYS["objectStorageAccessKeyId"],
    "AWS_SECRET_ACCESS_KEY": KEYS["objectStorageSecretAccessKey"],
    "VLLM_API_KEY": TEST_API_KEY,
}

UPLOAD = """
import os, sys, boto3
root, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id="x", aws_secret_access_key="y")
s3.create_bucket(Bucket=bucket)
for name in sorted(os.listdir(root)):
    s3.upload_file(os.path.join(root, name), bucket, f"{prefix}/{name}")
print(sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]))
"""


def _wait_http(url: str, seconds: float, proc: subprocess.Popen) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if proc.poll() is not None:
            return False
        try:
            if smoke.http("GET", url, timeout=2)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    if not VLLM_PYTHON.exists():
        _missing(f"no vLLM venv at {VLLM_PYTHON.parent.parent}")
    probe = subprocess.run(
        [str(VLLM_PYTHON), "-c", "import moto.server, runai_model_streamer_s3"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        _missing(f"moto[server] / runai-model-streamer-s3 missing from the vLLM venv ({probe.stderr.strip()[-200:]})")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen(
        [str(VLLM_PYTHON), "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert _wait_http(f"http://{HOST}:{port}/moto-api/", 30, proc), "moto's S3 server did not start"
        yield f"http://{HOST}:{port}"
    finally:
        smoke.stop(proc)
        log.close()


@pytest.fixture(scope="module")
def bucket_with_tiny_model(s3_endpoint, tmp_path_factory):
    model = tmp_path_factory.mktemp("tiny-model-s3")
    p = subprocess.run(
        [str(VLLM_PYTHON), str(HERE / "tiny_model.py"), str(model), "--max-positions", "2048"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    up = subprocess.run(
        [str(VLLM_PYTHON), "-c", UPLOAD, str(model), BUCKET, PREFIX],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ENDPOINT": s3_endpoint},
    )
    assert up.returncode == 0, up.stderr[-3000:]
    assert f"{PREFIX}/config.json" in up.stdout and ".safetensors" in up.stdout, up.stdout
    return s3_endpoint


def rendered_container(endpoint: str) -> dict:
    stack = {
        "models": [
            {
                "name": "tiny",
                "model": f"s3://{BUCKET}/{PREFIX}/",
                "servedModelName": SERVED,
                "weightsGiB": 1,
                "maxModelLen": 512,
                "resources": {"cpu": "2", "memory": "8Gi"},
            }
        ],
        "objectStorage": {"endpoint": endpoint, "region": "us-east-1", "concurrency": 4},
        **KEYS,
    }
    r = render_with(stack, secret_keys=tuple(KEYS))
    (d,) = r.of_kind("Deployment")
    (c,) = d["spec"]["template"]["spec"]["containers"]
    return c


def test_a_model_in_s3_is_streamed_by_the_rendered_server_and_answers(bucket_with_tiny_model, tmp_path):
    c = rendered_container(bucket_with_tiny_model)
    args = [str(a) for a in c["args"]]
    assert (
        flag_value(args, "--model") == f"s3://{BUCKET}/{PREFIX}/"
        and flag_value(args, "--load-format") == "runai_streamer"
    )
    port = free_port()
    args = set_flag(set_flag(args, "--host", HOST), "--port", str(port))
    args = [*set_flag(args, "--dtype", "float32"), "--enforce-eager"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VLLM_CPU_KVCACHE_SPACE": "1"}
    for e in c["env"]:
        env[e["name"]] = (
            str(e["value"])
            if "value" in e
            else SECRET_VALUES[e["valueFrom"]["secretKeyRef"]["key"].replace("api-key", "VLLM_API_KEY")]
        )
    assert env["AWS_ENDPOINT_URL"] == bucket_with_tiny_model and env["HF_HUB_OFFLINE"] == "1"
    home = tmp_path / "home"
    home.mkdir()
    env["HOME"] = str(home)
    log = tmp_path / "server.log"
    t0 = time.monotonic()
    with open(log, "w") as logf:
        proc = subprocess.Popen(
            [str(VLLM_PYTHON), *[str(x) for x in c["command"][1:]], *args],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
        try:
            ok = _wait_http(f"http://{HOST}:{port}/health", 240, proc)
            assert ok, f"vLLM did not become healthy (exit {proc.poll()}); log tail:\n{smoke.tail(str(log), 60)}"
            ready = round(time.monotonic() - t0, 1)
            status, body = smoke.http(
                "POST",
                f"http://{HOST}:{port}/v1/completions",
                key=TEST_API_KEY,
                timeout=120,
                body={"model": SERVED, "prompt": "hello", "max_tokens": 4},
            )
            assert status == 200, body
            assert json.loads(body)["choices"][0]["text"] is not None
            text = log.read_text()
            # The weights came through the streamer from the bucket, and config/tokenizer were pulled from it.
            assert "runai" in text.lower() or "Run:ai" in text, smoke.tail(str(log), 40)
            pulled = list((home / ".cache" / "vllm" / "assets" / "model_streamer").glob("*/config.json"))
            assert pulled, "config.json was not pulled from the bucket into $HOME/.cache/vllm/assets/model_streamer"
            print(f"object-storage e2e: ready in {ready} s")
        finally:
            smoke.stop(proc)
