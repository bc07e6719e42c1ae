"""The policy pack (policy/): every policy passes on both rendered stacks and fails, with its
fix in the message, on a deliberately broken copy of a real object.

Policies are called the way the Pulumi CLI's analyzer calls them: the SDK's own argument
classes, the resource's type token and inputs behind the SDK's unknown-checking proxy.
"""

import copy
import json
import sys

import jsonschema
import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from conftest import ROOT, STACKS, rendered_stack
from llmstack_k8s import checks
from llmstack_k8s._core.testing import RELEASE_TYPE

sys.path.insert(0, str(ROOT / "policy"))
import llmstack_policy as pack

POLICIES = {p.name: p for p in pack.POLICIES}


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def _urn(stack: str, type_: str, name: str) -> str:
    return f"urn:pulumi:{stack}::llmstack::{type_}::{name}"


def resources(stack: str) -> list[tuple[str, str, dict]]:
    """(type token, name, inputs) of every custom resource the stack registers, as the engine sends them."""
    return [(r.type, r.name, copy.deepcopy(r.inputs)) for r in rendered_stack(stack).registrations if r.custom]


def run(policy, stack: str, resources_, config=None) -> list[tuple[str, str]]:
    """(message, urn) of every violation ``policy`` reports on these resources."""
    found = []
    if isinstance(policy, StackValidationPolicy):
        items = [
            PolicyResource(t, unknown_checking_proxy(inputs), _urn(stack, t, n), n, _opts(), None, None, [], {})
            for t, n, inputs in resources_
        ]
        policy.validate(StackValidationArgs(items, config), lambda msg, urn=None: found.append((msg, urn)))
    else:
        for t, n, inputs in resources_:
            args = ResourceValidationArgs(
                t, unknown_checking_proxy(inputs), _urn(stack, t, n), n, _opts(), None, config
            )
            policy.validate(args, lambda msg, urn=None, u=args.urn: found.append((msg, u)))
    return found


def find(res, kind: str, name: str) -> dict:
    for t, n, inputs in res:
        if t.endswith(":" + kind) and inputs.get("metadata", {}).get("name", n) == name:
            return inputs
    raise AssertionError(f"no {kind} {name}")


def container(inputs: dict, name: str = "vllm") -> dict:
    spec = inputs["spec"]["template"]["spec"]
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def pod_spec(inputs: dict) -> dict:
    return inputs["spec"]["template"]["spec"]


def test_pack_has_every_invariant_of_the_issue():
    assert set(POLICIES) == {
        "images-pinned",
        "gpu-request-matches-parallelism",
        "gpu-pods-tolerate-pool-taints",
        "vllm-startup-probe-budget",
        "no-plain-credentials",
        "pdb-selects-one-controller",
        "serving-pods-have-network-policy",
        "serving-pods-non-root",
        "helm-releases-pinned",
        "llm-route-timeouts",
        "knative-traffic",  # route timeouts, Knative canary splits
        "inference-objectives-name-pools",  # priorities per served name
        "lws-headless-service-free",  # multi-node models
    }


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_is_documented_and_configurable(name):
    p = POLICIES[name]
    assert p.description and p.remediation_steps
    assert p.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY)
    if p.config_schema is not None:
        schema = {"type": "object", "properties": p.config_schema.properties}
        jsonschema.Draft7Validator.check_schema(schema)
        defaults = {k: v["default"] for k, v in p.config_schema.properties.items()}
        jsonschema.validate(defaults, schema)


def test_example_config_matches_the_schemas():
    """policy/config.example.json (what the README shows) only sets what the policies accept."""
    example = json.loads((ROOT / "policy" / "config.example.json").read_text())
    levels = [e.value for e in EnforcementLevel]
    for name, value in example.items():
        if name == "all" or isinstance(value, str):
            assert value in levels, (name, value)
            continue
        assert name in POLICIES, name
        props = dict(value)
        assert props.pop("enforcementLevel", "mandatory") in levels
        schema = POLICIES[name].config_schema
        jsonschema.validate(
            props, {"type": "object", "additionalProperties": False, "properties": schema.properties if schema else {}}
        )


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_rendered_stacks_pass(name, stack):
    assert run(POLICIES[name], stack, resources(stack)) == []


def test_the_stacks_exercise_every_policy():
    """The passing runs above are not vacuous: each stack has what the policies look at."""
    for stack in STACKS:
        res = resources(stack)
        manifests = [m for t, _, i in res if (m := checks.pulumi_manifest(t, i))]
        assert checks.serving_pods(manifests)
        assert [m for m in manifests if m["kind"] == "PodDisruptionBudget"]
        assert [t for t, _, _ in res if t == RELEASE_TYPE]
    prod = [m for t, _, i in resources("prod") if (m := checks.pulumi_manifest(t, i))]
    assert [m for m in prod if m["kind"] == "NodePool"] and [m for m in prod if m["kind"] == "RuntimeClass"]


