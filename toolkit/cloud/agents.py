"""Agent account calls: sign-up, and the claim of an agent account by its claim token."""

from __future__ import annotations

from collections.abc import Sequence

from toolkit.cloud.transport import Transport, parse_answer, segment
from toolkit.models import (
    AgentClaimRequest,
    AgentClaimResponse,
    AgentClaimsStatus,
    AgentSignupChallenge,
    AgentSignupRequest,
    AgentSignupResponse,
    RenameEntity,
)


class AgentCalls(Transport):
    """The calls of an agent account's sign-up and claim."""

    # --- Agent claims ------------------------------------------------------------------------

    async def validate_claim_token(self, claim_token: str) -> AgentClaimResponse:
        """What the claim token would claim: the agent, its entities, when the claim expires."""
        response = await self._request(
            "GET",
            f"/api/agents/signup/validate/{segment(claim_token)}",
            shown_path="/api/agents/signup/validate/***",
            secrets=(claim_token,),
        )
        return parse_answer(AgentClaimResponse, response, "GET /api/agents/signup/validate/***")

    async def claim_agent(
        self,
        destination_org: str,
        claim_token: str,
        conflicts_resolution: Sequence[RenameEntity],
        *,
        dry_run: bool,
    ) -> AgentClaimResponse:
        """Preview (`dry_run`) or commit the claim of an agent account into `destination_org`,
        renaming as `conflicts_resolution` says; the service answers a blocked commit with the
        same document, its conflicts and failures filled in."""
        path = f"/api/agents/{segment(destination_org)}/claim"
        body = AgentClaimRequest(
            claim_token=claim_token, conflicts_resolution=list(conflicts_resolution)
        )
        response = await self._request(
            "POST",
            path,
            params={"dryRun": "true" if dry_run else "false"},
            body=body,
            secrets=(claim_token,),
        )
        return parse_answer(AgentClaimResponse, response, f"POST {path}")

    async def agent_claims_status(self, destination_org: str) -> AgentClaimsStatus:
        """The recent claims into `destination_org`, by claim id (a commit's transferToken)."""
        return await self._get(
            AgentClaimsStatus, f"/api/agents/{segment(destination_org)}/claim/status"
        )

    async def agent_signup_challenge(self) -> AgentSignupChallenge:
        """A proof-of-work challenge for signing up an agent account (no token needed)."""
        return await self._get(AgentSignupChallenge, "/api/agents/signup")

    async def sign_up_agent(self, challenge_id: str, challenge_result: str) -> AgentSignupResponse:
        """Sign up an agent account with a solved challenge (see `toolkit.agent_signup`); the answer
        holds its access token and claim token. Never repeated blindly: a lost answer may
        have made an account."""
        body = AgentSignupRequest(challenge_id=challenge_id, challenge_result=challenge_result)
        response = await self._request("POST", "/api/agents/signup", body=body)
        return parse_answer(AgentSignupResponse, response, "POST /api/agents/signup")
