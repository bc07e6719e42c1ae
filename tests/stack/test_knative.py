"""KnativeVllmService: the same vLLM container as the Deployment, Knative's autoscaling from the
config, a Knative install that admits the pod, and refusals of what Knative cannot run."""

import copy

import pytest

from conftest import assert_refused, render_with, rendered_stack
from llmstack_k8s import versions
from llmstack_k8s.cluster.knative_serving import DATA_PLANE_NAMESPACES
from llmstack_k8s.serving import knative_vllm_service as kn
from llmstack_k8s.serving.vllm_pod import DEPLOYMENT_DRAIN_LIFECYCLE, HTTP_PORT, knative_pod_spec, vllm_container
from support.schemas import validate_object

MODEL = {
    "name": "qwen",
    "model": "Qwen/Qwen2.5-1.5B-Instruct",
    "revision": "989aa7980e4cf806f80c7fef2b1adb7bc71aa306",
    "servedModelName": "qwen2.5-1.5b-instruct",
    "maxModelLen": 4096,
    "maxNumSeqs": 48,
    "weightsGiB": 3,
    "shmSize": "4Gi",
    "image": "docker.io/vllm/vllm-openai:v0.32.0",
    "extraArgs": ["--enable-chunked-prefill"],
    "extraEnv": {"VLLM_LOGGING_LEVEL": "INFO"},
    "resources": {"cpu": "3", "memory": "20Gi"},
    "cache": {"size": "10Gi"},
}
# Placement fields Knative gates behind feature flags: node selector, runtime class, priority class, tolerations.
GPU_POOL = {"nodeSelector": {"pool": "gpu"}, "runtimeClass": {"name": "nvidia"}}
BUDGET = 300 + 3 * 10  # components.vllm_pod.startup_budget_seconds(3)


def stack(serving="knative", knative=None, model=None, autoscaling=None, **top):
    m = copy.deepcopy(MODEL)
    m.update(model or {})
    if serving is not None:
        m["serving"] = serving
    if knative is not None:
        m["knative"] = knative
    if autoscaling is not None:
        m["autoscaling"] = autoscaling
    return {"namespace": "llm-t", "gpuPool": copy.deepcopy(GPU_POOL), "models": [m], **top}


def ksvc(rendered, name="qwen"):
    (svc,) = [
        o
        for o in rendered.of_kind("Service")
        if o["apiVersion"] == kn.KNATIVE_SERVING_API and o["metadata"]["name"] == name
    ]
    return svc


def deployment(rendered, name="qwen"):
    (d,) = [o for o in rendered.of_kind("Deployment") if o["metadata"]["name"] == name]
    return d


@pytest.fixture(scope="module")
def both():
    """The same model config rendered as a Deployment and as a Knative Service."""
    return render_with(stack(serving="deployment")), render_with(stack(serving="knative"))


