"""Render diff: what a change does to every stack's Kubernetes objects and Helm releases.

    python -m stacks.tools.diff main                 # main vs the working tree (uncommitted changes too)
    python -m stacks.tools.diff HEAD~3 HEAD          # two commits
    python -m stacks.tools.diff BASE HEAD --output-dir out/diff --junit junit.xml   # what the PR workflow runs

Each side is exported from git into a temporary directory and rendered offline by *its own*
code (its ``stacks.tools.render``, or ``stacks.render`` before the tools had a folder; no Pulumi
CLI, no cluster); objects are compared by
(apiVersion, kind, namespace, name) and Helm releases by (namespace, name). The report is
markdown, per stack: a summary table, the added/changed/removed objects (with the fields that
changed), then a unified YAML diff per object in a collapsible block. Secret values are redacted.
Exit status 0 whatever the diff (a side that does not render is reported in the markdown);
2 on a usage error or a ref git does not know.
"""

import argparse
import difflib
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmstack_k8s.checks import is_credential_name

ROOT = Path(__file__).resolve().parents[2]
#: First line of every stack's report: the PR workflow updates the comment that starts with it.
MARKER = "<!-- llmstack-render-diff:{stack} -->"
#: GitHub refuses comments over 65,536 characters; leave room for the header and the test summary.
MAX_CHARS = 60_000
REDACTED = "<redacted>"


class DiffError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Rendering one side
# ---------------------------------------------------------------------------------------------


@dataclass
class Side:
    label: str  # short SHA, or "working tree"
    root: Path
    stacks: list[str] = field(default_factory=list)


def _git(repo: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, **kw)


def resolve(repo: Path, ref: str) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", text=True).stdout.strip()
    except subprocess.CalledProcessError:
        raise DiffError(f"git does not know the ref {ref!r} in {repo}") from None


def export(repo: Path, sha: str, dest: Path) -> None:
    """The tree of ``sha`` (no .git), as a reviewer's checkout of that commit would have it."""
    dest.mkdir(parents=True)
    archive = _git(repo, "archive", "--format=tar", sha).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def stack_names(root: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def render_module(root: Path) -> str:
    """The offline renderer of a tree: ``stacks.tools.render``, or ``stacks.render`` in a commit
    from before the developer tools moved into stacks/tools/."""
    return "stacks.tools.render" if (root / "stacks" / "tools" / "render.py").exists() else "stacks.render"


def render(side: Side, stack: str, out: Path) -> tuple[list[dict] | None, list[dict] | None, str]:
    """(objects, helm releases, error) of one stack rendered by the side's own code."""
    env = dict(os.environ)
    # The side's own library: the installed one (an editable install of *this* checkout) must not
    # stand in for it. A shim directory on PYTHONPATH names the side's components/ llmstack_k8s.
    shim = out / "shim"
    shim.mkdir(parents=True, exist_ok=True)
    if (side.root / "components" / "__init__.py").exists():
        (shim / "llmstack_k8s").symlink_to(side.root / "components", target_is_directory=True)
    env["PYTHONPATH"] = os.pathsep.join([str(shim), str(side.root)])
    env.pop("PULUMI_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", render_module(side.root), stack, str(out)],
        cwd=side.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
        return None, None, "\n".join(lines[-15:]) or f"exit status {proc.returncode}"
    target = out / stack
    objects = [o for o in yaml.safe_load_all((target / "manifests.yaml").read_text()) if o]
    releases_file = target / "helm-releases.yaml"
    releases = [r for r in yaml.safe_load_all(releases_file.read_text()) if r] if releases_file.exists() else []
    return objects, releases, ""


# ---------------------------------------------------------------------------------------------
# Comparing
# ---------------------------------------------------------------------------------------------


def object_key(o: dict) -> tuple:
    meta = o.get("metadata") or {}
    return (o.get("apiVersion", ""), o.get("kind", ""), meta.get("namespace") or "", meta.get("name") or "")


def release_key(r: dict) -> tuple:
    return (r.get("namespace") or "", r.get("name") or "")


def object_title(key: tuple) -> str:
    api, kind, ns, name = key
    group = api.split("/")[0] if "/" in api else ""
    return f"{kind}{' (' + group + ')' if group and kind in ('Service',) else ''} {ns + '/' if ns else ''}{name}"


def release_title(key: tuple) -> str:
    ns, name = key
    return f"Helm release {ns + '/' if ns else ''}{name}"


def redact(value: Any, key: str = "") -> Any:
    """Secret data, credential-named env values and Helm values: never shown, even if a side's
    renderer did not redact them (an old commit's)."""
    if isinstance(value, dict):
        if value.get("kind") == "Secret":
            value = {
                **value,
                **{k: dict.fromkeys(value[k] or {}, REDACTED) for k in ("data", "stringData") if k in value},
            }
        if isinstance(value.get("name"), str) and "value" in value and is_credential_name(value["name"]):
            value = {**value, "value": REDACTED}
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str) and key and is_credential_name(key) and value:
        return REDACTED
    return value


