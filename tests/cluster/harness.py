"""Bringing a stack up and down on the local cluster with the real engine (the cluster tier's support)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import engine  # noqa: E402
import local_cluster  # noqa: E402

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


def deploy(tmp_path_factory, cluster, name: str, text: str, spare_nodes: int = 0) -> Deployed:
    project = engine.Project.copy(tmp_path_factory.mktemp(name), name, text)
    rendered = cluster.prepare(name, project.directory, spare_nodes)
    project.select()
    deployed = Deployed(project, rendered)
    deployed.preview_result = project.preview()
    deployed.up_result = project.up()
    return deployed


def teardown(deployed: Deployed, cluster) -> None:
    deployed.project.destroy(check=False)
    deployed.project.remove()
    cluster.release_gpu_nodes(deployed.project.stack)
