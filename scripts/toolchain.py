#!/usr/bin/env python3
"""Build the real-engine toolchain from Go modules: the Pulumi CLI and its Python and Node.js language
hosts, the kubernetes and random providers, the Kubernetes control plane (kube-apiserver, kube-controller-manager,
kube-scheduler, kubectl), etcd and kwok.

No download site is needed: every binary comes from the Go module proxy (or, for the two language hosts,
from upstream source vendored in third_party/), pinned in ``components/versions.py``. Each tool is built
once into ``$LLMSTACK_TOOLCHAIN_CACHE`` (default ``~/.cache/llmstack-toolchain``) under a stamp of its
pins and of the Go version, so a warm machine skips it; ``.local-cluster/bin`` then links to the cached
binaries.

    python3 scripts/toolchain.py              # build what is missing, link .local-cluster/bin
    python3 scripts/toolchain.py --list       # what is cached, what would be built
    python3 scripts/toolchain.py pulumi etcd  # only these tools

A tool the user already has is used instead of building it: ``pulumi`` on PATH (with
``LLMSTACK_USE_PATH_PULUMI=1``), or ``LLMSTACK_KUBE_BIN=/dir`` holding kube-apiserver,
kube-controller-manager, kube-scheduler and kubectl, ``LLMSTACK_ETCD=/path/etcd``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".local-cluster" / "bin"
CACHE = Path(os.environ.get("LLMSTACK_TOOLCHAIN_CACHE", Path.home() / ".cache" / "llmstack-toolchain"))


def _versions():
    spec = importlib.util.spec_from_file_location("_llmstack_versions", ROOT / "components" / "versions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


V = _versions()
CLIPBOARD_FORK = "github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"


@dataclass
class Tool:
    """One Go build: a wrapper module (requires + replaces) and the packages it turns into binaries."""

    name: str
    requires: dict[str, str]
    packages: dict[str, str]  # binary name -> package path
    replaces: list[str] = field(default_factory=list)
    ldflags: str = ""
    source: Path | None = None  # vendored main package (its own go.mod/go.sum) instead of a wrapper
    extra: dict[str, str] = field(default_factory=dict)  # file in a module -> name in bin/ (made executable)
    prepare: str | None = None  # name of a function that prepares a copied module (provider codegen)

    def stamp(self) -> str:
        go = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()
        blob = json.dumps([self.requires, self.packages, self.replaces, self.ldflags, self.extra, go], sort_keys=True)
        if self.source is not None:
            for path in sorted(p for p in self.source.rglob("*") if p.is_file()):
                blob += str(path.relative_to(self.source)) + hashlib.sha256(path.read_bytes()).hexdigest()
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def directory(self) -> Path:
        return CACHE / f"{self.name}-{self.stamp()}"


def _k8s_staging(version: str) -> list[str]:
    """The wrapper's replaces for k8s.io/kubernetes' staging modules (``v0.<minor>.<patch>`` releases)."""
    gomod = _download("k8s.io/kubernetes", f"v{version}")["GoMod"]
    staged = [line.split()[0] for line in Path(gomod).read_text().splitlines() if "=> ./staging/" in line]
    return [f"{module} => {module} v0.{version.split('.', 1)[1]}" for module in staged]


def _k8s_ldflags(version: str) -> str:
    major, minor, _ = version.split(".")
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion=v{version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return "-s -w " + " ".join(flags)


def _module_replaces(module: str, version: str) -> list[str]:
    """A module's own replace directives (each pins another module's version), for a wrapper that builds its
    commands: a dependency's replaces do not apply to the module that requires it."""
    gomod = Path(_download(module, version)["GoMod"]).read_text()
    block = gomod.split("\nreplace (", 1)[1].split("\n)", 1)[0] if "\nreplace (" in gomod else ""
    lines = [line.split("//")[0].strip() for line in block.splitlines()]
    lines += [
        line[len("replace ") :].strip()
        for line in gomod.splitlines()
        if line.startswith("replace ") and "(" not in line
    ]
    return [line for line in lines if "=>" in line and not line.split("=>")[1].strip().startswith(".")]


