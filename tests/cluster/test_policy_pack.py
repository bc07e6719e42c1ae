"""The policy pack as the real CLI runs it: `pulumi preview --policy-pack policy` passes on both stacks and
stops a program that breaks a policy, with the policy's own message."""

from __future__ import annotations

import local_cluster
import pytest
from harness import ROOT, project

POLICY = str(ROOT / "policy")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_pack_passes_on_the_shipped_stacks(stack, tmp_path_factory, cluster):
    proj = project(tmp_path_factory, f"{stack}-policy", local_cluster.stack_file(stack))
    cluster.prepare(proj.stack, proj.directory)
    proj.select()
    result = proj.preview("--policy-pack", POLICY)
    assert "llmstack" in result.stdout and "mandatory" not in result.stdout.lower(), result.stdout[-3000:]


def test_the_pack_stops_a_program_that_breaks_a_policy(tmp_path_factory, cluster):
    program = ROOT / "tests" / "cluster" / "programs" / "unpinned-image"
    proj = project(tmp_path_factory, "violation", "config: {}\n")
    for name in ("__main__.py", "Pulumi.yaml"):
        (proj.directory / name).unlink()
        (proj.directory / name).write_text((program / name).read_text())
    proj.select()
    result = proj.preview("--policy-pack", POLICY, check=False)
    assert result.returncode != 0
    assert "images-pinned" in result.stdout and "latest" in result.stdout, result.stdout[-3000:]
