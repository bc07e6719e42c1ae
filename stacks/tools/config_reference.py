"""Generate the README's config reference from the stack file's models, stacks/config/ (one source of truth).

python -m stacks.tools.config_reference          # rewrite the section in README.md
python -m stacks.tools.config_reference --check  # exit 1 if README.md is out of date (the test suite runs this)
"""

import enum
import sys
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from stacks.config import StackConfig

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = (
    "<!-- config-reference: generated from stacks/config/ by `python -m stacks.tools.config_reference`; do not "
    "edit by hand -->"
)
END = "<!-- /config-reference -->"


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "map"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
        if value is None:
            return ""
        return f"`{value.value if isinstance(value, enum.Enum) else value}`"
    if field.default_factory is not None:
        value = field.default_factory()
        return "" if isinstance(value, BaseModel) else f"`{value}`"
    return "**required**"


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        rows.append(
            f"| `{prefix}{key}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |"
        )
    return rows


#: What the loader refuses before anything is registered (tests/config/test_bad_input.py has a case for each).
RULES = [
    "Keys: unknown keys are refused with a did-you-mean; a key in the wrong place says where it belongs "
    "(`llmstack:replicas` -> `llmstack:models[N].replicas`); keys for secrets the stack generates "
    "(Grafana's admin password, the API key) say how the stack handles them. A removed key says what replaces it "
    "(`knative.minScale`/`maxScale`/`targetConcurrency`/`scaleDownDelay` -> `autoscaling.minReplicas`/`maxReplicas`/"
    "`target`/`cooldownSeconds`, with the value converted; `gpus` -> `tensorParallelSize x pipelineParallelSize`; "
    "`parametersBillions` -> `weightsGiB`).",
    "Other namespaces: `kubernetes:*` provider keys are honoured (`context`, `kubeconfig`, `cluster`, "
    "`clusterIdentifier`, `deleteUnreachable`, `skipUpdateUnreachable`, `suppress*Warnings`, `enableConfigMapMutable`, "
    "`enableSecretMutable`, `kubeClientSettings`, `helmReleaseSettings`) or refused (`namespace`: use "
    "`llmstack:namespace`; `renderYamlToDirectory`/`alwaysRender`: use `python -m stacks.tools.render`; "
    "`upsertExistingObjects`; `enableServerSideApply: false`); a key under another project prefix "
    "(`llm-stack:gpuPool`) or another provider is refused. A `kubernetes:` key that contradicts `llmstack:kubernetes` "
    "is refused; `llmstack:kubernetes.requireContext: true` refuses to run without a context.",
    "Namespaces: the stack never creates `default`, `kube-system`, `kube-public` or `kube-node-lease` and never "
    "deploys into a `kube-*` namespace; its own namespaces (servers, monitoring, KEDA, Knative, GPU plugin/operator) "
    "must differ where one of them is created as a Namespace; `existingNamespace: true` uses an existing serving "
    "namespace (read at preview, never created, labelled or deleted). Allow-listed namespaces are exact DNS labels, no "
    "wildcards.",
    "Sizes and times: sizes need a binary unit (`32` is 32 bytes); a bare CPU count above 512 was meant as millicores; "
    "`cache.size` must hold the weights (weightsGiB, else the catalog's estimate for a model it knows); "
    "`cache.downloadDeadlineSeconds` must cover every model's weights at `cache.downloadMiBps` (default 50 MiB/s, a "
    "conservative single-process Hugging Face download) plus 300 s; `startupTimeoutSeconds` never below the derived "
    "budget (`engineStartSeconds` + the same weights at `coldStart.storageMiBps`; defaults 300 s + 10 s per GiB); "
    "`/dev/shm` (shmSize or its default) not larger than `resources.memory`.",
    "Secrets: `extraEnv` names with a TOKEN, KEY, PASSWORD, SECRET or CREDENTIAL word, Hugging Face token names, and "
    "values shaped like `hf_...`, `sk-...`, GitHub/GitLab/AWS/Slack credentials are refused (the Hugging Face token is "
    "`huggingfaceToken`, set with `--secret`); env vars the stack or the device plugin manage (`HF_HUB_OFFLINE`, "
    "`TRANSFORMERS_OFFLINE`, `VLLM_API_KEY`, `NVIDIA_VISIBLE_DEVICES`, `CUDA_VISIBLE_DEVICES`, ...) cannot be set, "
    "in any case; a gated model needs `huggingfaceToken`.",
    "GPU pool: a MIG profile must exist on the declared `gpu.product` (A30, A100 40/80GB, H100 80GB/NVL, H200 tables "
    "from NVIDIA's MIG user guide; other products are not checked), MIG on a GPU without MIG (L4, L40S, A10, T4) is "
    "refused; `karpenter.gpuLimit` (in whole nodes) must cover every model at its minimum replicas; "
    "`system-*` PriorityClasses are refused for serving pods.",
    "Pinning: `revision` is a full 40-character commit SHA (branches, tags, `refs/pr/N`, abbreviated SHAs are "
    "refused); `image` needs a version tag or digest (no tag, `latest`, `nightly`, `main`, `stable`, ... are refused).",
    "Capacity: `coldStart` figures are positive (engine start 10-3600 s) and checked stack-wide and per model; every "
    "`teams[].models` entry names a model (did-you-mean) of one team only, team names and namespaces are unique and "
    "the stack's own; a team whose models at `autoscaling.maxReplicas` (or `replicas`) plus `rollout.maxSurge` exceed "
    "its quota's GPUs, CPU, memory or storage is refused with the figures; `autoscaling.schedules` need five-field "
    "cron expressions KEDA's parser accepts, an IANA `timezone` (did-you-mean) and `minReplicas` up to `maxReplicas`.",
    "Scaling (`models[].autoscaling`, the same keys for `serving: deployment` and `knative`): `minReplicas` up to "
    "`maxReplicas`; `cooldownSeconds` not below the startup budget (Knative: at most 3600); `minReplicas: 0` on a "
    "Deployment needs `autoscaling.httpAddOn`; `maxReplicas` above 1 needs a ReadWriteMany cache; `metric` is one the "
    "serving mode can scale on (`queueDepth`/`kvCacheUsage`/`ttftP95` for KEDA, `concurrency` for Knative, a whole "
    "number of in-flight requests not above `maxNumSeqs` nor `knative.containerConcurrency`), and KEDA-only keys "
    "(`kvCacheTarget`, `ttftP95Seconds`, `pollingIntervalSeconds`, `schedules`) are refused on a Knative model; "
    "`replicas` is refused beside `autoscaling`, and `replicas`/`rollout` on a Knative model; `knative.initialScale` "
    "at most `maxReplicas`.",
    "Units: TTFT keys are seconds (above 60 is refused as milliseconds); 0..1 fractions given as percentages get a "
    "did-you-mean; with `observability.installPrometheusStack: false`, autoscaled models need "
    "`autoscaling.prometheusUrl`.",
    "Canary (`models[].canary`): `weight` 1-99; it must differ from the model (`revision`, `image` or `extraArgs`, "
    "each checked like the model's); a Deployment model must be exposed through `llmstack:gateway` with `kind: "
    "gatewayApi` (the split is the HTTPRoute's weighted backends); its replicas count in the GPU fit check. A Knative "
    "canary (a second revision of the model's Knative Service, split by Knative) takes no `canary.replicas` (it scales "
    "like the model), another `canary.revision` needs `cache.size` for both revisions (one volume), and both revisions "
    "count in the GPU fit check.",
    "Knative models through `llmstack:gateway` (routed to Knative's cluster-local ingress): no "
    "`route.kvCacheAwareRouting` (a picker would bypass the activator and the split); the route's timeout is the whole "
    "cold start (node, image, load) plus the request budget, so a `knative.requestTimeoutSeconds` below it, or a total "
    "above Knative's `maxRevisionTimeoutSeconds`, is refused; `knative.localGateway` describes an existing Knative "
    "only (`install: false`) and its namespace must be in `knative.namespaces`.",
    "Priorities (`route.priority`, `loraAdapters[].priority`, -1000..1000, negative = sheddable): need "
    "`route.kvCacheAwareRouting` (the picker applies them) and `llmstack:gateway.bodyBasedRouting.install` (the router "
    "copies the body's model into the objective header); the served name must be a valid object name; not while the "
    "model runs a canary.",
    "Object storage (`models[].model: s3://bucket/prefix/` or `gs://...`, streamed by vLLM's Run:ai streamer): bucket "
    "names follow S3/GCS rules; a whole bucket, or a prefix whose last segment moves (`latest`, `current`, `main`, "
    "`stable`, ...), is refused (the prefix is the version); `servedModelName` is required; Hub-only keys (`revision`, "
    "`cache`, `gated`, `loraAdapters`, `canary.revision`), `--load-format`/`--model-loader-extra-config` in "
    "`extraArgs` and streamer/cloud variables in `extraEnv` are refused on such a model; "
    "`objectStorageAccessKeyId`/`objectStorageSecretAccessKey` must be secrets; keys, `objectStorage.existingSecret` "
    "and workload-identity annotations exclude each other; S3 settings with only GCS models, the other cloud's "
    "identity annotation, and `objectStorage` without a bucket model are refused.",
    "Charts (`charts`): `directory` or `mirror`, not both; a `directory` (relative to the project directory) must "
    "exist and hold `<chart>-<version>.tgz` of every chart the stack installs (the refusal names the missing files, "
    "their pins and the `helm pull` that fetches them); a `mirror` is an `http://`/`https://` chart repository URL or "
    "an `oci://` registry prefix.",
    "Multi-node models (tensor x pipeline parallel GPUs above `gpuPool.gpu.perNode`: a LeaderWorkerSet group): tensor "
    "parallel may not exceed one node's GPUs, a replica fills whole nodes, pipeline stages divide the model's layers "
    "when the catalog knows them (`extraEnv.VLLM_PP_LAYER_PARTITION` overrides); refused with them: "
    "`serving: knative`, `autoscaling`, `canary`, shared GPUs (time-slicing, MPS, MIG), a ReadWriteOnce cache, "
    "object-storage weights.",
]


def generate() -> str:
    lines = [
        BEGIN,
        "",
        "### Rules checked at preview",
        "",
        *[f"- {r}" for r in RULES],
        "",
        "### Stack keys",
        "",
        *_table(StackConfig, "llmstack:"),
    ]
    seen: list[type[BaseModel]] = []
    queue = [m for f in StackConfig.model_fields.values() for m in _models_in(f.annotation)]
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.append(model)
        queue += [m for f in model.model_fields.values() for m in _models_in(f.annotation)]
    for model in seen:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        lines += ["", f"### {model.__name__}", "", doc, "", *_table(model, "")]
    return "\n".join([*lines, "", END])


def main(argv: list[str]) -> int:
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + generate() + text[end:]
    if "--check" in argv:
        if new != text:
            print(
                "README.md config reference is out of date: run `python -m stacks.tools.config_reference`",
                file=sys.stderr,
            )
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
