"""Teams: namespace, ResourceQuota, LimitRange, own API key and network boundary per team; preview
refuses a team whose models cannot fit its quota at their maximum plus the rollout surge."""

import copy

import pytest

from conftest import assert_refused, render_with
from llmstack_k8s.cluster.team import DEFAULT_CONTAINER_REQUESTS, TEAM_LABEL
from llmstack_k8s.rules import check_all, teams_stay_apart
from support.schemas import validate_object

REV = "0123456789abcdef0123456789abcdef01234567"


def model(name: str, **extra) -> dict:
    return {
        "name": name,
        "model": f"org/{name}",
        "revision": REV,
        "weightsGiB": 15,
        "cache": {"size": "40Gi"},
        "resources": {"cpu": "8", "memory": "48Gi"},
        **extra,
    }


QUOTA = {"gpus": 4, "cpu": "64", "memory": "256Gi", "storage": "200Gi"}


def two_teams(**quota) -> dict:
    return {
        "network": {"clientNamespaces": ["apps"]},
        "models": [model("shared"), model("a-llm", autoscaling={"minReplicas": 1, "maxReplicas": 3}), model("b-llm")],
        "teams": [
            {"name": "alpha", "models": ["a-llm"], "quota": {**QUOTA, **quota}, "clientNamespaces": ["alpha-apps"]},
            {
                "name": "beta",
                "namespace": "team-beta",
                "models": ["b-llm"],
                "quota": QUOTA,
                "clientNamespaces": ["beta-apps"],
            },
        ],
    }


@pytest.fixture(scope="module")
def objects():
    return render_with(two_teams()).objects


def in_ns(objects, ns, kind):
    return [o for o in objects if o["kind"] == kind and o["metadata"].get("namespace") == ns]


def test_each_team_gets_its_namespace_quota_limits_and_boundary(objects):
    for team, ns in (("alpha", "alpha"), ("beta", "team-beta")):
        (namespace,) = [o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == ns]
        assert namespace["metadata"]["labels"][TEAM_LABEL] == team
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        (quota,) = in_ns(objects, ns, "ResourceQuota")
        assert quota["spec"]["hard"] == {
            "requests.nvidia.com/gpu": "4",
            "requests.cpu": "64",
            "requests.memory": "256Gi",
            "requests.storage": "200Gi",
        }
        (limits,) = in_ns(objects, ns, "LimitRange")
        assert limits["spec"]["limits"][0]["defaultRequest"] == DEFAULT_CONTAINER_REQUESTS
        for o in (namespace, quota, limits, *in_ns(objects, ns, "NetworkPolicy")):
            validate_object(o)
    # The team's model, its cache and its key live in the team's namespace; the others stay in the stack's.
    assert [d["metadata"]["name"] for d in in_ns(objects, "alpha", "Deployment")] == ["a-llm"]
    assert len(in_ns(objects, "alpha", "PersistentVolumeClaim")) == 1 and len(in_ns(objects, "alpha", "Job")) == 1
    assert [d["metadata"]["name"] for d in in_ns(objects, "llm", "Deployment")] == ["shared"]
    assert in_ns(objects, "alpha", "Secret") and in_ns(objects, "team-beta", "Secret")


def test_a_team_model_admits_its_own_callers_and_never_the_other_teams(objects):
    def admitted(ns, name):
        (pol,) = [p for p in in_ns(objects, ns, "NetworkPolicy") if p["metadata"]["name"] == name]
        return {
            v
            for r in pol["spec"]["ingress"]
            for peer in r.get("from", [])
            for e in (peer.get("namespaceSelector") or {}).get("matchExpressions", [])
            for v in e["values"]
        }

    assert {"alpha-apps", "apps", "monitoring"} <= admitted("alpha", "a-llm")
    assert not {"beta-apps", "team-beta"} & admitted("alpha", "a-llm")
    assert "alpha-apps" not in admitted("llm", "shared")
    assert not teams_stay_apart(objects)


def test_cross_object_checks_pass_with_teams(objects):
    from llmstack_k8s.rules import Declared

    declared = Declared(
        namespaces=frozenset({"apps", "alpha-apps", "beta-apps", "monitoring"}),
        scrapers=("monitoring",),
        callers=("apps",),
    )
    assert check_all(objects, declared) == []


