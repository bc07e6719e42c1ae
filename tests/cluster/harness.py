"""Bringing a stack up and down on the local cluster with the real engine (the cluster tier's support)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import engine  # noqa: E402
import local_cluster  # noqa: E402
import observe  # noqa: E402


def stack_text(stack: str, edit=None) -> str:
    return local_cluster.stack_file(stack, edit)


class Deployed:
    """A stack brought up by the real engine on the local cluster, with its offline render beside it."""

    def __init__(self, project: engine.Project, rendered: dict):
        self.project = project
        self.rendered = rendered
        self.up_result = None

    @property
    def objects(self) -> list[dict]:
        return self.rendered["objects"]


def project(tmp_path_factory, name: str, text: str) -> engine.Project:
    """A project of this program with one stack file, its state in the suite's own backend."""
    directory = tmp_path_factory.mktemp(name)
    env = engine.environment(backend=engine.STATE / f"state-{local_cluster.NAME}")
    return engine.Project.copy(directory, name, text, env=env)


def deploy(tmp_path_factory, cluster, name: str, text: str, spare_nodes: int = 0) -> Deployed:
    """preview, then up; a failure destroys what was created before it is raised (nothing half-deployed
    is left for the next test)."""
    proj = project(tmp_path_factory, name, text)
    rendered = cluster.prepare(name, proj.directory, spare_nodes)
    proj.select()
    deployed = Deployed(proj, rendered)
    deployed.crds_before = {c["metadata"]["name"] for c in observe.get("customresourcedefinitions")}
    try:
        deployed.preview_result = proj.preview()
        deployed.up_result = proj.up()
    except Exception:
        teardown(deployed, cluster)
        raise
    return deployed


def teardown(deployed: Deployed, cluster) -> None:
    deployed.project.destroy(check=False)
    deployed.project.remove()
    cluster.release_gpu_nodes(deployed.project.stack)
