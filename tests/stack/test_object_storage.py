"""Model weights from object storage: ``model: s3://bucket/prefix/`` is
streamed by vLLM's Run:ai model streamer into each replica; no ModelCache, no PVC, no wait-for-weights."""

import copy
import json

import pytest

from conftest import assert_refused, render_with
from llmstack_k8s._core.testing import RecordingMocks
from llmstack_k8s._core.validation import ComponentArgsError
from llmstack_k8s.serving import object_storage as objstore
from llmstack_k8s.serving.knative_vllm_service import KnativeVllmService, knative_features_needed
from llmstack_k8s.serving.vllm_service import VllmService
from llmstack_k8s.sizing.cold_start import OBJECT_STORAGE_MIBPS, cold_start_budget
from support.schemas import validate_core

URI = "s3://llm-weights/llama-3.1-8b-instruct/0e9e39f/"
M0 = "llmstack:models[0] (name: llama-8b)"
MODEL = {"name": "llama-8b", "model": URI, "servedModelName": "meta-llama/Llama-3.1-8B-Instruct", "weightsGiB": 15}
KEYS = {"objectStorageAccessKeyId": "AKIAIOSFODNN7EXAMPLE", "objectStorageSecretAccessKey": "wJalrXUtnFEMI/K7MDENG"}
SECURE = tuple(KEYS)


def stack(model=None, **top) -> dict:
    m = copy.deepcopy(MODEL)
    for k, v in (model or {}).items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return {"models": [m], **top}


def container(rendered, kind="Deployment") -> dict:
    (obj,) = [o for o in rendered.of_kind(kind) if o["metadata"]["name"] == "llama-8b"]
    spec = obj["spec"]["template"]["spec"]
    return spec


def env_of(c: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


# --- what renders ---


def test_an_s3_model_streams_with_no_cache_volume_no_download_and_no_wait():
    r = render_with(stack(objectStorage={"region": "eu-west-1", "concurrency": 32}, **KEYS), secret_keys=SECURE)
    spec = container(r)
    c = spec["containers"][0]
    args = c["args"]
    assert args[args.index("--model") + 1] == URI
    assert args[args.index("--load-format") + 1] == "runai_streamer"
    assert json.loads(args[args.index("--model-loader-extra-config") + 1]) == {"concurrency": 32}
    assert "initContainers" not in spec  # no wait-for-weights: nothing is downloaded
    assert {v["name"] for v in spec["volumes"]} == {"dshm", "tmp"}  # no PVC; /tmp holds the pulled config/tokenizer
    assert all(m["name"] != "model-cache" for m in c["volumeMounts"])
    assert r.of_kind("PersistentVolumeClaim") == [] and r.of_kind("Job") == []
    env = env_of(c)
    assert env["HF_HUB_OFFLINE"] == "1" and env["HOME"] == "/tmp"  # config and tokenizer come from the bucket
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "llama-8b-object-storage", "key": "AWS_ACCESS_KEY_ID"}}
    (secret,) = [s for s in r.of_kind("Secret") if s["metadata"]["name"] == "llama-8b-object-storage"]
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for obj in (secret, *r.of_kind("Deployment")):
        validate_core(obj)


def test_an_s3_compatible_endpoint_sets_the_url_and_path_style_addressing():
    c = container(render_with(stack(objectStorage={"endpoint": "http://minio.storage.svc:9000"})))["containers"][0]
    env = env_of(c)
    assert env["AWS_ENDPOINT_URL"] == "http://minio.storage.svc:9000"
    assert env["RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING"] == "0"
    assert "AWS_ACCESS_KEY_ID" not in env  # no keys given: the SDK's chain (node role) decides


def test_workload_identity_runs_the_pods_as_an_annotated_service_account():
    role = "arn:aws:iam::123456789012:role/weights-reader"
    r = render_with(stack(objectStorage={"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": role}}))
    spec = container(r)
    (sa,) = r.of_kind("ServiceAccount")
    assert spec["serviceAccountName"] == sa["metadata"]["name"] == "llama-8b"
    assert sa["metadata"]["namespace"] == "llm" and sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": role
    }
    assert "AWS_ACCESS_KEY_ID" not in env_of(spec["containers"][0])
    validate_core(sa)


def test_an_existing_secret_is_referenced_not_created():
    r = render_with(stack(objectStorage={"existingSecret": "weights-reader"}))
    env = env_of(container(r)["containers"][0])
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "weights-reader", "key": "AWS_SECRET_ACCESS_KEY"}}
    assert [s["metadata"]["name"] for s in r.of_kind("Secret") if "object-storage" in s["metadata"]["name"]] == []


