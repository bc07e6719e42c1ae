"""Pinned versions in the stack file: a Hugging Face revision is a full commit SHA, an image a
version tag or a digest (branches, tags and moving image tags can all change under the stack)."""

import re

UNPINNED_REVISIONS = {"", "main", "master", "latest", "head"}
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
#: Image tags that move: the same tag serves different images over time.
MOVING_IMAGE_TAGS = {"latest", "nightly", "main", "master", "dev", "edge", "head", "stable", "release", "rc"}


def pinned_revision(v: str) -> str:
    """Only a full commit SHA names fixed weights: branches, tags and PR refs can all move."""
    r = v.strip()
    if _COMMIT_SHA.match(r):
        return r
    fix = "pin the full 40-character commit SHA (the model's History page on the Hub)"
    if r.lower() in UNPINNED_REVISIONS or r.startswith("refs/heads/"):
        raise ValueError(f"revision {v!r} is a moving branch; {fix}")
    if re.match(r"^refs/pr/[0-9]+$", r):
        raise ValueError(f"revision {v!r} is a pull-request ref, which moves with every push to it; {fix}")
    if re.match(r"^[0-9a-fA-F]{40}$", r):
        raise ValueError(f"revision {v!r} has upper-case letters; write the commit SHA in lower case")
    if re.match(r"^[0-9a-f]{7,39}$", r):
        raise ValueError(f"revision {v!r} is an abbreviated commit SHA; {fix}")
    raise ValueError(f"revision {v!r} is a branch or tag name, which can be moved to other weights; {fix}")


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None (a digest, or a version tag)."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag, so it means :latest; give a version tag or a digest"
    tag = last.rsplit(":", 1)[1]
    if tag.lower() in MOVING_IMAGE_TAGS or tag.lower().startswith(("nightly", "latest")):
        return (
            f"image {image!r} is not pinned: tag {tag!r} moves to new builds; give a version tag (e.g. v0.11.0) or "
            "a digest"
        )
    return None
