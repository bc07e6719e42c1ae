"""Every Helm release the stacks declare, expanded with its real pinned chart (Helm's Go SDK,
offline) and the exact values the program passes; every expanded object validated.

The rule for tests/fixtures/charts: a chart version pinned in components/versions.py has its
package there (``stacks.tools.charts.UNPACKAGED_PINS`` names the pins that cannot, and why)."""

import copy
import functools
import io
import tarfile

import jsonschema
import kubernetes_validate.utils
import pytest
import yaml

from conftest import STACKS, rendered_stack
from llmstack_k8s import versions
from llmstack_k8s._core.testing import RELEASE_TYPE, Registration, Rendered
from stacks.tools import charts
from stacks.tools.render import main as render_main
from support.schemas import K8S_VERSIONS, _strict, crd_body, crd_schemas, validate_core

# kubernetes-validate re-reads its schema files (the definitions are megabytes) on every object;
# the files do not change during a run, so read each once.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)


@functools.cache
def expanded(stack: str) -> charts.Cluster:
    """The whole cluster of a stack, expanded once per test session (read-only: copy to break it)."""
    return charts.expand(rendered_stack(stack))


def _chart_yaml(package) -> dict:
    with tarfile.open(package) as tar:
        member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
        return yaml.safe_load(tar.extractfile(member).read())


# --- the fixture rule ------------------------------------------------------------------------


@pytest.mark.parametrize("pin", charts.pinned_charts(), ids=lambda c: f"{c.chart}-{c.version}")
def test_every_pinned_chart_version_has_its_package(pin):
    package = charts.package_path(pin.chart, pin.version)
    if pin.chart in charts.UNPACKAGED_PINS:
        assert not package.exists(), f"{package.name} is there now: drop {pin.chart} from UNPACKAGED_PINS"
        return
    assert package.exists(), (
        f"{pin.chart} {pin.version} is pinned in components/versions.py but "
        f"tests/fixtures/charts has no {package.name}: add the package (helm pull "
        f"{pin.chart} --repo {pin.repo} --version {pin.version})"
    )
    meta = _chart_yaml(package)
    assert (meta["name"], meta["version"]) == (pin.chart, pin.version.removeprefix("v")), meta


def test_every_package_is_a_pinned_version():
    pinned = {charts.package_path(p.chart, p.version).name for p in charts.pinned_charts()}
    stale = sorted(p.name for p in charts.PACKAGES.glob("*.tgz") if p.name not in pinned)
    assert not stale, f"packages of versions no longer pinned: {stale}"


def test_pins_without_a_package_are_named():
    """One documented exception: the GPU operator (unreachable registry; only the gpuOperator
    install path uses it). A new one must be added here on purpose."""
    assert set(charts.UNPACKAGED_PINS) == {versions.GPU_OPERATOR.chart}


def test_expanding_a_release_without_a_package_says_why():
    pin = versions.GPU_OPERATOR
    release = Registration(
        RELEASE_TYPE,
        "gpu",
        {"name": "gpu-operator", "namespace": "gpu-operator", "chart": pin.chart, "version": pin.version, "values": {}},
        True,
    )
    with pytest.raises(charts.ChartExpansionError, match=r"helm.ngc.nvidia.com"):
        charts.expand(Rendered("test", [release]))


def test_v_prefixed_pin_finds_its_package():
    assert versions.KNATIVE_OPERATOR.version.startswith("v")
    assert charts.package_path(versions.KNATIVE_OPERATOR.chart, versions.KNATIVE_OPERATOR.version).exists()


# --- rendering -------------------------------------------------------------------------------


def _tiny_chart(tmp_path) -> "pathlib.Path":  # noqa: F821
    files = {
        "capt/Chart.yaml": "apiVersion: v2\nname: capt\nversion: 0.1.0\n",
        "capt/templates/cm.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caps}\ndata:\n"
            "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
            '  monitors: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor" | quote }}\n'
            "  namespace: {{ .Release.Namespace | quote }}\n"
        ),
    }
    path = tmp_path / "capt-0.1.0.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