# (policy, stack, mutate(resources) -> None, expected text in the message)
def _image(tag):
    def mutate(res):
        container(find(res, "Deployment", "qwen-0-5b"))["image"] = tag

    return mutate


def _gpus(n):
    def mutate(res):
        for part in ("limits", "requests"):
            container(find(res, "Deployment", "llama-70b"))["resources"][part]["nvidia.com/gpu"] = n

    return mutate


def _no_tolerations(res):
    pod_spec(find(res, "Deployment", "qwen-0-5b")).pop("tolerations")


def _nodepool_taint(res):
    find(res, "NodePool", "gpu")["spec"]["template"]["spec"]["taints"].append(
        {"key": "dedicated", "value": "llm", "effect": "NoSchedule"}
    )


def _probe(res):
    container(find(res, "Deployment", "qwen-0-5b"))["startupProbe"]["failureThreshold"] = 3


def _no_probe_knative(res):
    find(res, "Service", "qwen-1-5b")["spec"]["template"]["spec"]["containers"][0].pop("startupProbe")


def _env_token(res):
    container(find(res, "Deployment", "llama-8b"))["env"].append({"name": "HF_TOKEN", "value": "hf_" + "x" * 30})


def _args_key(res):
    container(find(res, "Deployment", "qwen-0-5b"))["args"] += ["--api-key", "sk-not-a-real-key"]


def _job_labels_like_server(res):
    job = find(res, "Job", "llama-8b-download")
    job["spec"]["template"]["metadata"]["labels"] = copy.deepcopy(
        find(res, "Deployment", "llama-8b")["spec"]["template"]["metadata"]["labels"]
    )


def _pdb_selects_the_job(res):
    find(res, "PodDisruptionBudget", "llama-8b")["spec"]["selector"] = {
        "matchLabels": find(res, "Job", "llama-8b-download")["spec"]["template"]["metadata"]["labels"]
    }


def _pdb_selects_nothing(res):
    find(res, "PodDisruptionBudget", "llama-8b")["spec"]["selector"] = {
        "matchLabels": {"app.kubernetes.io/instance": "typo"}
    }


def _drop_netpol(stack, name):
    def mutate(res):
        res[:] = [r for r in res if not (r[0].endswith(":NetworkPolicy") and r[2]["metadata"]["name"] == name)]

    return mutate


def _escalation(res):
    container(find(res, "Deployment", "qwen-0-5b"), "wait-for-weights")["securityContext"][
        "allowPrivilegeEscalation"
    ] = True


def _root(res):
    d = find(res, "Deployment", "llama-70b")
    container(d)["securityContext"].pop("runAsNonRoot")
    pod_spec(d)["securityContext"].pop("runAsNonRoot", None)


def _release(version):
    def mutate(res):
        for t, _, inputs in res:
            if t == RELEASE_TYPE and inputs["chart"] == "dcgm-exporter":
                inputs["version"] = version

    return mutate


def _route_timeout(value):
    def mutate(res):
        rule = find(res, "HTTPRoute", "llama-70b")["spec"]["rules"][0]
        rule["timeouts"] = {"request": value} if value else {}

    return mutate


BROKEN = [
    ("images-pinned", "dev", _image("docker.io/vllm/vllm-openai:latest"), "uses the moving tag 'latest'"),
    ("images-pinned", "dev", _image("docker.io/vllm/vllm-openai"), "has no tag (so: latest"),
    (
        "images-pinned",
        "dev",
        _image("registry:5000/vllm/vllm-openai"),
        "pin a version (registry:5000/vllm/vllm-openai:<version>)",
    ),
    ("gpu-request-matches-parallelism", "prod", _gpus("2"), "parallelism needs 4"),
    (
        "gpu-pods-tolerate-pool-taints",
        "dev",
        _no_tolerations,
        "does not tolerate the GPU pool's taint nvidia.com/gpu:NoSchedule",
    ),
    ("gpu-pods-tolerate-pool-taints", "prod", _nodepool_taint, "taint dedicated=llm:NoSchedule: add the toleration"),
    ("vllm-startup-probe-budget", "dev", _probe, "startupProbe allows 30 s"),
    (
        "vllm-startup-probe-budget",
        "dev",
        _no_probe_knative,
        "Service llm-dev/qwen-1-5b: container vllm has no startupProbe",
    ),
    ("no-plain-credentials", "prod", _env_token, "sets HF_TOKEN as a plain env value: store it in a Secret"),
    ("no-plain-credentials", "dev", _args_key, "passes --api-key on its command line"),
    ("pdb-selects-one-controller", "prod", _job_labels_like_server, "selects the pods of 2 workloads"),
    ("pdb-selects-one-controller", "prod", _pdb_selects_nothing, "selects no pods"),
    ("pdb-selects-one-controller", "prod", _pdb_selects_the_job, "Job llm/llama-8b-download, which has no scale"),
    ("serving-pods-have-network-policy", "dev", _drop_netpol("dev", "qwen-0-5b"), "no NetworkPolicy selects"),
    (
        "serving-pods-have-network-policy",
        "dev",
        _drop_netpol("dev", "qwen-1-5b"),
        "Service llm-dev/qwen-1-5b runs vLLM",
    ),
    ("serving-pods-non-root", "dev", _escalation, "wait-for-weights allows privilege escalation"),
    ("serving-pods-non-root", "prod", _root, "may run as root: set securityContext.runAsNonRoot: true"),
    ("llm-route-timeouts", "prod", _route_timeout("30s"), "rules[0].timeouts.request is 30s"),
    ("llm-route-timeouts", "prod", _route_timeout(None), "timeouts.request is unset"),
    ("helm-releases-pinned", "dev", _release(""), "has no version"),
    ("helm-releases-pinned", "dev", _release("^4.8"), "a range: set an exact release"),
]


