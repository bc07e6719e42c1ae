"""A cluster of the user's (``LLMSTACK_KUBECONFIG``): the harness starts nothing but kwok for simulated GPU
nodes there, creates only what the cluster lacks, changes nothing that is there, and takes its nodes and
kwok back on ``down`` while the cluster keeps running.

The user's cluster here is a second local control plane without a kwok controller (so no node of it is
simulated until the harness adds its own), reached through a kubeconfig whose current context is a
decoy: the harness must use ``LLMSTACK_KUBE_CONTEXT``, not whatever the file points at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import engine
import local_cluster
import pytest
import yaml

USER_CLUSTER = f"{local_cluster.NAME}-user"
USER_CONTEXT = f"kwok-{USER_CLUSTER}"
#: A Gateway API CRD the user's cluster already has: the harness must leave it as it is.
THEIRS = "gateways.gateway.networking.k8s.io"

_PREVIEW = """
import json, sys
from pathlib import Path
sys.path.insert(0, "scripts")
import engine, local_cluster
local_cluster.provide(["dev"])
project = engine.Project.copy(Path(sys.argv[1]), "dev", local_cluster.stack_file("dev"),
                              env=engine.environment(backend=Path(sys.argv[2])))
project.select()
print(json.dumps({"changes": project.changes(), "context": local_cluster.CONTEXT}))
"""


def _kwokctl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KWOK_WORKDIR": str(local_cluster.WORKDIR)}
    return subprocess.run(
        [str(local_cluster.BIN / "kwokctl"), f"--name={USER_CLUSTER}", *args], env=env, capture_output=True, text=True
    )


def _user_kubectl(kubeconfig, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(local_cluster.BIN / "kubectl"), f"--kubeconfig={kubeconfig}", f"--context={USER_CONTEXT}", *args],
        input=stdin,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def user_cluster(cluster, tmp_path_factory):
    """A running cluster that is not the harness's, with one CRD of its own; its kubeconfig's current
    context is a decoy that answers nothing."""
    directory = tmp_path_factory.mktemp("user-cluster")
    config, kubeconfig = directory / "kwokctl.yaml", directory / "kubeconfig"
    config.write_text(local_cluster._config())
    _kwokctl("delete", "cluster")
    made = _kwokctl(
        "create",
        "cluster",
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        "--disable=kwok-controller",
        "--wait=120s",
    )
    assert made.returncode == 0, made.stderr
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["clusters"].append({"name": "decoy", "cluster": {"server": "https://127.0.0.1:9"}})
    doc["contexts"].append({"name": "decoy", "context": {"cluster": "decoy", "user": doc["users"][0]["name"]}})
    doc["current-context"] = "decoy"
    kubeconfig.write_text(yaml.safe_dump(doc))
    crd = next(
        yaml.safe_load(p.read_text())
        for p in local_cluster.CRDS.glob("*.yaml")
        if yaml.safe_load(p.read_text())["metadata"]["name"] == THEIRS
    )
    crd["metadata"].setdefault("annotations", {})["owner"] = "the-user"
    created = _user_kubectl(kubeconfig, "create", "-f", "-", stdin=yaml.safe_dump(crd))
    assert created.returncode == 0, created.stderr
    yield kubeconfig
    _harness(kubeconfig, "down")  # a test that failed before its own `down` leaves no kwok process behind
    _kwokctl("delete", "cluster")


def _harness(kubeconfig, *args: str, script: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LLMSTACK_KUBECONFIG": str(kubeconfig),
        "LLMSTACK_KUBE_CONTEXT": USER_CONTEXT,
        "LLMSTACK_CLUSTER": f"{local_cluster.NAME}-ext",
    }
    command = (
        [sys.executable, "-c", script, *args]
        if script
        else [sys.executable, str(local_cluster.ROOT / "scripts" / "local_cluster.py"), *args]
    )
    return subprocess.run(command, cwd=local_cluster.ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_the_harness_uses_a_users_cluster_through_its_context_and_gives_it_back(user_cluster, tmp_path):
    # `up` then `preview`: the stack's GPU nodes are simulated on the user's cluster, and the real engine
    # reaches that cluster through the named context (the file's current one answers nothing).
    result = _harness(user_cluster, str(tmp_path / "project"), str(tmp_path / "state"), script=_PREVIEW)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["context"] == USER_CONTEXT
    assert {op for op, _, _ in report["changes"]} == {"create"}, report["changes"][:20]  # none of it was there
    assert any(t == "kubernetes:core/v1:Namespace" for _, t, _ in report["changes"])

    nodes = json.loads(_user_kubectl(user_cluster, "get", "nodes", "-o", "json").stdout)["items"]
    gpu = [n for n in nodes if n["metadata"]["labels"].get(local_cluster.GPU_NODE_LABEL) == "dev"]
    assert gpu and len(gpu) == len(nodes), "only the stack's simulated GPU nodes are added (no CPU nodes)"
    for node in gpu:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready.get("Ready") == "True", node["metadata"]["name"]  # kwok, started by the harness, plays them

    theirs = json.loads(_user_kubectl(user_cluster, "get", "crd", THEIRS, "-o", "json").stdout)
    assert theirs["metadata"]["annotations"].get("owner") == "the-user"
    assert local_cluster.PROVIDED_LABEL not in theirs["metadata"].get("labels", {})
    stages = json.loads(_user_kubectl(user_cluster, "get", "stages.kwok.x-k8s.io", "-o", "json").stdout)["items"]
    assert not [s for s in stages if s["metadata"]["name"].startswith("simulated-")], (
        "a user's operators are real: none is simulated"
    )

    kwok = int((engine.STATE / f"kwok-{local_cluster.NAME}-ext.pid").read_text())
    down = _harness(user_cluster, "down")
    assert down.returncode == 0, down.stderr
    assert _user_kubectl(user_cluster, "get", "--raw=/readyz").returncode == 0, "the user's cluster keeps running"
    left = json.loads(_user_kubectl(user_cluster, "get", "nodes", "-o", "json").stdout)["items"]
    assert left == []
    assert json.loads(_user_kubectl(user_cluster, "get", "stages.kwok.x-k8s.io", "-o", "json").stdout)["items"] == []
    stat = Path(f"/proc/{kwok}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", "the harness's kwok stopped"