def test_capabilities_reach_the_templates(tmp_path):
    """Kubernetes version and the stack's custom APIs are what templates see (CRD-gated templates
    render as on a real cluster); without the API, the gate is closed."""
    path = _tiny_chart(tmp_path)
    objects, _ = charts.render_chart(path, "r", "ns", {}, ["monitoring.coreos.com/v1/ServiceMonitor"])
    assert objects[0]["data"] == {"kube": charts.KUBE_VERSION, "monitors": "true", "namespace": "ns"}
    objects, _ = charts.render_chart(path, "r", "ns", {}, [])
    assert objects[0]["data"]["monitors"] == "false"


def test_templates_see_the_oldest_supported_kubernetes():
    assert charts.KUBE_VERSION.removeprefix("v") == K8S_VERSIONS[0]


def test_disabled_subcharts_install_no_crds():
    """Helm installs the crds/ of enabled subcharts only (the device plugin's node-feature-discovery
    is off unless GPU feature discovery is on); rendering once must not change a later render."""
    pin = versions.NVIDIA_DEVICE_PLUGIN
    path = charts.package_path(pin.chart, pin.version)
    _, off = charts.render_chart(path, "p", "ns", {}, [])
    _, on = charts.render_chart(path, "p", "ns", {"gfd": {"enabled": True}}, [])
    _, off_again = charts.render_chart(path, "p", "ns", {}, [])
    nfd = {c["metadata"]["name"] for c in on if "nfd.k8s-sigs.io" in c["metadata"]["name"]}
    assert nfd and not off and not off_again


@pytest.mark.parametrize("stack", STACKS)
def test_every_release_is_expanded_with_the_programs_values(stack):
    rendered = rendered_stack(stack)
    cluster = expanded(stack)
    assert [(r.name, r.chart, r.version) for r in cluster.releases] == [
        (r["name"], r["chart"], r["version"]) for r in rendered.helm_releases
    ]
    for release in cluster.releases:
        assert release.objects, f"{release.chart}: rendered nothing"
        assert all(charts.owner(o) == release.name for o in release.objects)
    # The values reach the objects: e.g. the DCGM exporter runs on the GPU pool's nodes only.
    dcgm = cluster.release("dcgm-exporter")
    ds = next(o for o in dcgm.objects if o["kind"] == "DaemonSet")
    assert ds["spec"]["template"]["spec"]["nodeSelector"] == dcgm.values["nodeSelector"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespaced_object_has_its_namespace_and_names_are_unique(stack):
    cluster = expanded(stack)
    crds = [o for o in cluster.objects if o["kind"] == "CustomResourceDefinition"]
    keys = []
    for o in cluster.objects:
        if charts.owner(o) and charts._namespaced(o["kind"], crds):  # Helm puts these in the release's namespace
            assert o["metadata"].get("namespace"), f"{o['kind']}/{o['metadata']['name']} has no namespace"
        keys.append(
            (o["apiVersion"].rpartition("/")[0], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        )
    assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})


def _validator(schema: dict):
    # metadata is ObjectMeta, checked by the API server, not by the CRD's schema.
    schema = {**schema, "properties": {k: v for k, v in schema.get("properties", {}).items() if k != "metadata"}}
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@functools.cache
def _cluster_crd_schemas(stack: str) -> dict:
    """(apiVersion, kind) -> strict schema, from the CRDs the cluster's charts install, then the
    fixtures for what no chart installs (Knative Serving's, installed by its operator; Karpenter's)."""
    out = dict(crd_schemas())
    for crd in (o for o in expanded(stack).objects if o["kind"] == "CustomResourceDefinition"):
        for v in crd["spec"]["versions"]:
            out[(f"{crd['spec']['group']}/{v['name']}", crd["spec"]["names"]["kind"])] = _strict(
                v["schema"]["openAPIV3Schema"]
            )
    return out