def tools() -> list[Tool]:
    pv = f"v{V.PULUMI_VERSION}"
    pulumi_stamp = f"-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={pv}"
    pulumi_mods = {"github.com/pulumi/pulumi/pkg/v3": pv, "github.com/pulumi/pulumi/sdk/v3": pv}
    sdk = f"github.com/pulumi/pulumi/sdk/v3@{pv}"
    k8s = V.KUBERNETES_VERSION
    kube_provider = "github.com/pulumi/pulumi-kubernetes/provider/v4"
    keda = "github.com/kedacore/keda/v2"
    return [
        Tool(
            "pulumi",
            pulumi_mods,
            {"pulumi": "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"},
            replaces=[CLIPBOARD_FORK],
            ldflags=pulumi_stamp,
        ),
        Tool(
            "pulumi-language-python",
            pulumi_mods,
            {"pulumi-language-python": "."},
            ldflags=pulumi_stamp,
            source=ROOT / "third_party" / "pulumi-language-python",
            extra={
                f"{sdk}/python/cmd/pulumi-language-python-exec": "pulumi-language-python-exec",
                f"{sdk}/python/dist/pulumi-resource-pulumi-python": "pulumi-resource-pulumi-python",
            },
        ),
        Tool(
            "pulumi-language-nodejs",
            pulumi_mods,
            {"pulumi-language-nodejs": "."},
            ldflags=pulumi_stamp,
            source=ROOT / "third_party" / "pulumi-language-nodejs",
        ),
        Tool(
            "pulumi-resource-kubernetes",
            {kube_provider: V.PULUMI_KUBERNETES_PROVIDER_MODULE},
            {"pulumi-resource-kubernetes": "./cmd/pulumi-resource-kubernetes"},
            ldflags=(
                "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version="
                f"{V.PULUMI_KUBERNETES_VERSION}"
            ),
            prepare="kubernetes_provider",
        ),
        # Vendored (the proxy serves no pulumi-random provider module); its go.mod pins every dependency.
        Tool(
            "pulumi-resource-random",
            {},
            {"pulumi-resource-random": "./cmd/pulumi-resource-random"},
            ldflags=(
                f"-s -w -X github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version={V.PULUMI_RANDOM_VERSION}"
            ),
            source=ROOT / "third_party" / "pulumi-resource-random",
        ),
        Tool(
            "kubernetes",
            {"k8s.io/kubernetes": f"v{k8s}"},
            {
                b: f"k8s.io/kubernetes/cmd/{b}"
                for b in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
            },
            replaces=_k8s_staging(k8s),
            ldflags=_k8s_ldflags(k8s),
        ),
        Tool(
            "etcd",
            {"go.etcd.io/etcd/server/v3": f"v{V.ETCD_VERSION}"},
            {"etcd": "go.etcd.io/etcd/server/v3"},
            ldflags="-s -w",
        ),
        Tool(
            "kwok",
            {"sigs.k8s.io/kwok": f"v{V.KWOK_VERSION}"},
            {"kwok": "sigs.k8s.io/kwok/cmd/kwok", "kwokctl": "sigs.k8s.io/kwok/cmd/kwokctl"},
            ldflags="-s -w",
        ),
        # The operator of the KEDA chart the stacks install (the chart's appVersion is its version), run as a
        # process against the local API server: ScaledObjects become real HPAs.
        Tool(
            "keda",
            {keda: f"v{V.KEDA.version}"},
            {"keda-operator": f"{keda}/cmd/operator"},
            replaces=_module_replaces(keda, f"v{V.KEDA.version}"),
            ldflags=f"-s -w -X {keda}/version.Version={V.KEDA.version}",
        ),
    ]


def _go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    full = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", **(env or {})}
    print(f"  $ go {' '.join(args)[:160]}", flush=True)
    subprocess.run(["go", *args], cwd=cwd, env=full, check=True)


def _download(module: str, version: str) -> dict:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    info = json.loads(out.stdout or "{}")
    if out.returncode != 0 or "Error" in info:
        raise SystemExit(
            f"toolchain: the Go module proxy does not serve {module}@{version}: "
            f"{info.get('Error') or out.stderr.strip()}"
        )
    return info


def _copy_module(module: str, version: str, into: Path) -> Path:
    src = Path(_download(module, version)["Dir"])
    shutil.copytree(src, into, dirs_exist_ok=True)
    for path in [into, *into.rglob("*")]:  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    return into


def prepare_kubernetes_provider(work: Path) -> None:
    """The provider's go.mod points its SDK at ../sdk and embeds two generated JSON files (git-ignored
    upstream, so not in the module zip): point the SDK at the same release and generate them."""
    _copy_module("github.com/pulumi/pulumi-kubernetes/sdk/v4", f"v{V.PULUMI_KUBERNETES_VERSION}", work.parent / "sdk")
    cmd = work / "cmd" / "pulumi-resource-kubernetes"
    _go(["run", "generate.go"], cwd=cmd, env={"VERSION": V.PULUMI_KUBERNETES_VERSION})


