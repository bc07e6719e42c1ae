"""Components wire to each other through Outputs the way any Pulumi package does:
every field another resource's Output naturally feeds is resolved into the rendered objects,
never formatted into a string; defaults and the "autoscaled" check live in the components; the
typed helpers build one component's args from another's outputs; two Observability instances
do not collide."""

import collections

import pulumi
import pulumi_kubernetes as k8s
import pytest

from llmstack_k8s import GpuAutoscaling, KnativeVllmService, ModelCache, Observability, VllmService
from llmstack_k8s._core.testing import STRINGIFIED_OUTPUT, RecordingMocks, stringified_outputs
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s._core.wiring import monitored_model, scaled_workload
from llmstack_k8s.scaling.gpu_autoscaling import DEFAULT_TARGETS, MIN_COOLDOWN_SECONDS, AutoscalingMetric
from llmstack_k8s.serving.model_cache import model_dir
from llmstack_k8s.serving.vllm_pod import API_KEY_SECRET_KEY, COMPLETE_MARKER, STARTUP_UNKNOWN_SIZE_SECONDS


@pytest.fixture
def mocks():
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="llmstack", stack="unit", preview=True)
    return m


def run(build):
    """Run ``build`` as a Pulumi program; returns the resolved value of what it returns."""
    seen = {}

    @pulumi.runtime.test
    def program():
        return pulumi.Output.from_input(build()).apply(lambda v: seen.setdefault("v", v))

    program()
    return seen.get("v")


def ns_and_cache(name="qwen"):
    """A namespace created by the program, and a cache in it: the Outputs a consumer wires."""
    ns = k8s.core.v1.Namespace("apps", metadata={"name": "apps"}).metadata["name"]
    cache = ModelCache(name, {"namespace": ns, "model": "org/qwen", "revision": "abc", "size": "20Gi"})
    return ns, cache


def serving_args(ns, cache, served):
    return {
        "namespace": ns,
        "engine": {"served_model_name": served},
        "model_path": cache.model_path,
        "cache_claim_name": cache.claim_name,
    }


def assert_no_stringified_outputs(mocks):
    for o in mocks.objects() + mocks.helm_releases():
        assert not stringified_outputs(o), o


def test_a_formatted_output_fails_the_render(mocks):
    """The global guard: any rendered object carrying str(Output) fails the program."""

    def build():
        name = pulumi.Output.from_input("x")
        return k8s.core.v1.ConfigMap("bad", metadata={"name": "bad"}, data={"k": f"value {name}"}).id

    with pytest.raises(Exception, match=r"an Output was formatted into a string at .data.k"):
        run(build)
    assert STRINGIFIED_OUTPUT


@pytest.mark.parametrize("cls", [VllmService, KnativeVllmService])
def test_model_path_served_name_and_namespace_from_outputs(mocks, cls):
    def build():
        ns, cache = ns_and_cache()
        served = cache.claim_name.apply(lambda _: "qwen-chat")  # an Output, resolved late
        return cls("qwen", serving_args(ns, cache, served)).endpoint

    run(build)
    assert_no_stringified_outputs(mocks)
    path = model_dir("org/qwen", "abc")
    (workload,) = [
        o for o in mocks.objects() if o["kind"] in ("Deployment",) or o["apiVersion"].startswith("serving.knative")
    ]
    pod = workload["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert f'test -f "{path}/{COMPLETE_MARKER}"' in init["command"][2]
    args = pod["containers"][0]["args"]
    assert args[args.index("--model") + 1] == path
    assert args[args.index("--served-model-name") + 1] == "qwen-chat"
    assert workload["metadata"]["namespace"] == "apps"


def test_network_namespaces_from_outputs(mocks):
    def build():
        ns, cache = ns_and_cache()
        monitoring = k8s.core.v1.Namespace("mon", metadata={"name": "mon"}).metadata["name"]
        return VllmService(
            "qwen",
            {
                **serving_args(ns, cache, "qwen-chat"),
                "network": {"client_namespaces": ["gw", monitoring], "monitoring_namespaces": [monitoring]},
            },
        ).endpoint

    run(build)
    (netpol,) = mocks.objects("NetworkPolicy")
    values = netpol["spec"]["ingress"][0]["from"][1]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert values == ["gw", "mon"]


def test_knative_namespaces_from_an_output(mocks):
    def build():
        ns, cache = ns_and_cache()
        knative = k8s.core.v1.Namespace("kn", metadata={"name": "my-knative"}).metadata["name"]
        return KnativeVllmService(
            "qwen", {**serving_args(ns, cache, "qwen-chat"), "knative_namespaces": [knative]}
        ).endpoint

    run(build)
    (netpol,) = mocks.objects("NetworkPolicy")
    assert netpol["spec"]["ingress"][0]["from"][1]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "my-knative"
    ]


