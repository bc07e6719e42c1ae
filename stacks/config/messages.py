"""Pydantic's errors in words: what is wrong with a key, where a misplaced key belongs, what a
known secret key is for. The loader prints these after ``Pulumi.<stack>.yaml: llmstack:<key>:``."""

import difflib
import re
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from llmstack_k8s.serving.knative_vllm_service import duration_seconds

from .quantities import DNS_LABEL_WORDS

#: Patterns of the config model, in words (a raw regex means nothing to the person fixing a stack file).
PATTERN_WORDS = {
    r"^[a-z]([-a-z0-9]*[a-z0-9])?$": f"must be a DNS label: {DNS_LABEL_WORDS}",
    r"^[A-Za-z0-9][\w.-]*/[\w.-]+$": (
        "must be a Hugging Face repository id, org/name (e.g. meta-llama/Llama-3.1-8B-Instruct)"
    ),
    r"^https?://": "must be a URL starting with http:// or https://",
    r"^[0-9]+(ms|s|m|h|d|w|y)$": (
        "must be a Prometheus duration: a whole number and one unit of ms, s, m, h, d, w, y (e.g. 15d)"
    ),
    r"^[0-9]+(B|KB|MB|GB|TB|PB)$": (
        "must be a Prometheus size: a whole number and one unit of B, KB, MB, GB, TB, PB (e.g. 85GB)"
    ),
    r"^[0-9]+(s|m)$": "must be a whole number of seconds or minutes (e.g. 15s or 1m)",
    r"^(([0-9]+(s|m|h))+|Never)$": "must be a duration in s, m, h (e.g. 10m or 1h30m) or Never",
    r"^((100|[0-9]{1,2})%|[0-9]+)$": "must be a node count (e.g. 1) or a percentage (e.g. 10%)",
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$": (
        "must be a Kubernetes object name: lowercase letters, digits, '-' and '.', "
        "starting and ending with a letter or digit"
    ),
}
_LABEL_KEY_WORDS = (
    "must be a Kubernetes label key: an optional DNS prefix and '/', then letters, digits, '-', '_' or "
    "'.' (e.g. nvidia.com/gpu)"
)

#: Keys people put in a stack file for secrets the stack handles itself (normalised: lower case, no separators).
KNOWN_SECRETS = {
    "grafanapassword": (
        "the stack generates Grafana's admin password (pulumi-random) and exports it as the secret "
        "output grafanaAdminPassword; remove it"
    ),
    "grafanaadminpassword": (
        "the stack generates Grafana's admin password (pulumi-random) and exports it as the secret "
        "output grafanaAdminPassword; remove it"
    ),
    "adminpassword": (
        "the stack generates Grafana's admin password (pulumi-random) and exports it as the secret output "
        "grafanaAdminPassword; remove it"
    ),
    "apikey": (
        "the stack generates the vLLM API key (pulumi-random), stores it in a Secret and exports it as the "
        "secret output apiKey; remove it"
    ),
    "vllmapikey": (
        "the stack generates the vLLM API key (pulumi-random), stores it in a Secret and exports it as the "
        "secret output apiKey; remove it"
    ),
    "hftoken": (
        "the Hugging Face token is the stack key llmstack:huggingfaceToken, set with `pulumi config set "
        "--secret huggingfaceToken hf_...`"
    ),
    "huggingfacehubtoken": (
        "the Hugging Face token is the stack key llmstack:huggingfaceToken, set with `pulumi config "
        "set --secret huggingfaceToken hf_...`"
    ),
    "token": (
        "the Hugging Face token is the stack key llmstack:huggingfaceToken, set with `pulumi config set --secret "
        "huggingfaceToken hf_...`"
    ),
}


#: Keys the stack file had and no longer has, where they were valid -> (what replaces them, relative to
#: the model, or None when nothing does; why). The loader refuses each with its replacement.
REMOVED_KEYS: dict[str, tuple[str | None, str]] = {
    "models[].knative.minScale": (
        "autoscaling.minReplicas",
        "the scaling keys are one vocabulary for Deployment and Knative models; 0 still scales to zero",
    ),
    "models[].knative.maxScale": (
        "autoscaling.maxReplicas",
        "the scaling keys are one vocabulary for Deployment and Knative models",
    ),
    "models[].knative.targetConcurrency": (
        "autoscaling.target",
        "in-flight requests per pod, the target of metric concurrency, a Knative model's default metric",
    ),
    "models[].knative.scaleDownDelay": (
        "autoscaling.cooldownSeconds",
        "low-load time before a pod is removed, in seconds, as for a Deployment model",
    ),
    "models[].gpus": (
        None,
        "GPUs per replica are tensorParallelSize x pipelineParallelSize, the sizes vLLM is started with; remove gpus "
        "and state the layout there",
    ),
    "models[].parametersBillions": (
        "weightsGiB",
        "the one size of the weights: GiB in GPU memory, the size of the checkpoint's safetensors files; a model the "
        "catalog knows needs neither",
    ),
}


