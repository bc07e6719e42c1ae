"""Run the real Pulumi CLI on a stack of this project, offline: local file backend, the passphrase
secrets provider, plugins from the toolchain (``.local-cluster/bin``), never a download.

Used by ``make demo``, the cluster tests and ``make bench-cluster``:

    project = Project.of_repository("dev")           # this checkout, Pulumi.dev.yaml
    project = Project.copy(tmp, "dev-knative", text)  # a generated stack file beside the program
    project.up(); project.preview(expect_no_changes=True); project.destroy()
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import local_cluster
import toolchain

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".local-cluster"
BIN = STATE / "bin"
#: The passphrase the committed stack files' secrets are encrypted with (an example: set your own with
#: `pulumi stack change-secrets-provider` before real use).
EXAMPLE_PASSPHRASE = "llmstack-example-passphrase"
#: The program's files a copied project links to (the stack file is the copy's own).
PROGRAM = ("__main__.py", "Pulumi.yaml", "components", "stacks", ".venv")


class PulumiError(RuntimeError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess):
        self.result = result
        tail = (result.stdout[-6000:] + "\n" + result.stderr[-4000:]).strip()
        super().__init__(f"pulumi {' '.join(args)} exited {result.returncode}:\n{tail}")


def environment(backend: Path = STATE / "state", home: Path = STATE / "pulumi-home") -> dict[str, str]:
    """What every pulumi command here runs with: no update check, no plugin download, local state."""
    backend.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PULUMI_HOME": str(home),
            "PULUMI_BACKEND_URL": f"file://{backend}",
            "PULUMI_CONFIG_PASSPHRASE": os.environ.get("PULUMI_CONFIG_PASSPHRASE", EXAMPLE_PASSPHRASE),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "KUBECONFIG": str(local_cluster.KUBECONFIG),
            "NO_COLOR": "1",
            # Providers come from PULUMI_HOME at the SDKs' exact versions (``install_plugins``), never PATH.
            "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
        }
    )
    return env


def install_plugins(env: dict[str, str]) -> None:
    """Register the toolchain's provider binaries as plugins at the versions the Python SDKs ask for,
    the way ``pulumi plugin install --file`` installs a provider built by hand."""
    for name, version in (
        ("kubernetes", toolchain.V.PULUMI_KUBERNETES_VERSION),
        ("random", toolchain.V.PULUMI_RANDOM_VERSION),
    ):
        binary = BIN / f"pulumi-resource-{name}"
        if not binary.exists():
            continue
        if (Path(env["PULUMI_HOME"]) / "plugins" / f"resource-{name}-v{version}").exists():
            continue
        subprocess.run(
            [str(BIN / "pulumi"), "plugin", "install", "resource", name, version, "--file", str(binary)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )


@dataclass
class Project:
    """A directory holding the program and one stack file, and the stack's name."""

    directory: Path
    stack: str
    env: dict[str, str] = field(default_factory=environment)
    log: list[tuple[str, float]] = field(default_factory=list)

    @classmethod
    def of_repository(cls, stack: str) -> Project:
        return cls(ROOT, stack)

    @classmethod
    def copy(
        cls,
        directory: Path,
        stack: str,
        stack_file: str,
        files: tuple[str, ...] = PROGRAM,
        env: dict[str, str] | None = None,
    ) -> Project:
        """A project in ``directory`` whose program files link to this checkout's."""
        directory.mkdir(parents=True, exist_ok=True)
        for name in files:
            link = directory / name
            if not link.exists():
                link.symlink_to(ROOT / name)
        (directory / f"Pulumi.{stack}.yaml").write_text(stack_file)
        return cls(directory, stack, env=env) if env is not None else cls(directory, stack)

    def run(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
        started = time.monotonic()
        result = subprocess.run(
            [str(BIN / "pulumi"), *args, "--non-interactive"],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.log.append((" ".join(args[:2]), time.monotonic() - started))
        if check and result.returncode != 0:
            raise PulumiError(list(args), result)
        return result

    def select(self) -> None:
        """Select the stack, creating it in the backend on first use (the stack file keeps its config)."""
        install_plugins(self.env)
        if self.run("stack", "select", self.stack, check=False).returncode != 0:
            self.run("stack", "init", self.stack)

    def preview(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("preview", "--stack", self.stack, "--diff", *extra, check=check)

    def changes(self, *extra: str) -> list[tuple[str, str, str]]:
        """What a preview would do: ``(op, type, name)`` of every step that is not ``same``."""
        result = self.run("preview", "--stack", self.stack, "--json", *extra)
        steps = json.loads(result.stdout).get("steps") or []
        out = []
        for step in steps:
            if step.get("op") == "same":
                continue
            urn = step["urn"]
            out.append((step["op"], urn.split("::")[2].split("$")[-1], urn.split("::")[3]))
        return sorted(out)

    def up(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("up", "--stack", self.stack, "--yes", "--skip-preview", *extra, check=check)

    def destroy(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("destroy", "--stack", self.stack, "--yes", "--skip-preview", *extra, check=check)

    def remove(self) -> None:
        self.run("stack", "rm", self.stack, "--yes", "--force", check=False)

    def outputs(self, show_secrets: bool = False) -> dict:
        args = ["stack", "output", "--stack", self.stack, "--json"] + (["--show-secrets"] if show_secrets else [])
        return json.loads(self.run(*args).stdout or "{}")

    def resources(self) -> list[dict]:
        """The stack's state: every resource the engine recorded (``pulumi stack export``)."""
        state = json.loads(self.run("stack", "export", "--stack", self.stack).stdout)
        return state["deployment"].get("resources") or []


def available() -> bool:
    return all((BIN / name).exists() for name in ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes"))


def reset_backend(backend: Path = STATE / "state") -> None:
    shutil.rmtree(backend, ignore_errors=True)
