"""Charts from a directory or a mirror (air-gapped clusters): every component that installs a pinned
chart takes ``chart_source`` and renders its releases from a local package, an HTTP(S) chart
repository mirror or an ``oci://`` registry mirror, names and versions always from the pins; the stack
key ``charts`` maps onto it (a relative directory from the project directory), bad settings are refused
before anything is registered, and the offline chart expansion still finds every chart."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest
import yaml

from conftest import ROOT, assert_refused, render_with
from llmstack_k8s import versions
from llmstack_k8s._core.helm import chart_reference
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.cluster.gpu_node_pool import GpuNodePool
from llmstack_k8s.cluster.knative_serving import KnativeServing
from llmstack_k8s.cluster.multi_node_controller import LeaderWorkerSetController
from llmstack_k8s.observability.observability import Observability
from llmstack_k8s.scaling.gpu_autoscaling import GpuAutoscaling
from stack.test_cross_objects import render_with_config
from stacks.config.chart_source import installed_charts
from stacks.tools import charts
from stacks.tools import render as render_mod
from unit.test_component_args import WORKLOAD  # one workload for every component-level test

FIXTURES = ROOT / "tests" / "fixtures" / "charts"
HTTP_MIRROR = "https://charts.example.internal/llmstack"
OCI_MIRROR = "oci://registry.example.internal/charts"
#: Every component that installs a pinned chart, with args that install its charts, and those pins.
COMPONENTS = {
    "GpuNodePool devicePlugin": (GpuNodePool, {"install": "devicePlugin"}, [versions.NVIDIA_DEVICE_PLUGIN]),
    "GpuNodePool gpuOperator": (GpuNodePool, {"install": "gpuOperator"}, [versions.GPU_OPERATOR]),
    "GpuAutoscaling": (
        GpuAutoscaling,
        {"workloads": [WORKLOAD], "http_add_on": True},
        [versions.KEDA, versions.KEDA_HTTP_ADDON],
    ),
    "KnativeServing": (KnativeServing, {}, [versions.KNATIVE_OPERATOR]),
    "LeaderWorkerSetController": (LeaderWorkerSetController, {}, [versions.LWS]),
    "Observability": (
        Observability,
        {"models": [], "serving_namespaces": ["llm"]},
        [versions.KUBE_PROMETHEUS_STACK, versions.DCGM_EXPORTER],
    ),
}


def package_name(pin: versions.Chart) -> str:
    """Helm's file name of a packaged pin: the version without a leading v."""
    return f"{pin.chart}-{pin.version.removeprefix('v')}.tgz"


@pytest.fixture
def chart_dir(tmp_path) -> Path:
    """A directory holding every pinned chart: the fixture packages, and a stand-in for the one pin
    without a fixture (the GPU operator; its content is never read under mocks)."""
    d = tmp_path / "charts"
    d.mkdir()
    for pin in charts.pinned_charts():
        src = FIXTURES / package_name(pin)
        if src.exists():
            (d / src.name).symlink_to(src)
        else:
            (d / package_name(pin)).write_bytes(b"")
    return d


@pytest.fixture
def mocks():
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="llmstack", stack="unit", preview=True)
    return m


def build(mocks, cls, args) -> list[dict]:
    pulumi.runtime.test(lambda: cls("x", args).urn)()
    return mocks.helm_releases()


def expected(pin: versions.Chart, mode: str, directory: Path | None = None) -> dict:
    """What the release of ``pin`` says about its chart in each mode (written out, not from helm.py)."""
    if mode == "upstream":
        if pin.repo.startswith("oci://"):
            return {"chart": f"{pin.repo}/{pin.chart}", "version": pin.version}
        return {"chart": pin.chart, "version": pin.version, "repositoryOpts": {"repo": pin.repo}}
    if mode == "directory":
        return {"chart": str(directory / package_name(pin)), "version": pin.version}
    if mode == "http":
        return {"chart": pin.chart, "version": pin.version, "repositoryOpts": {"repo": HTTP_MIRROR}}
    return {"chart": f"{OCI_MIRROR}/{pin.chart}", "version": pin.version}


def source_of(mode: str, directory: Path) -> dict:
    return {
        "directory": {"directory": str(directory)},
        "http": {"mirror": HTTP_MIRROR},
        "oci": {"mirror": OCI_MIRROR + "/"},
        "upstream": {},
    }[mode]