def dump(o: dict | None) -> list[str]:
    return [] if o is None else yaml.safe_dump(o, sort_keys=True, width=120).splitlines(keepends=True)


def changed_paths(a: Any, b: Any, path: str = "", limit: int = 6) -> list[str]:
    """Dotted paths where two values differ (list items by their ``name`` when they have one)."""
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += changed_paths(a.get(k), b.get(k), f"{path}.{k}" if path else str(k), limit)
        return out[:limit]
    if isinstance(a, list) and isinstance(b, list):
        named = all(isinstance(x, dict) and "name" in x for x in a + b)
        if named:
            am, bm = {x["name"]: x for x in a}, {x["name"]: x for x in b}
            out = []
            for n in list(dict.fromkeys([*am, *bm])):
                out += changed_paths(am.get(n), bm.get(n), f"{path}[{n}]", limit)
            return out[:limit]
        if len(a) == len(b):
            out = []
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                out += changed_paths(x, y, f"{path}[{i}]", limit)
            return out[:limit]
    return [path or "(whole)"]


@dataclass
class Change:
    title: str
    status: str  # added | changed | removed
    before: dict | None
    after: dict | None

    def paths(self) -> list[str]:
        return changed_paths(self.before, self.after) if self.status == "changed" else []

    def diff(self, base_label: str, head_label: str) -> str:
        return "".join(
            difflib.unified_diff(
                dump(self.before),
                dump(self.after),
                f"{base_label}/{self.title}",
                f"{head_label}/{self.title}",
                n=3,
            )
        )


def compare(before: list[dict], after: list[dict], key, title) -> list[Change]:
    b = {key(o): redact(o) for o in before}
    a = {key(o): redact(o) for o in after}
    changes = []
    for k in sorted(set(a) | set(b)):
        if k not in b:
            changes.append(Change(title(k), "added", None, a[k]))
        elif k not in a:
            changes.append(Change(title(k), "removed", b[k], None))
        elif a[k] != b[k]:
            changes.append(Change(title(k), "changed", b[k], a[k]))
    return changes


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def test_summary(junit: Path | None) -> str:
    """One line (and the failures) from a pytest ``--junitxml`` report."""
    if junit is None:
        return ""
    if not junit.exists():
        return "**Tests**: no report (the test step did not run to the end).\n"
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    seconds = sum(float(s.get("time", 0)) for s in suites)
    passed = total - failed - skipped
    icon = ":x:" if failed else ":white_check_mark:"
    text = f"**Tests** {icon} {passed} passed, {failed} failed, {skipped} skipped in {seconds:.0f} s (fast suite).\n"
    failures = [
        f"{c.get('classname', '')}::{c.get('name', '')}"
        for c in root.iter("testcase")
        if c.find("failure") is not None or c.find("error") is not None
    ]
    if failures:
        text += "\n" + "".join(f"- {_code(f)}\n" for f in failures[:20])
        if len(failures) > 20:
            text += f"- ... and {len(failures) - 20} more\n"
    return text