def test_knative_container_is_the_deployments_container(both):
    as_deployment, as_knative = both
    (dep_c,) = deployment(as_deployment)["spec"]["template"]["spec"]["containers"]
    (kn_c,) = ksvc(as_knative)["spec"]["template"]["spec"]["containers"]
    # Identical but for the drain hook, which Knative refuses (it injects queue-proxy's own preStop).
    assert dep_c.pop("lifecycle") == DEPLOYMENT_DRAIN_LIFECYCLE
    assert kn_c == dep_c
    # ... and the comparison is not vacuous: the model config reached the container.
    assert "--enable-chunked-prefill" in kn_c["args"] and {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"} in kn_c["env"]
    assert kn_c["resources"]["limits"]["memory"] == "20Gi"


def test_knative_pod_differs_from_the_deployments_only_where_knative_requires(both):
    as_deployment, as_knative = both
    dep = deployment(as_deployment)["spec"]["template"]["spec"]
    kpod = ksvc(as_knative)["spec"]["template"]["spec"]
    for key in (
        "initContainers",
        "volumes",
        "nodeSelector",
        "tolerations",
        "runtimeClassName",
        "priorityClassName",
        "enableServiceLinks",
        "automountServiceAccountToken",
    ):
        assert kpod[key] == dep[key], key
    dep_only = set(dep) - set(kpod)
    assert dep_only == {"terminationGracePeriodSeconds", "topologySpreadConstraints"}
    assert set(kpod) - set(dep) == {"containerConcurrency", "timeoutSeconds"}
    dropped = set(dep["securityContext"]) - set(kpod["securityContext"])
    assert dropped == {"fsGroupChangePolicy"}, "a new pod security field must be checked against what Knative admits"


def test_knative_service_validates_against_its_crd_and_the_crd_check_bites(both):
    svc = ksvc(both[1])
    validate_object(svc)
    bad = copy.deepcopy(svc)
    bad["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = DEPLOYMENT_DRAIN_LIFECYCLE
    with pytest.raises(Exception, match="lifecycle"):
        validate_object(bad)


def test_shared_container_meets_knatives_webhook_rules():
    """Rules Knative's admission webhook enforces beyond its CRD schema (serving pkg/apis/serving)."""
    c = vllm_container(
        {"engine": {"served_model_name": "m"}, "model_path": "/models/m", "claim_name": "c", "api_key_secret_name": "k"}
    )
    assert "lifecycle" not in c
    (port,) = c["ports"]
    assert port["name"] in {"", "http1", "h2c"} and port["containerPort"] not in {8012, 8013, 8022, 9090, 9091, 8008}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] == port["containerPort"] == HTTP_PORT, probe
    assert not {m["mountPath"] for m in c["volumeMounts"]} & {"/", "/dev", "/dev/log", "/var"}
    assert not {e["name"] for e in c["env"]} & kn.KNATIVE_RESERVED_ENV


def test_annotations_and_timeouts_derive_from_the_config():
    scaling = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "target": 8,
        "cooldownSeconds": 420,
    }  # the same keys as a Deployment's
    k = {
        "initialScale": 2,
        "containerConcurrency": 24,
        "stableWindow": "2m",
        "panicWindowPercentage": 20,
        "progressDeadlineSeconds": 1200,
        "requestTimeoutSeconds": 1500,
    }
    svc = ksvc(
        render_with(
            stack(knative=k, autoscaling=scaling, model={"cache": {"size": "10Gi", "accessMode": "ReadWriteMany"}})
        )
    )
    a = svc["spec"]["template"]["metadata"]["annotations"]
    assert a["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert (
        a["autoscaling.knative.dev/min-scale"],
        a["autoscaling.knative.dev/max-scale"],
        a["autoscaling.knative.dev/initial-scale"],
    ) == ("1", "3", "2")
    assert a["autoscaling.knative.dev/target"] == "8"
    assert a["autoscaling.knative.dev/metric"] == "concurrency"
    assert a["autoscaling.knative.dev/scale-down-delay"] == "7m"
    assert a["autoscaling.knative.dev/window"] == "2m"
    assert a["autoscaling.knative.dev/panic-window-percentage"] == "20.0"
    assert a["serving.knative.dev/progress-deadline"] == "1200s"
    spec = svc["spec"]["template"]["spec"]
    assert spec["containerConcurrency"] == 24 and spec["timeoutSeconds"] == 1500


