"""Agent sign-up from the client's side: solving the service's proof of work, and making an
agent account the way the `pulumi` CLI does when an AI agent runs it without credentials."""

from __future__ import annotations

import asyncio
import hashlib

from toolkit.models import AgentSignupResponse

MAX_DIFFICULTY = 256


def solve_signup_challenge(challenge_data: str) -> str:
    """The answer to a sign-up challenge `v1:<random>:<difficulty>`: the first decimal nonce,
    counting from 0, such that sha256(challenge_data + ":" + nonce) starts with at least
    `difficulty` zero bits (the CLI's own search). ValueError for data of another form."""
    parts = challenge_data.split(":")
    if len(parts) != 3 or parts[0] != "v1" or not parts[2].isdigit():
        raise ValueError("the sign-up challenge is not of the form v1:<random>:<difficulty>")
    difficulty = int(parts[2])
    if not 0 < difficulty <= MAX_DIFFICULTY:
        raise ValueError(f"the sign-up challenge's difficulty {difficulty} is not 1-256 bits")
    prefix = hashlib.sha256(f"{challenge_data}:".encode())
    nonce = 0
    while True:
        digest = prefix.copy()
        digest.update(str(nonce).encode())
        if int.from_bytes(digest.digest(), "big") >> (256 - difficulty) == 0:
            return str(nonce)
        nonce += 1


async def sign_up_agent_account(api_url: str) -> AgentSignupResponse:
    """A new agent account on the service at `api_url`: fetch a challenge, solve it (off the
    event loop) and sign up with the answer."""
    from toolkit.cloud import CloudClient

    async with CloudClient(api_url, "") as client:
        challenge = await client.agent_signup_challenge()
        answer = await asyncio.to_thread(solve_signup_challenge, challenge.challenge_data)
        return await client.sign_up_agent(challenge.challenge_id, answer)
