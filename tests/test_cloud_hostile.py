"""The REST client against a broken or hostile service: a real HTTP server on 127.0.0.1 that
misbehaves as each test scripts it. Whatever such a service does, the client ends with one
typed error naming the call: no listing without end, no call without end, no answer read past
its largest size, no redirect followed.

Each test lowers the client's bounds so that it stays short; the scripted misbehaviour is
itself bounded by count, so that a client without the bound ends too (and the test fails)."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hostile_service import Answer, HostileService, Request

from toolkit.cloud import CloudClient
from toolkit.errors import (
    AnswerTooLargeError,
    DeadlineExceededError,
    EndlessListingError,
    RedirectedError,
    TransportError,
)
from toolkit.models import AppUntypedDeployment, OrganizationSummaryWithRole, User

T = TypeVar("T")

TOKEN = "tok-hostile-0123456789"

PAGES_BEFORE_THE_END = 300
"""A scripted endless listing ends after this many pages, so that a client without a page
budget ends too: with a budget of `PAGE_BUDGET`, the client must stop long before."""
PAGE_BUDGET = 20


def run(call: Callable[[CloudClient], Awaitable[T]], url: str, **bounds: Any) -> T:
    """`call` on a fresh client of `url` whose bounds are lowered to `bounds`."""

    async def main() -> T:
        async with CloudClient(url, TOKEN, retry_base_delay=0.01) as client:
            for name, value in bounds.items():
                setattr(client, name, value)
            return await call(client)

    return asyncio.run(main())


def json_answer(body: object, **kwargs: Any) -> Answer:
    return Answer(chunks=[json.dumps(body).encode()], **kwargs)


def user_json() -> bytes:
    """alice's `GET /api/user`, admin of the agent's org and of acme."""
    orgs = [
        OrganizationSummaryWithRole(name=org, github_login=org, avatar_url="", role="admin")
        for org in ("agent-1", "acme")
    ]
    user = User(
        id="u1",
        github_login="alice",
        name="alice",
        email="alice@example.com",
        avatar_url="",
        organizations=orgs,
        identities=[],
        has_mfa=False,
        is_org_managed=False,
        is_managed_by_multi_org=False,
    )
    return user.model_dump_json(by_alias=True).encode()


def any_page(token: str) -> dict[str, Any]:
    """A page of every listing at once (stacks, ESC environments and their tags, Insights
    accounts, registry packages), with `token` as its next page's."""
    tag = {
        "name": f"tag-{token}",
        "value": "v",
        "created": "2026-11-01T09:00:00Z",
        "modified": "2026-11-01T09:00:00Z",
        "editorLogin": "alice",
        "editorName": "alice",
    }
    return {
        "stacks": [],
        "environments": [],
        "accounts": [],
        "packages": [],
        "tags": {tag["name"]: tag},
        "continuationToken": token,
        "nextToken": token,
    }


def listing_of(tokens: Callable[[int], str]) -> Callable[[Request], Answer]:
    """Every GET a page of every listing, the n-th page (counted over all requests) handing out
    `tokens(n)`, until `PAGES_BEFORE_THE_END` pages, whose last hands out none (an empty
    token, which ends each of them)."""
    served = 0

    def answer(request: Request) -> Answer:
        nonlocal served
        served += 1
        if request.path == "/api/user":
            return Answer(chunks=[user_json()])
        last = served >= PAGES_BEFORE_THE_END
        return json_answer(any_page("" if last else tokens(served)))

    return answer


LISTINGS: dict[str, Callable[[CloudClient], Awaitable[object]]] = {
    "stacks": lambda client: client.list_stacks("agent-1"),
    "environments": lambda client: client.list_environments("agent-1"),
    "environment-tags": lambda client: client.list_environment_tags("agent-1", "p", "e"),
    "insights-accounts": lambda client: client.list_insights_accounts("agent-1"),
    "registry-packages": lambda client: client.list_registry_packages("agent-1"),
}


# --- Listings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("listing", LISTINGS.values(), ids=LISTINGS.keys())
def test_a_listing_that_never_ends_stops_at_its_page_budget(
    listing: Callable[[CloudClient], Awaitable[object]],
) -> None:
    with HostileService(listing_of(lambda n: f"page-{n}")) as service:
        with pytest.raises(EndlessListingError) as raised:
            run(listing, service.url, max_pages_per_listing=PAGE_BUDGET)
        assert len(service.requests) == PAGE_BUDGET
    path = service.requests[0].path
    assert raised.value.message == (
        f"GET {path} still had more after {PAGE_BUDGET} pages; the listing was stopped there"
    )
    assert raised.value.hint is not None and "--api-url" in raised.value.hint


