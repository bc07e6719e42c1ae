"""The cluster tier: the real Pulumi engine against the local control plane (scripts/local_cluster.py).

Every test here is marked ``cluster``. They need the toolchain (``make toolchain``); without it they are
skipped, except under ``LLMSTACK_REQUIRE_CLUSTER=1`` (``make test`` sets it), where a missing toolchain fails.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A package (tests/cluster/__init__.py), so this conftest does not take the place of tests/conftest.py as
# the module ``conftest``; its modules import each other (and scripts/) by plain name.
sys.path[:0] = [str(ROOT / "scripts"), str(Path(__file__).parent)]
# The suite's own cluster and state, never a running demo's.
os.environ.setdefault("LLMSTACK_CLUSTER", "llmstack-test")

import engine  # noqa: E402
import local_cluster  # noqa: E402

#: The suite's Pulumi state: one backend per cluster name, wiped when the suite starts its cluster.
TEST_STATE = engine.STATE / f"state-{local_cluster.NAME}"


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster():
    """The running local control plane with its CPU nodes (started once per session, then reused)."""
    if not engine.available() or not (local_cluster.BIN / "kwokctl").exists():
        message = "the real-engine toolchain is not built (make toolchain)"
        if os.environ.get("LLMSTACK_REQUIRE_CLUSTER"):
            pytest.fail(message)
        pytest.skip(message)
    local_cluster.provide([], fresh=True)
    engine.reset_backend(TEST_STATE)
    yield local_cluster
    local_cluster.stop()
