"""The client's side of agent sign-up and claims: the proof-of-work solver, signing up
against the emulator, and the claim token kept out of errors and logs."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING

import pytest

from toolkit.agent_signup import sign_up_agent_account, solve_signup_challenge
from toolkit.cloud import CloudClient
from toolkit.errors import NotFoundError

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

WORLD = {
    "service": {"signupDifficulty": 10},
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}}],
}


@pytest.mark.parametrize(
    ("challenge", "nonce"),
    [("v1:abcdef:8", "277"), ("v1:abcdef:16", "65376"), ("v1:test:4", "12")],
)
def test_the_solver_finds_the_first_nonce_as_the_cli_does(challenge: str, nonce: str) -> None:
    assert solve_signup_challenge(challenge) == nonce
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    assert int.from_bytes(digest, "big") >> (256 - int(challenge.split(":")[2])) == 0


@pytest.mark.parametrize("challenge", ["v2:abc:8", "v1:abc", "v1:a:b:8", "v1:abc:0", "v1:a:257"])
def test_the_solver_refuses_challenges_of_another_form(challenge: str) -> None:
    with pytest.raises(ValueError, match="challenge"):
        solve_signup_challenge(challenge)


def test_signing_up_makes_an_agent_whose_claim_a_user_can_commit(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(WORLD)

    async def sign_up_and_claim() -> tuple[str, str, list[str]]:
        account = await sign_up_agent_account(server.url)
        async with CloudClient(server.url, "tok-alice") as alice:
            claimed = await alice.claim_agent("acme", account.claim_token, [], dry_run=False)
            status = await alice.agent_claims_status("acme")
        assert claimed.transfer_token is not None
        return account.user_info.github_login, claimed.transfer_token, list(status.claims)

    login, transfer_token, claims = asyncio.run(sign_up_and_claim())
    assert login.startswith("agent-")
    assert claims == [transfer_token]
    assert server.requests.count("POST", "/api/agents/signup") == 1


def test_the_claim_token_stays_out_of_errors_and_logs(
    make_emulator: EmulatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_emulator(WORLD)
    secret = "claim-0123456789abcdef"

    async def try_it() -> list[str]:
        messages = []
        async with CloudClient(server.url, "tok-alice") as alice:
            for call in (
                alice.validate_claim_token(secret),
                alice.claim_agent("acme", secret, [], dry_run=True),
            ):
                with pytest.raises(NotFoundError) as refused:
                    await call
                messages.append(str(refused.value))
        return messages

    caplog.set_level(logging.DEBUG)
    messages = asyncio.run(try_it())
    assert len(messages) == 2
    for text in [*messages, caplog.text]:
        assert secret not in text and "tok-alice" not in text
