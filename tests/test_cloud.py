"""The REST client against the emulator over real HTTP, and where credentials come from."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from wire_recorder import WireRecorder

from toolkit.cloud import CloudClient, transport
from toolkit.cloud.transport import GZIP_LEVEL, Answer, _retry_after_seconds
from toolkit.credentials import Credentials, load_credentials
from toolkit.emulator import serializers
from toolkit.emulator.server import EmulatorServer
from toolkit.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
    TransportError,
)
from toolkit.models import AppStackSummary, AppUntypedDeployment
from toolkit.stack_state import ciphertexts, service_secrets_provider
from toolkit.urns import SECRET_SIG, SIG_KEY

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

T = TypeVar("T")

ALICE = "tok-alice-0123456789"
"""Admin of acme, labs and the agent's org."""
BOB = "tok-bob-0123456789"
"""Member (not admin) of acme."""

AGENT_CREATED = datetime.now(UTC) - timedelta(hours=1)
"""The agent signed up an hour ago: it may still write, and its claim window is open."""

WORLD: dict[str, Any] = {
    "users": [
        {
            "login": "alice",
            "token": ALICE,
            "orgs": {"acme": "admin", "labs": "admin", "agent-1": "admin"},
        },
        {"login": "bob", "token": BOB, "orgs": {"acme": "member"}},
    ],
    "agents": [
        {
            "login": "agent-1",
            "token": "tok-agent-1",
            "claimToken": "claim-secret-1",
            "createdAt": AGENT_CREATED.isoformat(),
            "claimExpiresAt": (AGENT_CREATED + timedelta(days=30)).isoformat(),
        }
    ],
    "orgs": {
        "acme": {
            "stacks": [
                *(
                    {
                        "project": "web",
                        "stack": f"s{i:02}",
                        "resourceCount": i,
                        "lastUpdate": f"2026-11-{i + 1:02}T10:00:00Z",
                    }
                    for i in range(12)
                ),
                *({"project": "api", "stack": f"s{i:02}"} for i in range(11)),
            ],
            "environments": [{"project": f"p{i % 3}", "name": f"env{i:02}"} for i in range(16)],
            "insightsAccounts": [{"name": f"account{i:02}"} for i in range(15)],
            "registryPackages": [
                {"source": "private", "publisher": "acme", "name": "vpc"},
                {"source": "private", "publisher": "acme", "name": "cluster"},
                {"source": "pulumi", "publisher": "pulumi", "name": "aws"},
            ],
        },
        "labs": {"stacks": [{"project": "web", "stack": "dev"}]},
        "agent-1": {
            "stacks": [{"project": "web", "stack": "dev", "resourceCount": 3}],
            "environments": [{"project": "default", "name": "secrets"}],
        },
    },
}

STACKS_IN_ACME = 23
PAGE_SIZE = 7


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD, page_size=PAGE_SIZE)


def call(
    server: EmulatorServer | str,
    operation: Callable[[CloudClient], Awaitable[T]],
    *,
    token: str = ALICE,
    **options: Any,
) -> T:
    """Run one operation with a fresh client; backoff is tiny so retries cost no time."""
    url = server if isinstance(server, str) else server.url
    options.setdefault("retry_base_delay", 0.001)

    async def scenario() -> T:
        async with CloudClient(url, token, **options) as client:
            return await operation(client)

    return asyncio.run(scenario())


async def requests_held(server: EmulatorServer, count: int) -> int:
    """How many requests the service holds once `count` are, or after a bounded wait if they
    never come; waits without blocking the client's event loop."""
    for _ in range(2000):
        if server.faults.holding >= count:
            break
        await asyncio.sleep(0.005)
    return server.faults.holding


# --- Typed calls --------------------------------------------------------------------------


def test_current_user(emulator: EmulatorServer) -> None:
    user = call(emulator, lambda client: client.get_current_user())
    state = emulator.state
    assert user == serializers.user(state.current_user(state.authenticate(ALICE)))
    assert user.github_login == "alice"
    assert {org.name: org.role for org in user.organizations} == {
        "acme": "admin",
        "agent-1": "admin",
        "labs": "admin",
    }


def test_a_token_no_header_can_carry_is_one_error_never_sent_nor_retried(
    emulator: EmulatorServer,
) -> None:
    """A client made from Python with a token that ends in a line break: the request cannot be
    put on the wire, so nothing reaches the service, nothing is tried again, and the error
    neither says it may have been applied nor shows the token."""
    emulator.requests.clear()

    with pytest.raises(TransportError) as raised:
        call(emulator, lambda client: client.delete_stack("acme", "web", "dev"), token=f"{ALICE}\n")

    assert "may have been applied" not in raised.value.message
    assert ALICE not in raised.value.message
    assert emulator.requests.entries() == []


