"""When the agents of test worlds signed up: an hour before the test run, so that their token
still authenticates (72 hours) and their claim is open (30 days). Fixed dates would expire with
the calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SIGNED_UP = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
CLAIM_EXPIRES = SIGNED_UP + timedelta(days=30)
CREATED_AT = SIGNED_UP.isoformat()
CLAIM_EXPIRES_AT = CLAIM_EXPIRES.isoformat()


def agent_entry(login: str, *, token: str, claim_token: str) -> dict[str, str]:
    """A world file's agent, signed up at `SIGNED_UP`."""
    return {
        "login": login,
        "token": token,
        "claimToken": claim_token,
        "createdAt": CREATED_AT,
        "claimExpiresAt": CLAIM_EXPIRES_AT,
    }
