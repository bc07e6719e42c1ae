"""Model weights streamed from object storage (``s3://`` or ``gs://``) by vLLM's Run:ai model streamer.

Facts this module relies on (vLLM 0.32, runai-model-streamer 0.17):

- ``--model s3://bucket/prefix/`` makes vLLM pull the small files (``*.json``, ``*.model``, ``*.py``
  and the tokenizer) from the bucket into ``$VLLM_ASSETS_CACHE/model_streamer/<hash>`` (under
  ``$HOME/.cache``, the pod's ``/tmp`` emptyDir) and read config and tokenizer from there: nothing
  comes from the Hugging Face Hub, so the pod's offline env stays right. The ``*.safetensors`` are
  streamed straight into device memory; there is no download Job and no weights volume.
- ``--load-format runai_streamer`` (vLLM would pick it for an object-storage model anyway; the
  stack renders it so a contradicting ``--load-format`` cannot slip in through extra args).
- ``--model-loader-extra-config`` takes ``concurrency``, ``memory_limit`` and ``distributed``; vLLM
  turns the first two into ``RUNAI_STREAMER_CONCURRENCY`` / ``RUNAI_STREAMER_MEMORY_LIMIT``.
- S3 credentials: the AWS SDK's default chain in the streamer (``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY``, IRSA's ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``, EKS Pod
  Identity, the node's instance profile); ``AWS_ENDPOINT_URL`` for an S3-compatible store (MinIO,
  R2, Ceph), which also needs ``RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING=0`` (path-style);
  ``AWS_REGION``. GCS: Application Default Credentials (GKE Workload Identity, the node's account).
- The streamer ships in the vllm/vllm-openai image (its Dockerfile installs
  ``runai-model-streamer[s3,gcs]``); a custom image needs it too.
"""

import json
import re
from collections.abc import Mapping
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .._core.validation import args_error

#: URL schemes the stack streams from, and the store each names.
SCHEMES = {"s3": "S3", "gs": "GCS"}
#: ``--load-format`` value of the Run:ai model streamer.
LOAD_FORMAT = "runai_streamer"
#: vLLM flags (argparse dests) the stack renders for an object-storage model.
MANAGED_LOADER_DESTS = ("load_format", "model_loader_extra_config")
#: Last path segments that name a moving version, never fixed weights.
MOVING_PREFIXES = {
    "latest",
    "current",
    "main",
    "master",
    "head",
    "stable",
    "prod",
    "production",
    "live",
    "default",
    "new",
}
#: Keys of an existing credentials Secret (the AWS SDK's env var names, so ``envFrom`` could read it too).
ACCESS_KEY_ID, SECRET_ACCESS_KEY = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
#: Env vars the stack sets for the streamer (refused in extra env: the last duplicate would win).
MANAGED_ENV = frozenset(
    {
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING",
        "RUNAI_STREAMER_CONCURRENCY",
        "RUNAI_STREAMER_MEMORY_LIMIT",
    }
)

_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def is_object_storage(model: str) -> bool:
    """``model`` names object storage (any spelling of a scheme, so a typo is refused, not taken for a Hub id)."""
    return "://" in model or bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", model))


def bucket_problem(scheme: str, bucket: str) -> str | None:
    """Why ``bucket`` is not a valid bucket name of that store, or None."""
    store = SCHEMES[scheme]
    if scheme == "s3":
        ok = (
            _S3_BUCKET.match(bucket)
            and ".." not in bucket
            and not _IP.match(bucket)
            and not bucket.startswith("xn--")
            and not bucket.endswith(("-s3alias", "--ol-s3"))
        )
        rule = (
            "3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit, no '..', not "
            "an IP address"
        )
    else:
        parts_ok = all(0 < len(p) <= 63 for p in bucket.split("."))
        ok = (
            _GCS_BUCKET.match(bucket)
            and parts_ok
            and (len(bucket) <= 63 or "." in bucket)
            and not _IP.match(bucket)
            and not bucket.startswith("goog")
            and "google" not in bucket
        )
        rule = (
            "3-63 lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit, not "
            "starting with 'goog'"
        )
    return None if ok else f"bucket {bucket!r} is not a valid {store} bucket name ({rule})"


