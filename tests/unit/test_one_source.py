"""One source for each rule: the awaits and the provider host use the library's own rules and
lists instead of copies that could drift apart."""

import ast
from pathlib import Path

import pulumi
import pytest

import llmstack_k8s
from conftest import ROOT
from llmstack_k8s._core import awaits, provider_host
from llmstack_k8s.rules import timing


def test_awaits_measure_probes_with_the_policy_packs_formula(monkeypatch):
    pod = {"containers": [{"startupProbe": {"periodSeconds": 10, "failureThreshold": 30, "initialDelaySeconds": 5}}]}
    # One function: the rules (so the policy pack) take the awaits' formula, which imports no rule.
    assert timing.startup_budget_seconds is awaits.startup_budget_seconds
    assert (
        awaits.startup_probe_seconds(pod) == timing.startup_budget_seconds(pod["containers"][0]["startupProbe"]) == 305
    )
    monkeypatch.setattr(awaits, "startup_budget_seconds", lambda probe: 42)
    assert awaits.startup_probe_seconds(pod) == 42


def test_the_provider_host_serves_what_the_package_exports():
    exported = [getattr(llmstack_k8s, n) for n in llmstack_k8s.__all__]
    assert provider_host.COMPONENTS == [
        c for c in exported if isinstance(c, type) and issubclass(c, pulumi.ComponentResource)
    ]
    source = (ROOT / "components" / "_core" / "provider_host.py").read_text()
    assert not [
        c.__name__ for c in provider_host.COMPONENTS if f"import {c.__name__}" in source or f" {c.__name__}," in source
    ]


def _unused_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    exported = {
        e.value
        for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
        for e in n.value.elts
        if isinstance(e, ast.Constant)
    }
    return [
        f"{path.name}: {a.name}"
        for n in tree.body
        if isinstance(n, ast.ImportFrom) and n.level
        for a in n.names
        if a.asname != a.name and a.name != "*" and (a.asname or a.name) not in used | exported
    ]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "components").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT / "components"))
)
def test_library_names_are_used_or_reexported_explicitly(path):
    """A name imported into a library module and not used there is a re-export: type checkers
    (mypy --no-implicit-reexport, pyright strict) see it only written ``X as X`` (or in __all__)."""
    assert not _unused_imports(path)