def test_a_gcs_model_on_knative_needs_no_volume_features():
    gke = {"iam.gke.io/gcp-service-account": "reader@proj.iam.gserviceaccount.com"}
    r = render_with(
        stack(
            {"model": "gs://llm-weights/llama/0e9e39f/", "serving": "knative"},
            objectStorage={"serviceAccountAnnotations": gke},
        )
    )
    (ksvc,) = [o for o in r.objects if o["kind"] == "Service" and o["apiVersion"].startswith("serving.knative.dev")]
    spec = ksvc["spec"]["template"]["spec"]
    assert "initContainers" not in spec and all("persistentVolumeClaim" not in v for v in spec["volumes"])
    assert spec["serviceAccountName"] == "llama-8b"
    needed = knative_features_needed(spec)
    assert (
        "kubernetes.podspec-persistent-volume-claim" not in needed
        and "kubernetes.podspec-init-containers" not in needed
    )
    assert spec["containers"][0]["args"][1] == "gs://llm-weights/llama/0e9e39f/"


def test_the_cold_start_reads_the_weights_at_the_object_storage_figure():
    r = render_with(stack({"coldStart": {"objectStorageMiBps": 256}}))
    budget = cold_start_budget(15, {"object_storage_mib_per_second": 256}, object_storage=True)
    assert budget.weights_seconds == 60  # 15 GiB at 256 MiB/s
    startup = container(r)["containers"][0]["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= budget.startup_seconds
    default = cold_start_budget(15, None, object_storage=True)
    assert (
        default.weights_seconds == round(15 * 1024 / OBJECT_STORAGE_MIBPS + 0.5)
        and default.weights_seconds < cold_start_budget(15).weights_seconds
    )


def test_the_stack_wide_figure_reaches_the_model_and_the_cache_figure_does_not_apply():
    cfg_obj = stack(coldStart={"objectStorageMiBps": 1024, "storageMiBps": 1})
    from stacks.config import StackConfig

    m = StackConfig.model_validate(cfg_obj).models[0]
    assert m.cold_start_budget.weights_seconds == 15


# --- refusals: one message each, naming the stack file and the key, nothing registered ---

REFUSALS = {
    "http URL": (
        stack({"model": "http://weights.example.com/llama/"}),
        f"{M0}.model: 'http://weights.example.com/llama/': the scheme 'http://' is not one",
    ),
    "one slash": (
        stack({"model": "s3:/llm-weights/llama/v1/"}),
        f"{M0}.model: 's3:/llm-weights/llama/v1/' is not a URL: write s3://bucket/prefix/",
    ),
    "no bucket": (stack({"model": "s3://"}), "names no bucket"),
    "upper-case scheme": (stack({"model": "S3://llm-weights/llama/v1/"}), "write the scheme in lower case (s3://)"),
    "bucket with upper case": (
        stack({"model": "s3://LLM_Weights/llama/v1/"}),
        "bucket 'LLM_Weights' is not a valid S3 bucket name",
    ),
    "bucket as an IP": (stack({"model": "s3://10.0.0.1/llama/v1/"}), "is not a valid S3 bucket name"),
    "GCS bucket starting goog": (stack({"model": "gs://google-weights/llama/v1/"}), "is not a valid GCS bucket name"),
    "whole bucket": (
        stack({"model": "s3://llm-weights/"}),
        "is a whole bucket: put the weights under a prefix that names their version",
    ),
    "moving prefix": (
        stack({"model": "s3://llm-weights/llama/latest/"}),
        "ends in 'latest', a name that moves to other weights",
    ),
    "a file, not a prefix": (
        stack({"model": "s3://llm-weights/llama/v1/model.safetensors"}),
        "names a file: give the directory",
    ),
    "wildcard": (stack({"model": "s3://llm-weights/llama/*/"}), "has a wildcard"),
    "revision on object storage": (
        stack({"revision": "0e9e39f249a16976918f6564b8830bc894c89659"}),
        f"{M0}.revision: applies to Hugging Face repositories",
    ),
    "cache on object storage": (stack({"cache": {"size": "40Gi"}}), f"{M0}.cache: there is no cache volume"),
    "gated on object storage": (stack({"gated": True}), f"{M0}.gated: applies to Hugging Face repositories"),
    "LoRA adapters on object storage": (
        stack(
            {
                "loraAdapters": [
                    {
                        "name": "sql",
                        "model": "org/sql-lora",
                        "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
                        "rank": 16,
                    }
                ],
                "loraMemoryGiB": 1,
            }
        ),
        f"{M0}.loraAdapters: adapters are downloaded from the Hub into the model's cache volume",
    ),
    "canary revision on object storage": (
        stack({"canary": {"weight": 10, "revision": "0e9e39f249a16976918f6564b8830bc894c89659"}}),
        f"{M0}.canary.revision: the weights in",
    ),
    "no served name": (
        stack({"servedModelName": None}),
        f"{M0}.servedModelName: required for a model in object storage",
    ),
    "load format in extraArgs": (
        stack({"extraArgs": ["--load-format", "safetensors"]}),
        f"{M0}.extraArgs: sets --load-format, which the stack renders",
    ),
    "loader config in extraArgs": (
        stack({"extraArgs": ['--model-loader-extra-config={"concurrency":4}']}),
        "sets --model-loader-extra-config",
    ),
    "load format in the canary's extraArgs": (
        stack({"canary": {"weight": 10, "extraArgs": ["--load-format=auto"]}}),
        f"{M0}.canary.extraArgs: sets --load-format",
    ),
    "streamer env in extraEnv": (
        stack({"extraEnv": {"RUNAI_STREAMER_CONCURRENCY": "64"}}),
        f"{M0}.extraEnv.RUNAI_STREAMER_CONCURRENCY: is the object-storage client's setting",
    ),
    "endpoint in extraEnv": (
        stack({"extraEnv": {"AWS_ENDPOINT_URL": "http://minio:9000"}}),
        f"{M0}.extraEnv.AWS_ENDPOINT_URL",
    ),
    "Hub model without revision": (
        {"models": [{"name": "m", "model": "org/m", "cache": {"size": "40Gi"}}]},
        "(name: m).revision: required key is missing",
    ),
    "credentials inside objectStorage": (
        stack(objectStorage={"secretAccessKey": "x"}),
        "llmstack:objectStorage.secretAccessKey: credentials do not go in objectStorage",
    ),
    "one key of two": (
        stack(objectStorageAccessKeyId="AKIAIOSFODNN7EXAMPLE"),
        "llmstack:objectStorageSecretAccessKey: not set, but objectStorageAccessKeyId is",
    ),
    "keys and an existing secret": (
        stack(objectStorage={"existingSecret": "reader"}, **KEYS),
        "llmstack:objectStorage.existingSecret: and objectStorageAccessKeyId",
    ),
    "workload identity and keys": (
        stack(
            objectStorage={"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}}, **KEYS
        ),
        "llmstack:objectStorage.serviceAccountAnnotations: and objectStorageAccessKeyId are both set",
    ),
    "S3 keys for a GCS model": (
        stack({"model": "gs://llm-weights/llama/v1/"}, **KEYS),
        "llmstack:objectStorageAccessKeyId: is an S3 setting but every model in object storage is on GCS",
    ),
    "S3 endpoint for a GCS model": (
        stack({"model": "gs://llm-weights/llama/v1/"}, objectStorage={"endpoint": "https://minio:9000"}),
        "llmstack:objectStorage.endpoint: is an S3 setting",
    ),
    "IRSA role for a GCS model": (
        stack(
            {"model": "gs://llm-weights/llama/v1/"},
            objectStorage={"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}},
        ),
        "objectStorage.serviceAccountAnnotations.eks.amazonaws.com/role-arn: is S3's workload identity, but no "
        "model's weights are on S3",
    ),
    "objectStorage with no model in a bucket": (
        {
            "models": [
                {
                    "name": "m",
                    "model": "org/m",
                    "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
                    "weightsGiB": 15,
                    "cache": {"size": "40Gi"},
                }
            ],
            "objectStorage": {"region": "eu-west-1"},
        },
        "llmstack:objectStorage: is set but no model's `model` is an s3:// or gs:// URL",
    ),
    "endpoint not a URL": (
        stack(objectStorage={"endpoint": "minio:9000"}),
        "llmstack:objectStorage.endpoint: 'minio:9000' must be a URL",
    ),
    "concurrency zero": (
        stack(objectStorage={"concurrency": 0}),
        "llmstack:objectStorage.concurrency: 0 is below the least allowed, 1",
    ),
    "startup timeout below the streamed load": (
        stack({"weightsGiB": 400, "startupTimeoutSeconds": 600}),
        "needs (engine start + weights at coldStart.objectStorageMiBps)",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused(case):
    config, expected = REFUSALS[case]
    assert_refused(config, expected)


def test_plain_text_keys_are_refused():
    from stacks.config.loader import StackConfigError

    mocks = RecordingMocks()
    with pytest.raises(StackConfigError) as err:
        render_with(stack(**KEYS), mocks=mocks)  # not marked secure
    assert "llmstack:objectStorageAccessKeyId is plain text; it must be a secret" in str(err.value)
    assert mocks.registrations == []


def test_the_fit_check_asks_for_the_size_of_a_model_in_a_bucket():
    assert_refused(
        stack({"weightsGiB": None}, gpuPool={"gpu": {"product": "NVIDIA-L4", "memoryGiB": 24, "perNode": 1}}),
        f"the size of {URI} is not known",
    )


# --- the components on their own (other Pulumi programs) ---


def _server(cls, **over):
    args = {"namespace": "llm", "engine": {"served_model_name": "m"}, "object_storage": {"uri": URI}, **over}
    return cls("m", args)


@pytest.mark.parametrize("cls", [VllmService, KnativeVllmService])
@pytest.mark.parametrize(
    "over, expected",
    [
        ({"model_path": "/models/x", "cache_claim_name": "c"}, "args.model_path: and object_storage are both given"),
        ({"object_storage": {"uri": "s3:/b/x/"}}, "args.object_storage.uri:"),
        ({"object_storage": {"uri": URI, "access_key_id": "a"}}, "args.object_storage.secret_access_key: missing"),
        (
            {"object_storage": {"uri": "gs://bucket-a/x/v1/", "region": "eu"}},
            "args.object_storage.region: is an S3 setting",
        ),
        (
            {
                "object_storage": {
                    "uri": URI,
                    "credentials_secret_name": "s",
                    "service_account_annotations": {"eks.amazonaws.com/role-arn": "r"},
                }
            },
            "args.object_storage.service_account_annotations: and static keys are both given",
        ),
        (
            {"engine": {"served_model_name": "m", "extra_args": ["--load-format=auto"]}},
            "args.engine.extra_args: --load-format is rendered",
        ),
        (
            {"engine": {"served_model_name": "m", "lora_adapters": [{"name": "a", "path": "/models/a", "rank": 8}]}},
            "args.engine.lora_adapters:",
        ),
    ],
)
def test_components_refuse_a_bad_source_before_registering(cls, over, expected):
    mocks = RecordingMocks()
    import pulumi

    pulumi.runtime.set_mocks(mocks, preview=False)
    with pytest.raises(ComponentArgsError) as err:
        _server(cls, **over)
    assert expected in str(err.value), str(err.value)
    assert mocks.registrations == []


def test_a_component_without_any_source_names_what_is_missing():
    with pytest.raises(ComponentArgsError) as err:
        VllmService("m", {"namespace": "llm", "engine": {"served_model_name": "m"}})
    assert "args.model_path: required key missing: the weights come from a cache volume" in str(err.value)


@pytest.mark.parametrize(
    "uri", ["s3://my-bucket.example/models/llama/2024-07-23/", "gs://weights_eu/llama/0e9e39f", "s3://abc/a/b/c/v2"]
)
def test_valid_uris_pass(uri):
    assert objstore.uri_problem(uri) is None
    assert objstore.normalized(uri).endswith("/") and not objstore.normalized(uri).endswith("//")


# --- cross-object checks: what the pods refer to exists (ServiceAccount, Secrets) ---

CROSS = {
    "keys": (stack(**KEYS), SECURE),
    "workload identity": (
        stack(objectStorage={"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}}),
        (),
    ),
    "existing secret": (stack(objectStorage={"existingSecret": "weights-reader"}), ()),
    "knative on GCS": (
        stack(
            {"model": "gs://llm-weights/llama/v1/", "serving": "knative"},
            objectStorage={
                "serviceAccountAnnotations": {"iam.gke.io/gcp-service-account": "r@p.iam.gserviceaccount.com"}
            },
        ),
        (),
    ),
}


@pytest.mark.parametrize("case", sorted(CROSS))
def test_object_storage_stacks_pass_the_cross_object_checks(case):
    from llmstack_k8s.rules import check_all
    from stack.test_cross_objects import declared_for
    from stacks.config import StackConfig

    config, secure = CROSS[case]
    objects = render_with(config, secret_keys=secure).objects
    cfg = StackConfig.model_validate(dict(config.items()))
    assert check_all(objects, declared_for(cfg)) == []


def test_a_missing_service_account_is_caught_by_the_cross_object_checks():
    from llmstack_k8s.rules import references_exist

    config, _ = CROSS["workload identity"]
    objects = [o for o in render_with(config).objects if o["kind"] != "ServiceAccount"]
    assert any("refers to ServiceAccount llm/llama-8b" in p for p in references_exist(objects))