def chart_keys(release: dict) -> dict:
    return {k: release[k] for k in ("chart", "version", "repositoryOpts") if k in release}


# --- the components -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["upstream", "directory", "http", "oci"])
@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_every_chart_installing_component_renders_its_releases_from_the_source(mocks, chart_dir, component, mode):
    cls, args, pins = COMPONENTS[component]
    source = source_of(mode, chart_dir)
    releases = build(mocks, cls, {**args, **({"chart_source": source} if source else {})})
    assert sorted((chart_keys(r) for r in releases), key=json.dumps) == sorted(
        (expected(p, mode, chart_dir) for p in pins), key=json.dumps
    )
    if mode == "directory":
        for r in releases:
            assert Path(r["chart"]).is_absolute() and Path(r["chart"]).is_file()


@pytest.mark.parametrize("source", [{"mirror": OCI_MIRROR}, {"directory": str(FIXTURES)}], ids=["oci", "directory"])
def test_other_languages_pass_chart_source_as_chartSource(source):
    """Through the provider host (camelCase on the wire) the releases are the ones Python renders."""
    from contract.test_wire_construct import _python, construct_from_wire, to_wire
    from contract.test_wire_construct import _render as render_component

    args = {"namespace": "lws-system", "chart_source": source}
    from_wire = render_component(lambda: construct_from_wire("LeaderWorkerSetController", to_wire(args)))
    from_python = render_component(lambda: _python("LeaderWorkerSetController", args))
    assert from_wire.helm_releases == from_python.helm_releases
    assert chart_keys(from_wire.helm_releases[0]) == expected(
        versions.LWS, "oci" if "mirror" in source else "directory", FIXTURES
    )


def test_a_v_pin_is_found_under_helms_file_name(chart_dir):
    """Knative's operator is pinned as v1.23.0 and packaged as knative-operator-1.23.0.tgz."""
    pin = versions.Chart("https://example.invalid", "knative-operator", "v1.23.0")
    assert chart_reference(pin, {"directory": str(chart_dir)})["chart"] == str(
        chart_dir / "knative-operator-1.23.0.tgz"
    )
    # A file named as the pin spells it (what `helm pull` saves when the repository names it so) is taken too.
    (chart_dir / "knative-operator-1.23.0.tgz").unlink()
    (chart_dir / "knative-operator-v1.23.0.tgz").write_bytes(b"")
    assert chart_reference(pin, {"directory": str(chart_dir)})["chart"] == str(
        chart_dir / "knative-operator-v1.23.0.tgz"
    )


def _refused(mocks, cls, args, source, path, words):
    with pytest.raises(ComponentArgsError) as err:
        build(mocks, cls, {**args, "chart_source": source})
    assert err.value.path == path and words in str(err.value), str(err.value)
    assert mocks.registrations == [], "registered before refusing"


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_components_refuse_a_directory_without_their_packages(mocks, tmp_path, component):
    cls, args, pins = COMPONENTS[component]
    (tmp_path / "unrelated-1.0.0.tgz").write_bytes(b"")
    with pytest.raises(ComponentArgsError) as err:
        build(mocks, cls, {**args, "chart_source": {"directory": str(tmp_path)}})
    assert err.value.path == "chart_source.directory"
    for pin in pins:
        assert package_name(pin) in str(err.value) and f"{pin.chart} {pin.version}" in str(err.value)
        assert "helm pull" in str(err.value)
    assert mocks.registrations == []


@pytest.mark.parametrize(
    "source,path,words",
    [
        ({"directory": str(FIXTURES), "mirror": HTTP_MIRROR}, "chart_source.mirror", "not both"),
        ({"directory": "tests/fixtures/charts"}, "chart_source.directory", "not an absolute path"),
        ({"directory": "/nonexistent/charts"}, "chart_source.directory", "does not exist"),
        ({"mirror": "charts.example.internal"}, "chart_source.mirror", "neither an HTTP(S) chart repository URL"),
        ({"mirror": "ftp://charts.example.internal"}, "chart_source.mirror", "neither an HTTP(S) chart repository URL"),
        ({"mirror": "oci://"}, "chart_source.mirror", "neither"),
        ({"mirrors": HTTP_MIRROR}, "chart_source.mirrors", "did you mean mirror?"),
    ],
)
def test_components_refuse_a_bad_source_before_registering(mocks, source, path, words):
    _refused(mocks, KnativeServing, {}, source, path, words)


