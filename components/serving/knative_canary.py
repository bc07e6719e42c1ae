"""Canary releases of a Knative model: two revisions of ONE Knative Service, split by Knative's route.

How Knative Serving (pinned 1.23) treats what this module renders, from its source:
- A revision template may carry its own name (``spec.template.metadata.name``), which must start
  with ``<service>-`` (``validateRevisionName``). The webhook refuses a changed template under an
  unchanged name ("Saw the following changes without a name change": ``VerifyNameChange`` diffs the
  whole template, labels and annotations included). Naming a template after an existing revision
  of the same Service reuses that revision when the specs are equal and fails the Configuration
  (``AlreadyExists``) when they differ (``CheckNameAvailability``).
- So the name of a template is a digest of the template (``revision_name``): the same settings
  always give the same name, any change gives a new one. Rolling back, or promoting a canary (its
  revision/image/extraArgs copied onto the model), renders a template equal to an existing revision
  and Knative reuses it: no new revision, no cold start.
- Traffic targets name revisions (``revisionName``, no ``latestRevision``) with a ``percent``
  (summing to 100) and a ``tag``; a tag gets its own URL, ``<tag>-<service>`` (the default
  ``tag-template``), in-cluster ``http://<tag>-<service>.<namespace>.svc.cluster.local``.
- A target whose revision does not exist fails the whole Route (``RevisionMissing``: nothing is
  reprogrammed until it exists); one not Ready yet keeps the previous routing until it is.
- Revisions a Route references are never garbage-collected; the others go after the GC config's
  retention (``config-gc``).

A Service holds ONE template, so one ``pulumi up`` creates at most one revision: the template is
the canary's, and the stable revision must already exist, made by an earlier ``pulumi up`` (the
model deployed, by this version of the stack, before its canary is added).
"""

import hashlib
import json
from typing import TypedDict

import pulumi
from typing_extensions import NotRequired

from .._core.package import CANARY_VARIANT, STABLE_VARIANT
from .vllm_pod import VllmEngineArgs

#: Hex digits of the template digest in a revision name: ``<service>-<digest>``.
DIGEST_CHARS = 10
#: Longest Knative revision name (a DNS-1035 label); Knative derives ``<revision>-private`` etc. from it.
MAX_REVISION_NAME = 63
#: Longest Service name a named revision leaves room for.
MAX_SERVICE_NAME = MAX_REVISION_NAME - DIGEST_CHARS - 1
#: Pod label Knative puts on every pod of a revision (the PodMonitor reads the variant from it).
REVISION_POD_LABEL = "serving.knative.dev/revision"
#: Traffic tags: each variant's own URL, ``<tag>-<service>``.
STABLE_TAG, CANARY_TAG = STABLE_VARIANT, CANARY_VARIANT


class KnativeCanaryArgs(TypedDict):
    """A canary of a Knative model: a second revision of its Knative Service taking ``weight`` percent."""

    weight: int
    """Percent of the requests the canary revision gets (1-99); the stable revision gets the rest.
    Plain: checked at preview."""
    engine: NotRequired[VllmEngineArgs]
    """The canary's vLLM engine args (default: the model's); same served name."""
    image: NotRequired[pulumi.Input[str]]
    """The canary's vLLM image (default: the model's)."""
    model_path: NotRequired[pulumi.Input[str]]
    """Path of the canary's weights inside the model's cache volume (default: the model's). Another
    revision of the weights lives beside the model's in the same volume, so that the promoted model
    renders exactly the canary's revision."""


def revision_name(service: str, template: dict) -> str:
    """``<service>-<digest of the template>``: equal templates, equal names; any change, a new name."""
    body = {**template, "metadata": {k: v for k, v in (template.get("metadata") or {}).items() if k != "name"}}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"{service}-{digest[:DIGEST_CHARS]}"


def named_template(service: str, template: dict) -> pulumi.Output[dict]:
    """The template with its revision name (its Outputs resolved first: the name digests the values)."""
    return pulumi.Output.from_input(template).apply(
        lambda t: {**t, "metadata": {**t["metadata"], "name": revision_name(service, t)}}
    )


def traffic(stable_revision: str, canary_revision: str, weight: int) -> list[dict]:
    """Knative traffic targets: the stable revision ``100 - weight`` percent, the canary ``weight``,
    each tagged (its own URL). (Without a canary the Service has no ``traffic``: Knative's default,
    everything to the latest ready revision, which is the template's.)"""
    return [
        {"revisionName": stable_revision, "percent": 100 - weight, "tag": STABLE_TAG},
        {"revisionName": canary_revision, "percent": weight, "tag": CANARY_TAG},
    ]


def tagged_url(tag: str, service: pulumi.Input[str], namespace: pulumi.Input[str]) -> pulumi.Output[str]:
    """In-cluster URL of one tagged traffic target (Knative's default tag template ``<tag>-<service>``)."""
    return pulumi.Output.concat("http://", tag, "-", service, ".", namespace, ".svc.cluster.local")
