"""Credentials and privileges: no secret in plain sight, no container that runs as root."""

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .manifests import UNKNOWN, as_list, as_map, containers, describe, is_vllm_container, pod_template, words

_CRED_WORDS = {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "APIKEY", "CREDENTIAL", "CREDENTIALS"}
_CRED_PAIRS = {("API", "KEY"), ("ACCESS", "KEY"), ("PRIVATE", "KEY"), ("SECRET", "KEY"), ("AUTH", "KEY")}
# A variable that names where a credential is, not the credential.
_REFERENCE_SUFFIXES = {"PATH", "FILE", "DIR", "URL", "URI", "NAME", "REF"}
_CRED_VALUE = re.compile(
    r"^(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----.*)$",
    re.S,
)
_CRED_FLAGS = ("--api-key", "--hf-token", "--token", "--password")


def is_credential_name(name: str) -> bool:
    """``HF_TOKEN``, ``adminPassword``, ``AWS_SECRET_ACCESS_KEY`` — not ``TOKENIZERS_PARALLELISM``,
    ``HF_TOKEN_PATH`` or ``existingSecret`` (which name where a credential is)."""
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    words = [w for w in re.split(r"[^A-Za-z0-9]+", snake.upper()) if w]
    if not words or words[-1] in _REFERENCE_SUFFIXES or words[0] == "EXISTING":
        return False
    return bool(_CRED_WORDS & set(words)) or any(p in _CRED_PAIRS for p in itertools.pairwise(words))


def no_plain_credentials(m: Mapping, allowed_names: Sequence[str] = ()) -> list[str]:
    """No credential in a container's plain ``env`` value or command line: it would be readable by
    anyone who can read the workload (and in the Pulumi state). Protects from a leaked token or key."""
    t = pod_template(m)
    if not t:
        return []
    problems = []
    for c in containers(t[1]):
        where = f"{describe(m)}: container {c.get('name')}"
        for e in as_list(c.get("env")):
            e = as_map(e)
            name, value = str(e.get("name", "")), e.get("value")
            if "value" not in e or value in (None, "") or name in allowed_names:
                continue
            looks_secret = isinstance(value, str) and value != UNKNOWN and _CRED_VALUE.match(value.strip())
            if is_credential_name(name) or looks_secret:
                problems.append(
                    f"{where} sets {name} as a plain env value: store it in a Secret and use "
                    f"valueFrom.secretKeyRef (or envFrom.secretRef)."
                )
        ws = words(c)
        for i, w in enumerate(ws):
            flag = next((f for f in _CRED_FLAGS if w == f or w.startswith(f + "=")), None)
            if flag is None:
                continue
            value = w.partition("=")[2] if "=" in w else (ws[i + 1] if i + 1 < len(ws) else "")
            if value and value != UNKNOWN and not re.fullmatch(r"\$\([A-Za-z_][A-Za-z0-9_]*\)", value):
                problems.append(
                    f"{where} passes {flag} on its command line: pass it from a Secret in the environment "
                    f"instead (vLLM reads VLLM_API_KEY; HF_TOKEN for the hub)."
                )
    return problems


def _effective(c: Mapping, pod_sc: Mapping, key: str) -> Any:
    sc = as_map(c.get("securityContext"))
    return sc[key] if key in sc else pod_sc.get(key)


def pod_security(m: Mapping) -> list[str]:
    """Every container of the pod runs as non-root, without privilege escalation, unprivileged.
    Protects the node from a process that escapes its container."""
    t = pod_template(m)
    if not t:
        return []
    pod_sc = as_map(t[1].get("securityContext"))
    problems = []
    for c in containers(t[1]):
        where = f"{describe(m)}: container {c.get('name')}"
        sc = as_map(c.get("securityContext"))
        non_root, uid = _effective(c, pod_sc, "runAsNonRoot"), _effective(c, pod_sc, "runAsUser")
        if non_root is not True and non_root != UNKNOWN:
            problems.append(
                f"{where} may run as root: set securityContext.runAsNonRoot: true (and a runAsUser, e.g. 1000)."
            )
        if uid == 0 or uid == "0":
            problems.append(f"{where} sets runAsUser: 0 (root): use a non-zero UID, e.g. 1000.")
        if sc.get("allowPrivilegeEscalation") is not False and sc.get("allowPrivilegeEscalation") != UNKNOWN:
            problems.append(
                f"{where} allows privilege escalation: set securityContext.allowPrivilegeEscalation: false."
            )
        if sc.get("privileged") is True:
            problems.append(
                f"{where} is privileged: remove securityContext.privileged (a GPU comes from the device plugin, not "
                "from privileges)."
            )
    return problems


def serving_pod_security(m: Mapping) -> list[str]:
    """:func:`pod_security` for workloads that run a vLLM server (every container of their pods)."""
    t = pod_template(m)
    if not t or not any(is_vllm_container(c) for c in containers(t[1])):
        return []
    return pod_security(m)
