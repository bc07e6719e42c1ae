"""Read a stack's config from Pulumi and turn every mistake into one clear message.

The message names the stack file and the key (``Pulumi.dev.yaml: llmstack:models[0].replicas``)
and is raised as ``pulumi.RunError``, which Pulumi prints without a Python traceback. It is
raised before any resource is registered, so nothing is half-deployed.
"""

import json
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import ValidationError

from .config import StackConfig

#: Keys whose values must be Pulumi secrets (``secure:`` in the stack file).
SECRET_KEYS = {"huggingfaceToken"}


class StackConfigError(pulumi.RunError):
    """Bad input in a stack file."""


def stack_file(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"


def raw_config(project: str) -> tuple[dict[str, Any], set[str]]:
    """All of this project's keys as the engine passed them, and which of them are secrets."""
    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    prefix = f"{project}:"
    values: dict[str, Any] = {}
    for full_key, value in merged.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        try:  # structured values arrive as JSON text
            values[key] = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            values[key] = value
        if key in SECRET_KEYS and isinstance(values[key], (int, float)):
            values[key] = str(value)
    return values, {k[len(prefix):] for k in secret if k.startswith(prefix)}


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


def load(project: str, stack: str) -> StackConfig:
    values, secrets = raw_config(project)
    file = stack_file(stack)
    problems: list[str] = []
    for key in sorted(SECRET_KEYS & values.keys()):
        if key not in secrets:
            problems.append(
                f"{file}: {project}:{key} is plain text; it must be a secret "
                f"(pulumi config set --secret {key} ... -s {stack})"
            )
    try:
        cfg = StackConfig.model_validate(values)
    except ValidationError as err:
        for e in err.errors():
            key = _where(e["loc"], values)
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown key (typo?)"
            elif e["type"] == "missing":
                msg = "required key is missing"
            problems.append(f"{file}: {project}:{key}: {msg}" if key else f"{file}: {msg}")
        cfg = None
    if problems:
        raise StackConfigError("invalid stack configuration\n  " + "\n  ".join(problems))
    return cfg
