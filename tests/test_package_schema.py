"""The components stay consumable from every Pulumi language: Pulumi's own analyzer infers a
package schema from them (the same code path `pulumi package add` uses), in-process."""

import inspect

import pulumi
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.schema import generate_schema

import llmstack_k8s
from llmstack_k8s.package import PACKAGE


def all_components() -> list[type]:
    return sorted(
        {c for c in vars(llmstack_k8s).values() if inspect.isclass(c) and issubclass(c, pulumi.ComponentResource)},
        key=lambda c: c.__name__,
    )


def test_components_are_exported_by_the_package():
    names = {c.__name__ for c in all_components()}
    assert {"ModelCache", "VllmService"} <= names


def test_schema_is_inferred_for_every_component():
    result = Analyzer(PACKAGE).analyze(all_components())
    schema = generate_schema(
        PACKAGE, "0.1.0", None, result["component_definitions"], result["type_definitions"], list(result["dependencies"])
    ).to_json()
    resources = schema["resources"]
    for cls in all_components():
        token = f"{PACKAGE}:index:{cls.__name__}"
        assert token in resources, f"{token} missing from the inferred schema"
        res = resources[token]
        assert res["isComponent"]
        assert res.get("description"), f"{cls.__name__} has no docstring"
        for prop_name, prop in {**res.get("inputProperties", {}), **res.get("properties", {})}.items():
            assert prop.get("description"), f"{cls.__name__}.{prop_name} has no docstring"
    # Nested arg types and enums become schema types with documented properties.
    types = schema["types"]
    assert f"{PACKAGE}:index:VllmEngineArgs" in types
    assert f"{PACKAGE}:index:Dtype" in types and types[f"{PACKAGE}:index:Dtype"].get("enum")
    for token, t in types.items():
        for prop_name, prop in (t.get("properties") or {}).items():
            assert prop.get("description"), f"{token}.{prop_name} has no docstring"


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
    from llmstack_k8s.model_cache import ModelCache

    @pulumi.runtime.test
    def run():
        c = ModelCache("m", {"namespace": "ns", "model": "org/name", "revision": "abc", "size": "1Gi"})
        return c.claim_name

    run()
    assert f"{PACKAGE}:index:ModelCache" in seen
