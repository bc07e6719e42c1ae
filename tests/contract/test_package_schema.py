"""The components stay consumable from every Pulumi language: Pulumi's own analyzer infers a
package schema from them (the same code path `pulumi package add` uses), in-process."""

import functools
import inspect
import typing

import pulumi
import pytest
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.schema import generate_schema
from pulumi.provider.experimental.util import camel_case

import llmstack_k8s
from llmstack_k8s import KnativeVllmService, MultiNodeVllmService, VllmService
from llmstack_k8s._core.package import PACKAGE
from llmstack_k8s._core.provider_host import LlmstackProvider, field_docs
from llmstack_k8s._core.validation import type_hints
from llmstack_k8s.serving.base import ServingArgs, ServingComponent, SinglePodServingArgs


def all_components() -> list[type]:
    return sorted(
        {c for c in vars(llmstack_k8s).values() if inspect.isclass(c) and issubclass(c, pulumi.ComponentResource)},
        key=lambda c: c.__name__,
    )


def test_components_are_exported_by_the_package():
    names = {c.__name__ for c in all_components()}
    assert {"ModelCache", "VllmService"} <= names


@functools.cache
def served_schema() -> dict:
    """The schema the provider host serves to other languages (``pulumi package add``)."""
    return LlmstackProvider().schema_dict()


def test_schema_is_inferred_for_every_component():
    result = Analyzer(PACKAGE).analyze(all_components())
    schema = generate_schema(
        PACKAGE,
        "0.1.0",
        None,
        result["component_definitions"],
        result["type_definitions"],
        list(result["dependencies"]),
    ).to_json()
    resources = schema["resources"]
    for cls in all_components():
        token = f"{PACKAGE}:index:{cls.__name__}"
        assert token in resources, f"{token} missing from the inferred schema"
        res = resources[token]
        assert res["isComponent"]
        assert res.get("description"), f"{cls.__name__} has no docstring"
    # Every property documented, as other languages get it: the host adds inherited fields'
    # docstrings, which the analyzer alone misses (see the serving components' test below).
    served = served_schema()
    for cls in all_components():
        res = served["resources"][f"{PACKAGE}:index:{cls.__name__}"]
        for prop_name, prop in {**res.get("inputProperties", {}), **res.get("properties", {})}.items():
            assert prop.get("description"), f"{cls.__name__}.{prop_name} has no docstring"
    # Nested arg types and enums become schema types with documented properties.
    types = served["types"]
    assert set(types) == set(schema["types"])
    assert f"{PACKAGE}:index:VllmEngineArgs" in types
    assert f"{PACKAGE}:index:Dtype" in types and types[f"{PACKAGE}:index:Dtype"].get("enum")
    for token, t in types.items():
        for prop_name, prop in (t.get("properties") or {}).items():
            assert prop.get("description"), f"{token}.{prop_name} has no docstring"


#: Each serving component and the base its args derive from (``serving.base``).
SERVING = {
    VllmService: SinglePodServingArgs,
    KnativeVllmService: SinglePodServingArgs,
    MultiNodeVllmService: ServingArgs,
}


def _described(prop: dict) -> bool:
    """A description on the property, and on its items or values where it has them (as the analyzer
    writes a field's own)."""
    nested = [prop[k] for k in ("items", "additionalProperties") if isinstance(prop.get(k), dict)]
    return bool((prop.get("description") or "").strip()) and all(_described(n) for n in nested)


@pytest.mark.parametrize("cls", SERVING, ids=lambda c: c.__name__)
def test_every_field_of_every_serving_component_is_described_in_the_served_schema(cls):
    """The serving components declare their shared args and outputs once (``serving.base``): every
    input and output, inherited or their own, still reaches other languages with its description,
    and an inherited one with the docstring it has where it is declared."""
    res = served_schema()["resources"][f"{PACKAGE}:index:{cls.__name__}"]
    args = typing.get_type_hints(cls.__init__)["args"]
    assert set(res["inputProperties"]) == {camel_case(k) for k in type_hints(args)}
    assert set(res["properties"]) == {
        camel_case(k) for c in cls.__mro__ if issubclass(c, ServingComponent) for k in inspect.get_annotations(c)
    }
    for section in ("inputProperties", "properties"):
        undescribed = [name for name, prop in res[section].items() if not _described(prop)]
        assert not undescribed, f"{cls.__name__} {section} without a description: {undescribed}"
    base_args, base_outputs = field_docs(SERVING[cls]), field_docs(ServingComponent)
    assert set(base_args) == set(type_hints(SERVING[cls])) and set(base_outputs) == set(
        inspect.get_annotations(ServingComponent)
    )
    for field, doc in base_args.items():
        assert res["inputProperties"][camel_case(field)]["description"] == doc, f"{cls.__name__}.{field}"
    for field, doc in base_outputs.items():
        assert res["properties"][camel_case(field)]["description"] == doc, f"{cls.__name__}.{field}"


def test_pulumis_analyzer_alone_leaves_inherited_fields_undescribed():
    """Why the host describes inherited fields itself: the analyzer reads a docstring from the
    source of the class it analyzes only. (When a Pulumi release reads the bases too, this fails:
    ``provider_host.field_docs`` can then go.)"""
    defs = Analyzer(PACKAGE).analyze([VllmService])["component_definitions"]["VllmService"]
    assert defs.inputs["namespace"].description is None and defs.outputs["endpoint"].description is None
    assert defs.inputs["replicas"].description and defs.outputs["deploymentName"].description  # its own


def test_type_tokens_match_the_class_names():
    """The type token is part of every URN: it must be <package>:index:<Class>."""
    import pulumi.runtime

    seen = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            seen.append(args.typ)
            return [args.name, args.inputs]

        def call(self, args):
            return {}

    pulumi.runtime.set_mocks(Mocks(), project="p", stack="s", preview=True)
    from llmstack_k8s.serving.model_cache import ModelCache

    @pulumi.runtime.test
    def run():
        c = ModelCache("m", {"namespace": "ns", "model": "org/name", "revision": "abc", "size": "1Gi"})
        return c.claim_name

    run()
    assert f"{PACKAGE}:index:ModelCache" in seen