def test_list_stacks_pages_through_everything(emulator: EmulatorServer) -> None:
    stacks = call(emulator, lambda client: client.list_stacks("acme"))
    state = emulator.state
    expected = state.list_stacks(state.authenticate(ALICE), limit=1000, organization="acme")
    sent = serializers.stack_list(expected)
    assert stacks == type(sent).model_validate(sent.to_wire()).stacks
    assert len({(s.project_name, s.stack_name) for s in stacks}) == STACKS_IN_ACME
    assert {(s.project_name, s.stack_name) for s in stacks} == state.stack_names("acme")
    pages = [e for e in emulator.requests.entries() if e.path == "/api/user/stacks"]
    assert len(pages) == -(-STACKS_IN_ACME // PAGE_SIZE)
    assert ["continuationToken=" in page.query for page in pages] == [False, True, True, True]


def test_a_page_is_decoded_caching_its_keys_alone(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each page of a listing is decoded once, with pydantic-core's string cache kept for the
    keys that repeat on every item (caching each value too cost more CPU than it saved); the
    stacks read are the ones the service holds."""
    decoded: list[object] = []

    def recording(data: bytes, *, cache_strings: object = True) -> Any:
        decoded.append(cache_strings)
        return real_from_json(data, cache_strings=cache_strings)  # type: ignore[arg-type]

    real_from_json = transport.pydantic_core.from_json
    monkeypatch.setattr(transport.pydantic_core, "from_json", recording)
    stacks = call(emulator, lambda client: client.list_stacks("acme"))

    assert {(s.project_name, s.stack_name) for s in stacks} == emulator.state.stack_names("acme")
    assert decoded == ["keys"] * -(-STACKS_IN_ACME // PAGE_SIZE)


def test_the_next_page_is_asked_while_the_caller_still_holds_this_one(
    emulator: EmulatorServer,
) -> None:
    """Pages are pipelined: the service is asked for page 2 as soon as page 1 is read, not
    when the caller comes back for more. Every page is held at the service until released."""
    emulator.faults.hold(method="GET", path="/api/user/stacks", times=None)

    def stack_key(stack: AppStackSummary) -> tuple[str, str]:
        return stack.project_name, stack.stack_name

    async def scenario() -> tuple[list[int], list[tuple[str, str]]]:
        seen: list[int] = []
        async with CloudClient(emulator.url, ALICE) as client:
            stacks = client.iter_stacks("acme")
            first = asyncio.ensure_future(anext(stacks))
            seen.append(await requests_held(emulator, 1))
            emulator.faults.release()
            names = [stack_key(await first)]
            seen.append(await requests_held(emulator, 1))
            emulator.faults.clear()
            names += [stack_key(stack) async for stack in stacks]
            return seen, names

    seen, names = asyncio.run(scenario())
    assert seen == [1, 1], "page 2 was asked only when the caller came back for it"
    assert len(names) == STACKS_IN_ACME
    assert set(names) == emulator.state.stack_names("acme")


def test_a_listing_left_early_drops_the_page_asked_ahead_without_a_word(
    emulator: EmulatorServer,
) -> None:
    """A caller that stops after the first stack leaves page 2 asked and unanswered (held at
    the service): closing the listing cancels it, and nothing is reported as lost."""
    emulator.faults.hold(method="GET", path="/api/user/stacks", times=None)
    reported: list[dict[str, Any]] = []

    async def scenario() -> tuple[str, int]:
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: reported.append(context)
        )
        async with CloudClient(emulator.url, ALICE) as client:
            stacks = client.iter_stacks("acme")
            first = asyncio.ensure_future(anext(stacks))
            await requests_held(emulator, 1)
            emulator.faults.release()
            name = (await first).stack_name
            held = await requests_held(emulator, 1)
            await stacks.aclose()
        return name, held

    name, held = asyncio.run(scenario())
    emulator.faults.clear()
    assert (name, held) == ("s00", 1)
    assert reported == []


def test_list_stacks_of_one_project(emulator: EmulatorServer) -> None:
    stacks = call(emulator, lambda client: client.list_stacks("acme", project="api"))
    assert [s.stack_name for s in stacks] == [f"s{i:02}" for i in range(11)]
    assert {s.project_name for s in stacks} == {"api"}


def test_get_stack_and_stack_exists(emulator: EmulatorServer) -> None:
    async def lookups(client: CloudClient) -> tuple[Any, bool, bool]:
        return (
            await client.get_stack("acme", "web", "s03"),
            await client.stack_exists("acme", "web", "s03"),
            await client.stack_exists("acme", "web", "nope"),
        )

    stack, present, absent = call(emulator, lookups)
    assert (stack.org_name, stack.project_name, stack.stack_name) == ("acme", "web", "s03")
    record = emulator.state.find_stack("acme", "web", "s03")
    assert record is not None and stack.id == record.id
    assert (present, absent) == (True, False)
    with pytest.raises(NotFoundError):
        call(emulator, lambda client: client.get_stack("acme", "web", "nope"))


def test_rename_stack(emulator: EmulatorServer) -> None:
    call(
        emulator,
        lambda client: client.rename_stack(
            "acme", "web", "s01", new_project="site", new_name="one"
        ),
    )
    names = emulator.state.stack_names("acme")
    assert ("site", "one") in names and ("web", "s01") not in names


def test_rename_onto_existing_stack_is_a_conflict(emulator: EmulatorServer) -> None:
    with pytest.raises(ConflictError) as caught:
        call(
            emulator,
            lambda client: client.rename_stack(
                "acme", "web", "s01", new_project="web", new_name="s02"
            ),
        )
    assert caught.value.status == 409
    assert "already exists" in caught.value.message
    assert {("web", "s01"), ("web", "s02")} <= emulator.state.stack_names("acme")


def test_transfer_stack(emulator: EmulatorServer) -> None:
    call(emulator, lambda client: client.transfer_stack("agent-1", "web", "dev", to_org="acme"))
    assert ("web", "dev") in emulator.state.stack_names("acme")
    assert emulator.state.stack_names("agent-1") == set()


def test_transfer_without_admin_role_is_denied(emulator: EmulatorServer) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        call(
            emulator,
            lambda client: client.transfer_stack("acme", "web", "s01", to_org="labs"),
            token=BOB,
        )
    assert caught.value.status == 403
    assert ("web", "s01") in emulator.state.stack_names("acme")


def test_transfer_onto_existing_stack_is_a_conflict(emulator: EmulatorServer) -> None:
    with pytest.raises(ConflictError):
        call(emulator, lambda client: client.transfer_stack("labs", "web", "dev", to_org="agent-1"))


def test_delete_stack(emulator: EmulatorServer) -> None:
    with pytest.raises(ServiceError) as caught:
        call(emulator, lambda client: client.delete_stack("acme", "web", "s05"))
    assert caught.value.status == 400
    assert ("web", "s05") in emulator.state.stack_names("acme")

    call(emulator, lambda client: client.delete_stack("acme", "web", "s05", force=True))
    call(emulator, lambda client: client.delete_stack("acme", "api", "s00"))
    assert not {("web", "s05"), ("api", "s00")} & emulator.state.stack_names("acme")
    with pytest.raises(NotFoundError):
        call(emulator, lambda client: client.delete_stack("acme", "api", "s00"))


def test_list_environments_pages_through_everything(emulator: EmulatorServer) -> None:
    environments = call(emulator, lambda client: client.list_environments("acme"))
    state = emulator.state
    expected = state.list_environments(state.authenticate(ALICE), "acme", limit=1000)
    assert environments == serializers.environment_list(expected).environments
    assert {(e.project, e.name) for e in environments} == state.environment_names("acme")
    assert len(environments) == 16
    assert emulator.requests.count("GET", "/api/esc/environments/acme") == 3


def test_list_insights_accounts_pages_through_everything(emulator: EmulatorServer) -> None:
    accounts = call(emulator, lambda client: client.list_insights_accounts("acme"))
    state = emulator.state
    expected = state.list_insights_accounts(state.authenticate(ALICE), "acme", limit=1000)
    assert accounts == serializers.insights_account_list(expected).accounts
    assert [a.name for a in accounts] == [f"account{i:02}" for i in range(15)]
    assert emulator.requests.count("GET", "/api/preview/insights/acme/accounts") == 3


def test_list_registry_packages_keeps_what_the_org_publishes(emulator: EmulatorServer) -> None:
    packages = call(emulator, lambda client: client.list_registry_packages("acme"))
    assert sorted((p.source, p.publisher, p.name) for p in packages) == [
        ("private", "acme", "cluster"),
        ("private", "acme", "vpc"),
    ]
    (request,) = emulator.requests.entries()
    assert "orgLogin=acme" in request.query


def test_validate_claim_token(emulator: EmulatorServer) -> None:
    claim = call(emulator, lambda client: client.validate_claim_token("claim-secret-1"))
    assert claim == serializers.claim(emulator.state.validate_claim("claim-secret-1"))
    assert claim.agent.org_name == "agent-1"
    assert [entity.kind for entity in claim.entities] == [
        "TransferEntityStack",
        "TransferEntityEnvironment",
    ]


def test_unknown_claim_token_is_not_found_and_not_echoed(emulator: EmulatorServer) -> None:
    with pytest.raises(NotFoundError) as caught:
        call(emulator, lambda client: client.validate_claim_token("claim-guess-42"))
    assert "claim-guess-42" not in str(caught.value)


def test_requests_carry_the_service_headers(emulator: EmulatorServer) -> None:
    recorder = WireRecorder()

    call(emulator, lambda client: client.get_current_user(), trace_configs=[recorder.trace])
    (headers,) = [exchange.headers for exchange in recorder.exchanges]
    assert headers["Authorization"] == f"token {ALICE}"
    assert headers["Accept"] == "application/vnd.pulumi+8"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("pulumi-claim/")


def test_the_user_agent_is_read_from_the_package_once_a_process(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Every client sends the package's version; reading it from the package's metadata
    searches the import path, so it is read once however many clients there are. The read is
    cached for the process: emptied first so this test sees it, and afterwards so the tests
    after it read the real one."""
    transport._user_agent.cache_clear()
    request.addfinalizer(transport._user_agent.cache_clear)
    reads: list[str] = []

    def reading(package: str) -> str:
        reads.append(package)
        return real_version(package)

    real_version = transport.version
    monkeypatch.setattr(transport, "version", reading)
    recorder = WireRecorder()
    for _ in range(3):
        call(emulator, lambda client: client.get_current_user(), trace_configs=[recorder.trace])

    agents = {exchange.headers["User-Agent"] for exchange in recorder.exchanges}
    assert len(recorder.exchanges) == 3
    assert agents == {f"pulumi-claim/{real_version('pulumi-claim')}"}
    assert reads == ["pulumi-claim"]


def test_a_connection_left_idle_longer_than_a_server_keeps_one_is_not_used_again(
    emulator: EmulatorServer,
) -> None:
    """A call on a connection the server is closing gets no answer, and a change sent on it may
    not be retried: a connection idle for `idle_connection_seconds` (less than servers keep
    one) is dropped by the client rather than used again."""
    import aiohttp

    opened: list[str] = []
    trace = aiohttp.TraceConfig()

    async def on_open(*_: object) -> None:
        opened.append("new")

    async def on_reuse(*_: object) -> None:
        opened.append("reused")

    trace.on_connection_create_end.append(on_open)
    trace.on_connection_reuseconn.append(on_reuse)

    async def three_calls() -> None:
        async with CloudClient(emulator.url, ALICE, trace_configs=[trace]) as client:
            client.idle_connection_seconds = 0.2
            await client.get_current_user()
            await client.get_current_user()
            await asyncio.sleep(0.5)
            await client.get_current_user()

    asyncio.run(three_calls())

    assert opened == ["new", "reused", "new"]
    assert CloudClient.idle_connection_seconds < 5, "uvicorn, the shortest common, keeps 5 s"


# --- Stack state and secrets -----------------------------------------------------------


def new_stack(server: EmulatorServer, project: str, stack: str, **tags: str) -> None:
    """An empty stack `acme/<project>/<stack>`, with a secrets key of its own."""
    call(server, lambda client: client.create_stack("acme", project, stack, tags=tags))


def batch_sizes(recorder: WireRecorder) -> dict[str, list[int]]:
    """How many values each batch-encrypt and batch-decrypt call carried (gzip-encoded, as the
    CLI sends them)."""
    sizes: dict[str, list[int]] = {"batch-encrypt": [], "batch-decrypt": []}
    for exchange in recorder.exchanges:
        call_name = exchange.url.path.rsplit("/", 1)[-1]
        if call_name in sizes:
            assert exchange.headers["Content-Encoding"] == "gzip"
            body = json.loads(gzip.decompress(exchange.content))
            values = body["plaintexts" if call_name == "batch-encrypt" else "ciphertexts"]
            sizes[call_name].append(len(values))
    return sizes


def test_values_sealed_by_a_stack_open_with_it_in_batches_the_cli_sends(
    emulator: EmulatorServer,
) -> None:
    """At most 1000 values a call, as the CLI sends them (`DefaultMaxBatchEncryptCount` and
    `DefaultMaxBatchDecryptCount` in pkg/resource/stack/secrets.go, pulumi v3.274.1)."""
    new_stack(emulator, "vault", "a")
    values = ["", '"quoted"', "ünïcødé ✓", *(f"secret-{i % 2000}" for i in range(2497))]
    assert len(values) == 2500 and len(set(values)) < 2500, "equal values among them"
    recorder = WireRecorder()

    async def round_trip(client: CloudClient) -> tuple[list[str], dict[str, str]]:
        sealed = await client.encrypt_values("acme", "vault", "a", values)
        return sealed, await client.decrypt_values("acme", "vault", "a", sealed)

    sealed, opened = call(emulator, round_trip, trace_configs=[recorder.trace])
    sizes = batch_sizes(recorder)

    assert len(sealed) == len(set(sealed)) == 2500, "each value gets a ciphertext of its own"
    assert not set(values) & set(sealed)
    assert [opened[ciphertext] for ciphertext in sealed] == values
    for call_name in ("batch-encrypt", "batch-decrypt"):
        path = f"/api/stacks/acme/vault/a/{call_name}"
        answered = [e.status for e in emulator.requests.entries() if e.path == path]
        assert answered == [200, 200, 200], call_name
        assert sorted(sizes[call_name]) == [500, 1000, 1000], call_name


def test_no_values_make_no_calls(emulator: EmulatorServer) -> None:
    new_stack(emulator, "vault", "a")

    async def nothing(client: CloudClient) -> tuple[list[str], dict[str, str]]:
        return (
            await client.encrypt_values("acme", "vault", "a", []),
            await client.decrypt_values("acme", "vault", "a", []),
        )

    assert call(emulator, nothing) == ([], {})
    assert emulator.requests.count("POST", r".*/batch-(en|de)crypt") == 0


def test_values_sealed_by_one_stack_do_not_open_with_another(emulator: EmulatorServer) -> None:
    new_stack(emulator, "vault", "a")
    new_stack(emulator, "vault", "b")
    sealed = call(emulator, lambda client: client.encrypt_values("acme", "vault", "a", ["pw"]))
    with pytest.raises(ServiceError) as caught:
        call(emulator, lambda client: client.decrypt_values("acme", "vault", "b", sealed))
    assert caught.value.status == 400
    assert (caught.value.method, caught.value.path) == (
        "POST",
        "/api/stacks/acme/vault/b/batch-decrypt",
    )
    assert emulator.requests.count("POST", r".*/b/batch-decrypt") == 1, "a 400 is not retried"
    opened = call(emulator, lambda client: client.decrypt_values("acme", "vault", "a", sealed))
    assert opened == {sealed[0]: "pw"}


@pytest.mark.parametrize("call_name", ["batch-encrypt", "batch-decrypt"])
def test_a_5xx_on_sealing_or_opening_is_retried(emulator: EmulatorServer, call_name: str) -> None:
    """Sealing or opening changes nothing on the service, so it is safe to repeat (a POST)."""
    new_stack(emulator, "vault", "a")
    sealed = call(emulator, lambda client: client.encrypt_values("acme", "vault", "a", ["pw"]))
    emulator.requests.clear()
    emulator.faults.fail(500, method="POST", path=f".*/{call_name}", times=1)

    async def round_trip(client: CloudClient) -> tuple[list[str], dict[str, str]]:
        again = await client.encrypt_values("acme", "vault", "a", ["pw"])
        return again, await client.decrypt_values("acme", "vault", "a", sealed + again)

    again, opened = call(emulator, round_trip)
    assert opened == {sealed[0]: "pw", again[0]: "pw"}
    faulted = [e.status for e in emulator.requests.entries() if e.path.endswith(call_name)]
    assert faulted == [500, 200]


def test_a_5xx_on_import_is_not_retried(emulator: EmulatorServer) -> None:
    """An import may have been applied when its answer is a 5xx: repeating it blindly could
    import twice, so the error goes to the caller."""
    new_stack(emulator, "vault", "a")
    emulator.faults.fail(500, method="POST", path=r".*/import")
    deployment = AppUntypedDeployment(version=3, deployment={"resources": []})
    with pytest.raises(ServiceError) as caught:
        call(emulator, lambda client: client.import_stack("acme", "vault", "a", deployment))
    assert caught.value.status == 500
    assert [(e.method, e.path, e.status) for e in emulator.requests.entries()][-1:] == [
        ("POST", "/api/stacks/acme/vault/a/import", 500)
    ]
    assert emulator.requests.count("POST", r".*/import") == 1
    assert emulator.requests.count("GET", r".*/update/.*") == 0


def post_encodings(recorder: WireRecorder) -> list[tuple[str, str | None]]:
    """Each POST's path and `Content-Encoding`."""
    return [
        (exchange.url.path, exchange.headers.get("Content-Encoding"))
        for exchange in recorder.exchanges
        if exchange.method == "POST"
    ]


def test_a_state_is_sent_compressed_at_the_level_chosen_for_cpu(emulator: EmulatorServer) -> None:
    """The import's body is the deployment gzip-encoded at `GZIP_LEVEL` (Python's default, 9,
    costs three times the CPU for a few percent fewer bytes)."""
    new_stack(emulator, "vault", "a")
    deployment = AppUntypedDeployment(version=3, deployment={"resources": []})
    recorder = WireRecorder()

    call(
        emulator,
        lambda client: client.import_stack("acme", "vault", "a", deployment),
        trace_configs=[recorder.trace],
    )

    (sent,) = [e.content for e in recorder.exchanges if e.url.path.endswith("/import")]
    plain = gzip.decompress(sent)
    assert json.loads(plain)["deployment"] == {"resources": []}
    assert bytes(sent) == gzip.compress(plain, compresslevel=GZIP_LEVEL, mtime=0)


def test_an_imported_deployment_is_the_stack_state(emulator: EmulatorServer) -> None:
    new_stack(emulator, "vault", "a")
    root = "urn:pulumi:a::vault::pulumi:pulumi:Stack::vault-a"
    sealed = call(
        emulator, lambda client: client.encrypt_values("acme", "vault", "a", ['"hunter2"'])
    )
    deployment = {
        "manifest": {"time": "2026-11-20T10:00:00Z", "magic": "", "version": "v3.274.1"},
        "secrets_providers": service_secrets_provider(emulator.url, "acme", "vault", "a"),
        "resources": [
            {
                "urn": root,
                "custom": False,
                "type": "pulumi:pulumi:Stack",
                "outputs": {"key": {SIG_KEY: SECRET_SIG, "ciphertext": sealed[0]}, "n": 1},
            }
        ],
    }

    async def import_then_export(client: CloudClient) -> tuple[str, AppUntypedDeployment]:
        status = await client.import_stack(
            "acme", "vault", "a", AppUntypedDeployment(version=3, deployment=deployment)
        )
        return status, await client.export_stack("acme", "vault", "a")

    recorder = WireRecorder()
    status, exported = call(emulator, import_then_export, trace_configs=[recorder.trace])
    assert status == "succeeded"
    assert post_encodings(recorder) == [("/api/stacks/acme/vault/a/import", "gzip")], (
        "gzipped, as the CLI"
    )
    assert (exported.version, exported.deployment) == (3, deployment)
    stored = ciphertexts(exported.deployment)
    opened = call(emulator, lambda client: client.decrypt_values("acme", "vault", "a", stored))
    assert opened == {sealed[0]: '"hunter2"'}
    calls = [(e.method, e.path) for e in emulator.requests.entries()]
    imported = calls.index(("POST", "/api/stacks/acme/vault/a/import"))
    polled_method, polled_path = calls[imported + 1]
    assert polled_method == "GET" and polled_path.startswith("/api/stacks/acme/vault/a/update/")


def test_replacing_the_tags_of_a_stack_replaces_them_all(emulator: EmulatorServer) -> None:
    new_stack(emulator, "vault", "a", team="web", owner="agent-1")
    before = call(emulator, lambda client: client.get_stack("acme", "vault", "a")).tags
    assert before == {"team": "web", "owner": "agent-1"}

    async def replace_then_read(client: CloudClient) -> dict[str, str] | None:
        await client.replace_stack_tags("acme", "vault", "a", {"team": "platform", "cost": "42"})
        return (await client.get_stack("acme", "vault", "a")).tags

    assert call(emulator, replace_then_read) == {"team": "platform", "cost": "42"}
    assert emulator.requests.count("PATCH", "/api/stacks/acme/vault/a/tags") == 1
    call(emulator, lambda client: client.replace_stack_tags("acme", "vault", "a", {}))
    assert call(emulator, lambda client: client.get_stack("acme", "vault", "a")).tags == {}


# --- Errors and secrecy -------------------------------------------------------------------


def test_bad_token_is_an_authentication_error_without_the_token(
    emulator: EmulatorServer,
) -> None:
    bad = "tok-wrong-secret-value"
    with pytest.raises(AuthenticationError) as caught:
        call(emulator, lambda client: client.get_current_user(), token=bad)
    error = caught.value
    assert error.status == 401
    assert (error.method, error.path) == ("GET", "/api/user")
    for text in (str(error), repr(error), error.message, str(error.hint)):
        assert bad not in text
    assert bad not in repr(CloudClient(emulator.url, bad))


def test_no_role_in_org_is_permission_denied(emulator: EmulatorServer) -> None:
    with pytest.raises(PermissionDeniedError):
        call(emulator, lambda client: client.list_stacks("labs"), token=BOB)


# --- Retries ------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after(emulator: EmulatorServer) -> None:
    emulator.faults.fail(429, path="/api/user", retry_after=1)
    user = call(emulator, lambda client: client.get_current_user())
    assert user.github_login == "alice"
    refused, answered = emulator.requests.entries()
    assert (refused.status, answered.status) == (429, 200)
    assert answered.started - refused.finished >= 1.0


def test_429_is_retried_for_a_post_too(emulator: EmulatorServer) -> None:
    emulator.faults.fail(429, method="POST", path=r".*/rename", retry_after=0)
    call(
        emulator,
        lambda client: client.rename_stack("acme", "web", "s01", new_project="web", new_name="x"),
    )
    assert ("web", "x") in emulator.state.stack_names("acme")
    assert [e.status for e in emulator.requests.entries()] == [429, 200]


def test_503_is_retried_for_a_get(emulator: EmulatorServer) -> None:
    emulator.faults.fail(503, path="/api/user/stacks", times=2)
    stacks = call(emulator, lambda client: client.list_stacks("acme", project="web"))
    assert len(stacks) == 12
    assert [e.status for e in emulator.requests.entries()] == [503, 503, 200, 200]


def test_dropped_connection_is_retried_for_a_get(emulator: EmulatorServer) -> None:
    emulator.faults.drop(path="/api/stacks/acme/web/s01")
    stack = call(emulator, lambda client: client.get_stack("acme", "web", "s01"))
    assert stack.stack_name == "s01"
    assert [e.status for e in emulator.requests.entries()] == [None, 200]


def test_503_for_a_post_is_not_retried(emulator: EmulatorServer) -> None:
    emulator.faults.fail(503, method="POST", times=None)
    with pytest.raises(ServiceError) as caught:
        call(
            emulator,
            lambda client: client.transfer_stack("agent-1", "web", "dev", to_org="labs"),
        )
    assert caught.value.status == 503
    assert emulator.requests.count("POST") == 1
    assert ("web", "dev") in emulator.state.stack_names("agent-1")


def test_post_whose_answer_is_lost_is_not_repeated(emulator: EmulatorServer) -> None:
    """The rename happened but the client saw 500: repeating it would fail or rename twice."""
    emulator.faults.fail_after(500, method="POST")
    with pytest.raises(ServiceError) as caught:
        call(
            emulator,
            lambda client: client.rename_stack(
                "acme", "web", "s01", new_project="web", new_name="renamed"
            ),
        )
    assert caught.value.status == 500
    assert emulator.requests.count("POST") == 1
    assert ("web", "renamed") in emulator.state.stack_names("acme")


def test_dropped_connection_for_a_post_is_a_transport_error(emulator: EmulatorServer) -> None:
    emulator.faults.drop(method="POST")
    with pytest.raises(TransportError) as caught:
        call(
            emulator,
            lambda client: client.transfer_stack("agent-1", "web", "dev", to_org="labs"),
        )
    assert "may have been applied" in str(caught.value)
    assert emulator.requests.count("POST") == 1


def test_retries_run_out_with_the_typed_error(emulator: EmulatorServer) -> None:
    emulator.faults.fail(503, path="/api/user", times=None)
    with pytest.raises(ServiceError) as caught:
        call(emulator, lambda client: client.get_current_user(), max_attempts=3)
    assert caught.value.status == 503
    assert "injected fault" in caught.value.message
    assert emulator.requests.count("GET", "/api/user") == 3


def test_unreachable_service_is_a_transport_error() -> None:
    # Bound but not listening: connections are refused, and no other process (another test
    # worker's emulator) can take the port while the test calls it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
        url = f"http://127.0.0.1:{closed_port}"
        with pytest.raises(TransportError) as caught:
            call(url, lambda client: client.get_current_user(), max_attempts=2)
    assert url in str(caught.value)
    assert ALICE not in str(caught.value)


def test_a_proxy_named_by_the_environment_carries_the_calls_unless_no_proxy_exempts_the_host(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY and NO_PROXY are read as other HTTP tools read them: a proxy that does not
    answer means no call reaches the service, until NO_PROXY names the service's host."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    emulator.requests.clear()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{probe.getsockname()[1]}")
        with pytest.raises(TransportError) as caught:
            call(emulator, lambda client: client.get_current_user(), max_attempts=1)
        assert "got no answer" in caught.value.message
        assert emulator.requests.entries() == []

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        user = call(emulator, lambda client: client.get_current_user(), max_attempts=1)
    assert user.github_login == "alice"
    assert emulator.requests.count("GET", "/api/user") == 1


def test_retry_after_as_an_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)
    response = too_many_requests({"Retry-After": format_datetime(later, usegmt=True)})
    waited = _retry_after_seconds(response)
    assert waited is not None and 25 <= waited <= 30
    assert _retry_after_seconds(too_many_requests({"Retry-After": "7"})) == 7
    for unusable in ("soon", "inf", "nan"):
        assert _retry_after_seconds(too_many_requests({"Retry-After": unusable})) is None
    assert _retry_after_seconds(too_many_requests({})) is None


def too_many_requests(headers: dict[str, str]) -> Answer:
    return Answer(429, "Too Many Requests", CIMultiDictProxy(CIMultiDict(headers)), b"")


# --- Concurrency --------------------------------------------------------------------------


def test_parallel_calls_stay_within_max_concurrency(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(WORLD, latency_ms=50)

    async def twelve_at_once(client: CloudClient) -> list[Any]:
        return await asyncio.gather(
            *(client.get_stack("acme", "web", f"s{i:02}") for i in range(12))
        )

    stacks = call(server, twelve_at_once, max_concurrency=3)
    assert [s.stack_name for s in stacks] == [f"s{i:02}" for i in range(12)]
    assert server.requests.count("GET") == 12
    assert server.requests.peak_in_flight == 3


# --- Credentials ---------------------------------------------------------------------------


def write_cli_login(home: Path, tokens: dict[str, str], current: str) -> None:
    folder = home / ".pulumi"
    folder.mkdir(parents=True)
    document = {"current": current, "accessTokens": tokens}
    (folder / "credentials.json").write_text(json.dumps(document), encoding="utf-8")


def test_credentials_from_environment(tmp_path: Path) -> None:
    env = {
        "PULUMI_BACKEND_URL": "http://127.0.0.1:8080/",
        "PULUMI_ACCESS_TOKEN": "tok-dest",
        "PULUMI_CLAIM_SOURCE_TOKEN": "tok-source",
        "PULUMI_CLAIM_TOKEN": "claim-1",
    }
    creds = load_credentials(None, env=env, home=tmp_path)
    assert creds == Credentials("http://127.0.0.1:8080", "tok-dest", "tok-source", "claim-1")
    for token in ("tok-dest", "tok-source", "claim-1"):
        assert token not in repr(creds)
        assert token not in str(creds)


def test_credentials_defaults(tmp_path: Path) -> None:
    creds = load_credentials(None, env={"PULUMI_ACCESS_TOKEN": "tok-dest"}, home=tmp_path)
    assert creds == Credentials("https://api.pulumi.com", "tok-dest", "tok-dest", None)


def test_explicit_url_wins_over_environment(tmp_path: Path) -> None:
    env = {"PULUMI_BACKEND_URL": "https://env.example", "PULUMI_ACCESS_TOKEN": "tok"}
    creds = load_credentials("https://flag.example/", env=env, home=tmp_path)
    assert creds.api_url == "https://flag.example"


def test_destination_token_from_cli_login_for_that_url(tmp_path: Path) -> None:
    write_cli_login(
        tmp_path,
        {"https://api.pulumi.com": "tok-cloud", "http://127.0.0.1:9000/": "tok-local"},
        current="https://api.pulumi.com",
    )
    creds = load_credentials("http://127.0.0.1:9000", env={}, home=tmp_path)
    assert (creds.destination_token, creds.source_token) == ("tok-local", "tok-local")
    assert load_credentials(None, env={}, home=tmp_path).destination_token == "tok-cloud"


def test_environment_token_wins_over_cli_login(tmp_path: Path) -> None:
    write_cli_login(tmp_path, {"https://api.pulumi.com": "tok-cloud"}, "https://api.pulumi.com")
    creds = load_credentials(None, env={"PULUMI_ACCESS_TOKEN": "tok-env"}, home=tmp_path)
    assert creds.destination_token == "tok-env"


def test_pulumi_home_locates_cli_login(tmp_path: Path) -> None:
    write_cli_login(tmp_path / "elsewhere", {"https://svc": "tok-svc"}, "https://svc")
    env = {"PULUMI_HOME": str(tmp_path / "elsewhere" / ".pulumi")}
    creds = load_credentials("https://svc", env=env, home=tmp_path / "nobody")
    assert creds.destination_token == "tok-svc"


def test_missing_destination_token_names_the_variable(tmp_path: Path) -> None:
    write_cli_login(tmp_path, {"https://api.pulumi.com": "tok-cloud"}, "https://api.pulumi.com")
    with pytest.raises(InvalidInputError) as caught:
        load_credentials("http://127.0.0.1:9000", env={}, home=tmp_path)
    assert "PULUMI_ACCESS_TOKEN" in str(caught.value)
    assert "tok-cloud" not in str(caught.value)


def test_unreadable_cli_login_is_reported(tmp_path: Path) -> None:
    (tmp_path / ".pulumi").mkdir()
    (tmp_path / ".pulumi" / "credentials.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"credentials\.json"):
        load_credentials(None, env={}, home=tmp_path)
