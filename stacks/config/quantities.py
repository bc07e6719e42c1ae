"""Kubernetes quantities and durations as stack-file values: sizes, CPU, durations.

Each type validates where it is parsed, so a value without a unit or in the wrong unit ends in a
message naming the key instead of an object the API server or kubelet refuses later.
"""

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from llmstack_k8s.serving import knative_vllm_service as knative

DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_WORDS = "lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"
_BINARY_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi)?$")
_CPU_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]{1,3})?|[0-9]+m)$")
BYTES_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
BYTES_PROM = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40, "PB": 2**50}  # Prometheus' units are base 2


def _binary_quantity(v: str) -> str:
    v = str(v)
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", v):
        # Kubernetes reads a bare number as bytes: "32" memory is 32 bytes, not 32 GiB.
        raise ValueError(f"{v!r} has no unit, so Kubernetes reads it as {v} bytes; write e.g. {v}Gi or {v}Mi")
    if not _BINARY_QUANTITY.match(v):
        hint = ""
        m = re.match(r"^([0-9.]+)([KMGTP])B?$", v, re.IGNORECASE)
        if m:
            hint = f" (did you mean {m.group(1)}{m.group(2).upper()}i?)"
        raise ValueError(f"{v!r} is not a size in binary units; write e.g. 40Gi or 512Mi{hint}")
    return v


#: More cores than any node has: a bare number this large was meant as millicores.
MAX_PLAUSIBLE_CORES = 512


def _cpu_quantity(v) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ValueError(f"{v!r} is not a CPU quantity; write e.g. 4, 0.5 or 500m")
    s = str(v)
    if not _CPU_QUANTITY.match(s):
        raise ValueError(f"{s!r} is not a CPU quantity; write e.g. 4, 0.5 or 500m")
    if not s.endswith("m") and float(s) > MAX_PLAUSIBLE_CORES:
        raise ValueError(f"{s!r} is {s} whole cores, more than any node has; for millicores write {int(float(s))}m")
    return s


def dns_label(v: str) -> str:
    """A namespace name: a DNS label (RFC 1123), never a pattern."""
    if any(c in v for c in "*?[]"):
        raise ValueError(
            f"{v!r} is a pattern; namespaces are matched by exact name (kubernetes.io/metadata.name), list each one"
        )
    if len(v) > 63 or not re.match(DNS_LABEL, v):
        raise ValueError(f"{v!r} is not a namespace name: use {DNS_LABEL_WORDS}, at most 63 characters")
    return v


def size_bytes(v: str) -> float:
    """Bytes of a binary-unit size the Size type accepted."""
    m = re.match(r"^([0-9.]+)([KMGTP]i)?$", v)
    assert m is not None  # the Size type's pattern
    num, unit = m.groups()
    return float(num) * BYTES_BINARY.get(unit, 1)


def size_gib(v: str) -> float:
    return size_bytes(v) / 2**30


def _duration(v: str) -> str:
    knative.duration_seconds(v)
    return v


# A number (memory: 32) is taken as text first so the message can say it has no unit.
Size = Annotated[
    str,
    BeforeValidator(lambda v: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v),
    AfterValidator(_binary_quantity),
]
# CPU may arrive as a YAML number (cpu: 4); it is validated and kept as Kubernetes text.
Cpu = Annotated[str, BeforeValidator(_cpu_quantity)]
Duration = Annotated[str, AfterValidator(_duration)]


#: TTFT keys are in seconds; a value above this can only have been meant as milliseconds.
TTFT_MAX_SECONDS = 60


def ttft_unit_message(value: float) -> str:
    return (
        f"{value:g} is in seconds, and a time to first token of {value:g} s (over {TTFT_MAX_SECONDS} s) is no "
        f"target; if you meant {value:g} ms, write {value / 1000:g}"
    )
