"""Read a stack's config from Pulumi and turn every mistake into one clear message.

The message names the stack file and the key (``Pulumi.dev.yaml: llmstack:models[0].replicas``)
and is raised as ``pulumi.RunError``, which Pulumi prints without a Python traceback. It is
raised before any resource is registered, so nothing is half-deployed.
"""

import difflib
import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import ValidationError

from . import StackConfig
from .base import ConfigProblem
from .chart_source import PROJECT_DIR_CONTEXT
from .cluster import HONOURED_PROVIDER_KEYS, REFUSED_PROVIDER_KEYS, SATISFIED_PROVIDER_KEYS
from .messages import removed_key, siblings_at, unknown_key, words

#: Keys whose values must be Pulumi secrets (``secure:`` in the stack file).
SECRET_KEYS = {"huggingfaceToken", "objectStorageAccessKeyId", "objectStorageSecretAccessKey"}


class StackConfigError(pulumi.RunError):
    """Bad input in a stack file."""


def stack_file(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"


def raw_config(project: str) -> tuple[dict[str, Any], set[str]]:
    """All of this project's keys as the engine passed them, and which of them are secrets."""
    values, secrets, _ = _split_config(project)
    return values, secrets


def _split_config(project: str) -> tuple[dict[str, Any], set[str], dict[str, Any]]:
    """(this project's keys, which of them are secrets, every other namespace's keys by full key)."""
    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    prefix = f"{project}:"
    values: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for full_key, value in merged.items():
        try:  # structured values arrive as JSON text
            parsed = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            parsed = value
        if not full_key.startswith(prefix):
            others[full_key] = parsed
            continue
        key = full_key[len(prefix) :]
        values[key] = parsed
        if key in SECRET_KEYS and isinstance(values[key], (int, float)):
            values[key] = str(value)
    return values, {k[len(prefix) :] for k in secret if k.startswith(prefix)}, others


def _other_namespaces(project: str, values: dict, others: dict) -> list[str]:
    """Fold the Kubernetes provider's keys into ``kubernetes``; refuse keys of any other namespace
    (they would be dropped silently). Returns the problems, without the file prefix."""
    problems: list[str] = []
    given = values.get("kubernetes")
    own: dict[str, Any] = given if isinstance(given, dict) else {}
    known_keys = StackConfig.model_fields.keys() | {f.alias for f in StackConfig.model_fields.values() if f.alias}
    for full_key in sorted(others):
        namespace, _, key = full_key.partition(":")
        value = others[full_key]
        if namespace == "pulumi":  # the engine's own settings (pulumi:tags, pulumi:disable-default-providers)
            continue
        if namespace == "kubernetes":
            if key in HONOURED_PROVIDER_KEYS:
                if key in own and own[key] != value:
                    problems.append(
                        f"{full_key}: {value!r} contradicts {project}:kubernetes.{key} {own[key]!r}; set it in one "
                        "place"
                    )
                    continue
                values["kubernetes"] = own = {**own, key: value}
            elif key in REFUSED_PROVIDER_KEYS:
                problems.append(f"{full_key}: {REFUSED_PROVIDER_KEYS[key]}")
            elif key == "enableServerSideApply":
                if str(value).lower() != "true":
                    problems.append(
                        f"{full_key}: the stack deploys with server-side apply (Helm values and CRDs need it); remove "
                        "it"
                    )
            elif key not in SATISFIED_PROVIDER_KEYS:
                close = difflib.get_close_matches(
                    key, [*HONOURED_PROVIDER_KEYS, *REFUSED_PROVIDER_KEYS], n=1, cutoff=0.7
                )
                hint = f"; did you mean kubernetes:{close[0]}?" if close else ""
                problems.append(f"{full_key}: not a key of the Kubernetes provider{hint}")
            continue
        if key in known_keys or difflib.get_close_matches(namespace, [project], n=1, cutoff=0.6):
            close = (
                key
                if key in known_keys
                else (difflib.get_close_matches(key, sorted(known_keys), n=1, cutoff=0.7) or [None])[0]
            )
            hint = f"; did you mean {project}:{close}?" if close else ""
            problems.append(
                f"{full_key}: a key under {namespace!r}, which is not this project ({project!r}), so it would be "
                f"ignored{hint}"
            )
        else:
            problems.append(
                f"{full_key}: this program reads only {project}:* keys and the Kubernetes provider's kubernetes:* "
                "keys, so it would be ignored; remove it"
            )
    return problems


def _where(loc: tuple, raw: dict) -> str:
    """``models[1] (name: llama).cache.size`` from a pydantic location."""
    out = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            item = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                out += f" (name: {item['name']})"
            node = item
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def load(project: str, stack: str, project_dir: Path | None = None) -> StackConfig:
    """The validated config of ``stack``; ``project_dir`` (where Pulumi.yaml is; default: the engine's
    root directory, else the working directory) anchors relative paths such as ``charts.directory``."""
    project_dir = project_dir or Path(pulumi.get_root_directory() or Path.cwd())
    values, secrets, others = _split_config(project)
    file = stack_file(stack)
    problems: list[str] = [f"{file}: {p}" for p in _other_namespaces(project, values, others)]
    for key in sorted(SECRET_KEYS & values.keys()):
        if key not in secrets:
            problems.append(
                f"{file}: {project}:{key} is plain text; it must be a secret "
                f"(pulumi config set --secret {key} ... -s {stack})"
            )
    try:
        cfg = StackConfig.model_validate(values, context={PROJECT_DIR_CONTEXT: str(project_dir)})
    except ValidationError as err:
        for e in err.errors():
            key = _where(e["loc"], values)
            error = (e.get("ctx") or {}).get("error")
            if isinstance(error, ConfigProblem):  # the validator names its own key, relative to where it ran
                key = f"{key}.{error.key}" if key else error.key
                msg = str(error)
            elif e["type"] == "extra_forbidden":
                where = key.rpartition(".")[0] if "." in key else ""
                extra = str(e["loc"][-1])  # an unknown key's name (a str already)
                msg = removed_key(where, extra, e.get("input")) or unknown_key(
                    StackConfig, key, extra, siblings_at(StackConfig, e["loc"])
                )
            elif e["type"] == "missing":
                msg = "required key is missing"
            else:
                msg = words(e)
            problems.append(f"{file}: {project}:{key}: {msg}" if key else f"{file}: {msg}")
        cfg = None
    if problems:
        raise StackConfigError("invalid stack configuration\n  " + "\n  ".join(problems))
    assert cfg is not None  # validated: no problems
    return cfg