def test_defaults_scale_to_zero_batch_and_outlast_the_startup_budget():
    svc = ksvc(render_with(stack()))
    a = svc["spec"]["template"]["metadata"]["annotations"]
    assert a["autoscaling.knative.dev/min-scale"] == "0"
    assert a["autoscaling.knative.dev/target"] == str(MODEL["maxNumSeqs"] // 2)  # LLM servers batch: never 1
    deadline = int(a["serving.knative.dev/progress-deadline"].removesuffix("s"))
    assert deadline == BUDGET + kn.PROGRESS_DEADLINE_MARGIN_SECONDS
    startup = svc["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert deadline >= startup["periodSeconds"] * startup["failureThreshold"] >= BUDGET
    # The activator counts a whole cold start (node, image, load) against the request timeout, plus a long generation.
    assert svc["spec"]["template"]["spec"]["timeoutSeconds"] == BUDGET + kn.SCHEDULING_SECONDS + kn.GENERATION_SECONDS
    assert svc["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"


def test_dev_stack_has_a_knative_model_scaling_to_zero():
    dev = rendered_stack("dev")
    svcs = [o for o in dev.of_kind("Service") if o["apiVersion"] == kn.KNATIVE_SERVING_API]
    assert svcs
    assert any(
        s["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "0" for s in svcs
    )


def test_installed_knative_admits_the_rendered_pods():
    """The features, timeout ceiling and version the KnativeServing sets fit every rendered Knative Service."""
    dev = rendered_stack("dev")
    (op,) = [r for r in dev.helm_releases if r["chart"] == "knative-operator"]
    assert op["repositoryOpts"]["repo"] == "https://knative.github.io/operator" and op["version"].lstrip(
        "v"
    ).startswith("1.23.")
    (serving,) = dev.of_kind("KnativeServing")
    assert serving["metadata"]["namespace"] == "knative-serving"
    assert serving["spec"]["ingress"]["kourier"]["enabled"] is True
    assert serving["spec"]["version"] == versions.KNATIVE_SERVING_VERSION
    config = serving["spec"]["config"]
    enabled = {flag for flag, value in config["features"].items() if value == "enabled"}
    for svc in [o for o in dev.of_kind("Service") if o["apiVersion"] == kn.KNATIVE_SERVING_API]:
        pod = svc["spec"]["template"]["spec"]
        assert kn.knative_features_needed(pod) <= enabled, svc["metadata"]["name"]
        assert {
            "kubernetes.podspec-persistent-volume-claim",
            "kubernetes.podspec-init-containers",
        } <= kn.knative_features_needed(pod)
        assert pod["timeoutSeconds"] <= int(config["defaults"]["max-revision-timeout-seconds"])


def test_existing_knative_installs_nothing_and_still_serves():
    features = sorted(kn.ALL_POD_FEATURES)
    r = render_with(
        {**stack(knative={"requestTimeoutSeconds": 600}), "knative": {"install": False, "features": features}}
    )
    assert not r.of_kind("KnativeServing")
    assert not [h for h in r.helm_releases if h["chart"] == "knative-operator"]
    assert ksvc(r)["spec"]["template"]["spec"]["timeoutSeconds"] == 600


def test_network_policy_admits_knative_data_plane_and_prometheus_only():
    r = render_with(stack())
    (np,) = [o for o in r.of_kind("NetworkPolicy") if o["metadata"]["name"] == "qwen"]
    rules = {}
    for rule in np["spec"]["ingress"]:
        names = frozenset(
            v
            for s in rule["from"]
            for e in s.get("namespaceSelector", {}).get("matchExpressions", [])
            for v in e["values"]
        )
        rules[names] = {p["port"] for p in rule["ports"]}
    # Installed by the operator: activator, autoscaler and Kourier all run in knative-serving.
    data_plane = frozenset(DATA_PLANE_NAMESPACES)
    assert kn.QUEUE_PROXY_HTTP_PORT in rules[data_plane]
    assert HTTP_PORT not in rules[data_plane], "clients go through queue-proxy, never straight to vLLM"
    assert rules[frozenset({"monitoring"})] == {HTTP_PORT, kn.QUEUE_PROXY_USER_METRICS_PORT}
    # The pods it guards are the Knative Service's.
    pod_labels = ksvc(r)["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in np["spec"]["podSelector"]["matchLabels"].items())


def test_namespaces_key_says_what_install_true_admits():
    """The README's knative.namespaces row tells what the policy above admits with install: true
    (the installed data plane, plus what is listed), not only the default for an existing Knative."""
    from stacks.config.knative import KnativeConfig

    described = KnativeConfig.model_fields["namespaces"].description
    assert f"With install true: {', '.join(DATA_PLANE_NAMESPACES)}" in described
    assert "plus any listed here" in described and "with install false" in described
    # What the row says is what the composition admits: listed namespaces join the installed data plane.
    r = render_with({**stack(), "knative": {"namespaces": ["mesh-gateway"]}})  # the stack-wide llmstack:knative
    (np,) = [o for o in r.of_kind("NetworkPolicy") if o["metadata"]["name"] == "qwen"]
    admitted = {
        v
        for rule in np["spec"]["ingress"]
        for s in rule["from"]
        for e in s.get("namespaceSelector", {}).get("matchExpressions", [])
        for v in e["values"]
    }
    assert set(DATA_PLANE_NAMESPACES) | {"mesh-gateway"} <= admitted and "kourier-system" not in admitted


REFUSALS = {
    "a KEDA signal on a Knative model": (
        stack(autoscaling={"metric": "queueDepth", "maxReplicas": 1}),
        "models[0] (name: qwen).autoscaling.metric: queueDepth is a vLLM metric KEDA reads for a Deployment model; "
        "Knative's autoscaler scales on concurrency",
    ),
    "a KEDA-only key on a Knative model": (
        stack(autoscaling={"maxReplicas": 1, "kvCacheTarget": 0.8}),
        "models[0] (name: qwen).autoscaling.kvCacheTarget: applies to a Deployment model (KEDA)",
    ),
    "warm schedules on a Knative model": (
        stack(
            autoscaling={
                "maxReplicas": 1,
                "schedules": [{"start": "0 8 * * 1-5", "end": "0 18 * * 1-5", "minReplicas": 1}],
            }
        ),
        "models[0] (name: qwen).autoscaling.schedules: applies to a Deployment model (KEDA)",
    ),
    "knative settings without serving: knative": (
        stack(serving=None, knative={"initialScale": 1}),
        "knative is set but serving is deployment",
    ),
    "replicas on a Knative model": (stack(model={"replicas": 2}), "replicas applies to serving: deployment"),
    "progress deadline shorter than the startup budget": (
        stack(knative={"progressDeadlineSeconds": 120}),
        f"knative.progressDeadlineSeconds 120 is shorter than the startup budget ({BUDGET} s",
    ),
    "request timeout shorter than a cold start": (
        stack(knative={"requestTimeoutSeconds": 60}),
        "the first request after scaling to zero would time out while the model loads",
    ),
    "target concurrency above the batch size": (
        stack(autoscaling={"maxReplicas": 1, "target": 64}),
        "autoscaling.target: 64 in-flight requests per pod exceeds maxNumSeqs 48",
    ),
    "target concurrency above the container concurrency": (
        stack(autoscaling={"maxReplicas": 1, "target": 16}, knative={"containerConcurrency": 8}),
        "autoscaling.target: 16 in-flight requests per pod exceeds knative.containerConcurrency 8",
    ),
    "fractional target concurrency": (
        stack(autoscaling={"maxReplicas": 1, "target": 7.5}),
        "autoscaling.target: 7.5 is in-flight requests per pod",
    ),
    "initial scale above the most replicas": (
        stack(autoscaling={"maxReplicas": 1}, knative={"initialScale": 2}),
        "knative.initialScale: 2 exceeds autoscaling.maxReplicas 1",
    ),
    "cooldown shorter than the startup budget": (
        stack(autoscaling={"maxReplicas": 1, "cooldownSeconds": 120}),
        "autoscaling.cooldownSeconds 120 is shorter than the model's startup budget",
    ),
    "cooldown above Knative's scale-down delay ceiling": (
        stack(autoscaling={"maxReplicas": 1, "cooldownSeconds": 7200}),
        "autoscaling.cooldownSeconds: 7200 is above 3600",
    ),
    "stable window out of range": (
        stack(knative={"stableWindow": "2s"}),
        "stableWindow '2s' must be between 6s and 1h",
    ),
    "not a duration": (stack(knative={"stableWindow": "ten minutes"}), "'ten minutes' is not a duration"),
    "env var Knative reserves": (
        stack(model={"extraEnv": {"PORT": "9000"}}),
        "extraEnv sets PORT, which Knative sets itself",
    ),
    "ReadWriteOnce cache with several pods": (
        stack(autoscaling={"maxReplicas": 2}, model={"cache": {"size": "10Gi", "accessMode": "ReadWriteOnce"}}),
        "models[0] (name: qwen).autoscaling.maxReplicas is 2 but the cache accessMode is ReadWriteOnce",
    ),
    "existing Knative without the pod's feature flags": (
        {
            **stack(knative={"requestTimeoutSeconds": 600}),
            "knative": {"install": False, "features": ["kubernetes.podspec-init-containers"]},
        },
        "knative.features does not list as enabled: kubernetes.podspec-nodeselector, "
        "kubernetes.podspec-persistent-volume-claim",
    ),
    "existing Knative whose timeout ceiling is too low": (
        {**stack(), "knative": {"install": False, "features": sorted(kn.ALL_POD_FEATURES)}},
        f"requestTimeoutSeconds is {BUDGET + kn.SCHEDULING_SECONDS + 600} (default: cold start + 600) but Knative "
        "allows at most 600",
    ),
    "initial scale 0 on a Knative that refuses it": (
        {
            **stack(knative={"initialScale": 0, "requestTimeoutSeconds": 600}),
            "knative": {"install": False, "features": sorted(kn.ALL_POD_FEATURES)},
        },
        "initialScale is 0 but knative.allowZeroInitialScale is false",
    ),
    "describing an existing Knative while installing one": (
        {**stack(), "knative": {"features": ["kubernetes.podspec-init-containers"]}},
        "llmstack:knative: features describes an existing Knative, but install is true",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_what_knative_cannot_run_is_refused_before_anything_is_registered(case):
    assert_refused(*REFUSALS[case])


def test_component_refuses_a_pod_the_declared_knative_would_reject():
    p = {"engine": {"served_model_name": "m"}, "model_path": "/models/m", "claim_name": "c", "api_key_secret_name": "k"}
    needed = kn.knative_features_needed(knative_pod_spec(p))
    assert kn.FIELD_FEATURES["tolerations"] in needed  # the default contract tolerates the GPU taint
    assert kn.scaling_problems({"target_concurrency": 40, "container_concurrency": 20}, 300) == [
        ("scaling.target_concurrency", "40 exceeds container_concurrency 20: Knative could never reach it")
    ]
    ((path, problem),) = kn.scaling_problems({}, 300, 200)
    assert path == "progress_deadline_seconds" and problem.startswith("200 is shorter than the startup budget 300")


def test_durations_parse_like_knatives():
    assert (
        kn.duration_seconds("90s") == 90 and kn.duration_seconds("10m") == 600 and kn.duration_seconds("1h30m") == 5400
    )
    for bad in ("", "10", "1d", "m"):
        with pytest.raises(ValueError):
            kn.duration_seconds(bad)


def test_existing_knative_needs_only_the_flags_the_placement_uses():
    """Untainted GPU nodes and no node selector or runtime class: those flags are not demanded."""
    features = sorted(
        kn.pod_features(None) - {kn.FIELD_FEATURES["tolerations"]} | {kn.FIELD_FEATURES["priorityClassName"]}
    )
    cfg = {
        **stack(knative={"requestTimeoutSeconds": 600}),
        "gpuPool": {"taints": []},
        "knative": {"install": False, "features": features},
    }
    pod = ksvc(render_with(cfg))["spec"]["template"]["spec"]
    assert not pod.get("tolerations") and "nodeSelector" not in pod
    assert kn.knative_features_needed(pod) <= set(features)
