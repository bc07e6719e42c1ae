"""Models whose weights are in object storage: ``models[].model: s3://bucket/prefix/`` (or ``gs://``),
with the stack-wide ``objectStorage`` settings (endpoint, region, credentials, streamer tuning) and the
secure keys ``objectStorageAccessKeyId`` / ``objectStorageSecretAccessKey``.

Each replica streams the weights with vLLM's Run:ai model streamer (``llmstack_k8s.serving.object_storage``):
no ModelCache (no volume, no download Job), so the Hub-only keys (``revision``, ``gated``, ``cache``,
``loraAdapters``, ``canary.revision``) are refused on such a model, each with its reason.

Pinning: a bucket has no commit SHA. The prefix is the version: it must be below the bucket root, and
a last segment that names a moving pointer (``latest``, ``current``, ...) is refused; write each new
version of the weights to a new prefix (the Hub commit it came from, or a date) and never over it.
"""

from pydantic import Field, model_validator

from llmstack_k8s.serving import object_storage as objstore
from llmstack_k8s.serving.vllm_flags import parse_extra_args

from .base import ConfigProblem
from .base import StackModel as _Model

#: The secure top-level keys (``pulumi config set --secret``); the loader refuses them in plain text.
ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY = "objectStorageAccessKeyId", "objectStorageSecretAccessKey"
#: Keys people put inside ``objectStorage`` for the credentials (normalised: lower case, no separators).
_CREDENTIAL_KEYS = {
    "accesskey",
    "accesskeyid",
    "awsaccesskeyid",
    "secretkey",
    "secretaccesskey",
    "awssecretaccesskey",
    "sessiontoken",
    "password",
    "credentials",
    "credentialsjson",
    "serviceaccountkey",
    "keyfile",
}