@pytest.mark.parametrize("name,stack,mutate,expected", BROKEN, ids=[f"{b[0]}-{b[3][:30]}" for b in BROKEN])
def test_broken_object_fails_with_its_fix(name, stack, mutate, expected):
    res = resources(stack)
    mutate(res)
    found = run(POLICIES[name], stack, res)
    assert found, f"{name} let a broken object through"
    assert any(expected in msg for msg, _ in found), found
    # The violation is attached to a resource (so the CLI shows which one).
    assert all(urn and urn.startswith(f"urn:pulumi:{stack}::") for _, urn in found), found


def test_runtime_class_tolerations_count():
    """prod's RuntimeClass carries the pool's tolerations (scheduling.tolerations): admission adds
    them to every pod of that class, so a pod without its own still schedules."""
    res = resources("prod")
    pod_spec(find(res, "Deployment", "llama-8b")).pop("tolerations")
    assert run(POLICIES["gpu-pods-tolerate-pool-taints"], "prod", res) == []
    find(res, "RuntimeClass", "nvidia")["scheduling"].pop("tolerations")
    assert run(POLICIES["gpu-pods-tolerate-pool-taints"], "prod", res)


@pytest.mark.parametrize(
    "name,config,stack,expected",
    [
        ("images-pinned", {"requireDigest": True}, "dev", "has no digest"),
        ("vllm-startup-probe-budget", {"minStartupSeconds": 5000}, "prod", "less than the 5000 s"),
        ("serving-pods-non-root", {"allWorkloads": True}, "dev", None),
    ],
)
def test_config_is_read(name, config, stack, expected):
    found = run(POLICIES[name], stack, resources(stack), config)
    if expected is None:  # every workload of the stack already complies
        assert found == []
    else:
        assert any(expected in m for m, _ in found), found


def test_config_can_declare_untainted_pools():
    res = resources("dev")
    pod_spec(find(res, "Deployment", "qwen-0-5b")).pop("tolerations")
    assert run(POLICIES["gpu-pods-tolerate-pool-taints"], "dev", res, {"taints": []}) == []


def test_unknown_values_are_not_judged_during_preview():
    """An image that is an unresolved Output at preview is not reported (``up`` checks it), but a
    credential-named env var is plain text whatever its value will be."""
    res = resources("dev")
    c = container(find(res, "Deployment", "qwen-0-5b"))
    c["image"] = UNKNOWN_STRING_VALUE
    c["args"][1] = UNKNOWN_STRING_VALUE
    c["env"].append({"name": "HF_TOKEN", "value": UNKNOWN_STRING_VALUE})
    assert run(POLICIES["images-pinned"], "dev", res) == []
    assert run(POLICIES["gpu-request-matches-parallelism"], "dev", res) == []
    assert any("HF_TOKEN" in m for m, _ in run(POLICIES["no-plain-credentials"], "dev", res))


@pytest.mark.parametrize(
    "name,expected",
    [
        ("TOKENIZERS_PARALLELISM", False),
        ("HF_TOKEN", True),
        ("VLLM_API_KEY", True),
        ("HF_TOKEN_PATH", False),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("GF_SECURITY_ADMIN_PASSWORD", True),
        ("KEY", False),
        ("HF_HUB_OFFLINE", False),
        ("adminPassword", True),
        ("existingSecret", False),
        ("apiKey", True),
        ("passwordFile", False),
    ],
)
def test_credential_names(name, expected):
    assert checks.is_credential_name(name) is expected


@pytest.mark.parametrize(
    "image,tag,digest",
    [
        ("busybox", None, None),
        ("docker.io/library/busybox:1.37.0", "1.37.0", None),
        ("registry:5000/team/img", None, None),
        ("registry:5000/team/img:2", "2", None),
        ("img@sha256:abc", None, "sha256:abc"),
    ],
)
def test_image_tag(image, tag, digest):
    assert checks.image_tag(image) == (tag, digest)


def test_policies_are_the_sdk_kinds():
    for p in pack.POLICIES:
        assert isinstance(p, (ResourceValidationPolicy, StackValidationPolicy))
