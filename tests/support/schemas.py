"""Validation of rendered objects against the real schemas, offline.

- core kinds: ``kubernetes-validate`` (the official OpenAPI schemas) in strict mode, so an
  unknown field is an error rather than silently dropped by the API server;
- custom resources: the CRD's openAPIV3Schema from tests/fixtures/crds, made strict the same
  way (an object with declared properties accepts no others unless the CRD preserves unknown
  fields);
- Helm values: every key path the program sets must exist in the pinned chart's values.yaml.
"""

import copy
import functools
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: Oldest Kubernetes minor the stack supports; also checked against the newest schema bundled.
K8S_VERSIONS = ("1.32.0", kubernetes_validate.utils.latest_version())


def is_core(obj: dict) -> bool:
    group = obj["apiVersion"].rpartition("/")[0]
    return group == "" or "." not in group or (group.endswith(".k8s.io") and not group.startswith("gateway."))


def validate_core(obj: dict) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def _strict(schema: dict) -> dict:
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            # Go's RE2 accepts an inline flag after the anchor (PrometheusRule: '^(?i)(abort|warn)?$');
            # Python's re wants global flags first.
            if isinstance(node.get("pattern"), str) and node["pattern"].startswith("^(?i)"):
                node["pattern"] = "(?i)^" + node["pattern"][len("^(?i)") :]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict JSON schema, for every CRD fixture."""
    out = {}
    for path in sorted((FIXTURES / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                schema = v["schema"]["openAPIV3Schema"]
                out[(f"{group}/{v['name']}", kind)] = _strict(schema)
    return out


def crd_body(obj: dict, schema: dict) -> dict:
    """What a CRD's schema checks of an object: metadata is ObjectMeta, checked by the API server; so
    are apiVersion and kind where the schema does not declare them (Istio's CRDs do not)."""
    declared = schema.get("properties", {})
    return {k: v for k, v in obj.items() if k != "metadata" and (k in declared or k not in ("apiVersion", "kind"))}


def validate_custom(obj: dict) -> None:
    key = (obj["apiVersion"], obj["kind"])
    schema = crd_schemas().get(key)
    if schema is None:
        raise AssertionError(f"no CRD fixture for {key}; copy it into tests/fixtures/crds")
    body = crd_body(obj, schema)
    schema = {**schema, "properties": {k: v for k, v in schema.get("properties", {}).items() if k != "metadata"}}
    jsonschema.validate(body, schema)


def validate_object(obj: dict) -> None:
    if (obj["apiVersion"], obj["kind"]) in crd_schemas():
        validate_custom(obj)
    else:
        validate_core(obj)


@functools.cache
def chart_defaults(chart: str, version: str) -> dict:
    path = FIXTURES / "helm-values" / f"{chart}-{version.lstrip('v')}.values.yaml"
    if not path.exists():
        raise AssertionError(f"no values.yaml fixture for chart {chart} {version}")
    return yaml.safe_load(path.read_text()) or {}


def unknown_values_keys(values: dict, defaults: dict, prefix: str = "") -> list[str]:
    """Key paths set in ``values`` that the chart's values.yaml does not have.

    A default of ``{}``/``null`` or a list is open-ended (any key accepted below it)."""
    bad = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in defaults:
            bad.append(path)
            continue
        default = defaults[key]
        if isinstance(value, dict) and isinstance(default, dict) and default:
            bad += unknown_values_keys(value, default, path + ".")
    return bad
