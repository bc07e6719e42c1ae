"""The provider host: every component, served over gRPC to Pulumi programs in any language.

``pulumi package add`` runs ``provider/__main__.py`` (next to ``provider/PulumiPlugin.yaml``),
which calls :func:`main`. The engine then asks this host for the package schema (from which the
CLI generates a TypeScript, Go, C#, Java or Python SDK; Pulumi YAML reads it directly) and sends
it ``Construct`` calls that build the same Python components a Python program would.

Beyond Pulumi's own component host (``pulumi.provider.experimental``) this one

- fills the schema's package metadata from the installed distribution (description, keywords,
  license, repository when ``[project.urls]`` declares one) and the version from
  ``llmstack_k8s.__version__``;
- marks credentials ``secret`` (:data:`SECRETS`), so SDKs encrypt them in state and hide them in
  previews;
- describes inherited fields too (:func:`field_docs`): Pulumi's analyzer takes a field's docstring
  from the source of the class it analyzes only, so the serving components' shared args and
  outputs (``serving.base``) would reach other languages undocumented;
- drops the ``null`` entries the SDK leaves in enum values (Pulumi's metaschema refuses them);
- turns wire values back into what the Python annotations promise, also inside Outputs: names
  camelCase -> snake_case, whole-number doubles -> ``int`` (the protocol carries every number
  as a double), enum strings -> the Enum member. Type and key checks stay with the components
  (``validation.py``), so a mistake reads the same from every language.
"""

import ast
import email.message
import importlib.metadata
import inspect
import json
import re
import sys
import textwrap
from enum import Enum
from typing import Any, cast

import pulumi
from pulumi.errors import InputPropertyError
from pulumi.provider import ConstructResult
from pulumi.provider import main as serve
from pulumi.provider.experimental.analyzer import Analyzer, PropertyDefinition, PropertyType, TypeDefinition
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.server import ComponentInitError
from typing_extensions import is_typeddict

from .. import __all__ as PUBLIC_NAMES
from .. import __version__
from .package import PACKAGE, type_token
from .validation import ComponentArgsError

DISTRIBUTION = "llmstack-k8s"

#: Every component the package serves (type token ``llmstack:index:<Class>``): the components
#: ``llmstack_k8s.__all__`` exports, in its order (one list to extend when a component is added).
COMPONENTS: list[type[pulumi.ComponentResource]] = [
    c
    for c in (getattr(importlib.import_module("..", __package__), n) for n in PUBLIC_NAMES)
    if isinstance(c, type) and issubclass(c, pulumi.ComponentResource)
]

#: Inputs and outputs that carry credentials (Python names, per component): the schema marks
#: them ``secret``. The components wrap them in secret Outputs themselves, for Python callers.
SECRETS: dict[str, dict[str, tuple[str, ...]]] = {
    "ModelCache": {"inputs": ("hf_token",)},
    "VllmService": {"inputs": ("api_key",), "outputs": ("api_key",)},
    "KnativeVllmService": {"inputs": ("api_key",), "outputs": ("api_key",)},
    "MultiNodeVllmService": {"inputs": ("api_key",), "outputs": ("api_key",)},
    "Observability": {"outputs": ("grafana_admin_password",)},
    "Team": {"inputs": ("api_key",), "outputs": ("api_key",)},
}


def package_metadata() -> dict[str, Any]:
    """Schema metadata from the installed distribution's metadata (pyproject.toml is the source)."""
    try:
        # The object is an email.message.Message; typeshed's PackageMetadata protocol leaves out its .get().
        meta = cast("email.message.Message", importlib.metadata.metadata(DISTRIBUTION))
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return {}
    out: dict[str, Any] = {}
    if meta.get("Summary"):
        out["description"] = meta["Summary"]
    if meta.get("Keywords"):
        out["keywords"] = [k.strip() for k in meta["Keywords"].split(",") if k.strip()]
    license_ = meta.get("License-Expression") or meta.get("License")
    if license_:
        out["license"] = license_
    # "Repository, https://..." lines from [project.urls]; none is declared until the package has
    # a public home, and then the schema picks it up from there.
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("repository", "source"):
            out["repository"] = url.strip()
        elif label.strip().lower() == "homepage":
            out["homepage"] = url.strip()
    return out


def declared_bases(cls: type) -> list[type]:
    """The classes ``cls`` inherits fields from, nearest first (``object`` and Pulumi's own left out).
    A TypedDict does not keep its bases at runtime (its ``__mro__`` is itself, ``dict``, ``object``), so
    they are read from its class statement and looked up in its module."""
    if not is_typeddict(cls):
        return [c for c in cls.__mro__[1:] if c.__module__.split(".")[0] not in ("builtins", "pulumi")]
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source to read (the analyzer then finds no docstrings either)
        return []
    namespace = vars(sys.modules[cls.__module__])
    statement = next(n for n in ast.parse(textwrap.dedent(source)).body if isinstance(n, ast.ClassDef))
    bases = [namespace.get(b.id) for b in statement.bases if isinstance(b, ast.Name)]
    nearest = [b for b in bases if isinstance(b, type) and is_typeddict(b)]
    return [*nearest, *(far for b in nearest for far in declared_bases(b))]


