"""The plugin that `pulumi package add` runs (provider/) serves a valid package schema over gRPC:
every component, inputs that take Outputs where the annotations say so, credentials secret,
package metadata from pyproject.toml and the version from its one source."""

import re
import sys
import tomllib
import typing
from typing import NotRequired, Required

import pulumi
import pytest
import yaml
from typing_extensions import is_typeddict

import llmstack_k8s
from conftest import ROOT
from llmstack_k8s._core.provider_host import COMPONENTS, SECRETS, LlmstackProvider
from llmstack_k8s._core.validation import PLAIN_BY_DESIGN, type_hints
from support.plugin_host import get_schema, metaschema_validator, plugin, plugin_version

PLUGIN = ROOT / "provider"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[dict, str]:
    # From an empty directory, so nothing of the repository is importable but the installed library.
    with plugin(sys.executable, PLUGIN, cwd=tmp_path_factory.mktemp("cwd")) as stub:
        return get_schema(stub), plugin_version(stub)


def public_components() -> set[str]:
    return {
        n
        for n in llmstack_k8s.__all__
        if isinstance(c := getattr(llmstack_k8s, n), type) and issubclass(c, pulumi.ComponentResource)
    }


def test_plugin_folder_is_what_pulumi_package_add_runs():
    manifest = yaml.safe_load((PLUGIN / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert manifest["runtime"]["options"] == {"toolchain": "pip", "virtualenv": "venv"}
    assert (PLUGIN / "__main__.py").exists()
    # Pulumi runs `pip install -r requirements.txt` in provider/: it installs this repository.
    reqs = [
        line.strip()
        for line in (PLUGIN / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert reqs == [".."]
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"] == "llmstack-k8s"
    assert "provider/venv/" in (ROOT / ".gitignore").read_text().splitlines()


def test_schema_is_valid_against_pulumis_package_metaschema(served):
    schema, _ = served
    errors = sorted(metaschema_validator().iter_errors(schema), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message[:200]}" for e in errors[:10])


def test_metaschema_check_catches_what_the_sdk_alone_emits():
    """Pulumi's generator leaves ``"description": null`` in enum values, which the metaschema
    refuses; the host drops them. Proof that the metaschema check has teeth."""
    from pulumi.provider.experimental.component import ComponentProvider

    raw = __import__("json").loads(ComponentProvider(COMPONENTS, "llmstack", None, "0.0.1").schema)
    assert list(metaschema_validator().iter_errors(raw))


def test_every_component_is_served_under_its_type_token(served):
    schema, _ = served
    assert schema["name"] == "llmstack"
    assert {c.__name__ for c in COMPONENTS} == public_components()
    assert set(schema["resources"]) == {f"llmstack:index:{n}" for n in public_components()}
    assert all(r["isComponent"] for r in schema["resources"].values())


def test_package_metadata_comes_from_pyproject_and_the_version_from_one_source(served):
    schema, version = served
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dynamic"] == ["version"]  # the version is llmstack_k8s.__version__ only
    assert schema["version"] == version == llmstack_k8s.__version__
    assert schema["description"] == project["description"]
    assert schema["keywords"] == project["keywords"]
    assert schema["license"] == project["license"]["text"] == "Apache-2.0"
    # No public home is declared yet; the schema names none rather than a made-up one.
    assert ("repository" in schema) == ("urls" in project)


#: Names that carry a credential (``apiKeySecretName`` names a Secret: not itself a credential).
SECRET_NAME = re.compile(r"(token|password|apiKey)$", re.I)


def _all_properties(schema: dict):
    for token, res in schema["resources"].items():
        for section in ("inputProperties", "properties"):
            for name, prop in res.get(section, {}).items():
                yield f"{token}.{section}.{name}", name, prop
    for token, t in schema["types"].items():
        for name, prop in (t.get("properties") or {}).items():
            yield f"{token}.{name}", name, prop


def test_credentials_are_marked_secret_and_nothing_else(served):
    schema, _ = served
    secret = {where for where, _, prop in _all_properties(schema) if prop.get("secret")}
    named_like_credentials = {where for where, name, _ in _all_properties(schema) if SECRET_NAME.search(name)}
    assert secret == named_like_credentials
    # The declaration matches what the host marks.
    expected = {
        f"llmstack:index:{c}.{'inputProperties' if kind == 'inputs' else 'properties'}."
        f"{re.sub(r'_(.)', lambda m: m.group(1).upper(), n)}"
        for c, kinds in SECRETS.items()
        for kind, names in kinds.items()
        for n in names
    }
    assert secret == expected
    assert "llmstack:index:VllmService.inputProperties.apiKey" in secret
    assert "llmstack:index:ModelCache.inputProperties.hfToken" in secret


def _input_types(schema: dict) -> set[str]:
    """Names of the object types reachable from component inputs (output types are never plain)."""
    found: set[str] = set()

    def refs(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/types/llmstack:index:"):
                name = ref.rsplit(":", 1)[1]
                if name not in found:
                    found.add(name)
                    refs(schema["types"][f"llmstack:index:{name}"].get("properties") or {})
            for v in node.values():
                refs(v)

    for res in schema["resources"].values():
        refs(res["inputProperties"])
    return found


def _takes_outputs(annotation) -> bool:
    while typing.get_origin(annotation) in (NotRequired, Required):
        annotation = typing.get_args(annotation)[0]
    return typing.get_origin(annotation) is typing.Union and any(
        (typing.get_origin(a) or a).__name__ == "Output" for a in typing.get_args(annotation)
    )


def _inputs_with_annotations(schema: dict) -> list[tuple[str, dict, typing.Any]]:
    """(where, schema property, Python annotation) of every component input and every property
    of a type used in inputs."""
    provider = LlmstackProvider()
    pairs = []  # (where, schema prop, annotation)
    for cdef in provider._component_defs.values():
        td = typing.get_type_hints(getattr(llmstack_k8s, cdef.name).__init__)["args"]
        hints = type_hints(td)
        for name, prop in schema["resources"][f"llmstack:index:{cdef.name}"]["inputProperties"].items():
            pairs.append((f"{cdef.name}.{name}", prop, hints[cdef.inputs_mapping[name]]))
    for tdef in provider._type_defs.values():
        if tdef.enum or not is_typeddict(tdef.python_type) or tdef.name not in _input_types(schema):
            continue
        hints = type_hints(tdef.python_type)
        for name, prop in (schema["types"][f"llmstack:index:{tdef.name}"].get("properties") or {}).items():
            pairs.append((f"{tdef.name}.{name}", prop, hints[tdef.properties_mapping[name]]))
    return pairs


def test_plain_in_the_schema_follows_the_annotations(served):
    """A field annotated ``pulumi.Input[...]`` accepts another resource's Output in every
    language; a plain one (it decides which resources exist) is marked ``plain``."""
    schema, _ = served
    wrong = [
        where for where, prop, ann in _inputs_with_annotations(schema) if bool(prop.get("plain")) == _takes_outputs(ann)
    ]
    assert not wrong, f"plain in the schema disagrees with the annotation: {wrong}"


def _strip(annotation):
    while typing.get_origin(annotation) in (NotRequired, Required):
        annotation = typing.get_args(annotation)[0]
    return annotation


def _structural(annotation) -> bool:
    """An object type, or a list/map whose items take Outputs or are object types: plain in the
    schema as a container only (what it holds accepts Outputs field by field)."""
    a = _strip(annotation)
    if is_typeddict(a):
        return True
    args = typing.get_args(a)
    return typing.get_origin(a) in (list, dict) and bool(args) and (_takes_outputs(args[-1]) or is_typeddict(args[-1]))


def _plain_fields(schema: dict) -> dict[str, str]:
    """``Type.field`` (Python names) -> schema location of every plain, non-structural input."""
    provider = LlmstackProvider()
    out = {}
    for cdef in provider._component_defs.values():
        hints = type_hints(typing.get_type_hints(getattr(llmstack_k8s, cdef.name).__init__)["args"])
        for name, prop in schema["resources"][f"llmstack:index:{cdef.name}"]["inputProperties"].items():
            field = cdef.inputs_mapping[name]
            if prop.get("plain") and not _structural(hints[field]):
                out[f"{cdef.name}.{field}"] = f"{cdef.name}.{name}"
    for tdef in provider._type_defs.values():
        if tdef.enum or not is_typeddict(tdef.python_type) or tdef.name not in _input_types(schema):
            continue
        hints = type_hints(tdef.python_type)
        for name, prop in (schema["types"][f"llmstack:index:{tdef.name}"].get("properties") or {}).items():
            field = tdef.properties_mapping[name]
            if prop.get("plain") and not _structural(hints[field]):
                out[f"{tdef.name}.{field}"] = f"{tdef.name}.{name}"
    return out


def test_every_plain_input_is_plain_by_design(served):
    """Args take ``pulumi.Input`` wherever a value can come from another resource. A
    field stays plain only where preview needs its value (it decides which children exist, or a
    check reads it), and then it is listed, with the reason, in ``validation.PLAIN_BY_DESIGN``."""
    schema, _ = served
    plain = _plain_fields(schema)
    unlisted = sorted(set(plain) - set(PLAIN_BY_DESIGN))
    assert not unlisted, (
        f"plain in the schema but not in llmstack_k8s._core.validation.PLAIN_BY_DESIGN: {unlisted}; "
        "make them pulumi.Input[...] (or list them with the reason preview needs the value)"
    )
    assert all(reason.strip() for reason in PLAIN_BY_DESIGN.values())
    stale = sorted(set(PLAIN_BY_DESIGN) - set(plain))
    assert not stale, f"PLAIN_BY_DESIGN lists fields that are not plain inputs (gone, renamed or now Inputs): {stale}"
    # Most of what a program passes takes Outputs (67 of 78 inputs were plain before args took Outputs).
    pairs = _inputs_with_annotations(schema)
    assert len(plain) < len(pairs) * 0.6, f"{len(plain)} of {len(pairs)} inputs are plain"


#: Names that point at another object: such a field takes an Output unless PLAIN_BY_DESIGN says why not.
POINTER_NAME = re.compile(r"namespace|_name$|url|path|image|secret|class")


def test_fields_that_point_at_objects_take_outputs(served):
    schema, _ = served
    pointers = {f for f in _plain_fields(schema) if POINTER_NAME.search(f.split(".", 1)[1])}
    assert pointers <= set(PLAIN_BY_DESIGN), (
        f"plain fields naming another object: {sorted(pointers - set(PLAIN_BY_DESIGN))}"
    )
    # The exceptions are few, and each says why preview needs the value (resource names are map keys).
    assert len(pointers) <= 11, sorted(pointers)
    # Containers of such names take Outputs item by item (a list of namespaces from other stacks).
    assert not [
        w
        for w, prop, ann in _inputs_with_annotations(schema)
        if POINTER_NAME.search(w.split(".", 1)[1].lower())
        and typing.get_origin(_strip(ann)) in (list, dict)
        and not _structural(ann)
        and not _takes_outputs(ann)
    ]


def _shape(prop: dict) -> dict:
    """A property's type without what differs between an input and an output (docs, plainness)."""
    out = {k: v for k, v in prop.items() if k not in ("description", "plain", "secret", "willReplaceOnChanges")}
    for key in ("items", "additionalProperties"):
        if key in out:
            out[key] = _shape(out[key])
    return out


def test_a_pools_outputs_fit_the_scheduling_contract_field_by_field(served):
    """Other languages wire a GpuNodePool into a serving component's ``scheduling`` one output at a time
    (Python passes the plain ``pool.contract``). Each output must have the type of the contract field it
    feeds, or the generated SDK refuses the assignment: the TypeScript consumer on the real engine
    (tests/cluster/test_typescript_consumer.py) found ``tolerations`` typed as a list of string maps, which
    TypeScript does not accept as ``TolerationArgs[]``."""
    schema, _ = served
    pool = schema["resources"]["llmstack:index:GpuNodePool"]["properties"]
    contract = schema["types"]["llmstack:index:SchedulingContractArgs"]["properties"]
    shared = sorted(set(pool) & set(contract))
    assert {"gpuResourceName", "nodeSelector", "tolerations", "runtimeClassName", "priorityClassName"} <= set(shared)
    mismatched = {
        name: (_shape(pool[name]), _shape(contract[name]))
        for name in shared
        if _shape(pool[name]) != _shape(contract[name])
    }
    assert not mismatched, mismatched
