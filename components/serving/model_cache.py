"""ModelCache: a volume of model weights, filled once by a download Job, read by every replica."""

import json
import re
from enum import Enum
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from .. import versions
from .._core.awaits import job_await_seconds, skip_await_annotation, timeout_annotation
from .._core.package import labels, type_token
from .._core.validation import validate_args
from .vllm_pod import CACHE_MOUNT_PATH, COMPLETE_MARKER, CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT

HF_TOKEN_SECRET_KEY = "token"
#: ``app.kubernetes.io/name`` of the cache's objects and download pods: not the servers' ``vllm``,
#: so the servers' Service, PodDisruptionBudget, NetworkPolicy and PodMonitor never select them.
CACHE_APP = "model-cache"
DEFAULT_DOWNLOAD_DEADLINE_SECONDS = 3600


class AccessMode(str, Enum):
    """How the cache volume may be mounted."""

    READ_WRITE_ONCE = "ReadWriteOnce"
    """One node at a time: fine for a single replica."""
    READ_WRITE_MANY = "ReadWriteMany"
    """Many nodes: needed when replicas spread over nodes."""


class AdapterSourceArgs(TypedDict):
    """A LoRA adapter to download beside the base weights."""

    model: str
    """Hugging Face repository id of the adapter. Plain: its cache path is derived at preview."""
    revision: str
    """Pinned revision (commit sha) of the adapter; part of its cache path."""


class ModelCacheArgs(TypedDict):
    """Arguments of a ModelCache."""

    namespace: pulumi.Input[str]
    """Namespace of the volume and the download Job."""
    model: str
    """Hugging Face repository id, e.g. ``Qwen/Qwen2.5-0.5B-Instruct``. Plain, not an Input: the
    cache path (``model_path``) is derived from it at preview."""
    revision: str
    """Pinned revision (commit sha or tag) to download; part of the cache path, so plain (known at preview)."""
    size: pulumi.Input[str]
    """Volume size, a Kubernetes quantity (``20Gi``)."""
    access_mode: NotRequired[AccessMode]
    """Volume access mode (default ReadWriteMany)."""
    storage_class_name: NotRequired[pulumi.Input[str]]
    """StorageClass of the volume (default: the cluster's default class)."""
    hf_token: NotRequired[pulumi.Input[str]]
    """Hugging Face token for gated models; stored in a Secret, never in the Job spec."""
    image: NotRequired[pulumi.Input[str]]
    """Image with ``huggingface_hub`` for the download (default: the pinned vLLM image)."""
    backoff_limit: NotRequired[int]
    """Download retries before the Job fails (default 4)."""
    active_deadline_seconds: NotRequired[int]
    """Deadline for the whole download, retries included (default 3600)."""
    adapters: NotRequired[list[AdapterSourceArgs]]
    """LoRA adapters the Job downloads too, each into its own directory (``adapter_paths``)."""


def model_dir(model: str, revision: str) -> str:
    """Path of a model revision inside the cache volume: one directory per repo and revision."""
    return f"{CACHE_MOUNT_PATH}/{re.sub(r'[^A-Za-z0-9._-]', '--', model)}/{revision}"


# snapshot_download is the stable API across huggingface_hub versions (the CLI was renamed).
# Each directory's marker is written last: a re-run skips what is complete (an adapter added
# later is fetched without downloading the base weights again).
_DOWNLOAD_SCRIPT = f"""
import json, os, pathlib
from huggingface_hub import snapshot_download
items = [(os.environ["MODEL_ID"], os.environ["MODEL_REVISION"], os.environ["MODEL_DIR"])]
items += [(a["model"], a["revision"], a["dir"]) for a in json.loads(os.environ.get("ADAPTERS") or "[]")]
for repo, revision, where in items:
    dest = pathlib.Path(where)
    marker = dest / "{COMPLETE_MARKER}"
    if marker.exists():
        print(f"{{dest}} already complete"); continue
    dest.mkdir(parents=True, exist_ok=True)
    snapshot_download(repo_id=repo, revision=revision, local_dir=str(dest), token=os.environ.get("HF_TOKEN") or None)
    marker.write_text(revision)
    print(f"downloaded {{repo}}@{{revision}} to {{dest}}")
"""


