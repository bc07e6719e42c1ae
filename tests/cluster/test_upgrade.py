"""Upgrading a running stack from the previous release of this project: `up` with the old tree and its
stack file, then the new tree's `preview` with this one's stack file replaces nothing that holds state (no
PersistentVolumeClaim, no Namespace), and its `up` succeeds on the objects the old one left."""

from __future__ import annotations

import subprocess

import engine
import local_cluster
import pytest
from harness import ROOT

#: The previous release: the newest commit of main before this tree's changes to resource shapes that can
#: run offline here (its stacks take charts from a directory). Move it forward at each release.
UPGRADE_FROM = "003d22151a00f6492e690b5a02061561ee3be5fe"
#: Kinds whose replacement or deletion loses state (weights, everything in a namespace).
STATEFUL = ("kubernetes:core/v1:PersistentVolumeClaim", "kubernetes:core/v1:Namespace")


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory):
    tree = tmp_path_factory.mktemp("old") / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), UPGRADE_FROM],
        check=True,
        capture_output=True,
    )
    # The venv's llmstack_k8s is this checkout's components/: the old program must import the old ones.
    lib = tree.parent / "lib"
    lib.mkdir()
    (lib / "llmstack_k8s").symlink_to(tree / "components")
    yield tree, lib
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_upgrading_from_the_previous_release_replaces_nothing_that_holds_state(stack, old_tree, tmp_path, cluster):
    tree, lib = old_tree
    name = f"{stack}-upgrade"
    env = engine.environment(backend=engine.STATE / f"state-{local_cluster.NAME}")
    # Each release with its own stack file: where this one renamed a key, the old file is refused with the
    # replacement named, and its owner writes the new one before the first preview.
    old = engine.Project.copy(
        tmp_path / "old", name, local_cluster.stack_file(stack, root=tree), env={**env, "PYTHONPATH": str(lib)}
    )
    for entry in ("__main__.py", "components", "stacks"):
        (old.directory / entry).unlink()
        (old.directory / entry).symlink_to(tree / entry)
    cluster.prepare(name, old.directory)
    old.select()
    old.up()
    new = engine.Project.copy(tmp_path / "new", name, local_cluster.stack_file(stack), env=env)
    try:
        changes = new.changes()
        # The old tree really ran: its Helm releases created their own namespaces, the new tree adopts them.
        assert ("create", "kubernetes:core/v1:Namespace", "autoscaling-keda-ns") in changes, changes
        lost = [
            c
            for c in changes
            if c[1] in STATEFUL and c[0] in ("replace", "create-replacement", "delete", "delete-replaced")
        ]
        assert not lost, f"upgrading {stack} would replace or delete state: {lost}"
        assert not [c for c in changes if "replace" in c[0]], f"replacements: {changes}"
        new.up()
    finally:
        new.destroy(check=False)
        new.remove()
        cluster.release_gpu_nodes(name)
