"""Kubernetes quantities and durations as stack-file values: sizes, CPU, durations.

Each type validates where it is parsed, so a value without a unit or in the wrong unit ends in a
message naming the key instead of an object the API server or kubelet refuses later.
"""

import re
from typing import Annotated

from pydantic import AfterValidator

from llmstack_k8s import knative_vllm_service as knative

DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_BINARY_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi)?$")
_CPU_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]{1,3})?|[0-9]+m)$")
BYTES_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
BYTES_PROM = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40, "PB": 2**50}  # Prometheus' units are base 2


def _binary_quantity(v: str) -> str:
    if not _BINARY_QUANTITY.match(v):
        hint = ""
        m = re.match(r"^([0-9.]+)([KMGTP])B?$", v, re.IGNORECASE)
        if m:
            hint = f" (did you mean {m.group(1)}{m.group(2).upper()}i?)"
        raise ValueError(f"{v!r} is not a size in binary units; write e.g. 40Gi or 512Mi{hint}")
    return v


def _cpu_quantity(v: str) -> str:
    if not _CPU_QUANTITY.match(str(v)):
        raise ValueError(f"{v!r} is not a CPU quantity; write e.g. 4, 0.5 or 500m")
    return str(v)



def size_bytes(v: str) -> float:
    """Bytes of a binary-unit size the Size type accepted."""
    num, unit = re.match(r"^([0-9.]+)([KMGTP]i)?$", v).groups()
    return float(num) * BYTES_BINARY.get(unit, 1)


def size_gib(v: str) -> float:
    return size_bytes(v) / 2**30


def _duration(v: str) -> str:
    knative.duration_seconds(v)
    return v


Size = Annotated[str, AfterValidator(_binary_quantity)]
Cpu = Annotated[str, AfterValidator(_cpu_quantity)]
Duration = Annotated[str, AfterValidator(_duration)]
