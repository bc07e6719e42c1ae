"""The render diff (stacks/tools/diff.py) on two commits of a throwaway git repository holding this
project, and on uncommitted changes; each side is rendered by its own code."""

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

from conftest import ROOT
from llmstack_k8s._core.testing import SECRET_PLACEHOLDER
from stacks.tools import diff


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def run_diff(repo, *args):
    return subprocess.run(
        [sys.executable, "-m", "stacks.tools.diff", "--repo", str(repo), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def repo(tmp_path):
    """This project's committed program, stack file and library, committed once in a new repository."""
    r = tmp_path / "repo"
    r.mkdir()
    paths = ["Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py", "stacks", "components"]
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD", *paths], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(r)], input=archive, check=True)
    git(r, "init", "-q", "-b", "main")
    git(r, "config", "user.email", "test@example.invalid")
    git(r, "config", "user.name", "test")
    git(r, "add", ".")
    git(r, "commit", "-q", "-m", "base")
    return r


def _bump_dcgm_chart(r):
    versions = r / "components" / "versions.py"
    text, n = re.subn(r'(DCGM_EXPORTER = Chart\([^)]*"dcgm-exporter", ")([^"]+)"', r'\g<1>9.9.9"', versions.read_text())
    assert n == 1
    versions.write_text(text)


def test_two_commits(repo, tmp_path):
    base = git(repo, "rev-parse", "HEAD")
    # The change: a code change (chart pin), a stack-file change, a model removed, a new stack.
    _bump_dcgm_chart(repo)
    dev = repo / "Pulumi.dev.yaml"
    shutil.copy(dev, repo / "Pulumi.staging.yaml")
    doc = yaml.safe_load(dev.read_text())
    models = doc["config"]["llmstack:models"]
    assert len(models) >= 2, "the dev stack file serves two models"
    kept, removed = models[0], models[-1]
    seqs = kept.get("maxNumSeqs", 64)
    kept["maxNumSeqs"] = seqs + 32
    doc["config"]["llmstack:models"] = models[:-1]
    dev.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "head")
    head = git(repo, "rev-parse", "HEAD")

    junit = tmp_path / "junit.xml"
    suite = ET.Element("testsuite", tests="3", failures="1", errors="0", skipped="1", time="4.2")
    ET.SubElement(ET.SubElement(suite, "testcase", classname="tests.test_x", name="test_a"), "failure")
    ET.ElementTree(ET.Element("testsuites")).getroot().append(suite)
    ET.ElementTree(suite).write(junit)

    out = tmp_path / "out"
    proc = run_diff(repo, "HEAD~1", "HEAD", "--output-dir", out, "--junit", junit)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["dev.md", "staging.md"]
    md = (out / "dev.md").read_text()

    assert md.startswith("<!-- llmstack-render-diff:dev -->\n")
    assert f"`{base[:12]}` → `{head[:12]}`" in md
    # Summary table first, then the list of changes, then the YAML diffs.
    assert md.index("| changed |") < md.index("- **changed**") < md.index("<details>")
    # Each side rendered by its own code: the chart pin differs only in components/versions.py.
    assert "- **changed** Helm release monitoring/dcgm-exporter: `version`" in md
    assert re.search(r"^-version: 4\.\d+\.\d+$", md, re.M) and re.search(r"^\+version: 9\.9\.9$", md, re.M)
    # The stack-file change reaches the server's flags.
    assert re.search(
        rf"^- \*\*changed\*\* \S+ \S+/{kept['name']}: .*`spec\.template\.spec\.containers\[vllm\]\.args\[", md, re.M
    )
    assert re.search(rf"^-\s+- '{seqs}'$", md, re.M) and re.search(rf"^\+\s+- '{seqs + 32}'$", md, re.M)
    # The removed model's objects are listed as removed, Secret values redacted.
    assert re.search(rf"^- \*\*removed\*\* Secret \S+/{removed['name']}-api-key$", md, re.M)
    assert re.search(rf"^- \*\*removed\*\* .*/{removed['name']}$", md, re.M)
    assert re.search(r"^-\s+api-key: <redacted>$", md, re.M)
    assert SECRET_PLACEHOLDER not in md
    # Test results under each stack.
    assert "**Tests** :x: 1 passed, 1 failed, 1 skipped" in md and "`tests.test_x::test_a`" in md

    staging = (out / "staging.md").read_text()
    assert "`Pulumi.staging.yaml` is new in this change" in staging
    assert "| removed | 0 | 0 |" in staging and "- **added** Deployment" in staging


def test_working_tree_and_a_side_that_does_not_render(repo, tmp_path):
    dev = repo / "Pulumi.dev.yaml"
    doc = yaml.safe_load(dev.read_text())
    doc["config"]["llmstack:models"][0]["maxNumSeqs"] = 80
    dev.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = run_diff(repo, "HEAD", "--stack", "dev")
    assert proc.returncode == 0, proc.stderr
    assert "`working tree`" in proc.stdout and re.search(r"^\+\s+- '80'$", proc.stdout, re.M)

    doc["config"]["llmstack:models"][0]["maxNumSeq"] = 1  # a typo: the stack file is refused
    dev.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = run_diff(repo, "HEAD", "--stack", "dev", "--output", tmp_path / "d.md")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "d.md").read_text()
    assert ":x: **`working tree` does not render `dev`**" in md and "maxNumSeq" in md


def test_unknown_ref_is_a_usage_error(repo):
    proc = run_diff(repo, "no-such-ref")
    assert proc.returncode == 2 and "no-such-ref" in proc.stderr


def _side(label):
    return diff.Side(label, ROOT)


def test_removed_stack_and_no_change():
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"a": "1"}}
    md = diff.stack_report("old", _side("a"), _side("b"), ([obj], [], ""), None)
    assert "`Pulumi.old.yaml` is removed by this change" in md and "- **removed** ConfigMap n/c" in md
    same = diff.stack_report("s", _side("a"), _side("b"), ([obj], [], ""), ([obj], [], ""))
    assert "No change to any Kubernetes object or Helm release" in same and "| unchanged | 1 | 0 |" in same


def test_redaction_of_what_an_old_renderer_left_in_clear():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "hf_abc"}}
    pod_env = {"env": [{"name": "HF_TOKEN", "value": "hf_abc"}, {"name": "HF_HUB_OFFLINE", "value": "1"}]}
    release = {
        "name": "g",
        "values": {"grafana": {"adminPassword": "pw", "admin": {"existingSecret": "grafana-admin"}}},
    }
    assert diff.redact(secret)["stringData"] == {"token": diff.REDACTED}
    assert [e["value"] for e in diff.redact(pod_env)["env"]] == [diff.REDACTED, "1"]
    values = diff.redact(release)["values"]["grafana"]
    assert values["adminPassword"] == diff.REDACTED and values["admin"]["existingSecret"] == "grafana-admin"


def test_long_reports_fit_a_comment(monkeypatch):
    monkeypatch.setattr(diff, "MAX_CHARS", 3000)
    before = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}, "data": {"k": "x" * 400}}
        for i in range(20)
    ]
    after = [{**o, "data": {"k": "y" * 400}} for o in before]
    md = diff.stack_report("s", _side("a"), _side("b"), (before, [], ""), (after, [], ""), tests="**Tests** ok\n")
    assert len(md) <= 3000 + 200
    assert "diff(s) left out to fit a comment" in md and md.rstrip().endswith("**Tests** ok")
    assert md.count("- **changed** ConfigMap") == 20  # the list is always whole
