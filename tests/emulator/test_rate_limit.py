"""The emulator's rate limit: a token bucket per caller, answered as the service does (429 with
`Retry-After` in whole seconds), set by the world file, the command's flag or the control API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from toolkit.emulator.rate_limit import RateLimiter
from toolkit.emulator.world import parse_world
from toolkit.errors import InvalidInputError

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_the_rate_then_one_token_per_share_of_a_second() -> None:
    clock = Clock()
    limiter = RateLimiter(4, clock=clock)
    assert [limiter.take("token a") for _ in range(5)] == [None, None, None, None, 1]
    clock.now += 0.25  # one token back
    assert [limiter.take("token a") for _ in range(2)] == [None, 1]
    clock.now += 60  # the bucket holds 4 at most
    assert [limiter.take("token a") for _ in range(5)] == [None, None, None, None, 1]


def test_each_caller_has_a_bucket_of_its_own() -> None:
    limiter = RateLimiter(1, clock=Clock())
    assert [limiter.take(caller) for caller in ("token a", "token b", "token a")] == [
        None,
        None,
        1,
    ]


def test_retry_after_is_the_whole_seconds_until_the_next_token() -> None:
    clock = Clock()
    limiter = RateLimiter(0.2, clock=clock)  # one every 5 s, a bucket of 1
    assert limiter.take("token a") is None
    assert limiter.take("token a") == 5
    clock.now += 1.5
    assert limiter.take("token a") == 4  # 3.5 s, rounded up


def test_no_limit_and_a_changed_limit() -> None:
    limiter = RateLimiter(clock=Clock())
    assert all(limiter.take("token a") is None for _ in range(1000))
    limiter.per_second = 1
    assert [limiter.take("token a") for _ in range(2)] == [None, 1]
    for unusable in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="the rate limit must be a positive number"):
            limiter.per_second = unusable


USERS = [
    {"login": "u", "token": "tok-u", "orgs": {"o": "admin"}},
    {"login": "v", "token": "tok-v", "orgs": {"o": "member"}},
]
SLOW: dict[str, Any] = {
    "service": {"rateLimit": 0.01},  # one call, then one every 100 s
    "users": USERS,
    "orgs": {"o": {}},
}


def get(url: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return httpx.get(f"{url}{path}", headers=headers)


def test_a_caller_over_the_worlds_limit_is_answered_429_with_retry_after(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(SLOW)
    assert get(server.url, "/api/user", "tok-u").status_code == 200
    refused = get(server.url, "/api/user", "tok-u")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 100
    assert refused.json() == {"code": 429, "message": "Too Many Requests: rate limit exceeded"}
    assert get(server.url, "/api/user", "tok-v").status_code == 200  # a bucket of its own
    # Without a token the address is the caller: the first call is answered (401), not the next.
    assert [get(server.url, "/api/user").status_code for _ in range(2)] == [401, 429]
    assert get(server.url, "/_emulator/requests").status_code == 200  # never limited

    logged = [(e.path, e.status, e.injected) for e in server.requests.entries()]
    assert logged == [
        ("/api/user", 200, False),
        ("/api/user", 429, False),
        ("/api/user", 200, False),
        ("/api/user", 401, False),
        ("/api/user", 429, False),
    ]


def test_a_caller_without_a_token_is_its_connection_s_address_whatever_it_forwards(
    make_emulator: EmulatorFactory,
) -> None:
    """X-Forwarded-For is what a proxy in front of a service writes, never what a client
    sends: a client that writes it itself still counts against its own address."""
    server = make_emulator(SLOW)
    statuses = [
        httpx.get(f"{server.url}/api/user", headers={"X-Forwarded-For": address}).status_code
        for address in ("10.0.0.1", "10.0.0.2")
    ]
    assert statuses == [401, 429]


def test_the_limit_is_read_and_set_over_the_control_api(make_emulator: EmulatorFactory) -> None:
    server = make_emulator({"users": USERS, "orgs": {"o": {}}})
    url = server.url
    assert get(url, "/_emulator/rate-limit").json() == {"perSecond": None}
    assert all(get(url, "/api/user", "tok-u").status_code == 200 for _ in range(5))

    put = httpx.put(f"{url}/_emulator/rate-limit", json={"perSecond": 0.01})
    assert put.json() == {"perSecond": 0.01}
    assert [get(url, "/api/user", "tok-u").status_code for _ in range(2)] == [200, 429]
    lifted = httpx.put(f"{url}/_emulator/rate-limit", json={"perSecond": None})
    assert lifted.json() == {"perSecond": None}
    assert get(url, "/api/user", "tok-u").status_code == 200

    refused = httpx.put(f"{url}/_emulator/rate-limit", json={"perSecond": 0})
    assert refused.status_code == 400
    assert get(url, "/_emulator/rate-limit").json() == {"perSecond": None}


def test_a_world_rate_limit_that_is_not_positive_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInputError, match=r"service\.rateLimit"):
        parse_world({"service": {"rateLimit": 0}, "users": USERS, "orgs": {"o": {}}})
