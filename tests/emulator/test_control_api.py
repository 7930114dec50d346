"""The emulator's control API under `/_emulator/` refuses what it cannot do with a 400 and a
message, changing nothing, and its request log never shows a claim token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from agent_times import agent_entry

from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import EmulatorFactory

CLAIM_TOKEN = "claim-secret-1"
WORLD = {
    "users": [{"login": "u", "token": "tok-u", "orgs": {"o": "admin"}}],
    "agents": [agent_entry("agent-1", token="tok-agent", claim_token=CLAIM_TOKEN)],
}


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


@pytest.fixture
def client(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": "token tok-u"}) as http:
        yield http


@pytest.mark.parametrize("seconds", ["1e300", "Infinity"])
def test_a_clock_advance_past_the_last_date_is_a_400_that_changes_nothing(
    client: httpx.Client, seconds: str
) -> None:
    before = client.get("/_emulator/clock").json()
    refused = client.post(
        "/_emulator/clock",
        content=f'{{"advanceSeconds": {seconds}}}',
        headers={"Content-Type": "application/json"},
    )
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("Bad Request: ")
    assert "advanceSeconds" in refused.json()["message"]
    assert client.get("/_emulator/clock").json()["offsetSeconds"] == before["offsetSeconds"]
    advanced = client.post("/_emulator/clock", json={"advanceSeconds": 3600})
    assert advanced.json()["offsetSeconds"] == before["offsetSeconds"] + 3600


def test_the_clock_may_move_to_the_last_date_it_can_show(client: httpx.Client) -> None:
    """The bound the 400 names is the one that holds: right up to it the clock moves."""
    refused = client.post("/_emulator/clock", json={"advanceSeconds": 1e300}).json()["message"]
    room = float(refused.split("at most ")[1].split(" seconds")[0])
    moved = client.post("/_emulator/clock", json={"advanceSeconds": room - 60})
    assert moved.status_code == 200
    assert moved.json()["now"].startswith("9999-12-")


def test_the_request_log_masks_claim_tokens(server: EmulatorServer, client: httpx.Client) -> None:
    assert client.get(f"/api/agents/signup/validate/{CLAIM_TOKEN}").status_code == 200
    logged = client.get("/_emulator/requests").text
    assert CLAIM_TOKEN not in logged
    assert "/api/agents/signup/validate/***" in logged
    assert all(CLAIM_TOKEN not in e.path + e.query for e in server.requests.entries())
