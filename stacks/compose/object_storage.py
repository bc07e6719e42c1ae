"""Weights in object storage: the serving component's ``object_storage`` for a model whose ``model``
is an s3:// or gs:// URL (endpoint, region, credentials, workload identity, streamer tuning)."""

import pulumi

from llmstack_k8s.serving import object_storage as objstore
from stacks.config import ModelConfig, StackConfig
from stacks.config.object_storage import ObjectStorageConfig


def model_object_storage_args(cfg: StackConfig, m: ModelConfig) -> objstore.ObjectStorageArgs:
    """The serving component's ``object_storage`` for a model in a bucket (S3 settings only for s3://)."""
    o = cfg.object_storage or ObjectStorageConfig()
    args: objstore.ObjectStorageArgs = {"uri": m.model}
    if objstore.scheme_of(m.model) == "s3":
        if o.endpoint:
            args["endpoint"] = o.endpoint
        if o.region:
            args["region"] = o.region
        key_id, secret_key = cfg.object_storage_access_key_id, cfg.object_storage_secret_access_key
        if key_id is not None:
            if secret_key is None:  # the config refuses one key without the other
                raise ValueError("objectStorageAccessKeyId is set without objectStorageSecretAccessKey")
            args["access_key_id"] = pulumi.Output.secret(key_id)
            args["secret_access_key"] = pulumi.Output.secret(secret_key)
        if o.existing_secret:
            args["credentials_secret_name"] = o.existing_secret
    annotations: dict[str, pulumi.Input[str]] = {
        k: v
        for k, v in o.service_account_annotations.items()
        if not any(
            k in names and s != objstore.scheme_of(m.model) for s, names in objstore.IDENTITY_ANNOTATIONS.items()
        )
    }
    if annotations:
        args["service_account_annotations"] = annotations
    if o.concurrency is not None:
        args["concurrency"] = o.concurrency
    if o.memory_limit_bytes is not None:
        args["memory_limit_bytes"] = o.memory_limit_bytes
    return args
