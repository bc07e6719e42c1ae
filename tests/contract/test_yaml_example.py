"""examples/yaml/Pulumi.yaml, the Pulumi YAML program in the repository, uses only what the
package schema declares, and builds through the provider host the way the engine would run it."""

import json
import re

import jsonschema
import pulumi
import yaml

from conftest import ROOT
from contract.test_wire_construct import _wire_inputs
from llmstack_k8s._core.provider_host import LlmstackProvider
from llmstack_k8s._core.testing import RecordingMocks, Rendered

EXAMPLE = ROOT / "examples" / "yaml" / "Pulumi.yaml"
REF = re.compile(r"^\$\{([A-Za-z0-9_-]+)(?:\.([A-Za-z0-9_]+))?\}$")


def program() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def schema() -> dict:
    return json.loads(LlmstackProvider().schema)


def test_is_a_yaml_project_that_names_the_plugin_folder():
    doc = program()
    jsonschema.validate(doc, json.loads((ROOT / "tests" / "fixtures" / "pulumi" / "project.schema.json").read_text()))
    assert doc["runtime"] == "yaml"
    plugin = (EXAMPLE.parent / doc["packages"]["llmstack"]).resolve()
    assert plugin == ROOT / "provider" and (plugin / "PulumiPlugin.yaml").exists()


def _check(value, spec: dict, sch: dict, where: str, resources: dict, errors: list) -> None:
    """``value`` as written in YAML against a schema property spec."""
    if isinstance(value, str) and REF.match(value):
        name, prop = REF.match(value).groups()
        if name not in resources:
            errors.append(f"{where}: {value} names no resource")
        elif prop:
            outputs = sch["resources"][resources[name]["type"]]["properties"]
            if prop not in outputs:
                errors.append(f"{where}: {resources[name]['type']} has no output {prop}")
        return
    ref = spec.get("$ref", "")
    if ref.startswith("#/types/"):
        t = sch["types"][ref.removeprefix("#/types/")]
        if "enum" in t:
            if value not in [e["value"] for e in t["enum"]]:
                errors.append(f"{where}: {value!r} is not one of {[e['value'] for e in t['enum']]}")
            return
        _check_object(value, t.get("properties") or {}, t.get("required") or [], sch, where, resources, errors)
        return
    kind = spec.get("type")
    ok = {
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }.get(kind, True)
    if not ok:
        errors.append(f"{where}: {value!r} is not {kind}")
    elif kind == "array":
        for i, v in enumerate(value):
            _check(v, spec["items"], sch, f"{where}[{i}]", resources, errors)
    elif kind == "object" and "additionalProperties" in spec:
        for k, v in value.items():
            _check(v, spec["additionalProperties"], sch, f"{where}.{k}", resources, errors)


def _check_object(value, props: dict, required: list, sch: dict, where: str, resources: dict, errors: list) -> None:
    if not isinstance(value, dict):
        errors.append(f"{where}: expected an object")
        return
    for key in required:
        if key not in value:
            errors.append(f"{where}: required {key} missing")
    for key, v in value.items():
        if key not in props:
            errors.append(f"{where}: unknown property {key}")
        else:
            _check(v, props[key], sch, f"{where}.{key}", resources, errors)


def test_every_type_property_and_reference_exists_in_the_schema():
    doc, sch = program(), schema()
    resources = doc["resources"]
    errors: list[str] = []
    for name, res in resources.items():
        if res["type"] not in sch["resources"]:
            errors.append(f"{name}: unknown type {res['type']}")
            continue
        spec = sch["resources"][res["type"]]
        _check_object(
            res.get("properties", {}),
            spec["inputProperties"],
            spec.get("requiredInputs", []),
            sch,
            name,
            resources,
            errors,
        )
        for dep in res.get("options", {}).get("dependsOn", []):
            _check(dep, {}, sch, f"{name}.options.dependsOn", resources, errors)
    for key, value in doc.get("outputs", {}).items():
        _check(value, {}, sch, f"outputs.{key}", resources, errors)
    assert not errors, "\n".join(errors)


def test_the_checker_catches_a_typo_and_a_wrong_type():
    doc, sch = program(), schema()
    doc["resources"]["qwen"]["properties"]["engine"]["maxModelLenn"] = 8192
    doc["resources"]["qwen"]["properties"]["replicas"] = "two"
    errors: list[str] = []
    spec = sch["resources"]["llmstack:index:VllmService"]
    _check_object(
        doc["resources"]["qwen"]["properties"],
        spec["inputProperties"],
        spec["requiredInputs"],
        sch,
        "qwen",
        doc["resources"],
        errors,
    )
    assert errors == ["qwen.engine: unknown property maxModelLenn", "qwen.replicas: 'two' is not integer"]


def test_the_program_builds_through_the_provider_host():
    """Each resource constructed in order, as the engine would: literals go over the wire
    (numbers as doubles), ``${res.output}`` arrives as that component's output."""
    doc = program()
    provider = LlmstackProvider()
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="yaml", stack="test", preview=True)
    outputs: dict = {}

    @pulumi.runtime.test
    def run():
        states: dict[str, dict] = {}
        for name, res in doc["resources"].items():
            props = res.get("properties", {})
            literal = {k: v for k, v in props.items() if not (isinstance(v, str) and REF.match(v))}
            inputs = _wire_inputs(literal)
            for k, v in props.items():
                if isinstance(v, str) and REF.match(v):
                    ref, prop = REF.match(v).groups()
                    inputs[k] = states[ref][prop]
            result = provider.construct(name, res["type"], inputs, pulumi.ResourceOptions())
            states[name] = result.state
        for key, value in doc["outputs"].items():
            ref, prop = REF.match(value).groups()
            outputs[key] = states[ref][prop]
        return pulumi.Output.all(*outputs.values())

    run()
    rendered = Rendered("yaml", mocks.registrations)
    kinds = {o["kind"] for o in rendered.objects}
    assert {"PersistentVolumeClaim", "Job", "Deployment", "Service", "NetworkPolicy"} <= kinds
    (deploy,) = rendered.of_kind("Deployment")
    assert deploy["spec"]["replicas"] == 2
    (container,) = [c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"]
    args = container["args"]
    assert args[args.index("--max-model-len") + 1] == "8192"
    assert args[args.index("--dtype") + 1] == "bfloat16"
    # The server reads the weights from the claim the cache created.
    (pvc,) = rendered.of_kind("PersistentVolumeClaim")
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in deploy["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == [pvc["metadata"]["name"]]
    assert set(outputs) == {"endpoint", "servedModelName", "apiKey"}