def test_serving_component_outputs_name_the_api_key_secret_and_namespace(mocks):
    def build():
        ns, cache = ns_and_cache()
        s = VllmService("qwen", serving_args(ns, cache, "qwen-chat"))
        return pulumi.Output.all(s.api_key_secret_name, s.api_key_secret_key, s.namespace, cache.namespace)

    secret_name, secret_key, namespace, cache_ns = run(build)
    (secret,) = mocks.objects("Secret")
    assert secret["metadata"]["name"] == secret_name and secret_key == API_KEY_SECRET_KEY in secret["stringData"]
    assert namespace == cache_ns == "apps"


def test_autoscaling_from_a_service_via_the_helper(mocks):
    def build():
        ns, cache = ns_and_cache()
        served = cache.claim_name.apply(lambda _: "qwen-chat")
        s = VllmService("qwen", {**serving_args(ns, cache, served), "autoscaled": True, "startup_budget_seconds": 905})
        a = GpuAutoscaling("autoscaling", {"workloads": [scaled_workload(s, 4)], "http_add_on": True})
        return a.bounds

    bounds = run(build)
    assert_no_stringified_outputs(mocks)
    (so,) = mocks.objects("ScaledObject")
    (trigger,) = so["spec"]["triggers"]
    assert (
        'model_name="qwen-chat"' in trigger["metadata"]["query"] and 'namespace="apps"' in trigger["metadata"]["query"]
    )
    assert so["metadata"]["namespace"] == "apps" and so["spec"]["scaleTargetRef"]["name"] == "qwen"
    # Defaults owned by the component: queue depth at its default target; cooldown and the first
    # cooldown cover the service's own startup budget (905 s, taken from the service).
    assert trigger["metadata"]["threshold"] == f"{DEFAULT_TARGETS[AutoscalingMetric.QUEUE_DEPTH]:g}"
    assert so["spec"]["initialCooldownPeriod"] == 905
    assert so["spec"]["cooldownPeriod"] == max(MIN_COOLDOWN_SECONDS, 905) == bounds["qwen"]["cooldown_seconds"]
    assert so["spec"]["minReplicaCount"] == 1 and so["spec"]["pollingInterval"] == 15


def test_autoscaling_defaults_without_a_service(mocks):
    w = {
        "name": "m",
        "namespace": "llm",
        "deployment_name": "m",
        "service_name": "m",
        "served_model_name": "m",
        "max_replicas": 2,
        "metric": "kvCacheUsage",
    }
    run(lambda: GpuAutoscaling("autoscaling", {"workloads": [w]}).bounds)
    (so,) = mocks.objects("ScaledObject")
    assert so["spec"]["triggers"][0]["metadata"]["threshold"] == "0.8"
    assert so["spec"]["initialCooldownPeriod"] == STARTUP_UNKNOWN_SIZE_SECONDS
    assert so["spec"]["cooldownPeriod"] == STARTUP_UNKNOWN_SIZE_SECONDS


def test_a_service_not_created_autoscaled_is_refused(mocks):
    def build():
        ns, cache = ns_and_cache()
        s = VllmService("qwen", serving_args(ns, cache, "qwen-chat"))
        w = {
            "name": "qwen",
            "namespace": s.namespace,
            "deployment_name": s.deployment_name,
            "service_name": s.service_name,
            "served_model_name": s.served_model_name,
            "max_replicas": 2,
        }
        registered = len(mocks.registrations)
        with pytest.raises(
            ComponentArgsError,
            match=r"GpuAutoscaling 'autoscaling': args.workloads\[0\].deployment_name: "
            r"VllmService 'qwen' was not created with autoscaled=True",
        ):
            GpuAutoscaling("autoscaling", {"workloads": [w]})
        assert len(mocks.registrations) == registered, "GpuAutoscaling registered something before refusing"
        with pytest.raises(ComponentArgsError, match=r"VllmService 'qwen': args.autoscaled: must be True"):
            scaled_workload(s, 2)
        return s.endpoint

    run(build)


