"""Another Pulumi project can `pip install` this repository and use the components, and the
README's example of doing so runs."""

import re
import subprocess
import sys
import sysconfig

import pulumi
from conftest import ROOT

from stacks.render import RecordingMocks, to_manifest


def test_built_wheel_is_complete_and_importable_outside_the_repo(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(wheel_dir)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = wheel_dir.glob("llmstack-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    probe = (
        "import components, components.observability as o, stacks.render;"
        "assert components.__file__.startswith(%r), components.__file__;"
        "assert {'vllm', 'gpu'} <= {n.split('.')[0] for n in o.dashboards()};"
        "print(sorted(components.__all__))" % str(target)
    )
    # Run from an empty directory so the repository's own folders cannot be imported instead.
    env = {"PYTHONPATH": f"{target}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "VllmService" in out.stdout and "ModelCache" in out.stdout


def test_readme_import_example_runs():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Using the components from another Pulumi project"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="other", stack="dev", preview=True)

    @pulumi.runtime.test
    def run():
        exec(compile(code, "README.md", "exec"), {})

    run()
    kinds = {to_manifest(r)["kind"] for r in mocks.registrations if r.custom and r.type.startswith("kubernetes:")}
    assert {"PersistentVolumeClaim", "Job", "Deployment", "Service"} <= kinds