def test_team_boundary_rule_catches_a_policy_admitting_another_team(objects):
    broken = copy.deepcopy(objects)
    (pol,) = [p for p in in_ns(broken, "alpha", "NetworkPolicy") if p["metadata"]["name"] == "a-llm"]
    pol["spec"]["ingress"][0]["from"].append(
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-beta"}}}
    )
    assert any("admits team beta's namespace 'team-beta'" in p for p in teams_stay_apart(broken))
    no_boundary = [
        o for o in objects if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "beta-boundary")
    ]
    assert any(
        "team beta's namespace 'team-beta' has no NetworkPolicy isolating" in p for p in teams_stay_apart(no_boundary)
    )
    no_limits = [o for o in objects if not (o["kind"] == "LimitRange" and o["metadata"]["namespace"] == "alpha")]
    assert any("no LimitRange" in p for p in teams_stay_apart(no_limits))


def test_shared_gpus_are_counted_in_the_pools_resource_name():
    cfg = two_teams()
    cfg["gpuPool"] = {"sharing": {"strategy": "timeSlicing", "replicas": 4}}
    small = {"gpuMemoryUtilization": 0.2, "weightsGiB": 1, "cache": {"size": "4Gi"}}
    cfg["models"] = [model("shared", **small), model("a-llm", **small), model("b-llm", **small)]
    quotas = render_with(cfg).of_kind("ResourceQuota")
    assert all("requests.nvidia.com/gpu.shared" in q["spec"]["hard"] for q in quotas)


def test_refuses_a_team_whose_models_overflow_its_quota_with_the_figures():
    # a-llm at its maximum: 3 replicas + 0 surge = 3 pods x 1 GPU, 8 CPU, 48Gi.
    msg = assert_refused(two_teams(gpus=2), "teams[0] (name: alpha).quota")
    assert "gpus: the models need 3 GPU(s) (a-llm 3 pod(s) x 1) but the quota allows 2" in msg
    msg = assert_refused(two_teams(memory="100Gi"), "teams[0] (name: alpha).quota")
    assert "memory: the models need 144 GiB memory" in msg and "allows 100" in msg
    cfg = two_teams(cpu="24")
    cfg["models"][1]["rollout"] = {"maxSurge": 1, "maxUnavailable": 0}  # the surge pod counts too: 4 x 8 = 32 cores
    assert "cpu: the models need 32 CPU cores" in assert_refused(cfg, "teams[0] (name: alpha).quota")
    assert "storage: the models need 40 GiB storage" in assert_refused(
        two_teams(storage="20Gi"), "teams[0] (name: alpha).quota"
    )


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda c: c["teams"][0].update(models=["a-lm"]),
            "teams[0] (name: alpha).models[0]: 'a-lm' is not the name of an entry of models (did you mean 'a-llm'?)",
        ),
        (lambda c: c["teams"][1].update(models=["a-llm"]), "'a-llm' is already a model of teams[0] (name: alpha)"),
        (lambda c: c["teams"][1].update(namespace="llm"), "teams[1].namespace"),
        (lambda c: c["teams"][1].update(name="alpha", namespace="x"), "two teams are named 'alpha'"),
        (
            lambda c: c["teams"][0]["quota"].update(memory="256"),
            "teams[0] (name: alpha).quota.memory: '256' has no unit",
        ),
        (lambda c: c["teams"][0].update(quotas={}), "teams[0]"),
    ],
)
def test_refuses_bad_teams(change, expected):
    cfg = two_teams()
    change(cfg)
    assert_refused(cfg, expected)


def test_prod_serves_the_70b_model_for_a_second_team_within_its_quota():
    from conftest import rendered_stack

    objs = rendered_stack("prod").objects
    (quota,) = in_ns(objs, "research", "ResourceQuota")
    validate_object(quota)
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "16"  # llama-70b at maxReplicas 4 x 4 GPUs, surge 0
    assert [d["metadata"]["name"] for d in in_ns(objs, "research", "Deployment")] == ["llama-70b"]
    assert "llama-8b" in [d["metadata"]["name"] for d in in_ns(objs, "llm", "Deployment")]  # the platform's model stays
    assert in_ns(objs, "research", "LimitRange") and not teams_stay_apart(objs)
