"""Pinned versions: images name a version or a digest, Helm charts an exact release."""

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .manifests import UNKNOWN, containers, describe, pod_template

#: Image tags that move: an image named by one can change under a running Deployment.
MOVING_TAGS = ("latest", "stable", "main", "master", "edge", "nightly", "dev", "develop", "head", "canary", "rolling")
_PINNED_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$")


def image_tag(image: str) -> tuple[str | None, str | None]:
    """(tag, digest) of an image reference; a registry's ``:port`` is not a tag."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else None
    return tag, (digest or None)


def images_pinned(m: Mapping, moving_tags: Sequence[str] = MOVING_TAGS, require_digest: bool = False) -> list[str]:
    """Every container image names a version (or a digest), never a moving tag. Protects from a
    server that changes under a running Deployment (a node pulls the tag anew)."""
    t = pod_template(m)
    if not t:
        return []
    problems = []
    for c in containers(t[1]):
        image = c.get("image")
        if not isinstance(image, str) or image == UNKNOWN:
            continue
        tag, digest = image_tag(image)
        where = f"{describe(m)}: container {c.get('name')} image {image!r}"
        if require_digest and not digest:
            problems.append(f"{where} has no digest: pin it as {image}@sha256:<digest>.")
        elif not digest and (tag is None or tag.lower() in moving_tags):
            moving = f"uses the moving tag {tag!r}" if tag else "has no tag (so: latest, a moving tag)"
            repo = image[: -len(tag) - 1] if tag else image
            problems.append(f"{where} {moving}: pin a version ({repo}:<version>) or a digest ({repo}@sha256:<digest>).")
    return problems


def helm_chart_pinned(kind: str, name: str, chart: Any, version: Any) -> list[str]:
    """A Helm chart install names an exact chart version (not empty, not a range such as ``^1.2``).
    Protects from an update that silently installs a newer chart."""
    if chart == UNKNOWN or version == UNKNOWN:
        return []
    chart_s = str(chart or "")
    # A chart from a local directory or archive is pinned by the repository's own history.
    if chart_s.startswith((".", "/")) or chart_s.endswith(".tgz"):
        return []
    where = f"{kind} {name} (chart {chart_s or '?'})"
    if not version:
        return [
            f"{where} has no version: the newest chart would be installed at every update. Set version "
            f"to an exact release (keep every pin in components/versions.py)."
        ]
    if not _PINNED_CHART_VERSION.match(str(version)):
        return [f"{where} asks for version {version!r}, a range: set an exact release such as 1.2.3."]
    return []
