"""One source for each rule (issue 12): the cross-object checker, the awaits and the provider host
use the library's own rules and lists instead of copies that could drift apart."""

import ast
from pathlib import Path

import crosscheck
import pytest
from conftest import ROOT

import llmstack_k8s
from llmstack_k8s import awaits, checks, provider_host


def test_crosscheck_reads_selectors_and_templates_as_the_policy_pack_does(monkeypatch):
    calls = []
    real = checks.selector_matches
    monkeypatch.setattr(checks, "selector_matches", lambda s, labels: calls.append(s) or real(s, labels))
    assert crosscheck.matches(None, {"app": "x"}) and crosscheck.matches({"matchLabels": {"app": "x"}}, {"app": "x"})
    assert len(calls) == 2
    # Knative pods carry Knative's labels: the checker sees the pod as the policy pack does.
    ksvc = {"apiVersion": crosscheck.KNATIVE_SERVICE_API, "kind": "Service", "metadata": {"name": "m", "namespace": "llm"},
            "spec": {"template": {"metadata": {"labels": {"app": "m"}}, "spec": {"containers": [{"name": "c"}]}}}}
    (w,) = crosscheck.workloads([ksvc])
    assert (w.labels, w.pod) == (checks.pod_template(ksvc)[0], dict(checks.pod_template(ksvc)[1]))
    assert w.labels["serving.knative.dev/service"] == "m"


def test_crosscheck_pdb_rule_is_the_policy_packs():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m", "namespace": "llm"},
                  "spec": {"template": {"metadata": {"labels": {"app": "m"}}, "spec": {"containers": [{"name": "c"}]}}}}
    job = {**deployment, "kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "m-download", "namespace": "llm"}}
    for selector in (None, {"matchLabels": {"app": "m"}}, {"matchLabels": {"app": "typo"}}):
        pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "m", "namespace": "llm"},
               "spec": {"maxUnavailable": 1, **({"selector": selector} if selector is not None else {})}}
        objects = [deployment, job, pdb]
        assert crosscheck.pdbs_select_one_scalable_controller(objects) == checks.pdb_selects_one_controller(objects)
    # A PDB without a selector selects no pods (policy/v1), it does not select everything.
    assert "selects no pods" in crosscheck.pdbs_select_one_scalable_controller([deployment, {**pdb, "spec": {"maxUnavailable": 1}}])[0]


def test_awaits_measure_probes_with_the_policy_packs_formula(monkeypatch):
    pod = {"containers": [{"startupProbe": {"periodSeconds": 10, "failureThreshold": 30, "initialDelaySeconds": 5}}]}
    assert awaits.startup_probe_seconds(pod) == checks.startup_budget_seconds(pod["containers"][0]["startupProbe"]) == 305
    monkeypatch.setattr(checks, "startup_budget_seconds", lambda probe: 42)
    assert awaits.startup_probe_seconds(pod) == 42


def test_the_provider_host_serves_what_the_package_exports():
    exported = [getattr(llmstack_k8s, n) for n in llmstack_k8s.__all__]
    assert provider_host.COMPONENTS == [c for c in exported if isinstance(c, type) and issubclass(c, llmstack_k8s.VllmService.__mro__[1])]
    source = (ROOT / "components" / "provider_host.py").read_text()
    assert not [c.__name__ for c in provider_host.COMPONENTS if f"import {c.__name__}" in source or f" {c.__name__}," in source]


def _unused_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    exported = {e.value for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
                for e in n.value.elts if isinstance(e, ast.Constant)}
    return [f"{path.name}: {a.name}" for n in tree.body if isinstance(n, ast.ImportFrom) and n.level
            for a in n.names if a.asname != a.name and (a.asname or a.name) not in used | exported]


@pytest.mark.parametrize("path", sorted((ROOT / "components").glob("*.py")), ids=lambda p: p.name)
def test_library_names_are_used_or_reexported_explicitly(path):
    """A name imported into a library module and not used there is a re-export: type checkers
    (mypy --no-implicit-reexport, pyright strict) see it only written ``X as X`` (or in __all__)."""
    assert not _unused_imports(path)