def removed_key(where: str, key: str, value: Any) -> str | None:
    """Words for a key the stack file no longer has: what replaces it, with the value converted where
    the unit changed (``scaleDownDelay: 15m`` -> ``cooldownSeconds: 900``); None for any other key."""
    path = f"{_generic(where)}.{key}" if where else key
    if path not in REMOVED_KEYS:
        return None
    new, why = REMOVED_KEYS[path]
    if new is None:
        return f"removed key: {why}"
    return f"removed key; write {new}{_converted(key, value)} in this model instead ({why})"


def _converted(key: str, value: Any) -> str:
    if key == "scaleDownDelay":
        try:
            return f": {duration_seconds(str(value))}"
        except ValueError:
            return ""
    if key == "parametersBillions" and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return f" (~{value * 1e9 * 2 / 2**30:.1f} GiB for {value:g}B parameters in 16 bits, about half in 8 bits)"
    if (
        key in ("minScale", "maxScale", "targetConcurrency")
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        return f": {value:g}"
    return ""


def _generic(where: str) -> str:
    """``models[0] (name: x).knative`` -> ``models[].knative``."""
    return re.sub(r"\[[0-9]+\]( \(name: [^)]*\))?", "[]", where)


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def key_index(root: type[BaseModel]) -> dict[str, list[str]]:
    """Every key of the config model -> the paths where it is valid (``models[].replicas``)."""
    index: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = field.alias or name
            path = f"{prefix}{key}"
            index.setdefault(key, []).append(path)
            for sub, is_list in _submodels(field.annotation):
                walk(sub, f"{path}[]." if is_list else f"{path}.")

    walk(root, "")
    return index


def _submodels(annotation, is_list: bool = False) -> list[tuple[type[BaseModel], bool]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, is_list)]
    origin = typing.get_origin(annotation)
    return [m for a in typing.get_args(annotation) for m in _submodels(a, is_list or origin is list)]


def unknown_key(root: type[BaseModel], where: str, key: str, siblings: list[str]) -> str:
    """Words for an unknown key: a known secret, a key that belongs elsewhere, or a typo."""
    known = KNOWN_SECRETS.get(_norm(key))
    if known:
        return f"unknown key: {known}"
    elsewhere = [p for p in key_index(root).get(key, []) if not _same_place(p, where)]
    if elsewhere:
        places = " or ".join(f"llmstack:{p.replace('[]', '[N]')}" for p in elsewhere[:3])
        return f"unknown key here: {key} belongs under {places}"
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.75)
    if not close:
        lower = {s.lower(): s for s in siblings}
        close = [lower[key.lower()]] if key.lower() in lower else []
    return f"unknown key; did you mean {close[0]}?" if close else "unknown key (typo?)"


def _same_place(path: str, where: str) -> bool:
    return _generic(where) == path


def siblings_at(root: type[BaseModel], loc: tuple) -> list[str]:
    """Keys the model at a location (the parent of an unknown key) accepts."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) or next((f for f in model.model_fields.values() if f.alias == part), None)
        if field is None:
            return []
        subs = _submodels(field.annotation)
        if not subs:
            return []
        model = subs[0][0]
    return [f.alias or n for n, f in model.model_fields.items()]


def words(error: Mapping[str, Any]) -> str:
    """One pydantic error as words."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        if pattern in PATTERN_WORDS:
            return f"{value!r} {PATTERN_WORDS[pattern]}"
        if "/)?" in pattern:
            return f"{value!r} {_LABEL_KEY_WORDS}"
        return f"{value!r} is not in the expected form"
    if kind in ("less_than_equal", "less_than") and isinstance(value, (int, float)):
        limit = ctx.get("le", ctx.get("lt"))
        if limit is not None and limit <= 1 and value > 1:
            hint = f", not a percentage; did you mean {value / 100:g}?" if 2 <= value <= 100 else ""
            return f"{value:g} is above {limit:g}: it is a fraction from 0 to {limit:g}{hint}"
        return f"{value:g} is above the most allowed, {limit:g}"
    if kind in ("greater_than_equal", "greater_than") and isinstance(value, (int, float)):
        limit = ctx.get("ge", ctx.get("gt"))
        return (
            f"{value:g} is below the least allowed, {limit:g}"
            if kind == "greater_than_equal"
            else f"{value:g} must be above {limit:g}"
        )
    if kind == "string_too_long":
        return f"{value!r} is longer than {ctx.get('max_length')} characters"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must list at least one entry"
    if kind == "string_type":
        return f"{value!r} must be text; quote it in the stack file"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{value!r} must be a whole number"
    if kind in ("float_type", "float_parsing"):
        return f"{value!r} must be a number"
    if kind in ("bool_type", "bool_parsing"):
        return f"{value!r} must be true or false"
    return error["msg"].removeprefix("Value error, ")