def uri_problem(uri: str) -> str | None:
    """Why ``uri`` is not a usable weights location (``s3://bucket/prefix/`` or ``gs://...``), or None."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):(/*)(.*)$", uri)
    scheme = m.group(1) if m else ""
    if scheme.lower() not in SCHEMES:
        return (
            f"{uri!r}: the scheme {scheme + '://' if scheme else ''!r} is not one the Run:ai streamer reads; "
            "weights come from the Hugging Face Hub (org/name) or from object storage as s3://bucket/prefix/ or "
            "gs://bucket/prefix/"
        )
    if scheme != scheme.lower():
        return (
            f"{uri!r}: write the scheme in lower case ({scheme.lower()}://); vLLM would not take it for object storage"
        )
    assert m is not None  # no match: no scheme, refused above
    if m.group(2) != "//":
        return f"{uri!r} is not a URL: write {scheme}://bucket/prefix/ (two slashes after {scheme}:)"
    bucket, _, prefix = m.group(3).partition("/")
    if not bucket:
        return f"{uri!r} names no bucket: write {scheme}://bucket/prefix/"
    problem = bucket_problem(scheme, bucket)
    if problem:
        return f"{uri!r}: {problem}"
    parts = prefix.rstrip("/").split("/") if prefix.strip("/") else []
    if not parts:
        return (
            f"{uri!r} is a whole bucket: put the weights under a prefix that names their version "
            f"(e.g. {scheme}://{bucket}/llama-3.1-8b-instruct/0e9e39f/) and never write over it"
        )
    if any(p in ("", ".", "..") for p in parts) or "//" in prefix:
        return f"{uri!r} has an empty, '.' or '..' path segment: write the prefix as the objects' keys are"
    if any(ch in uri for ch in "*?[]"):
        return f"{uri!r} has a wildcard: name the directory (prefix) that holds config.json and the *.safetensors"
    if parts[-1].lower() in MOVING_PREFIXES:
        return (
            f"{uri!r} ends in {parts[-1]!r}, a name that moves to other weights: replicas started on different days "
            "would serve different models. Point at a prefix that names one version (a commit SHA or a date) "
            "and write each new version to a new prefix"
        )
    if parts[-1].endswith((".safetensors", ".json", ".bin")):
        return f"{uri!r} names a file: give the directory (prefix) that holds config.json and the *.safetensors"
    return None


def normalized(uri: str) -> str:
    """The URI with one trailing slash (vLLM lists the prefix's objects; ``a/b`` would also match ``a/b2/``)."""
    return uri.rstrip("/") + "/"


def scheme_of(uri: str) -> str:
    return uri.split(":", 1)[0].lower()


class ObjectStorageArgs(TypedDict):
    """Where a model's weights are in object storage and how a server reaches them."""

    uri: str
    """``s3://bucket/prefix/`` or ``gs://bucket/prefix/``: the directory holding the model's ``config.json``,
    tokenizer files and ``*.safetensors`` (plain: checked at preview). Treat it as immutable: a new version
    goes to a new prefix, so every replica serves the same weights."""
    endpoint: NotRequired[pulumi.Input[str]]
    """S3-compatible endpoint URL (MinIO, Cloudflare R2, Ceph RGW), e.g. ``https://minio.storage:9000``; sets
    ``AWS_ENDPOINT_URL`` and path-style addressing. Not for AWS S3 itself nor GCS."""
    region: NotRequired[pulumi.Input[str]]
    """The bucket's region (``AWS_REGION``), e.g. ``eu-west-1``."""
    access_key_id: NotRequired[pulumi.Input[str]]
    """S3 access key id (a secret): the component keeps it, with ``secret_access_key``, in a Secret of its own."""
    secret_access_key: NotRequired[pulumi.Input[str]]
    """S3 secret access key (a secret), with ``access_key_id``."""
    credentials_secret_name: NotRequired[pulumi.Input[str]]
    """An existing Secret in the server's namespace with keys ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``
    (instead of the keys themselves)."""
    service_account_annotations: NotRequired[dict[str, pulumi.Input[str]]]
    """Workload identity: the server's pods run as a ServiceAccount of their own with these annotations, e.g.
    ``eks.amazonaws.com/role-arn`` (EKS IRSA) or ``iam.gke.io/gcp-service-account`` (GKE Workload Identity)."""
    concurrency: NotRequired[int]
    """Streams reading the weights at once (``--model-loader-extra-config`` ``concurrency``; default: the
    streamer's, 8 for object storage)."""
    memory_limit_bytes: NotRequired[int]
    """CPU staging buffer of the streamer in bytes (``memory_limit``; -1 unlimited; default: the streamer's).
    It counts against the container's memory."""


#: Workload-identity annotations by store (the ones a user would set; others pass through unchecked).
IDENTITY_ANNOTATIONS = {"s3": ("eks.amazonaws.com/role-arn",), "gs": ("iam.gke.io/gcp-service-account",)}


def check_object_storage(component: str, name: str, source: ObjectStorageArgs, extra_args: list) -> None:
    """Refuse a source the streamer cannot read or whose credentials contradict each other (at preview)."""
    uri = source["uri"]
    problem = uri_problem(uri)
    if problem:
        raise args_error(component, name, "object_storage.uri", problem)
    scheme = scheme_of(uri)
    keys = [k for k in ("access_key_id", "secret_access_key") if source.get(k) is not None]
    if len(keys) == 1:
        other = "secret_access_key" if keys == ["access_key_id"] else "access_key_id"
        raise args_error(component, name, f"object_storage.{other}", f"missing: {keys[0]} is given, and S3 needs both")
    annotations = source.get("service_account_annotations") or {}
    if scheme == "gs":
        for key in ("access_key_id", "credentials_secret_name", "endpoint", "region"):
            if source.get(key) is not None:
                raise args_error(
                    component,
                    name,
                    f"object_storage.{key}",
                    (
                        f"is an S3 setting but {uri!r} is GCS: the streamer authenticates to GCS with Application "
                        "Default Credentials; use service_account_annotations (iam.gke.io/gcp-service-account) for "
                        "Workload Identity"
                    ),
                )
    if keys and source.get("credentials_secret_name") is not None:
        raise args_error(
            component,
            name,
            "object_storage.credentials_secret_name",
            "and access_key_id/secret_access_key are both given: choose one source of S3 keys",
        )
    if annotations and (keys or source.get("credentials_secret_name") is not None):
        raise args_error(
            component,
            name,
            "object_storage.service_account_annotations",
            (
                "and static keys are both given: the keys would win over the workload identity in the AWS SDK's chain, "
                "so the role would never be used; choose one"
            ),
        )
    wrong = [a for s, names in IDENTITY_ANNOTATIONS.items() if s != scheme for a in names if a in annotations]
    if wrong:
        raise args_error(
            component,
            name,
            f"object_storage.service_account_annotations.{wrong[0]}",
            f"is {SCHEMES[scheme_of_annotation(wrong[0])]}'s workload identity, but the weights are on "
            f"{SCHEMES[scheme]} ({uri})",
        )
    for key, least in (("concurrency", 1), ("memory_limit_bytes", -1)):
        value = source.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise args_error(component, name, f"object_storage.{key}", f"{value!r} must be a whole number >= {least}")
    for arg in extra_args:
        flag = str(arg).split("=", 1)[0]
        if flag.startswith("--") and flag[2:].replace("-", "_") in MANAGED_LOADER_DESTS:
            raise args_error(
                component,
                name,
                "engine.extra_args",
                (
                    f"{flag} is rendered by the component for weights in object storage (--load-format {LOAD_FORMAT}"
                    " and the streamer's settings from object_storage): remove it"
                ),
            )


def scheme_of_annotation(annotation: str) -> str:
    return next(s for s, names in IDENTITY_ANNOTATIONS.items() if annotation in names)


def loader_args(source: ObjectStorageArgs) -> list[str]:
    """The vLLM flags that stream the weights: the load format and the streamer's settings."""
    args = ["--load-format", LOAD_FORMAT]
    given = {k: source.get(f) for k, f in (("concurrency", "concurrency"), ("memory_limit", "memory_limit_bytes"))}
    extra = {k: v for k, v in given.items() if v is not None}
    if extra:
        args += ["--model-loader-extra-config", json.dumps(extra, sort_keys=True, separators=(",", ":"))]
    return args


class ObjectStoragePod(TypedDict):
    """What the pod builder needs of an object-storage source (``object_storage_access`` makes it)."""

    uri: str
    env: list
    service_account_name: NotRequired[pulumi.Input[str] | None]
    loader_args: list[str]


def streamer_env(source: ObjectStorageArgs, secret_name: pulumi.Input[str] | None) -> list[dict]:
    """The server's env for the streamer: endpoint and addressing, region, keys from a Secret."""
    env: list[dict] = []
    if source.get("endpoint") is not None:
        env += [
            {"name": "AWS_ENDPOINT_URL", "value": source["endpoint"]},
            # MinIO, R2 and most S3-compatible stores serve buckets path-style.
            {"name": "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING", "value": "0"},
        ]
    if source.get("region") is not None:
        env.append({"name": "AWS_REGION", "value": source["region"]})
    if secret_name is not None:
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
            for key in (ACCESS_KEY_ID, SECRET_ACCESS_KEY)
        ]
    return env