def field_docs(cls: type) -> dict[str, str]:
    """The docstring of every field of ``cls`` (a TypedDict or a component's outputs), inherited ones
    included; a subclass's own docstring wins. Read as Pulumi's analyzer reads them."""
    analyzer = Analyzer(PACKAGE)
    docs: dict[str, str] = {}
    for owner in reversed([cls, *declared_bases(cls)]):
        for field in inspect.get_annotations(owner):
            doc = analyzer.get_docstring(owner, field)
            if doc:
                docs[field] = doc
    return docs


def _describe(properties: dict[str, Any], cls: type) -> None:
    """Give every property of ``cls`` without a description in the schema its (inherited) docstring,
    also on its items or values, where the analyzer repeats a field's own."""
    docs = {_camel(field): doc for field, doc in field_docs(cls).items()}

    def describe(prop: dict[str, Any], doc: str) -> None:
        prop.setdefault("description", doc)
        for nested in ("items", "additionalProperties"):
            if isinstance(prop.get(nested), dict):
                describe(prop[nested], doc)

    for key, prop in properties.items():
        if not prop.get("description") and key in docs:
            describe(prop, docs[key])


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def schema_path(path: str) -> str:
    """``engine.tensor_parallel_size`` -> ``engine.tensorParallelSize`` (map keys in ``['..']`` kept)."""
    return re.sub(r"(?<![\w'])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)", lambda m: _camel(m.group(1)), path)


class LlmstackProvider(ComponentProvider):
    """Pulumi's component provider for :data:`COMPONENTS`, with the additions listed above."""

    def __init__(self) -> None:
        super().__init__(COMPONENTS, PACKAGE, None, __version__)
        self.schema = json.dumps(self.schema_dict(), sort_keys=True)

    def schema_dict(self) -> dict[str, Any]:
        schema = _without_nulls(json.loads(self.schema or "{}"))
        schema.update(package_metadata())
        schema["version"] = __version__
        for cls in COMPONENTS:
            resource = schema["resources"][type_token(cls.__name__)]
            _describe(resource.get("inputProperties", {}), inspect.get_annotations(cls.__init__)["args"])
            _describe(resource.get("properties", {}), cls)
        for type_def in self.analyzer.type_definitions.values():
            if not type_def.enum:
                _describe(schema["types"][type_token(type_def.name)].get("properties", {}), type_def.python_type)
        for component, kinds in SECRETS.items():
            resource = schema["resources"][f"{PACKAGE}:index:{component}"]
            for kind, section in (("inputs", "inputProperties"), ("outputs", "properties")):
                for py_name in kinds.get(kind, ()):
                    resource[section][_camel(py_name)]["secret"] = True
        return schema

    def construct(
        self, name: str, resource_type: str, inputs: Any, options: pulumi.ResourceOptions | None = None
    ) -> ConstructResult:
        try:
            return super().construct(name, resource_type, inputs, options)
        except ComponentInitError as e:
            # A refused argument goes back as an input error on the property the program wrote
            # (schema name), so the engine reports it against the caller's line.
            if isinstance(e.inner, ComponentArgsError):
                raise InputPropertyError(schema_path(e.inner.path), str(e.inner)) from e.inner
            raise

    # -- wire values -> Python values -------------------------------------------------------------

    def map_inputs(self, inputs: Any, component_def: Any) -> Any:
        return self._object(inputs, component_def.inputs, component_def.inputs_mapping, component_def.name)

    def _object(self, value: Any, props: dict[str, PropertyDefinition], mapping: dict[str, str], path: str) -> Any:
        if isinstance(value, pulumi.Output):
            return value.apply(lambda v: self._object(v, props, mapping, path))
        if not isinstance(value, dict):
            return value  # the component's checks name what is wrong with it
        out = {}
        for key, v in value.items():
            if key in props:
                out[mapping[key]] = self._value(v, props[key], f"{path}.{key}")
            else:
                out[key] = v  # unknown: the component refuses it, with a did-you-mean
        return out

    def _value(self, value: Any, prop: PropertyDefinition, path: str) -> Any:
        if value is None:
            return None
        if isinstance(value, pulumi.Output):
            return value.apply(lambda v: self._value(v, prop, path))
        if prop.ref:
            type_def = self.get_type_definition(prop)
            if type_def is None:
                return value
            return self._named(value, type_def, path)
        if prop.type == PropertyType.ARRAY and prop.items is not None and isinstance(value, list):
            return [self._value(v, prop.items, f"{path}[{i}]") for i, v in enumerate(value)]
        if prop.type == PropertyType.OBJECT and prop.additional_properties is not None and isinstance(value, dict):
            return {k: self._value(v, prop.additional_properties, f"{path}.{k}") for k, v in value.items()}
        if prop.type == PropertyType.INTEGER and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def _named(self, value: Any, type_def: TypeDefinition, path: str) -> Any:
        if type_def.enum:
            enum_type = type_def.python_type
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(enum_type, type) and issubclass(enum_type, Enum):
                try:
                    return enum_type(value)
                except ValueError:
                    return value  # the component lists the allowed values
            return value
        return self._object(value, type_def.properties, type_def.properties_mapping, path)


def main(argv: list[str] | None = None) -> None:
    """Serve the provider: the engine passes its address as the first argument and reads the
    port this process prints."""
    serve(LlmstackProvider(), sys.argv[1:] if argv is None else argv)
