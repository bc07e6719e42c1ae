"""The MIG profiles each GPU product offers, and how many instances of each fit on one GPU.

Source: NVIDIA Multi-Instance GPU User Guide, "Supported MIG Profiles"
(docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html), cross-checked with
the profiles NVIDIA's mig-parted ships per product (deployments/systemd/config-default.yaml).
A product not listed here is not checked; one listed in NO_MIG has no MIG at all.
"""

import re

#: product family -> {profile: instances per GPU}
MIG_PROFILES: dict[str, dict[str, int]] = {
    "A30-24GB": {"1g.6gb": 4, "1g.6gb+me": 1, "2g.12gb": 2, "2g.12gb+me": 1, "4g.24gb": 1},
    "A100-40GB": {"1g.5gb": 7, "1g.5gb+me": 1, "1g.10gb": 4, "2g.10gb": 3, "3g.20gb": 2, "4g.20gb": 1, "7g.40gb": 1},
    "A100-80GB": {"1g.10gb": 7, "1g.10gb+me": 1, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "4g.40gb": 1, "7g.80gb": 1},
    "H100-80GB": {"1g.10gb": 7, "1g.10gb+me": 1, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "4g.40gb": 1, "7g.80gb": 1},
    "H100-NVL": {"1g.12gb": 7, "1g.12gb+me": 1, "1g.24gb": 4, "2g.24gb": 3, "3g.47gb": 2, "4g.47gb": 1, "7g.94gb": 1},
    "H200-141GB": {
        "1g.18gb": 7,
        "1g.18gb+me": 1,
        "1g.35gb": 4,
        "2g.35gb": 3,
        "3g.71gb": 2,
        "4g.71gb": 1,
        "7g.141gb": 1,
    },
}
#: Data-centre GPUs without MIG (MIG starts with A100/A30; L4, L40S, A10, T4, V100 have none).
NO_MIG = re.compile(r"(^|[^A-Z0-9])(L4|L40S?|A10G?|A16|A2|T4|V100|P100|P4|RTX[- A-Z0-9]*)([^A-Z0-9]|$)")


def product_family(product: str, memory_gib: float) -> str | None:
    """The MIG_PROFILES family of a GPU product label (``NVIDIA-H100-80GB-HBM3``), or None."""
    p = product.upper()
    if "H200" in p:
        return "H200-141GB"
    if "H100" in p and "NVL" in p:
        return "H100-NVL"
    if "H100" in p and "96GB" not in p:
        return "H100-80GB"
    if "A100" in p:
        return "A100-80GB" if ("80GB" in p or memory_gib > 41) else "A100-40GB"
    if "A30" in p:
        return "A30-24GB"
    return None


def has_no_mig(product: str) -> bool:
    return bool(NO_MIG.search(product.upper()))