def object_storage_access(
    name: str, namespace: pulumi.Input[str], labels: dict, source: ObjectStorageArgs, parent: pulumi.Resource
) -> ObjectStoragePod:
    """Children of a serving component that let its pods read the bucket: ``<name>-object-storage``
    (a Secret of the given keys) and/or a ServiceAccount ``<name>`` carrying the workload identity."""
    child = pulumi.ResourceOptions(parent=parent)
    secret_name = source.get("credentials_secret_name")
    if source.get("access_key_id") is not None:
        secret = k8s.core.v1.Secret(
            f"{name}-object-storage",
            metadata={"name": f"{name}-object-storage", "namespace": namespace, "labels": labels},
            type="Opaque",
            string_data={
                ACCESS_KEY_ID: pulumi.Output.secret(source["access_key_id"]),
                SECRET_ACCESS_KEY: pulumi.Output.secret(source["secret_access_key"]),
            },
            opts=child,
        )
        secret_name = secret.metadata["name"]
    account = None
    if source.get("service_account_annotations"):
        sa = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": dict(source["service_account_annotations"]),
            },
            # The pods need no Kubernetes API token; IRSA projects its own token, GKE uses the metadata server.
            automount_service_account_token=False,
            opts=child,
        )
        account = sa.metadata["name"]
    return {
        "uri": normalized(source["uri"]),
        "env": streamer_env(source, secret_name),
        "service_account_name": account,
        "loader_args": loader_args(source),
    }


