"""Both stacks render offline and every object validates against the real schemas."""

import jsonschema
import pytest

from stacks.tools.render import main as render_main
from support.schemas import chart_defaults, is_core, unknown_values_keys, validate_object


def test_every_object_validates(rendered):
    assert rendered.objects, "nothing rendered"
    for obj in rendered.objects:
        name = f"{obj['kind']}/{obj['metadata'].get('name')}"
        try:
            validate_object(obj)
        except Exception as err:
            pytest.fail(f"{rendered.stack}: {name} does not validate: {err}")


def test_names_are_unique_per_kind_and_namespace(rendered):
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in rendered.objects]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_helm_values_keys_exist_in_pinned_charts(rendered):
    for release in rendered.helm_releases:
        if not release.get("values"):
            continue  # installed with the chart's defaults: no key to check (and maybe no values fixture)
        defaults = chart_defaults(release["chart"], release["version"])
        bad = unknown_values_keys(release.get("values") or {}, defaults)
        assert not bad, f"{release['chart']}: values keys not in the chart's values.yaml: {bad}"


def test_no_unpinned_images(rendered):
    for obj in rendered.objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec") or obj.get("spec", {}).get("jobTemplate", {})
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_strict_validation_catches_a_typo():
    """The validator is not a rubber stamp: an unknown field fails."""
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"selectr": {"a": "b"}}}
    assert is_core(bad)
    with pytest.raises(jsonschema.ValidationError):
        validate_object(bad)


def test_render_command_writes_yaml(tmp_path, capsys):
    assert render_main(["dev", str(tmp_path)]) == 0
    manifests = (tmp_path / "dev" / "manifests.yaml").read_text()
    assert "kind: Deployment" in manifests and "<redacted>" in manifests
    assert "rendered-secret-placeholder" not in manifests
    assert "Kubernetes objects" in capsys.readouterr().out


def test_render_is_byte_for_byte_stable(tmp_path):
    """Reviewers diff rendered YAML in PRs: the same config must give the same bytes, from
    separate processes (different hash seeds, fresh wire-format maps)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    for run, seed in (("a", "1"), ("b", "2")):
        subprocess.run(
            [sys.executable, "-m", "stacks.tools.render", "prod", str(tmp_path / run)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=120,
        )
    for name in ("manifests.yaml", "helm-releases.yaml"):
        assert (tmp_path / "a" / "prod" / name).read_bytes() == (tmp_path / "b" / "prod" / name).read_bytes()