def test_the_source_is_plain(mocks):
    """It decides the release's shape: an Output cannot be known at preview."""
    _refused(
        mocks,
        LeaderWorkerSetController,
        {},
        {"mirror": pulumi.Output.from_input(OCI_MIRROR)},
        "chart_source.mirror",
        "plain value known at preview",
    )


def test_a_component_checks_only_the_charts_it_installs(mocks, tmp_path):
    """The fixtures have no GPU operator package: a device-plugin pool is fine with them, an operator
    pool is not; a pool that installs nothing needs no package at all."""
    build(mocks, GpuNodePool, {"install": "devicePlugin", "chart_source": {"directory": str(FIXTURES)}})
    build(mocks, GpuNodePool, {"install": "existing", "chart_source": {"directory": str(tmp_path)}})
    with pytest.raises(ComponentArgsError, match=package_name(versions.GPU_OPERATOR)):
        build(mocks, GpuNodePool, {"install": "gpuOperator", "chart_source": {"directory": str(FIXTURES)}})


# --- the stack ------------------------------------------------------------------------------------


def dev_with(charts_key=None) -> render_mod.Rendered:
    project, config, secrets = render_mod.stack_config_env("dev")
    if charts_key is not None:
        config[f"{project}:charts"] = json.dumps(charts_key)
    return render_mod.run_program(project, "dev", config, secrets)


def wide_stack(**keys) -> dict:
    """A model wider than a node: the stack installs the LeaderWorkerSet controller."""
    from stack.test_multi_node import stack

    return {**stack(), **keys}


@pytest.mark.parametrize("mode", ["directory", "http", "oci"])
def test_the_stack_key_reaches_every_release(mode):
    key = {"directory": {"directory": str(FIXTURES)}, "http": {"mirror": HTTP_MIRROR}, "oci": {"mirror": OCI_MIRROR}}[
        mode
    ]
    upstream = dev_with().helm_releases
    local = dev_with(key).helm_releases
    releases = local + render_with(wide_stack(charts=key)).helm_releases
    by_chart = {p.chart: p for p in charts.pinned_charts()}
    seen = set()
    for r in releases:
        name = Path(r["chart"]).name.rsplit("-", 1)[0] if mode == "directory" else r["chart"].rsplit("/", 1)[-1]
        pin = by_chart[name]
        seen.add(pin.chart)
        assert chart_keys(r) == expected(pin, mode, FIXTURES), r["name"]
    # dev installs six charts, the wide model the seventh; only the source changed, not the values.
    assert seen == {p.chart for p in charts.pinned_charts()} - {versions.GPU_OPERATOR.chart}

    def rest(rs):
        return sorted(
            ({k: v for k, v in r.items() if k not in ("chart", "repositoryOpts")} for r in rs), key=json.dumps
        )

    assert rest(local) == rest(upstream)


def test_a_relative_directory_is_relative_to_the_project_directory():
    rendered = render_with({**wide_stack(), "charts": {"directory": "tests/fixtures/charts"}})
    assert {r["chart"] for r in rendered.helm_releases} >= {str(FIXTURES / package_name(versions.LWS))}
    assert all(Path(r["chart"]).is_absolute() for r in rendered.helm_releases)


def test_the_default_is_the_pins_upstream_repositories():
    for r in dev_with().helm_releases + render_with(wide_stack()).helm_releases:
        pin = next(p for p in charts.pinned_charts() if r["chart"].rsplit("/", 1)[-1] == p.chart)
        assert chart_keys(r) == expected(pin, "upstream")


STACK_CASES = {
    "directory and mirror": (
        {"directory": str(FIXTURES), "mirror": HTTP_MIRROR},
        "llmstack:charts: both directory and mirror are set",
    ),
    "missing directory": (
        {"directory": "no-such-charts"},
        f"llmstack:charts.directory: {ROOT / 'no-such-charts'} (relative to the project directory",
    ),
    "missing absolute directory": (
        {"directory": "/nonexistent/charts"},
        "llmstack:charts.directory: /nonexistent/charts does not exist",
    ),
    "mirror without a scheme": (
        {"mirror": "charts.example.internal"},
        "llmstack:charts.mirror: 'charts.example.internal' is neither an HTTP(S) chart repository URL",
    ),
    "mirror of another scheme": ({"mirror": "s3://charts"}, "llmstack:charts.mirror: 's3://charts' is neither"),
    "typo in a key": ({"dir": "charts"}, "llmstack:charts.dir: unknown key"),
}