def check_weights_source(component: str, name: str, args: Mapping[str, Any]) -> ObjectStorageArgs | None:
    """A serving component's weights come from exactly one place: the cache volume (``model_path`` and
    ``cache_claim_name`` of a ModelCache) or ``object_storage``. Returns the object-storage source, if any."""
    source = args.get("object_storage")
    cached = [k for k in ("model_path", "cache_claim_name") if args.get(k) is not None]
    if source is None:
        for key in ("model_path", "cache_claim_name"):
            if key not in cached:
                raise args_error(
                    component,
                    name,
                    key,
                    (
                        "required key missing: the weights come from a cache volume (model_path and cache_claim_name "
                        "of a ModelCache) or from object_storage (s3:// or gs://)"
                    ),
                )
        return None
    if cached:
        raise args_error(
            component,
            name,
            cached[0],
            (
                "and object_storage are both given: the weights come from one place; drop the cache "
                "(each replica streams the weights from the bucket) or object_storage"
            ),
        )
    engine = args.get("engine") or {}
    check_object_storage(component, name, source, list(engine.get("extra_args") or []))
    if engine.get("lora_adapters"):
        raise args_error(
            component,
            name,
            "engine.lora_adapters",
            (
                "LoRA adapters are read from the cache volume, which a model in object storage does not have; "
                "serve the adapters beside a model from the Hub cache"
            ),
        )
    return source


def pod_shape(source: ObjectStorageArgs) -> ObjectStoragePod:
    """What ``object_storage_access`` hands the pod builder, without creating anything (for checks of
    the pod's shape, e.g. the Knative features it needs, before the children exist)."""
    keys = source.get("access_key_id") is not None or source.get("credentials_secret_name") is not None
    return {
        "uri": normalized(source["uri"]),
        "env": streamer_env(source, "credentials" if keys else None),
        "service_account_name": "identity" if source.get("service_account_annotations") else None,
        "loader_args": loader_args(source),
    }
