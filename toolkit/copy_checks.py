"""What a plan's ESC environment copies need before anything moves: both orgs on Pulumi Cloud,
where ESC lives, and, when the service claims, the agent's own token to read what it cannot
claim (`toolkit.claim` checks both while it plans)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.claim_refusals import agent_token_expired
from toolkit.cloud import CloudClient
from toolkit.entities import qualified_name
from toolkit.errors import AuthenticationError, ChoiceError, InvalidInputError

if TYPE_CHECKING:
    from toolkit.plan import ClaimPlan
    from toolkit.sides import Sides


def check_copies_reach_esc(sides: Sides, plan: ClaimPlan) -> None:
    """Refuse environment copies where a side is not on Pulumi Cloud, where ESC lives."""
    if plan.environment_copies and not (sides.source.is_cloud and sides.destination.is_cloud):
        raise ChoiceError(
            "{environments} copy needs both orgs on Pulumi Cloud: ESC environments live there.",
            hint="Leave out {environments} copy to move the stacks only.",
        )


async def check_agent_reads(sides: Sides, plan: ClaimPlan) -> None:
    """Refuse a claim-api plan whose copies the source identity cannot read."""
    from toolkit.strategies.environment_copy import unreadable

    async with CloudClient.for_identity(sides.source) as client:
        found = await unreadable(client, plan.source_org, plan.environment_copies)
    if found is None:
        return
    copy, error = found
    if isinstance(error, AuthenticationError) and not sides.one_identity:
        raise agent_token_expired(plan)
    label = qualified_name(plan.source_org, copy.source)
    whose = (
        "no PULUMI_CLAIM_SOURCE_TOKEN is set, so the claimer's token was used"
        if sides.one_identity
        else "PULUMI_CLAIM_SOURCE_TOKEN is not a token of the agent"
    )
    raise InvalidInputError(
        f"the service cannot claim the ESC environments of {plan.source_org}, so they are "
        f"copied first, reading them as the agent; but reading {label} failed ({whose}): "
        f"{error.message}",
        hint="Set PULUMI_CLAIM_SOURCE_TOKEN to the agent's own access token: after sign-up "
        "the agent's pulumi CLI keeps it in /tmp/.pulumi/credentials.json (under accounts, "
        "the service URL, accessToken). Or leave out --environments copy and see What to do.",
    )
