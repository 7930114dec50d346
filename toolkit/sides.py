"""Both sides of a claim, resolved once: each org, the backend it lives at, and the identity
that acts there.

Built where a claim enters the toolkit (`toolkit.commands`, `toolkit.runs.commit_request`, a
job's claims) from its target and the credentials, then passed down: nothing below reads the
credentials again, and every client of a side is made by `CloudClient.for_identity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from toolkit.credentials import BackendIdentity, Credentials
from toolkit.plan import ClaimTarget


@dataclass(frozen=True, repr=False)
class ClaimToken:
    """The agent's claim token, and what messages say of it."""

    value: str
    origin: str
    """Where it came from, in words (`PULUMI_CLAIM_TOKEN`, the claim file's path)."""
    valid_until: datetime | None = None
    """When the claim file said it expires; None when no claim file said."""

    def __repr__(self) -> str:
        return f"ClaimToken(origin={self.origin!r})"


@dataclass(frozen=True)
class Sides:
    """Where a claim moves from and to, and who acts on each side."""

    target: ClaimTarget
    source: BackendIdentity
    """At the source backend (default: the API URL), with the source token."""
    destination: BackendIdentity
    """At the destination backend (default: the API URL), with the destination token."""
    claim_token: ClaimToken | None = None

    @classmethod
    def of(cls, target: ClaimTarget, credentials: Credentials) -> Sides:
        """`target`'s two sides, with the identities of `credentials`."""
        claim_token = None
        if credentials.claim_token:
            claim_file = credentials.claim_file
            claim_token = ClaimToken(
                credentials.claim_token,
                credentials.claim_token_origin,
                claim_file.valid_until if claim_file else None,
            )
        return cls(
            target=target,
            source=BackendIdentity(
                (target.source_backend or credentials.api_url).rstrip("/"),
                credentials.source_token,
                credentials.source_passphrase,
            ),
            destination=BackendIdentity(
                (target.destination_backend or credentials.api_url).rstrip("/"),
                credentials.destination_token,
                credentials.destination_passphrase,
            ),
            claim_token=claim_token,
        )

    @property
    def source_org(self) -> str:
        return self.target.source_org

    @property
    def destination_org(self) -> str:
        return self.target.destination_org

    @property
    def one_service(self) -> bool:
        """Both orgs on one Pulumi Cloud: what every strategy but migrate needs."""
        return self.source.is_cloud and self.source.service == self.destination.service

    @property
    def one_identity(self) -> bool:
        """The same token acts on both sides (no source token of its own was given)."""
        return self.source.token == self.destination.token
