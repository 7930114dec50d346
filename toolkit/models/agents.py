"""Agent accounts: the claim document (`AgentClaimResponse`), the claim request and status, and
sign-up."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from toolkit.models.entities import TransferEntity, TransferEntityFailure
from toolkit.models.orgs import User
from toolkit.models.wire import WireModel


class AgentAccountSummary(WireModel):
    login: str
    org_name: str
    created_at: AwareDatetime


class AgentClaimRequest(WireModel):
    claim_token: str
    conflicts_resolution: list[TransferEntity] | None = None


class AgentClaimResponse(WireModel):
    agent: AgentAccountSummary
    entities: list[TransferEntity]
    conflicts: list[TransferEntity]
    failures: list[TransferEntityFailure]
    claim_expires_at: AwareDatetime
    transfer_token: str | None = None


class AgentClaimsStatus(WireModel):
    claims: dict[str, AgentClaimResponse]


class AgentSignupChallenge(WireModel):
    challenge_id: str = Field(alias="challengeID")
    challenge_data: str
    """`v1:<random>:<difficulty>`: the proof of work to solve."""


class AgentSignupRequest(WireModel):
    challenge_id: str = Field(alias="challengeID")
    challenge_result: str
    """The decimal nonce that solves the challenge."""


class AgentSignupResponse(WireModel):
    access_token: str
    access_token_valid_until: AwareDatetime
    claim_token: str
    claim_token_valid_until: AwareDatetime
    user_info: User