def build(tool: Tool) -> Path:
    target = tool.directory()
    if (target / ".complete").exists():
        return target
    print(f"toolchain: building {tool.name} -> {target}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"llmstack-{tool.name}-") as tmp:
        work = Path(tmp) / "src"
        if tool.prepare:
            ((module, version),) = tool.requires.items()
            _copy_module(module, version, work)
            globals()[f"prepare_{tool.prepare}"](work)
        elif tool.source is not None:
            shutil.copytree(tool.source, work)
            for module, version in tool.requires.items():
                _go(["mod", "edit", f"-require={module}@{version}"], cwd=work)
            if tool.requires:
                _go(["mod", "tidy"], cwd=work)
        else:
            work.mkdir()
            lines = [f"module llmstack.local/toolchain/{tool.name}", "", "go 1.26.0", ""]
            lines += [f"require {m} {v}" for m, v in tool.requires.items()]
            lines += [f"replace {r}" for r in tool.replaces]
            (work / "go.mod").write_text("\n".join(lines) + "\n")
        out = Path(tmp) / "bin"
        out.mkdir()
        packages = list(tool.packages.values())
        if len(packages) == 1:
            (binary,) = tool.packages
            _go(["build", "-trimpath", f"-ldflags={tool.ldflags}", "-o", str(out / binary), packages[0]], cwd=work)
        else:
            _go(["build", "-trimpath", f"-ldflags={tool.ldflags}", "-o", str(out) + "/", *packages], cwd=work)
        for ref, name in tool.extra.items():
            module_version, _, rel = ref.partition("/python/")
            module, version = module_version.split("@")
            shutil.copy(Path(_download(module, version)["Dir"]) / "python" / rel, out / name)
        for path in out.iterdir():
            path.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(out, target / "bin")
    (target / ".complete").write_text(f"{time.monotonic() - started:.0f} s\n")
    print(f"toolchain: {tool.name} built in {time.monotonic() - started:.0f} s", flush=True)
    return target


def link(tool: Tool, built: Path) -> None:
    """Hard links (a copy across file systems), not symlinks: the CLI looks for its language hosts next to
    its own resolved path, so they must sit in the same folder as ``pulumi`` to count as bundled."""
    BIN.mkdir(parents=True, exist_ok=True)
    for path in (built / "bin").iterdir():
        dest = BIN / path.name
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)


def _ambient(tool: Tool) -> bool:
    """Link a tool the user already has instead of building it."""
    sources: dict[str, Path] = {}
    if tool.name == "kubernetes" and os.environ.get("LLMSTACK_KUBE_BIN"):
        sources = {b: Path(os.environ["LLMSTACK_KUBE_BIN"]) / b for b in tool.packages}
    elif tool.name == "etcd" and os.environ.get("LLMSTACK_ETCD"):
        sources = {"etcd": Path(os.environ["LLMSTACK_ETCD"])}
    elif tool.name == "pulumi" and os.environ.get("LLMSTACK_USE_PATH_PULUMI") and shutil.which("pulumi"):
        sources = {"pulumi": Path(shutil.which("pulumi"))}
    if not sources:
        return False
    BIN.mkdir(parents=True, exist_ok=True)
    for name, src in sources.items():
        if not src.exists():
            raise SystemExit(f"toolchain: {src} does not exist ({tool.name} from the environment)")
        dest = BIN / name
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        dest.symlink_to(src.resolve())
    print(f"toolchain: {tool.name} from the environment ({', '.join(map(str, sources.values()))})")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="tools to build (default: all)")
    parser.add_argument("--list", action="store_true", help="print each tool, its stamp and whether it is cached")
    args = parser.parse_args(argv)
    selected = [t for t in tools() if not args.names or t.name in args.names]
    unknown = set(args.names) - {t.name for t in tools()}
    if unknown:
        parser.error(f"unknown tool(s) {sorted(unknown)}; known: {[t.name for t in tools()]}")
    if args.list:
        for tool in selected:
            state = "cached" if (tool.directory() / ".complete").exists() else "missing"
            print(f"{tool.name:28} {tool.directory()}  {state}")
        return 0
    for tool in selected:
        if not _ambient(tool):
            link(tool, build(tool))
    return 0


if __name__ == "__main__":
    sys.exit(main())
