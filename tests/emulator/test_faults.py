"""Faults for unattended-reliability runs: random fault rates (seeded, counted), the
drop-after-apply fault, latency set over HTTP, and restarts that keep the service's state."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from toolkit.cloud import CloudClient
from toolkit.emulator.faults import RATE_KINDS, FaultRates
from toolkit.emulator.server import EmulatorServer
from toolkit.errors import TransportError

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

TOKEN = "tok-u"
WORLD: dict[str, Any] = {
    "users": [{"login": "u", "token": TOKEN, "orgs": {"o": "admin"}}],
    "orgs": {"o": {"stacks": [{"project": "p", "stack": f"s{i}"} for i in range(5)]}},
}


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD, page_size=2)


@pytest.fixture
def client(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"token {TOKEN}"}) as http:
        yield http


def statuses(client: httpx.Client, count: int, path: str = "/api/user") -> list[int | None]:
    """What `count` GETs of `path` met, in order: a status, or None for a lost connection."""
    seen: list[int | None] = []
    for _ in range(count):
        try:
            seen.append(client.get(path).status_code)
        except httpx.TransportError:
            seen.append(None)
    return seen


def cloud(server: EmulatorServer, operation: Any) -> Any:
    """Run `operation(client)` with a fresh CloudClient; its backoff is tiny."""

    async def scenario() -> Any:
        async with CloudClient(server.url, TOKEN, retry_base_delay=0.001) as cloud_client:
            return await operation(cloud_client)

    return asyncio.run(scenario())


# --- fault rates --------------------------------------------------------------------------

RATES: dict[str, float] = {
    "500": 0.05,
    "502": 0.03,
    "503": 0.03,
    "429": 0.02,
    "drop": 0.02,
    "dropAfterApply": 0.02,
}


def test_rates_fire_at_about_the_asked_proportions(
    server: EmulatorServer, client: httpx.Client
) -> None:
    server.faults.set_rates(FaultRates(seed=7, rates=RATES))
    seen = Counter(statuses(client, 400))

    counts = server.faults.rate_counts()
    assert counts.considered == 400
    for kind, rate in RATES.items():
        spread = 4 * math.sqrt(400 * rate * (1 - rate))
        assert abs(counts.fired[kind] - 400 * rate) <= spread, kind
        assert counts.fired[kind] > 0, kind
    for status in ("500", "502", "503", "429"):
        assert seen[int(status)] == counts.fired[status]
    assert seen[None] == counts.fired["drop"] + counts.fired["dropAfterApply"]
    assert seen[200] == 400 - sum(counts.fired.values())
    injected = [entry for entry in server.requests.entries() if entry.injected]
    assert len(injected) == sum(counts.fired.values())


def test_a_seed_repeats_the_same_faults(server: EmulatorServer, client: httpx.Client) -> None:
    rates = FaultRates(seed=11, rates={"503": 0.2, "drop": 0.1})
    server.faults.set_rates(rates)
    first = statuses(client, 60)
    server.faults.set_rates(rates)  # set again: the sequence starts over
    assert statuses(client, 60) == first
    server.faults.set_rates(rates.model_copy(update={"seed": 12}))
    assert statuses(client, 60) != first
    assert {503, None, 200} == set(first)


def test_rates_spare_the_control_api_and_agent_sign_up(
    server: EmulatorServer, client: httpx.Client
) -> None:
    server.faults.set_rates(FaultRates(rates={"503": 1.0}))
    assert client.get("/api/user").status_code == 503
    assert client.get("/api/agents/signup").status_code == 200
    assert client.get("/_emulator/clock").status_code == 200
    assert client.get("/_emulator/fault-rates").json()["considered"] == 1
    assert client.put("/_emulator/latency", json={"latencyMs": 0}).status_code == 200
    assert server.faults.rate_counts().fired["503"] == 1


def test_rates_hit_only_the_method_and_path_asked(
    server: EmulatorServer, client: httpx.Client
) -> None:
    server.faults.set_rates(FaultRates(rates={"500": 1.0}, method="POST", path=r".*/rename"))
    assert client.get("/api/stacks/o/p/s0").status_code == 200
    refused = client.post("/api/stacks/o/p/s0/rename", json={"newName": "r", "newProject": ""})
    assert refused.status_code == 500
    assert ("p", "s0") in server.state.stack_names("o")  # a refused call changes nothing
    assert server.faults.rate_counts().considered == 1
    server.faults.clear_rates()
    assert (
        client.post(
            "/api/stacks/o/p/s0/rename", json={"newName": "r", "newProject": ""}
        ).status_code
        == 200
    )


def test_429_carries_retry_after_and_the_cloud_client_retries_it(
    server: EmulatorServer, client: httpx.Client
) -> None:
    server.faults.set_rates(FaultRates(rates={"429": 1.0}, retry_after=0.1))
    refused = client.get("/api/user")
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "0.1")

    server.faults.set_rates(FaultRates(seed=3, rates={"429": 0.3}, retry_after=0))
    stacks = cloud(server, lambda c: c.list_stacks("o"))
    cloud(server, lambda c: c.rename_stack("o", "p", "s1", new_project="p", new_name="moved"))
    assert len(stacks) == 5
    assert ("p", "moved") in server.state.stack_names("o")
    assert server.faults.rate_counts().fired["429"] > 0
    assert server.requests.count(path="/api/user/stacks") > 3  # 3 pages, some asked again


def test_fault_rates_are_set_read_and_cleared_over_http(
    server: EmulatorServer, client: httpx.Client
) -> None:
    body = {"seed": 7, "rates": {"500": 0.5, "dropAfterApply": 0.5}, "retryAfter": 0.1}
    for wrong in (
        {"rates": {"500": 0.7, "503": 0.5}},  # more than 1 in all
        {"rates": {"404": 0.1}},
        {"rates": {"500": 1.5}},
        {"rates": {"500": 0.1}, "path": "(unclosed"},
        {"rates": {"500": 0.1}, "retryAfter": -1},
    ):
        assert client.put("/_emulator/fault-rates", json=wrong).status_code == 400, wrong
    assert server.faults.rates() is None

    set_answer = client.put("/_emulator/fault-rates", json=body)
    assert set_answer.status_code == 200
    assert set_answer.json()["fired"] == dict.fromkeys(RATE_KINDS, 0)
    seen = statuses(client, 20)
    read = client.get("/_emulator/fault-rates").json()
    assert read["rates"]["seed"] == 7 and read["rates"]["rates"] == body["rates"]
    assert read["considered"] == 20
    assert read["fired"]["500"] == seen.count(500)
    assert read["fired"]["dropAfterApply"] == seen.count(None) > 0

    assert client.delete("/_emulator/fault-rates").status_code == 204
    assert client.get("/_emulator/fault-rates").json() == {
        "rates": None,
        "considered": 0,
        "fired": dict.fromkeys(RATE_KINDS, 0),
    }
    assert client.get("/api/user").status_code == 200


# --- drop after apply ---------------------------------------------------------------------


def test_drop_after_apply_commits_the_change_but_sends_no_answer(server: EmulatorServer) -> None:
    server.faults.drop_after_apply(method="POST", path=r".*/rename")
    with pytest.raises(TransportError, match="may have been applied"):
        cloud(server, lambda c: c.rename_stack("o", "p", "s0", new_project="p", new_name="new"))
    assert server.requests.count("POST") == 1  # the client did not repeat it blindly
    [entry] = [entry for entry in server.requests.entries() if entry.method == "POST"]
    assert (entry.status, entry.injected) == (None, True)
    stack = cloud(server, lambda c: c.get_stack("o", "p", "new"))
    assert stack.stack_name == "new"
    assert not cloud(server, lambda c: c.stack_exists("o", "p", "s0"))


def test_drop_after_apply_as_a_rate_commits_the_change(
    server: EmulatorServer, client: httpx.Client
) -> None:
    armed = client.put(
        "/_emulator/fault-rates",
        json={"rates": {"dropAfterApply": 1.0}, "method": "POST"},
    )
    assert armed.status_code == 200
    with pytest.raises(TransportError):
        cloud(server, lambda c: c.rename_stack("o", "p", "s2", new_project="q", new_name="s2"))
    assert server.faults.rate_counts().fired["dropAfterApply"] == 1
    assert cloud(server, lambda c: c.get_stack("o", "q", "s2")).project_name == "q"


def test_drop_after_apply_rules_are_armed_over_http(
    server: EmulatorServer, client: httpx.Client
) -> None:
    rule = {"action": "dropAfterApply", "method": "DELETE"}
    assert client.post("/_emulator/faults", json=rule).status_code == 201
    with pytest.raises(httpx.TransportError):
        client.delete("/api/stacks/o/p/s3")
    assert ("p", "s3") not in server.state.stack_names("o")
    assert server.faults.armed() == []


def test_plain_drop_changes_nothing(server: EmulatorServer) -> None:
    server.faults.drop(method="POST")
    with pytest.raises(TransportError):
        cloud(server, lambda c: c.rename_stack("o", "p", "s0", new_project="p", new_name="new"))
    assert ("p", "s0") in server.state.stack_names("o")


# --- latency ------------------------------------------------------------------------------


def test_latency_is_set_and_read_over_http(server: EmulatorServer, client: httpx.Client) -> None:
    assert client.put("/_emulator/latency", json={"latencyMs": -1}).status_code == 400
    assert client.put("/_emulator/latency", json={"latencyMs": 200}).json() == {"latencyMs": 200}
    assert client.get("/_emulator/latency").json() == {"latencyMs": 200}
    client.get("/api/user")
    [entry] = server.requests.entries()
    assert entry.finished - entry.started >= 0.2
    server.faults.latency_ms = 0
    assert client.get("/_emulator/latency").json() == {"latencyMs": 0}


# --- restarts -----------------------------------------------------------------------------


def test_a_restart_keeps_the_address_and_the_state(server: EmulatorServer) -> None:
    url = server.url

    async def scenario() -> None:
        async with CloudClient(url, TOKEN, retry_base_delay=0.001) as cloud_client:
            assert (await cloud_client.get_stack("o", "p", "s0")).stack_name == "s0"
            await cloud_client.rename_stack("o", "p", "s0", new_project="p", new_name="kept")
            server.restart()  # the client's open connection is closed under it
            assert (await cloud_client.get_stack("o", "p", "kept")).stack_name == "kept"

    asyncio.run(scenario())
    assert server.url == url
    assert server.restarts == 1


def test_a_restart_cuts_the_requests_in_flight(server: EmulatorServer) -> None:
    server.faults.latency_ms = 60_000  # holds the request until the restart cuts it
    failures: list[Exception] = []

    def slow_request() -> None:
        try:
            httpx.get(
                f"{server.url}/api/user", headers={"Authorization": f"token {TOKEN}"}, timeout=60
            )
        except httpx.TransportError as exc:
            failures.append(exc)

    caller = threading.Thread(target=slow_request)
    caller.start()
    while server.requests.in_flight == 0:
        time.sleep(0.01)
    server.faults.latency_ms = 0
    server.restart()
    caller.join()
    assert len(failures) == 1
    assert not isinstance(failures[0], httpx.TimeoutException)  # cut, not given up on
    assert [entry.status for entry in server.requests.entries()] == [None]
    assert cloud(server, lambda c: c.get_current_user()).github_login == "u"


def test_a_restart_over_the_control_api(server: EmulatorServer, client: httpx.Client) -> None:
    assert (
        client.post(
            "/api/stacks/o/p/s4/rename", json={"newName": "kept", "newProject": ""}
        ).status_code
        == 200
    )
    asked = client.post("/_emulator/restart", json={"downSeconds": 0.2})
    assert (asked.status_code, asked.json()) == (202, {"restarts": 0})
    restarts = 0
    while restarts == 0:  # connection errors while it is down
        with contextlib.suppress(httpx.TransportError):
            restarts = client.get("/_emulator/restart").json()["restarts"]
    assert restarts == 1
    assert cloud(server, lambda c: c.get_stack("o", "p", "kept")).stack_name == "kept"
    assert client.post("/_emulator/restart", json={"downSeconds": -1}).status_code == 400
