"""What a user of the library does, from scratch: install it from a git URL into a fresh
virtualenv, build the README's consumer project (which has a ``components/`` package of its own),
run its tests, and type-check it; and install the plugin folder the way `pulumi package add` does
and read its schema. About a minute, most of it pip (its cache makes later runs faster)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from support import consumer_project
from support.plugin_host import get_schema, metaschema_validator, plugin

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(cmd: list, cwd: Path, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return out


def snapshot_repository(target: Path) -> Path:
    """A git repository holding the working tree as it is (tracked and new files, .gitignore
    respected): what a user would clone, including changes not committed yet."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / rel)
    run(["git", "init", "-q"], target)
    run(["git", "add", "-A"], target)
    run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "snapshot"],
        target,
    )
    return target


def fresh_venv(path: Path, *requirements: str, cwd: Path) -> Path:
    run([sys.executable, "-m", "venv", path], cwd)
    python = path / "bin" / "python"
    # The pip bundled with older Pythons cannot read `name @ git+file:///...` requirements.
    run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], cwd)
    if requirements:
        run([python, "-m", "pip", "install", "-q", *requirements], cwd)
    return python


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    base = tmp_path_factory.mktemp("consumer")
    repo = snapshot_repository(base / "llmstack")
    python = fresh_venv(base / "venv", f"llmstack-k8s @ git+file://{repo}", "pytest", cwd=base)
    project = consumer_project.write(base / "my-platform")
    return {"base": base, "repo": repo, "python": python, "project": project}


def test_the_library_comes_from_the_git_install_and_the_projects_components_from_the_project(workspace):
    probe = (
        "import components, llmstack_k8s, json; "
        "print(json.dumps([components.__file__, llmstack_k8s.__file__, llmstack_k8s.__version__]))"
    )
    own, library, version = json.loads(run([workspace["python"], "-c", probe], workspace["project"]).stdout)
    assert Path(own) == workspace["project"] / "components" / "__init__.py"
    assert "site-packages" in library and str(ROOT) not in library
    import llmstack_k8s

    assert version == llmstack_k8s.__version__


def test_the_consumers_own_tests_pass_with_the_testing_helper(workspace):
    out = run([workspace["python"], "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], workspace["project"])
    assert "1 passed" in out.stdout, out.stdout


MISTAKES = {
    # file name: (edit of __main__.py, what the checkers must name)
    "typo_key.py": (('"max_model_len": 8192', '"max_model_lenn": 8192'), "max_model_lenn"),
    "wrong_type.py": (('"replicas": 2', '"replicas": "2"'), "replicas"),
}


@pytest.fixture(scope="module")
def checked(workspace):
    """The program, the README's test, the library's examples, and two broken copies of the program."""
    project = workspace["project"]
    program = (project / "__main__.py").read_text()
    for name, ((old, new), _) in MISTAKES.items():
        assert old in program, f"the README program no longer contains {old!r}"
        (project / name).write_text(program.replace(old, new))
    examples = project / "examples"
    shutil.copytree(ROOT / "examples" / "python", examples, dirs_exist_ok=True)
    return project, ["__main__.py", "components", "tests", "examples", *MISTAKES]


ERROR = re.compile(r"^\s*(?P<path>\S+?\.py):\d+(?::\d+)?:? -? ?error: ")


def _errors_by_target(output: str, project: Path) -> dict[str, list[str]]:
    """Errors (with pyright's indented continuation lines) keyed by the first part of the path
    relative to the project: a file name or a folder name."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        match = ERROR.match(line)
        if match:
            path = Path(match.group("path"))
            rel = (path if path.is_absolute() else project / path).relative_to(project)
            current = found.setdefault(rel.parts[0], [])
            current.append(line.strip())
        elif current and line[:1].isspace():  # pyright's continuation lines (indented, some with NBSPs)
            current[-1] += " " + line.strip()
        else:
            current = None
    return found


def _assert_checker(name: str, output: str, project: Path) -> None:
    errors = _errors_by_target(output, project)
    for f, ((_, new), key) in MISTAKES.items():
        line = next(i for i, text in enumerate((project / f).read_text().splitlines(), 1) if new in text)
        found = errors.get(f, [])
        # The message names the key (mypy, pyright for a typo) or points at its line (pyright's
        # "Literal['2'] is not assignable to int").
        assert len(found) == 1 and (key in found[0] or f"{f}:{line}:" in found[0]), (
            f"{name}: expected one error about {key} (line {line}) in {f}:\n{output}"
        )
    clean = {f: e for f, e in errors.items() if f not in MISTAKES}
    assert not clean, f"{name} reports errors in the correct program and the examples:\n{output}"


def test_mypy_reports_the_typo_and_the_wrong_type_and_nothing_else(workspace, checked):
    project, targets = checked
    out = run(
        [
            BIN / "mypy",
            "--python-executable",
            workspace["python"],
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            "--check-untyped-defs",
            *targets,
        ],
        project,
        check=False,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    _assert_checker("mypy", out.stdout, project)


def test_pyright_reports_the_typo_and_the_wrong_type_and_nothing_else(workspace, checked):
    project, targets = checked
    out = run([BIN / "pyright", "--pythonpath", workspace["python"], *targets], project, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    _assert_checker("pyright", out.stdout, project)


def test_plugin_folder_installs_and_serves_the_schema_as_pulumi_package_add_would(workspace):
    """Pulumi's Python language host, for a plugin: `python -m venv venv` and
    `pip install -r requirements.txt` in the plugin folder, then `venv/bin/python <folder> <engine>`."""
    plugin_dir = workspace["repo"] / "provider"
    python = fresh_venv(plugin_dir / "venv", cwd=plugin_dir)
    run([python, "-m", "pip", "install", "-q", "-r", "requirements.txt"], plugin_dir)
    with plugin(str(python), plugin_dir, cwd=plugin_dir) as stub:
        schema = get_schema(stub)
    assert not list(metaschema_validator().iter_errors(schema))
    import llmstack_k8s

    assert schema["version"] == llmstack_k8s.__version__
    assert "llmstack:index:VllmService" in schema["resources"]