@pytest.mark.parametrize("case", sorted(STACK_CASES))
def test_bad_charts_settings_are_one_message_before_anything_is_registered(case):
    key, words = STACK_CASES[case]
    message = assert_refused({**wide_stack(), "charts": key}, f"Pulumi.test.yaml: {words}")
    assert len(message.split("\n  ")[1:]) == 1, message


def test_a_directory_without_a_chart_the_stack_installs_names_the_file_and_the_pin(tmp_path):
    for pin in charts.pinned_charts():  # every fixture but KEDA's
        if pin != versions.KEDA and (FIXTURES / package_name(pin)).exists():
            (tmp_path / package_name(pin)).symlink_to(FIXTURES / package_name(pin))
    autoscaled = {"autoscaling": {"minReplicas": 1, "maxReplicas": 2}}
    from config.test_bad_input import stack

    message = assert_refused(
        {**stack(model=autoscaled), "charts": {"directory": str(tmp_path)}}, "llmstack:charts.directory"
    )
    assert f"{tmp_path} has no package of {package_name(versions.KEDA)}" in message
    assert (
        f"{versions.KEDA.chart} {versions.KEDA.version} ({versions.KEDA.repo}) for autoscaling.installKeda" in message
    )
    assert (
        f"helm pull {versions.KEDA.chart} --repo {versions.KEDA.repo} --version {versions.KEDA.version} --destination "
        f"{tmp_path}" in message
    )
    # The same directory serves a stack that installs no KEDA.
    assert render_with({**stack(), "charts": {"directory": str(tmp_path)}}).helm_releases


def test_the_fixtures_lack_only_the_gpu_operator():
    """The local cluster tests point charts.directory at the fixtures: a GPU-operator pool is refused with its pin."""
    from config.test_bad_input import stack

    message = assert_refused(
        {**stack(gpuPool={"install": "gpuOperator"}), "charts": {"directory": str(FIXTURES)}},
        "llmstack:charts.directory",
    )
    assert package_name(versions.GPU_OPERATOR) in message and "gpuPool.install: gpuOperator" in message
    assert f"helm pull {versions.GPU_OPERATOR.chart} --repo {versions.GPU_OPERATOR.repo}" in message


@pytest.mark.parametrize(
    "name,config",
    [
        ("dev", None),
        ("prod", None),
        ("wide", "wide"),
        ("gpuOperator no keda", "operator"),
        ("existing everything", "existing"),
    ],
)
def test_the_stack_checks_exactly_the_charts_it_installs(name, config):
    """installed_charts (what charts.directory must hold) is what the composition installs."""
    from config.test_bad_input import stack

    if config is None:
        render = lambda: render_mod.render(name)  # noqa: E731
    else:
        cfg = {
            "wide": wide_stack(),
            "operator": stack(gpuPool={"install": "gpuOperator"}),
            "existing": stack(
                model={"autoscaling": {"minReplicas": 1, "maxReplicas": 2}},
                gpuPool={"install": "existing"},
                observability={
                    "installPrometheusStack": False,
                    "dcgmExporter": False,
                    "prometheusUrl": "http://prometheus.monitoring:9090",
                },
                autoscaling={"installKeda": False, "prometheusUrl": "http://prometheus.monitoring:9090"},
            ),
        }[config]
        render = lambda: render_with(cfg)  # noqa: E731
    rendered, cfg = render_with_config(render)
    installed = sorted((c.chart, c.version) for c, _ in installed_charts(cfg))
    releases = sorted((r["chart"].rsplit("/", 1)[-1], r["version"]) for r in rendered.helm_releases)
    assert installed == releases
    if config == "existing":
        assert installed == []


# --- the offline expansion ------------------------------------------------------------------------


def test_expansion_with_the_directory_is_the_expansion_of_the_pins():
    """The releases now name a package path; the expander renders that package and names its chart
    as Chart.yaml does, so the cluster is the one the upstream pins give."""
    local = charts.expand(dev_with({"directory": str(FIXTURES)}))
    upstream = charts.expand(dev_with())
    assert {r.chart for r in local.releases} == {r.chart for r in upstream.releases}
    assert all(r.package is not None and r.package.parent == FIXTURES for r in local.releases)
    assert local.objects == upstream.objects
    assert local.release("kube-prometheus-stack") is not None and charts.values_of(local, "keda") == charts.values_of(
        upstream, "keda"
    )


