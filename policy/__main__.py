"""Entry point the Pulumi CLI runs for ``--policy-pack policy`` (it serves the policies over gRPC)."""

from llmstack_policy import PACK_DESCRIPTION, PACK_NAME, POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    policies=POLICIES,
    # Each policy sets its own level; this applies only to policies that set none.
    enforcement_level=EnforcementLevel.MANDATORY,
    description=PACK_DESCRIPTION,
)
