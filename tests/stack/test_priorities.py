"""Priorities per served name: route.priority and loraAdapters[].priority become
InferenceObjectives of the model's InferencePool, named after the served name; the body-based router
copies the body's model into x-gateway-inference-objective, which is how the Endpoint Picker finds a
request's objective. Upstream meaning (v1.5.0): higher is served first, unset is 0, negative is shed
while the pool is saturated."""

import copy

import pulumi
import pytest

from conftest import assert_refused, render_with
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.edge.inference_objective import OBJECTIVE_API, OBJECTIVE_HEADER
from llmstack_k8s.edge.inference_pool import InferencePool
from llmstack_k8s.edge.model_route import MODEL_NAME_HEADER
from llmstack_k8s.rules import check_all, objectives_select_pools
from stack.test_canary import GATEWAY, OTHER_REVISION
from stack.test_cross_objects import BASE, H100_POOL, declared_for, manifests_of, model, render_with_config
from support.schemas import validate_object

ADAPTER_REV = "fedcba9876543210fedcba9876543210fedcba98"
BBR = {"install": True, "provider": "istio"}


def adapter(name: str, **extra) -> dict:
    return {"name": name, "model": f"org/{name}", "revision": ADAPTER_REV, "rank": 8, **extra}


def stack(route: dict | None = None, adapters: list | None = None, bbr: dict | None = BBR, **over) -> dict:
    m = model(
        "m",
        route={"kvCacheAwareRouting": True, "priority": 10} if route is None else route,
        loraMemoryGiB=1,
        loraAdapters=[adapter("m-support", priority=-1), adapter("m-batch")] if adapters is None else adapters,
        **over,
    )
    return {
        **BASE,
        "gpuPool": H100_POOL,
        "gateway": {**GATEWAY, **({"bodyBasedRouting": bbr} if bbr else {})},
        "models": [m, model("other")],
    }


@pytest.fixture(scope="module")
def rendered():
    r, cfg = render_with_config(lambda: render_with(stack()))
    return manifests_of(r), cfg


def _objectives(manifests):
    return {o["metadata"]["name"]: o for o in manifests if o["kind"] == "InferenceObjective"}


def test_each_prioritized_served_name_gets_an_objective_of_its_models_pool(rendered):
    manifests, cfg = rendered
    objs = _objectives(manifests)
    assert {n: o["spec"]["priority"] for n, o in objs.items()} == {"m": 10, "m-support": -1}  # m-batch: none, runs at 0
    for o in objs.values():
        validate_object(o)  # the v1.5.0 CRD (inference.networking.x-k8s.io/v1alpha2)
        assert o["apiVersion"] == OBJECTIVE_API and o["metadata"]["namespace"] == "llm"
        assert o["spec"]["poolRef"] == {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "m"}
    # the picker may read them (its chart's Role does the same)
    (role,) = [r for r in manifests if r["kind"] == "Role" and r["metadata"]["name"] == "m-epp"]
    assert any(
        "inferenceobjectives" in rule["resources"] and rule["apiGroups"] == ["inference.networking.x-k8s.io"]
        for rule in role["rules"]
    )
    # what selects them: the router copies the body's model into the header the picker reads, and the
    # route sends exactly those model names to the pool
    route = next(o for o in manifests if o["kind"] == "HTTPRoute" and o["metadata"]["name"] == "m")
    matched = {
        h["value"]
        for r in route["spec"]["rules"]
        for mt in r.get("matches", [])
        for h in mt.get("headers", [])
        if h["name"] == MODEL_NAME_HEADER
    }
    assert set(objs) <= matched
    (router,) = [d for d in manifests if d["kind"] == "Deployment" and d["metadata"]["name"] == "body-based-router"]
    assert any(OBJECTIVE_HEADER in a for a in router["spec"]["template"]["spec"]["containers"][0]["args"])
    assert check_all(manifests, declared_for(cfg)) == []


def test_the_objective_rule_catches_what_selects_nothing(rendered):
    manifests, cfg = rendered
    declared = declared_for(cfg)
    assert objectives_select_pools(manifests, declared) == []
    broken = copy.deepcopy(manifests)
    _objectives(broken)["m"]["spec"]["poolRef"]["name"] = "gone"
    assert any(
        "refers to InferencePool llm/gone, which the stack does not create" in p
        for p in objectives_select_pools(broken, declared)
    )
    broken = copy.deepcopy(manifests)
    _objectives(broken)["m-support"]["metadata"]["name"] = "m-typo"
    assert any(
        "named 'm-typo', but no HTTPRoute sends requests for that model name" in p
        for p in objectives_select_pools(broken, declared)
    )
    without_router = [
        o
        for o in manifests
        if not ((o.get("metadata") or {}).get("name") == "body-based-router" and o["kind"] == "Deployment")
    ]
    assert any(
        f"no body-based router of the stack sets {OBJECTIVE_HEADER}" in p
        for p in objectives_select_pools(without_router, declared)
    )


