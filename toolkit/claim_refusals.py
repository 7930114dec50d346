"""Why the service refuses a claim, in words that say what to do: an agent's access token
past its 72 hours, a claim token unknown, expired or used already."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from toolkit.display import utc_minute
from toolkit.errors import AgentTokenExpiredError, ClaimRefusedError

if TYPE_CHECKING:
    from toolkit.plan import ClaimPlan
    from toolkit.sides import ClaimToken


AGENT_TOKEN_LIFETIME = timedelta(hours=72)
"""How long an agent's access token authenticates after its sign-up (the service's
`accessTokenValidUntil`); the agent's account waits to be claimed for longer."""


def agent_token_expired(plan: ClaimPlan) -> AgentTokenExpiredError:
    """Why a plan that copies the agent's environments cannot run once the service refuses
    the agent's token (401), and what still can: the claim token outlives that token."""
    valid_until = plan.agent.created_at + AGENT_TOKEN_LIFETIME
    return AgentTokenExpiredError(
        f"the agent's access token has expired: the service answers 401 to "
        f"PULUMI_CLAIM_SOURCE_TOKEN (an agent's token is valid for 72 hours after its "
        f"sign-up, until {utc_minute(valid_until)}), so the ESC environments of "
        f"{plan.source_org} that the service cannot claim can no longer be read to copy them; "
        "nothing was changed",
        hint=f"The claim token still works until {utc_minute(plan.claim_expires_at)} (the claim "
        "window), without the agent's token: run without --environments copy to preview the "
        "claim itself. If PULUMI_CLAIM_SOURCE_TOKEN is not the agent's token, set it to "
        "the accessToken the agent's pulumi CLI keeps in /tmp/.pulumi/credentials.json.",
    )


def token_refused(claim_token: ClaimToken) -> ClaimRefusedError:
    """Which of "unknown, expired, used already" is likely, and what to do about it."""
    origin, valid_until = claim_token.origin, claim_token.valid_until
    fresh = (
        "Ask the agent's owner for a fresh claim link: the agent's pulumi CLI prints one "
        "(https://app.pulumi.com/claim/<token>) when it signs up again."
    )
    if valid_until is not None and valid_until <= datetime.now(UTC):
        return ClaimRefusedError(
            f"the claim token ({origin}) has expired: it was valid until "
            f"{utc_minute(valid_until)}.",
            hint=fresh,
        )
    if valid_until is not None:
        likely = "it has most likely been used already: an agent account is claimed only once"
    else:
        likely = (
            "it has expired (a claim window lasts 30 days from the agent's sign-up), has been "
            "used already (an agent account is claimed only once), or is mistyped"
        )
    return ClaimRefusedError(
        f"the service does not accept the claim token ({origin}): {likely}.",
        hint="Check the token (the part after /claim/ in the claim link) and whether the "
        f"agent's stacks are in the destination already. {fresh}",
    )