class ModelCache(pulumi.ComponentResource):
    """A PersistentVolumeClaim holding one model revision, and the Job that downloads it once.

    Servers should ``depends_on`` this component: Pulumi waits for the Job to complete, so a
    server starts only once the weights are there.
    """

    claim_name: pulumi.Output[str]
    """Name of the PersistentVolumeClaim holding the weights."""
    model_path: pulumi.Output[str]
    """Path of the model inside a pod that mounts the claim at ``/models``."""
    job_name: pulumi.Output[str]
    """Name of the download Job."""
    adapter_paths: pulumi.Output[list[str]]
    """Path of each adapter (in the order of ``adapters``) inside a pod that mounts the claim."""
    namespace: pulumi.Output[str]
    """Namespace of the volume and the download Job."""

    def __init__(self, name: str, args: ModelCacheArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before registering: bad args register nothing.
        args = validate_args("ModelCache", name, args, ModelCacheArgs)
        super().__init__(type_token("ModelCache"), name, {}, opts)
        ns = args["namespace"]
        meta_labels = labels(name, "model-cache", app=CACHE_APP)
        path = model_dir(args["model"], args["revision"])

        pvc = self._weights_claim(name, args, meta_labels)
        adapters: list[dict[str, Any]] = [
            {**a, "dir": model_dir(a["model"], a["revision"])} for a in args.get("adapters") or []
        ]
        env = _download_env(args, path, adapters)
        depends: list[pulumi.Resource] = [pvc]
        if args.get("hf_token") is not None:
            token_secret = self._hf_token_secret(name, args, meta_labels)
            env.append(
                {
                    "name": "HF_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": token_secret.metadata["name"], "key": HF_TOKEN_SECRET_KEY}},
                }
            )
            depends.append(token_secret)
        job = self._download_job(name, args, meta_labels, env, pvc, depends)

        self.claim_name = pvc.metadata["name"]
        self.model_path = pulumi.Output.from_input(path)
        self.job_name = job.metadata["name"]
        self.namespace = pulumi.Output.from_input(ns)
        self.adapter_paths = pulumi.Output.from_input([a["dir"] for a in adapters])
        self.register_outputs(
            {
                "claim_name": self.claim_name,
                "model_path": self.model_path,
                "job_name": self.job_name,
                "namespace": self.namespace,
                "adapter_paths": self.adapter_paths,
            }
        )

    def _weights_claim(
        self, name: str, args: ModelCacheArgs, meta_labels: dict[str, str]
    ) -> k8s.core.v1.PersistentVolumeClaim:
        """The PersistentVolumeClaim the weights are downloaded to."""
        return k8s.core.v1.PersistentVolumeClaim(
            f"{name}-pvc",
            metadata={
                "name": f"{name}-weights",
                "namespace": args["namespace"],
                "labels": meta_labels,
                # With WaitForFirstConsumer classes the claim binds only when the Job mounts it;
                # awaiting Bound here would deadlock.
                "annotations": skip_await_annotation(),
            },
            spec={
                "accessModes": [AccessMode(args.get("access_mode", AccessMode.READ_WRITE_MANY)).value],
                "resources": {"requests": {"storage": args["size"]}},
                "storageClassName": args.get("storage_class_name"),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _hf_token_secret(self, name: str, args: ModelCacheArgs, meta_labels: dict[str, str]) -> k8s.core.v1.Secret:
        """The Secret holding the Hugging Face token the download Job reads."""
        return k8s.core.v1.Secret(
            f"{name}-hf-token",
            metadata={"name": f"{name}-hf-token", "namespace": args["namespace"], "labels": meta_labels},
            type="Opaque",
            string_data={HF_TOKEN_SECRET_KEY: pulumi.Output.secret(args["hf_token"])},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _download_job(
        self,
        name: str,
        args: ModelCacheArgs,
        meta_labels: dict[str, str],
        env: list[dict[str, Any]],
        pvc: k8s.core.v1.PersistentVolumeClaim,
        depends: list[pulumi.Resource],
    ) -> k8s.batch.v1.Job:
        """The Job that downloads the model (and its adapters) into the claim, once."""
        deadline = args.get("active_deadline_seconds", DEFAULT_DOWNLOAD_DEADLINE_SECONDS)
        return k8s.batch.v1.Job(
            f"{name}-download",
            metadata={
                "name": f"{name}-download",
                "namespace": args["namespace"],
                "labels": meta_labels,
                # Awaited until complete (servers depend on it) for as long as the download may take.
                "annotations": timeout_annotation(job_await_seconds(deadline)),
            },
            spec={
                "backoffLimit": args.get("backoff_limit", 4),
                "activeDeadlineSeconds": deadline,
                "template": {
                    "metadata": {"labels": meta_labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "securityContext": POD_SECURITY_CONTEXT,
                        "automountServiceAccountToken": False,
                        "containers": [
                            {
                                "name": "download",
                                "image": args.get("image") or versions.VLLM_IMAGE,
                                "command": ["python3", "-c", _DOWNLOAD_SCRIPT],
                                "env": env,
                                "volumeMounts": [
                                    {"name": "model-cache", "mountPath": CACHE_MOUNT_PATH},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                                "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
                                "securityContext": CONTAINER_SECURITY_CONTEXT,
                            }
                        ],
                        "volumes": [
                            {"name": "model-cache", "persistentVolumeClaim": {"claimName": pvc.metadata["name"]}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )


def _download_env(args: ModelCacheArgs, path: str, adapters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The download Job's environment: the model, its revision, where to put it and the adapters."""
    env: list[dict[str, Any]] = [
        {"name": "MODEL_ID", "value": args["model"]},
        {"name": "MODEL_REVISION", "value": args["revision"]},
        {"name": "MODEL_DIR", "value": path},
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    if adapters:
        env.append({"name": "ADAPTERS", "value": json.dumps(adapters, sort_keys=True)})
    return env
