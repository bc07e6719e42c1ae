"""Another Pulumi project can `pip install` this repository and use the components, and the
README's example of doing so runs."""

import runpy
import subprocess
import sys
import sysconfig

import pulumi

from conftest import ROOT
from llmstack_k8s._core.testing import RecordingMocks, to_manifest
from support import consumer_project


def test_built_wheel_is_complete_and_importable_outside_the_repo(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(wheel_dir)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheel_dir.glob("llmstack_k8s-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import llmstack_k8s, llmstack_k8s.observability.observability as o, llmstack_k8s.testing, llmstack_k8s.rules "
        "as r;"
        "import llmstack_k8s.serving.vllm_flags as vf;"
        f"assert llmstack_k8s.__file__.startswith({str(target)!r}), llmstack_k8s.__file__;"
        "assert {'vllm', 'gpu'} <= {n.split('.')[0] for n in o.dashboards()};"
        "assert vf.load_table().dtype_choices;"
        "assert r.check_all([]) == [] and r.knative_traffic.__module__ == 'llmstack_k8s.rules.knative';"
        "print(sorted(llmstack_k8s.__all__))"
    )
    # Run from an empty directory so the repository's own folders cannot be imported instead.
    env = {"PYTHONPATH": f"{target}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "VllmService" in out.stdout and "ModelCache" in out.stdout
    # Only the library: no generic top-level names a consumer's own packages would clash with,
    # and the stack program (stacks/) is not shipped. py.typed makes type checkers read the args.
    top_level = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")} - {"__pycache__"}
    assert top_level == {"llmstack_k8s"}, top_level
    assert (target / "llmstack_k8s" / "py.typed").exists()
    # Every module and data file of the sources is in the wheel (a subpackage missing from
    # pyproject's package list would be left out without an error).
    sources = {
        p.relative_to(ROOT / "components")
        for p in (ROOT / "components").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    shipped = {
        p.relative_to(target / "llmstack_k8s")
        for p in (target / "llmstack_k8s").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert sources <= shipped, sorted(map(str, sources - shipped))


def test_readme_import_example_runs(tmp_path):
    """The README's consumer project (its own ``components`` package beside ``llmstack_k8s``) runs;
    tests/contract/test_consumer.py runs it from a git install in a fresh venv, with its tests and type checkers."""
    project = consumer_project.write(tmp_path)
    assert {"__main__.py", "components/__init__.py", "tests/test_program.py"} <= set(consumer_project.files())
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="other", stack="dev", preview=True)
    # The repository's components/ (the library's sources) must not stand in for the project's own.
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "components" or k.startswith("components.")}
    sys.path.insert(0, str(project))
    try:

        @pulumi.runtime.test
        def run():
            runpy.run_path(str(project / "__main__.py"), run_name="__main__")

        run()
        assert sys.modules["components"].__file__ == str(project / "components" / "__init__.py")
    finally:
        sys.path.remove(str(project))
        for k in [k for k in sys.modules if k == "components" or k.startswith("components.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    kinds = {to_manifest(r)["kind"] for r in mocks.registrations if r.custom and r.type.startswith("kubernetes:")}
    assert {"PersistentVolumeClaim", "Job", "Deployment", "Service"} <= kinds
    assert any(r.name == "ml-qwen" for r in mocks.registrations), "the project's own naming rule was not used"