def test_expansion_uses_the_directorys_package_not_the_fixture(tmp_path):
    """A package that is not the pin's (here: another chart under the pin's file name) shows in the
    expansion: the directory's file is what Helm would install."""
    for pin in charts.pinned_charts():
        if (FIXTURES / package_name(pin)).exists():
            (tmp_path / package_name(pin)).symlink_to(FIXTURES / package_name(pin))
    (tmp_path / package_name(versions.DCGM_EXPORTER)).unlink()
    (tmp_path / package_name(versions.DCGM_EXPORTER)).symlink_to(FIXTURES / package_name(versions.NVIDIA_DEVICE_PLUGIN))
    rendered = dev_with({"directory": str(tmp_path)})
    releases = {r.name: r for r in charts._releases_of(rendered)}
    assert releases["dcgm-exporter"].chart == versions.NVIDIA_DEVICE_PLUGIN.chart


def test_a_missing_package_stops_the_expansion_with_its_path(tmp_path):
    rendered = dev_with({"directory": str(FIXTURES)})
    release = next(r for r in rendered.helm_releases if r["name"] == "keda")
    release["chart"] = str(tmp_path / package_name(versions.KEDA))
    with pytest.raises(charts.ChartExpansionError, match=f"release keda: its chart {tmp_path}"):
        charts.expand(rendered)


def test_render_cli_expands_a_project_whose_stack_file_names_a_relative_directory(tmp_path):
    """``python -m stacks.tools.render --project-dir DIR --expand-charts``: the directory is found relative
    to that project (not the working directory), and cluster.yaml is written."""
    for f in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / f, tmp_path / f)
    (tmp_path / "airgap").mkdir()
    for p in FIXTURES.glob("*.tgz"):
        (tmp_path / "airgap" / p.name).symlink_to(p)
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    dev["config"]["llmstack:charts"] = {"directory": "airgap"}
    (tmp_path / "Pulumi.airgap.yaml").write_text(yaml.safe_dump(dev))
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stacks.tools.render",
            "--project-dir",
            str(tmp_path),
            "--expand-charts",
            "airgap",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    releases = list(yaml.safe_load_all((out / "airgap" / "helm-releases.yaml").read_text()))
    assert releases and all(
        Path(r["chart"]).parent == tmp_path / "airgap" and r["repository"] is None for r in releases
    )
    assert (out / "airgap" / "cluster.yaml").stat().st_size > 0


# --- the README's commands ------------------------------------------------------------------------


def test_pull_commands_fetch_every_pin_from_upstream(capsys):
    """`python -m stacks.tools.charts pull-commands DIR` (README: Air-gapped clusters) prints one `helm pull`
    per pinned chart: its upstream repository (or OCI reference), its pinned version, into DIR."""
    import shlex

    assert charts.main(["pull-commands", "charts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    pins = charts.pinned_charts()
    assert len(lines) == len(pins)
    for line, pin in zip(lines, pins, strict=True):
        argv = shlex.split(line)
        assert argv[:2] == ["helm", "pull"]
        flags = dict(zip(argv[3::2], argv[4::2], strict=False))
        assert flags["--version"] == pin.version and flags["--destination"] == "charts"
        if pin.repo.startswith("oci://"):
            assert argv[2] == f"{pin.repo}/{pin.chart}" and "--repo" not in flags
        else:
            assert argv[2] == pin.chart and flags["--repo"] == pin.repo
    assert charts.main(["pull", "charts"]) == 2


def test_readme_section_names_the_key_and_the_commands():
    text = (ROOT / "README.md").read_text()
    start = text.index("## Air-gapped clusters: charts from a directory or a mirror")
    section = text[start : text.index("\n## ", start + 1)]
    for words in (
        ".venv/bin/python -m stacks.tools.charts pull-commands charts | sh",
        "pulumi config set --path charts.directory charts",
        "pulumi config set --path charts.mirror https://",
        "pulumi config set --path charts.mirror oci://",
        "helm repo index charts --url",
        "helm push",
    ):
        assert words in section, words