@pytest.mark.parametrize("listing", LISTINGS.values(), ids=LISTINGS.keys())
def test_a_page_token_handed_out_again_ends_the_listing_with_an_error(
    listing: Callable[[CloudClient], Awaitable[object]],
) -> None:
    """Tokens a, b, a, b...: the third page hands out a token seen before."""
    with HostileService(listing_of(lambda n: "ab"[n % 2])) as service:
        with pytest.raises(EndlessListingError) as raised:
            run(listing, service.url)
        assert len(service.requests) == 3
    path = service.requests[0].path
    assert raised.value.message == (
        f"GET {path} handed out a page token it had handed out before; the listing would never end"
    )


def test_a_long_listing_within_its_budget_is_read_whole() -> None:
    with HostileService(listing_of(lambda n: f"page-{n}")) as service:
        run(LISTINGS["stacks"], service.url, max_pages_per_listing=PAGES_BEFORE_THE_END)
        assert len(service.requests) == PAGES_BEFORE_THE_END


# --- Time ---------------------------------------------------------------------------------------


def dripped(body: bytes) -> Answer:
    """`body` a byte every 0.1 s: each read is well within the client's read timeout, the whole
    takes `len(body)` tenths of a second (over 10 s for alice's `/api/user`)."""
    return Answer(chunks=[body[i : i + 1] for i in range(len(body))], pause=0.1)


def test_an_answer_dripped_slowly_stops_at_the_deadline() -> None:
    def script(request: Request) -> Answer:
        if request.path == "/api/user":
            return dripped(user_json())
        return json_answer({"stacks": []})

    async def calls(client: CloudClient) -> str:
        with pytest.raises(DeadlineExceededError) as raised:
            await client.get_current_user()
        # The client goes on working: the call it gave up on took its connection along.
        assert await client.list_stacks("acme") == []
        return raised.value.message

    assert len(user_json()) > 100
    with HostileService(script) as service:
        message = run(calls, service.url, request_deadline=2.0)
        assert [request.path for request in service.requests] == [
            "/api/user",
            "/api/user/stacks",
        ]
    assert message == (
        f"GET /api/user was not answered in full within 2 s by {service.url} "
        "(it may have been applied)"
    )


def test_a_post_dripped_slowly_is_not_sent_again() -> None:
    with HostileService(lambda request: dripped(b"{}" + b" " * 200)) as service:
        with pytest.raises(DeadlineExceededError, match=r"^POST /api/stacks/acme/p/s/transfer "):
            run(
                lambda client: client.transfer_stack("acme", "p", "s", to_org="labs"),
                service.url,
                request_deadline=2.0,
            )
        assert len(service.requests) == 1


# --- Size ---------------------------------------------------------------------------------------

LIMIT = 1024 * 1024
HUGE = 64 * LIMIT
"""Far beyond what the loopback's socket buffers hold: a server that could send it all was
read to the end."""