class ObjectStorageConfig(_Model):
    """How servers reach the bucket of every model whose ``model`` is an s3:// or gs:// URL."""

    endpoint: str | None = Field(
        None,
        pattern=r"^https?://",
        description=(
            "S3-compatible endpoint (MinIO, Cloudflare R2, Ceph), e.g. https://minio.storage.svc:9000; not for "
            "AWS S3 or GCS."
        ),
    )
    region: str | None = Field(
        None, pattern=r"^[a-z0-9-]+$", description="Region of the S3 bucket (AWS_REGION), e.g. eu-west-1."
    )
    existing_secret: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description=(
            "A Secret in each such model's namespace with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(instead of objectStorageAccessKeyId/objectStorageSecretAccessKey)."
        ),
    )
    service_account_annotations: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Workload identity: annotations of the ServiceAccount the servers run as, e.g. "
            "eks.amazonaws.com/role-arn (EKS IRSA) or iam.gke.io/gcp-service-account (GKE)."
        ),
    )
    concurrency: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Streams reading the weights at once (the streamer's default for object storage: 8).",
    )
    memory_limit_bytes: int | None = Field(
        None,
        ge=-1,
        description="The streamer's CPU staging buffer in bytes (-1 unlimited); counts against resources.memory.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_credentials_here(cls, data):
        if isinstance(data, dict):
            for key in data:
                if str(key).lower().replace("_", "").replace("-", "") in _CREDENTIAL_KEYS:
                    raise ConfigProblem(
                        str(key),
                        (
                            "credentials do not go in objectStorage (plain text in the stack file and in Pulumi's "
                            f"state): set them as secrets with `pulumi config set --secret {ACCESS_KEY_ID_KEY} ...` "
                            f"and `pulumi config set --secret {SECRET_ACCESS_KEY_KEY} ...`, name an existing Secret "
                            "with existingSecret, or use workload identity (serviceAccountAnnotations)"
                        ),
                    )
        return data


def model_source_problem(m) -> tuple[str, str] | None:
    """(key, why) for the first key of an object-storage model that cannot apply to it, or None."""
    uri = m.model
    if m.revision is not None:
        return "revision", (
            f"applies to Hugging Face repositories; {uri} has no commit SHA: the prefix is the version (write each "
            "new version of the weights to a new prefix and point model at it): remove revision"
        )
    if m.cache is not None:
        return "cache", (
            f"there is no cache volume for {uri}: every replica streams the weights from the bucket with the Run:ai "
            "streamer (no download Job, no PVC): remove cache"
        )
    if m.gated:
        return (
            "gated",
            f"applies to Hugging Face repositories; access to {uri} comes from objectStorage's credentials: remove "
            "gated",
        )
    if m.lora_adapters:
        return "loraAdapters", (
            "adapters are downloaded from the Hub into the model's cache volume, which a model streamed from "
            f"{uri} does not have; serve the adapters beside a model from the Hub"
        )
    if m.canary is not None and m.canary.revision is not None:
        return "canary.revision", (
            f"the weights in {uri} have no revision; a canary of other weights is a model of its own (another prefix) "
            "or, here, a canary of image/extraArgs only: remove canary.revision"
        )
    if m.served_model_name is None:
        return "servedModelName", (
            f"required for a model in object storage: clients would otherwise have to send the bucket URL {uri} as "
            "the model name; give the name clients send (e.g. meta-llama/Llama-3.1-8B-Instruct)"
        )
    for key, args in (("extraArgs", m.extra_args), ("canary.extraArgs", m.canary.extra_args if m.canary else None)):
        for a in parse_extra_args([str(x) for x in args or []]).args:
            if a.flag.dest in objstore.MANAGED_LOADER_DESTS:
                return key, (
                    f"sets {a.given}, which the stack renders for a model in object storage (--load-format "
                    f"{objstore.LOAD_FORMAT}, the streamer's settings from "
                    "objectStorage.concurrency/memoryLimitBytes): remove it"
                )
    for name in sorted(m.extra_env):
        if name.upper() in objstore.MANAGED_ENV or name.upper().startswith(("AWS_", "RUNAI_STREAMER_", "GOOGLE_")):
            return f"extraEnv.{name}", (
                "is the object-storage client's setting, which the stack sets from objectStorage (endpoint, region, "
                "credentials, concurrency): set it there instead"
            )
    return None


def _keys_set(cfg) -> list[str]:
    return [
        k
        for k, v in (
            (ACCESS_KEY_ID_KEY, cfg.object_storage_access_key_id),
            (SECRET_ACCESS_KEY_KEY, cfg.object_storage_secret_access_key),
        )
        if v is not None
    ]


def check_stack(cfg) -> None:
    """The stack-wide object-storage settings fit the models that use them (one message each)."""
    o: ObjectStorageConfig | None = cfg.object_storage
    keys = _keys_set(cfg)
    schemes = {objstore.scheme_of(m.model) for m in cfg.models if m.is_object_storage}
    if not schemes:
        if o is not None:
            raise ConfigProblem(
                "objectStorage",
                "is set but no model's `model` is an s3:// or gs:// URL, so nothing reads it: remove it",
            )
        if keys:
            raise ConfigProblem(
                keys[0], "is set but no model's `model` is an s3:// or gs:// URL, so nothing reads it: remove it"
            )
        return
    o = o or ObjectStorageConfig()
    if len(keys) == 1:
        missing = SECRET_ACCESS_KEY_KEY if keys == [ACCESS_KEY_ID_KEY] else ACCESS_KEY_ID_KEY
        raise ConfigProblem(
            missing, f"not set, but {keys[0]} is: S3 needs both; `pulumi config set --secret {missing} ...`"
        )
    if keys and o.existing_secret:
        raise ConfigProblem(
            "objectStorage.existingSecret", f"and {keys[0]}/{keys[-1]} are both set: choose one source of the S3 keys"
        )
    if o.service_account_annotations and (keys or o.existing_secret):
        which = "objectStorage.existingSecret" if o.existing_secret else keys[0]
        raise ConfigProblem(
            "objectStorage.serviceAccountAnnotations",
            (
                f"and {which} are both set: static keys come first in the AWS SDK's credential chain, so the workload "
                "identity would never be used; choose one"
            ),
        )
    if "s3" not in schemes:
        s3_only = [
            *keys,
            *(
                f"objectStorage.{k}"
                for k, v in (("existingSecret", o.existing_secret), ("endpoint", o.endpoint), ("region", o.region))
                if v
            ),
        ]
        if s3_only:
            raise ConfigProblem(
                s3_only[0],
                (
                    "is an S3 setting but every model in object storage is on GCS (gs://): the streamer authenticates "
                    "to GCS with Application Default Credentials; use serviceAccountAnnotations "
                    "(iam.gke.io/gcp-service-account) for GKE Workload Identity, or the node's service account"
                ),
            )
    for store_scheme, names in objstore.IDENTITY_ANNOTATIONS.items():
        for a in names:
            if a in o.service_account_annotations and store_scheme not in schemes:
                raise ConfigProblem(
                    f"objectStorage.serviceAccountAnnotations.{a}",
                    (
                        f"is {objstore.SCHEMES[store_scheme]}'s workload identity, but no model's weights are on "
                        f"{objstore.SCHEMES[store_scheme]} ({store_scheme}://)"
                    ),
                )
