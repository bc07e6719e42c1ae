"""Pulumi.yaml is a valid project file for the Python runtime with a virtualenv, and its typed
config block agrees with the stack files and the config model."""

import json

import jsonschema
import yaml

from conftest import ROOT
from stacks.config import StackConfig
from stacks.config.loader import SECRET_KEYS

FIXTURE = ROOT / "tests" / "fixtures" / "pulumi" / "project.schema.json"


def project() -> dict:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def test_project_file_matches_pulumis_schema():
    jsonschema.validate(project(), json.loads(FIXTURE.read_text()))


def test_runtime_is_python_with_the_venv_the_readme_uses():
    runtime = project()["runtime"]
    assert runtime["name"] == "python"
    assert runtime["options"]["virtualenv"] == ".venv" and runtime["options"]["toolchain"] == "pip"


def test_typed_config_keys_exist_in_the_model_and_secrets_are_declared_secret():
    aliases = {f.alias for f in StackConfig.model_fields.values()}
    for key, decl in project()["config"].items():
        assert key in aliases, f"Pulumi.yaml declares {key}, which the config model does not know"
        assert decl.get("secret", False) == (key in SECRET_KEYS), key


def test_schema_fixture_rejects_an_object_typed_key():
    """The reason structured keys are not typed in Pulumi.yaml: Pulumi has no object type."""
    bad = {**project(), "config": {"models": {"type": "object"}}}
    try:
        jsonschema.validate(bad, json.loads(FIXTURE.read_text()))
    except jsonschema.ValidationError:
        return
    raise AssertionError("an object-typed config key was accepted")