def huge_page() -> Iterator[bytes]:
    """A page of stacks that is valid JSON, and empty, once HUGE bytes of padding are read."""
    yield b'{"stacks": [], "padding": "'
    for _ in range(HUGE // 65536):
        yield b"x" * 65536
    yield b'"}'


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_a_huge_answer_is_not_read_past_the_largest_size(encoding: str) -> None:
    """Counted as decoded: a small gzip-encoded answer may inflate to any size."""

    def script(request: Request) -> Answer:
        if encoding == "gzip":
            body = gzip.compress(b"".join(huge_page()))
            return Answer(headers={"Content-Encoding": "gzip"}, chunks=[body])
        return Answer(chunks=huge_page())

    with HostileService(script) as service:
        with pytest.raises(AnswerTooLargeError) as raised:
            run(LISTINGS["stacks"], service.url, max_answer_bytes=LIMIT)
        assert len(service.requests) == 1
        if encoding == "identity":
            assert service.body_bytes_sent < HUGE
    assert raised.value.message == (
        "GET /api/user/stacks answered with more than 1 MiB, the largest answer this client "
        "reads; it stopped reading there (status 200)"
    )


def test_a_stack_state_may_be_larger_than_any_other_answer() -> None:
    """A state of 2 MiB passes a client that reads other answers up to 1 MiB only, and stops
    at the state's own bound."""
    state = {"version": 3, "deployment": {"resources": [], "padding": "x" * (2 * LIMIT)}}

    def export(client: CloudClient) -> Awaitable[object]:
        return client.export_stack("acme", "p", "s")

    with HostileService(lambda request: json_answer(state)) as service:
        exported = run(export, service.url, max_answer_bytes=LIMIT, max_state_bytes=4 * LIMIT)
        assert exported == AppUntypedDeployment.model_validate(state)
        with pytest.raises(AnswerTooLargeError, match=r"^GET /api/stacks/acme/p/s/export "):
            run(export, service.url, max_answer_bytes=4 * LIMIT, max_state_bytes=LIMIT)


@pytest.mark.parametrize(
    ("read", "body", "said"),
    [
        ("settings", b"<html>a proxy's page</html>", "is not JSON"),
        ("settings", b"[]", "something other than settings"),
        ("webhooks", b"<html>a proxy's page</html>", "is not JSON"),
        ("webhooks", b'{"name": "ci"}', "something other than a list of webhooks"),
        ("webhooks", b'[{"name": 7}]', "is not a WebhookResponse"),
    ],
)
def test_a_stack_s_settings_or_webhooks_in_another_shape_are_one_typed_error(
    read: str, body: bytes, said: str
) -> None:
    """What a migration reads of a stack beside its state ends as a `TransportError` naming
    the call, which the migration reports as that stack's failed step."""

    def call(client: CloudClient) -> Awaitable[object]:
        if read == "settings":
            return client.deployment_settings("acme", "p", "s")
        return client.stack_webhooks("acme", "p", "s")

    with (
        HostileService(lambda request: Answer(chunks=[body])) as service,
        pytest.raises(TransportError, match=r"^GET /api/stacks/acme/p/s/") as raised,
    ):
        run(call, service.url)
    assert said in str(raised.value)


# --- Redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_redirect_is_an_error_and_is_not_followed(status: int, method: str) -> None:
    """The redirect points back at the same server: a client following it would show there."""
    location: list[str] = []

    def script(request: Request) -> Answer:
        return Answer(status=status, headers={"Location": location[0]})

    def call(client: CloudClient) -> Awaitable[object]:
        if method == "GET":
            return client.list_stacks("agent-1")
        return client.transfer_stack("agent-1", "p", "s", to_org="acme")

    path = "/api/user/stacks" if method == "GET" else "/api/stacks/agent-1/p/s/transfer"
    with HostileService(script) as service:
        location.append(f"{service.url}/elsewhere{path}")
        with pytest.raises(RedirectedError) as raised:
            run(call, service.url)
        assert [request.path for request in service.requests] == [path]
    assert raised.value.status == status
    assert raised.value.message == (
        f"{method} {path} failed with {status}: a redirect to {location[0]}, not followed"
    )
    assert raised.value.hint is not None and "--api-url" in raised.value.hint


# --- Through the command line -------------------------------------------------------------------


def pulumi_claim(
    service: HostileService, tmp_path: Path, *args: str, page_budget: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`pulumi-claim ARGS` in a process of its own against `service`, its clients' page budget
    lowered to `page_budget` when given (as a caller of the library may lower it)."""
    lower = "" if page_budget is None else f"CloudClient.max_pages_per_listing = {page_budget}; "
    program = (
        f"from toolkit.cloud import CloudClient; {lower}"
        "import sys; from toolkit.cli import main; sys.argv[0] = 'pulumi-claim'; main()"
    )
    env = {
        **os.environ,
        "PULUMI_ACCESS_TOKEN": TOKEN,
        "PULUMI_BACKEND_URL": service.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
    }
    for name in ("PULUMI_CLAIM_TOKEN", "PULUMI_CLAIM_SOURCE_TOKEN"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_command_line_says_a_redirect_in_one_error(tmp_path: Path) -> None:
    location = "https://api.elsewhere.invalid/api/user"
    with HostileService(lambda request: Answer(status=307, headers={"Location": location})) as (
        service
    ):
        result = pulumi_claim(service, tmp_path, "preview", "--from", "agent-1", "--to", "acme")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: GET /api/user failed with 307: a redirect to {location}, not followed\n"
        "Set --api-url (or PULUMI_BACKEND_URL) to the service's API itself "
        "(for Pulumi Cloud: https://api.pulumi.com); redirects are not followed.\n"
    )


def test_the_command_line_stops_a_listing_that_never_ends_in_one_error(tmp_path: Path) -> None:
    """The four listings of each org go at once: the first past its budget ends the run, the
    others are stopped with it, quietly."""
    with HostileService(listing_of(lambda n: f"page-{n}")) as service:
        result = pulumi_claim(
            service,
            tmp_path,
            "preview",
            "--from",
            "agent-1",
            "--to",
            "acme",
            page_budget=PAGE_BUDGET,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert re.fullmatch(
        rf"error: GET /api/\S+ still had more after {PAGE_BUDGET} pages; "
        r"the listing was stopped there\n"
        r"Is --api-url \(or PULUMI_BACKEND_URL\) pointing at a Pulumi Cloud API\?\n",
        result.stderr,
    ), result.stderr