def test_cooldown_shorter_than_the_startup_budget_is_refused_naming_the_workload(mocks):
    def build():
        ns, cache = ns_and_cache()
        s = VllmService(
            "qwen", {**serving_args(ns, cache, "qwen-chat"), "autoscaled": True, "startup_budget_seconds": 1200}
        )
        with pytest.raises(
            ComponentArgsError,
            match=r"args.workloads\[0\]: .*cooldown_seconds 700 is shorter than the startup budget 1200",
        ):
            GpuAutoscaling("autoscaling", {"workloads": [scaled_workload(s, 2, cooldown_seconds=700)]})
        return s.endpoint

    run(build)


def test_observability_watches_the_caches_job_and_the_services_names(mocks):
    def build():
        ns, cache = ns_and_cache()
        served = cache.claim_name.apply(lambda _: "qwen-chat")
        s = VllmService("qwen", serving_args(ns, cache, served))
        o = Observability(
            "obs",
            {
                "models": [monitored_model(s, cache)],
                "serving_namespaces": [s.namespace],
                "install_prometheus_stack": False,
                "install_dcgm_exporter": False,
            },
        )
        return pulumi.Output.all(o.rule_name, cache.job_name)

    rule_name, job_name = run(build)
    assert_no_stringified_outputs(mocks)
    (rule,) = mocks.objects("PrometheusRule")
    assert rule["metadata"]["name"] == rule_name
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert any(f'job_name="{job_name}"' in e and 'namespace="apps"' in e for e in exprs), exprs
    assert any('model_name="qwen-chat"' in e for e in exprs), exprs
    (monitor,) = mocks.objects("PodMonitor")
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["apps"]


def test_knative_monitored_model_is_not_always_on(mocks):
    def build():
        ns, cache = ns_and_cache()
        k = KnativeVllmService("qwen", serving_args(ns, cache, "qwen-chat"))
        return pulumi.Output.all(**monitored_model(k, cache))

    model = run(build)
    assert model["always_on"] is False and model["name"] == "qwen" and model["download_job_name"].endswith("-download")


def _keys(mocks):
    objs = [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in mocks.objects()]
    releases = [("HelmRelease", r["namespace"], r["name"]) for r in mocks.helm_releases()]
    overrides = [
        ("fullnameOverride", r["values"]["fullnameOverride"])
        for r in mocks.helm_releases()
        if "fullnameOverride" in (r.get("values") or {})
    ]
    return objs + releases, overrides


def test_two_observability_instances_in_one_namespace_do_not_collide(mocks):
    models = [{"name": "qwen", "namespace": "llm", "served_model_name": "qwen"}]
    common = {
        "models": models,
        "serving_namespaces": ["llm"],
        "install_prometheus_stack": False,
        "install_dcgm_exporter": False,
        "namespace": "monitoring",
    }
    run(lambda: pulumi.Output.all(Observability("team-a", common).rule_name, Observability("team-b", common).rule_name))
    keys, _ = _keys(mocks)
    assert len(keys) > 4
    assert [k for k, n in collections.Counter(keys).items() if n > 1] == []


def test_two_observability_installs_do_not_collide(mocks):
    models = [{"name": "qwen", "namespace": "llm", "served_model_name": "qwen"}]
    a = {"models": models, "serving_namespaces": ["llm"], "namespace": "mon-a"}
    b = {**a, "namespace": "mon-b", "names": {"prometheus_stack_release": "kps-b", "dcgm_exporter_release": "dcgm-b"}}
    run(lambda: pulumi.Output.all(Observability("a", a).prometheus_url, Observability("b", b).prometheus_url))
    keys, overrides = _keys(mocks)
    assert [k for k, n in collections.Counter(keys).items() if n > 1] == []
    # The charts' cluster-wide objects are named from fullnameOverride: unique per install.
    assert [k for k, n in collections.Counter(overrides).items() if n > 1] == []