@functools.cache
def _crd_validator(stack: str, key: tuple):
    return _validator(_cluster_crd_schemas(stack)[key])


def validate_in_cluster(stack: str, obj: dict) -> None:
    key = (obj["apiVersion"], obj["kind"])
    group = obj["apiVersion"].rpartition("/")[0]
    if key in _cluster_crd_schemas(stack):
        _crd_validator(stack, key).validate(crd_body(obj, _cluster_crd_schemas(stack)[key]))
    elif "." in group and not group.endswith(".k8s.io"):
        raise AssertionError(f"no CRD in the cluster or the fixtures for {key}")
    else:
        validate_core(obj)


@pytest.mark.parametrize("stack", STACKS)
def test_every_expanded_object_validates(stack):
    """Core kinds strict against Kubernetes' schemas (oldest supported and newest minor); custom
    resources, ours included, against the CRDs the pinned charts install, unknown fields rejected."""
    failures = []
    for obj in expanded(stack).objects:
        if obj["kind"] == "CustomResourceDefinition":
            continue  # the schemas themselves (the API server checks them; we read them above)
        try:
            validate_in_cluster(stack, obj)
        except Exception as err:
            failures.append(
                f"{obj['kind']} {obj['metadata'].get('namespace')}/{obj['metadata']['name']}: {str(err)[:300]}"
            )
    assert not failures, "\n".join(failures)


def test_custom_resources_validate_against_the_charts_crds():
    """Our ScaledObject is checked against the CRD the pinned KEDA chart installs, not only the
    fixture: a field that chart's CRD does not know fails."""
    cluster = expanded("prod")
    assert any(
        o["kind"] == "CustomResourceDefinition" and o["metadata"]["name"] == "scaledobjects.keda.sh"
        for o in cluster.release("keda").objects
    )
    so = copy.deepcopy(next(o for o in cluster.ours if o["kind"] == "ScaledObject"))
    validate_in_cluster("prod", so)
    so["spec"]["pollingIntervall"] = 15
    with pytest.raises(jsonschema.ValidationError, match="pollingIntervall"):
        validate_in_cluster("prod", so)


def test_a_chart_object_with_an_unknown_field_fails_validation():
    cluster = expanded("dev")
    ds = copy.deepcopy(next(o for o in cluster.release("dcgm-exporter").objects if o["kind"] == "DaemonSet"))
    validate_in_cluster("dev", ds)
    ds["spec"]["template"]["spec"]["nodeSelecter"] = {"a": "b"}
    with pytest.raises(jsonschema.ValidationError):
        validate_in_cluster("dev", ds)


# --- the render CLI --------------------------------------------------------------------------


def test_render_expand_charts_writes_the_whole_cluster(tmp_path, capsys):
    assert render_main(["dev", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "dev" / "cluster.yaml").exists()
    assert render_main(["--expand-charts", "dev", str(tmp_path / "full")]) == 0
    assert "whole cluster" in capsys.readouterr().out
    for name in ("manifests.yaml", "helm-releases.yaml"):  # unchanged by the option
        assert (tmp_path / "plain" / "dev" / name).read_bytes() == (tmp_path / "full" / "dev" / name).read_bytes()
    docs = list(yaml.load_all((tmp_path / "full" / "dev" / "cluster.yaml").read_text(), Loader=yaml.CSafeLoader))
    assert len(docs) == len(expanded("dev").objects)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "keda-operator") in kinds and ("Prometheus", "kube-prometheus-stack-prometheus") in kinds
    assert any(d["kind"] == "Deployment" and not charts.owner(d) for d in docs), "our objects are missing"
    secrets = [d for d in docs if d["kind"] == "Secret"]
    assert secrets and all(
        set((d.get("data") or {}).values()) | set((d.get("stringData") or {}).values()) <= {charts.REDACTED}
        for d in secrets
    )
    assert docs == sorted(docs, key=charts.sort_key)
