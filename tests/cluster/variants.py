"""Stack files beyond the shipped two, for the cluster tier: each switches on what the shipped files leave
commented or off (multi-node LeaderWorkerSet, weights from object storage), edited the way a user would."""

from __future__ import annotations

import re

import yaml
from harness import ROOT

#: A stand-in commit for models the tests never download (the download Job only runs under kwok).
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _prod_multi_node_example() -> dict:
    """The commented multi-node model of Pulumi.prod.yaml, uncommented, its revision pinned."""
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    block = re.search(r"^(\s*)# - name: llama-405b\n((?:\1#  .*\n)+)", text, re.M)
    lines = ["- name: llama-405b"] + [re.sub(r"^\s*# ?", "", line, count=1) for line in block.group(2).splitlines()]
    model = yaml.safe_load("\n".join(lines))[0]
    model["revision"] = REVISION
    return model


def multi_node(config: dict) -> None:
    """prod with its commented Llama 3.1 405B on two 8-GPU nodes (a LeaderWorkerSet), as its comment says."""
    config["llmstack:models"].append(_prod_multi_node_example())
    config["llmstack:cache"]["downloadDeadlineSeconds"] = 16000


def object_storage(config: dict) -> None:
    """dev with its first model streamed from an S3-compatible bucket (no cache volume, no download Job)."""
    model = config["llmstack:models"][0]
    model["model"] = "s3://llm-weights/qwen2.5-0.5b-instruct/7ae5576/"
    for key in ("revision", "cache"):
        model.pop(key, None)
    config["llmstack:objectStorage"] = {
        "region": "eu-west-1",
        "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/weights-reader"},
    }


#: name -> (shipped stack it starts from, edit)
VARIANTS = {"prod-multinode": ("prod", multi_node), "dev-objectstorage": ("dev", object_storage)}