def stack_report(stack: str, base: Side, head: Side, base_r, head_r, tests: str = "") -> str:
    """Markdown for one stack; ``base_r``/``head_r`` are render() results, or None where the
    stack file does not exist on that side."""
    lines = [
        MARKER.format(stack=stack),
        f"### Render diff of stack `{stack}`: {_code(base.label)} → {_code(head.label)}",
        "",
    ]
    if base_r is None:
        lines += [f"`Pulumi.{stack}.yaml` is new in this change: everything below is added.", ""]
        base_r = ([], [], "")
    if head_r is None:
        lines += [f"`Pulumi.{stack}.yaml` is removed by this change: everything below is removed.", ""]
        head_r = ([], [], "")
    for label, r in ((base.label, base_r), (head.label, head_r)):
        if r[2]:
            lines += [f":x: **{_code(label)} does not render `{stack}`**:", "", "```", r[2], "```", ""]
    if base_r[2] or head_r[2]:
        return "\n".join(lines) + ("\n" + tests if tests else "")

    objs = compare(base_r[0], head_r[0], object_key, object_title)
    rels = compare(base_r[1], head_r[1], release_key, release_title)
    count = lambda cs, s: sum(c.status == s for c in cs)  # noqa: E731
    lines += [
        "| | Kubernetes objects | Helm releases |",
        "| --- | ---: | ---: |",
        *[f"| {s} | {count(objs, s)} | {count(rels, s)} |" for s in ("added", "changed", "removed")],
        f"| unchanged | {len(head_r[0]) - count(objs, 'added') - count(objs, 'changed')} "
        f"| {len(head_r[1]) - count(rels, 'added') - count(rels, 'changed')} |",
        "",
    ]
    changes = rels + objs
    if not changes:
        lines.append("No change to any Kubernetes object or Helm release of this stack.")
        return "\n".join(lines) + "\n" + ("\n" + tests if tests else "")
    for status in ("added", "changed", "removed"):
        for c in (c for c in changes if c.status == status):
            paths = c.paths()
            more = f": {', '.join(_code(p) for p in paths)}" if paths else ""
            lines.append(f"- **{status}** {c.title}{more}")
    lines.append("")
    body = "\n".join(lines) + "\n"
    tail = ("\n" + tests) if tests else ""
    details: list[str] = []
    omitted = 0
    for c in changes:
        block = (
            f"<details><summary>{c.status}: {c.title}</summary>\n\n```diff\n"
            f"{c.diff(base.label, head.label)}```\n\n</details>\n"
        )
        if len(body) + sum(map(len, details)) + len(block) + len(tail) > MAX_CHARS:
            omitted += 1
            continue
        details.append(block)
    if omitted:
        details.append(
            f"\n{omitted} diff(s) left out to fit a comment: run "
            f"`python -m stacks.tools.diff {base.label} {head.label}` for all.\n"
        )
    return body + "".join(details) + tail


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def run(
    repo: Path, base_ref: str, head_ref: str | None, stacks: list[str] | None, junit: Path | None
) -> dict[str, str]:
    """Markdown per stack."""
    repo = Path(_git(repo, "rev-parse", "--show-toplevel", text=True).stdout.strip())
    base_sha = resolve(repo, base_ref)
    head_sha = resolve(repo, head_ref) if head_ref else None
    tests = test_summary(junit)
    with tempfile.TemporaryDirectory(prefix="llmstack-diff-") as tmp:
        tmp_path = Path(tmp)
        base = Side(base_sha[:12], tmp_path / "base")
        export(repo, base_sha, base.root)
        if head_sha:
            head = Side(head_sha[:12], tmp_path / "head")
            export(repo, head_sha, head.root)
        else:
            head = Side("working tree", repo)
        base.stacks, head.stacks = stack_names(base.root), stack_names(head.root)
        wanted = stacks or sorted(set(base.stacks) | set(head.stacks))
        for stack in wanted:
            if stack not in base.stacks and stack not in head.stacks:
                raise DiffError(f"no stack file Pulumi.{stack}.yaml on either side")
        # Every (side, stack) renders in its own process: run them side by side.
        jobs = {
            (stack, name): (side, stack, tmp_path / "out" / name / stack)
            for stack in wanted
            for name, side in (("base", base), ("head", head))
            if stack in side.stacks
        }
        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
            futures = {k: pool.submit(render, *job) for k, job in jobs.items()}
            results = {k: f.result() for k, f in futures.items()}
        return {
            stack: stack_report(
                stack, base, head, results.get((stack, "base")), results.get((stack, "head")), tests=tests
            )
            for stack in wanted
        }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.tools.diff", description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="git ref of the base (e.g. main, HEAD~1, a SHA)")
    parser.add_argument("head", nargs="?", help="git ref of the head (default: the working tree as it is)")
    parser.add_argument(
        "--stack", action="append", help="only this stack (repeatable; default: every Pulumi.<stack>.yaml)"
    )
    parser.add_argument("--output", type=Path, help="write the whole report to this file (default: stdout)")
    parser.add_argument("--output-dir", type=Path, help="write one <stack>.md per stack here (one PR comment each)")
    parser.add_argument("--junit", type=Path, help="pytest --junitxml report to summarise under each stack")
    parser.add_argument("--repo", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        reports = run(args.repo, args.base, args.head, args.stack, args.junit)
    except DiffError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        for stack, text in reports.items():
            (args.output_dir / f"{stack}.md").write_text(text)
    whole = "\n\n".join(reports.values())
    if args.output:
        args.output.write_text(whole)
    if not args.output and not args.output_dir:
        sys.stdout.write(whole)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