@pytest.mark.parametrize(
    "config, expected",
    [
        # no picker to apply it
        (stack(route={"priority": 5}), "models[0] (name: m).route.priority: needs route.kvCacheAwareRouting: true"),
        (
            stack(route={"expose": False, "priority": 5}),
            "models[0] (name: m).route.priority: needs route.kvCacheAwareRouting",
        ),
        (
            stack(route={}, adapters=[adapter("m-support", priority=3)]),
            "models[0] (name: m).loraAdapters[0].priority: needs route.kvCacheAwareRouting",
        ),
        # nothing would put the objective on the requests
        (stack(bbr=None), "models[0] (name: m).route.priority: needs llmstack:gateway.bodyBasedRouting.install: true"),
        (
            stack(route={"kvCacheAwareRouting": True}, adapters=[adapter("m-support", priority=3)], bbr=None),
            "models[0] (name: m).loraAdapters[0].priority: needs llmstack:gateway.bodyBasedRouting.install",
        ),
        # the served name must be able to name the objective
        (
            stack(servedModelName="M-Chat"),
            "models[0] (name: m).servedModelName: 'M-Chat' cannot name an InferenceObjective",
        ),
        (stack(servedModelName=None), "models[0] (name: m).servedModelName: 'org/m' cannot name an InferenceObjective"),
        (
            stack(adapters=[adapter("Support_v2", priority=1)]),
            "models[0] (name: m).loraAdapters[0].name: 'Support_v2' cannot name",
        ),
        # a canary's own pool cannot see the objectives
        (
            stack(canary={"weight": 10, "revision": OTHER_REVISION}),
            "models[0] (name: m).route.priority: cannot be combined with canary",
        ),
        # not a priority
        (stack(route={"kvCacheAwareRouting": True, "priority": 1.5}), "models[0] (name: m).route.priority"),
        (stack(route={"kvCacheAwareRouting": True, "priority": "high"}), "models[0] (name: m).route.priority"),
        (
            stack(route={"kvCacheAwareRouting": True, "priority": 1001}),
            "models[0] (name: m).route.priority: 1001 is above the most allowed, 1000",
        ),
        (
            stack(adapters=[adapter("m-support", priority=-1001)]),
            "models[0] (name: m).loraAdapters[0] (name: m-support).priority: -1001 is below",
        ),
        (stack(route={"kvCacheAwareRouting": True, "priorty": 1}), "models[0] (name: m).route.priorty"),
    ],
)
def test_priorities_that_could_not_work_are_refused(config, expected):
    if config["models"][0].get("servedModelName", "") is None:
        del config["models"][0]["servedModelName"]
    assert_refused(config, expected)


@pytest.mark.parametrize(
    "objectives, expected",
    [
        (
            [{"served_model_name": "Big/Model", "priority": 1}],
            "args.objectives[0]: 'Big/Model' cannot name an InferenceObjective",
        ),
        (
            [{"served_model_name": "a", "priority": 1}, {"served_model_name": "a", "priority": 2}],
            "args.objectives[1]: 'a' is given twice",
        ),
        ([{"served_model_name": "a", "priority": 1001}], "args.objectives[0]: 1001 is outside -1000..1000"),
        ([{"served_model_name": "a", "priority": "1"}], "args.objectives[0].priority"),
    ],
)
def test_the_pool_refuses_bad_objectives_before_registering(objectives, expected):
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    with pytest.raises(ComponentArgsError) as err:
        InferencePool(
            "p",
            {
                "namespace": "llm",
                "pod_selector": {"app": "x"},
                "gateway_namespace": "gateway",
                "objectives": objectives,
            },
        )
    assert expected in str(err.value) and mocks.registrations == []


def test_policy_pack_checks_every_objective_names_a_pool_of_the_stack(rendered):
    """The pack's inference-objectives-name-pools policy (the same checks function as the cross-object rule)
    passes on the render as the CLI's analyzer sends it, and fails once an objective's poolRef names no pool."""
    from contract.test_policy import POLICIES, run

    r, _ = render_with_config(lambda: render_with(stack()))
    res = [(x.type, x.name, copy.deepcopy(x.inputs)) for x in r.registrations if x.custom]
    policy = POLICIES["inference-objectives-name-pools"]
    assert any(t.endswith(":InferenceObjective") for t, _, _ in res)
    assert run(policy, "test", res) == []
    objective = next(i for t, _, i in res if t.endswith(":InferenceObjective"))
    objective["spec"]["poolRef"]["name"] = "gone"
    ((message, _),) = run(policy, "test", res)
    assert "InferencePool llm/gone, which the stack does not create" in message
