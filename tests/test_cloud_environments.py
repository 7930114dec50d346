"""ESC environments through the REST client, against the emulator over real HTTP: create,
read (sealed and decrypted), update with and without If-Match, delete, tags, and who may."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest
import yaml

from toolkit.cloud import CloudClient
from toolkit.emulator.faults import FaultRule
from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import parse_world
from toolkit.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
)

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

T = TypeVar("T")

ALICE = "tok-alice-env"
BOB = "tok-bob-env"
CAROL = "tok-carol-env"
PLAINTEXT = "hunter2-plaintext-secret"

WORLD: dict[str, Any] = {
    "users": [
        {"login": "alice", "token": ALICE, "orgs": {"acme": "admin", "labs": "admin"}},
        {"login": "bob", "token": BOB, "orgs": {"acme": "member"}},
        {"login": "carol", "token": CAROL, "orgs": {"labs": "admin"}},
    ],
    "orgs": {
        "acme": {
            "environments": [
                {
                    "project": "app",
                    "name": "base",
                    "definition": (
                        "# the base settings\n"
                        "values:\n"
                        "  region: eu-west-1\n"
                        "  password:\n"
                        f"    fn::secret: {PLAINTEXT}\n"
                    ),
                    "tags": {"team": "platform"},
                },
                {"project": "app", "name": "empty"},
            ]
        },
        "labs": {"environments": [{"project": "app", "name": "other"}]},
    },
}


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


def call(
    server: EmulatorServer, operation: Callable[[CloudClient], Awaitable[T]], token: str = ALICE
) -> T:
    async def scenario() -> T:
        async with CloudClient(server.url, token, retry_base_delay=0.001) as client:
            return await operation(client)

    return asyncio.run(scenario())


def secret_of(definition: str) -> Any:
    return yaml.safe_load(definition)["values"]["password"]["fn::secret"]


def test_a_world_s_secrets_are_sealed_and_open_only_through_decrypt(
    emulator: EmulatorServer,
) -> None:
    sealed = call(emulator, lambda c: c.get_environment("acme", "app", "base"))
    assert PLAINTEXT not in sealed.yaml
    assert set(secret_of(sealed.yaml)) == {"ciphertext"}
    assert sealed.yaml.startswith("# the base settings\n")
    assert sealed.revision == 1
    assert sealed.etag
    decrypted = call(emulator, lambda c: c.get_environment_decrypted("acme", "app", "base"))
    assert secret_of(decrypted) == PLAINTEXT
    assert yaml.safe_load(decrypted)["values"]["region"] == "eu-west-1"
    assert call(emulator, lambda c: c.list_environment_tags("acme", "app", "base")) == {
        "team": "platform"
    }


def test_plaintext_secrets_never_reach_the_database(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    state = ServiceState.from_world(parse_world(WORLD), str(db))
    alice = state.authenticate(ALICE)
    state.update_environment(
        alice, "acme", "app", "empty", "values:\n  token:\n    fn::secret: second-plaintext\n"
    )
    state.close()
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert PLAINTEXT.encode() not in stored
    assert b"second-plaintext" not in stored


def test_create_update_read_and_delete(emulator: EmulatorServer) -> None:
    async def scenario(client: CloudClient) -> None:
        await client.create_environment("acme", "app", "fresh")
        created = await client.get_environment("acme", "app", "fresh")
        assert (created.yaml, created.revision) == ("", 1)
        text = "values:\n  greeting: hello\n  apiKey:\n    fn::secret: abc-123\n"
        assert await client.update_environment("acme", "app", "fresh", text) == 2
        updated = await client.get_environment("acme", "app", "fresh")
        assert updated.revision == 2 and updated.etag != created.etag
        assert "abc-123" not in updated.yaml
        decrypted = await client.get_environment_decrypted("acme", "app", "fresh")
        assert yaml.safe_load(decrypted) == yaml.safe_load(text)
        # Writing back what a read showed keeps the secret: its ciphertext is this one's.
        assert await client.update_environment("acme", "app", "fresh", updated.yaml) == 3
        again = await client.get_environment_decrypted("acme", "app", "fresh")
        assert yaml.safe_load(again) == yaml.safe_load(text)
        assert await client.environment_exists("acme", "app", "fresh")
        await client.delete_environment("acme", "app", "fresh")
        assert not await client.environment_exists("acme", "app", "fresh")
        with pytest.raises(NotFoundError):
            await client.get_environment("acme", "app", "fresh")

    call(emulator, scenario)


def test_creating_a_taken_name_is_a_conflict(emulator: EmulatorServer) -> None:
    with pytest.raises(ConflictError):
        call(emulator, lambda c: c.create_environment("acme", "app", "base"))


def test_if_match_refuses_a_stale_update_and_changes_nothing(emulator: EmulatorServer) -> None:
    async def scenario(client: CloudClient) -> None:
        read = await client.get_environment("acme", "app", "empty")
        first = "values:\n  a: 1\n"
        assert await client.update_environment("acme", "app", "empty", first, etag=read.etag) == 2
        with pytest.raises(ConflictError, match="409"):
            await client.update_environment("acme", "app", "empty", "values: {}\n", etag=read.etag)
        now = await client.get_environment("acme", "app", "empty")
        assert (now.yaml, now.revision) == (first, 2)
        # Without If-Match, the last writer wins, as on the service.
        assert await client.update_environment("acme", "app", "empty", "values: {}\n") == 3

    call(emulator, scenario)


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ("values: [unclosed\n", "invalid YAML"),
        ("- a list\n", "must be a mapping"),
        ("imports: app/missing\n", "imports must be a list"),
        ("imports: [app/missing]\n", "unknown environment 'app/missing'"),
        ("imports: [{app/missing: {merge: false}}]\n", "unknown environment 'app/missing'"),
        ("imports: [3]\n", "import must be a string or an object"),
        ("imports: [{app/base: {}, app/empty: {}}]\n", "import must have a single key"),
        ("imports: [{app/base: false}]\n", "import must be an object"),
        ("imports: [{app/base: {merge: 'no'}}]\n", "merge must be a boolean value"),
        ("values: {imports: 1}\n", "'imports' is a reserved key"),
        ("values:\n  x:\n    fn::secret: [1, 2]\n", "secret values must be"),
        ("values:\n  x:\n    fn::secret: {ciphertext: bm90LW91cnM=}\n", "not this environment"),
    ],
)
def test_a_refused_definition_names_its_problem_and_writes_nothing(
    emulator: EmulatorServer, definition: str, problem: str
) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        call(emulator, lambda c: c.update_environment("acme", "app", "empty", definition))
    after = call(emulator, lambda c: c.get_environment("acme", "app", "empty"))
    assert (after.yaml, after.revision) == ("", 1)


def test_ciphertext_of_another_environment_is_refused(emulator: EmulatorServer) -> None:
    sealed = call(emulator, lambda c: c.get_environment("acme", "app", "base")).yaml
    with pytest.raises(InvalidInputError, match="not this environment"):
        call(emulator, lambda c: c.update_environment("acme", "app", "empty", sealed))


@pytest.mark.parametrize(
    "imports",
    ["[app/base]", "[{app/base: {merge: false}}]", "\n  - app/base: {merge: true, other: 1}"],
)
def test_imports_of_the_same_org_are_accepted(emulator: EmulatorServer, imports: str) -> None:
    definition = f'imports: {imports}\nvalues:\n  where: ${{imports["app/base"].region}}\n'
    revision = call(emulator, lambda c: c.update_environment("acme", "app", "empty", definition))
    assert revision == 2
    assert call(emulator, lambda c: c.get_environment("acme", "app", "empty")).yaml == definition


def test_tags_are_created_and_changed(emulator: EmulatorServer) -> None:
    async def scenario(client: CloudClient) -> dict[str, str]:
        await client.set_environment_tag("acme", "app", "base", "owner", "alice")
        await client.set_environment_tag("acme", "app", "base", "team", "payments")
        await client.set_environment_tag("acme", "app", "base", "team", "payments")
        return await client.list_environment_tags("acme", "app", "base")

    assert call(emulator, scenario) == {"owner": "alice", "team": "payments"}
    listed = call(emulator, lambda c: c.list_environments("acme"))
    assert {e.name: e.tags for e in listed}["base"] == {"owner": "alice", "team": "payments"}


def test_members_read_and_write_others_are_refused(emulator: EmulatorServer) -> None:
    assert call(emulator, lambda c: c.update_environment("acme", "app", "empty", "{}\n"), BOB) == 2
    with pytest.raises(PermissionDeniedError):
        call(emulator, lambda c: c.get_environment("acme", "app", "base"), CAROL)
    with pytest.raises(PermissionDeniedError):
        call(emulator, lambda c: c.create_environment("acme", "app", "mine"), CAROL)
    with pytest.raises(NotFoundError):
        call(emulator, lambda c: c.get_environment("nowhere", "app", "base"))
    with pytest.raises(NotFoundError):
        call(emulator, lambda c: c.get_environment("labs", "app", "base"))


def test_every_org_s_environments_are_listed_page_by_page(make_emulator: EmulatorFactory) -> None:
    """`GET /api/esc/environments` (what `pulumi env ls` calls) lists the caller's orgs only,
    in (org, project, name) order, every environment once across pages."""
    server = make_emulator(WORLD, page_size=2)
    seen: list[tuple[str, str, str]] = []
    pages = 0
    token: str | None = None
    with httpx.Client(base_url=server.url, headers={"Authorization": f"token {ALICE}"}) as http:
        while True:
            answer = http.get(
                "/api/esc/environments", params={"continuationToken": token} if token else {}
            )
            answer.raise_for_status()
            body = answer.json()
            pages += 1
            seen += [(e["organization"], e["project"], e["name"]) for e in body["environments"]]
            token = body.get("nextToken")
            if not token:
                break
        carol = http.get("/api/esc/environments", headers={"Authorization": f"token {CAROL}"})
    assert seen == [("acme", "app", "base"), ("acme", "app", "empty"), ("labs", "app", "other")]
    assert pages == 2
    assert [e["organization"] for e in carol.json()["environments"]] == ["labs"]


def test_an_update_whose_answer_is_lost_is_not_sent_again(emulator: EmulatorServer) -> None:
    """A PATCH that the service carried out but answered 500 made a revision: the client
    reports the failure instead of writing the definition twice; a read answered 503 is
    simply tried again."""
    path = "/api/esc/environments/acme/app/empty"
    emulator.faults.arm(FaultRule(action="after", status=500, method="PATCH", path=path))
    with pytest.raises(ServiceError, match="500"):
        call(emulator, lambda c: c.update_environment("acme", "app", "empty", "values: {a: 1}\n"))
    assert emulator.requests.count("PATCH", path) == 1
    emulator.faults.arm(FaultRule(action="respond", status=503, method="GET", path=path))
    read = call(emulator, lambda c: c.get_environment("acme", "app", "empty"))
    assert (read.yaml, read.revision) == ("values: {a: 1}\n", 2)
    assert emulator.requests.count("GET", path) == 2


def test_a_conditional_update_whose_answer_is_lost_is_sent_again_and_never_written_twice(
    emulator: EmulatorServer,
) -> None:
    """With If-Match, a write whose answer was lost goes again: a 503 that changed nothing
    is simply repeated; after a write that was applied, the repeat is refused as stale (409)
    and no second revision is made."""
    path = "/api/esc/environments/acme/app/empty"
    read = call(emulator, lambda c: c.get_environment("acme", "app", "empty"))
    emulator.faults.fail(503, method="PATCH", path=path)
    first = "values: {a: 1}\n"
    assert (
        call(
            emulator, lambda c: c.update_environment("acme", "app", "empty", first, etag=read.etag)
        )
        == 2
    )
    assert emulator.requests.count("PATCH", path) == 2

    written = call(emulator, lambda c: c.get_environment("acme", "app", "empty"))
    emulator.faults.fail_after(503, method="PATCH", path=path)
    second = "values: {a: 2}\n"
    with pytest.raises(ConflictError, match="409"):
        call(
            emulator,
            lambda c: c.update_environment("acme", "app", "empty", second, etag=written.etag),
        )
    now = call(emulator, lambda c: c.get_environment("acme", "app", "empty"))
    assert (now.yaml, now.revision) == (second, 3)


def test_a_tag_whose_answer_is_lost_is_set_once(emulator: EmulatorServer) -> None:
    """Creating or changing a tag is conditional on the service, so a write whose answer was
    lost is sent again, and its refusal counts when the tag holds the value after all."""
    tags = "/api/esc/environments/acme/app/empty/tags"
    emulator.faults.drop_after_apply(method="POST", path=tags)
    call(emulator, lambda c: c.set_environment_tag("acme", "app", "empty", "owner", "alice"))
    emulator.faults.fail_after(503, method="PATCH", path=f"{tags}/owner")
    call(emulator, lambda c: c.set_environment_tag("acme", "app", "empty", "owner", "bob"))
    emulator.faults.fail(503, method="POST", path=tags)
    call(emulator, lambda c: c.set_environment_tag("acme", "app", "empty", "team", "web"))

    listed = call(emulator, lambda c: c.list_environment_tags("acme", "app", "empty"))
    assert listed == {"owner": "bob", "team": "web"}
    assert emulator.requests.count("POST", tags) == 4
    assert emulator.requests.count("PATCH", f"{tags}/owner") == 2


def test_environment_tags_page_as_the_cli_expects(emulator: EmulatorServer) -> None:
    """Pages resume after the token of the one before; the last page's token is "0"."""
    for key in ("a", "b", "c"):
        call(emulator, lambda c, key=key: c.set_environment_tag("acme", "app", "empty", key, "v"))
    path = "/api/esc/environments/acme/app/empty/tags"
    tokens: list[str] = []
    names: list[str] = []
    after = ""
    with httpx.Client(base_url=emulator.url, headers={"Authorization": f"token {ALICE}"}) as http:
        while after != "0":
            body = http.get(path, params={"after": after, "count": 2}).json()
            names += list(body["tags"])
            after = body["nextToken"]
            tokens.append(after)
    assert (names, tokens) == (["a", "b", "c"], ["b", "0"])
    listed = call(emulator, lambda c: c.list_environment_tags("acme", "app", "empty"))
    assert listed == {"a": "v", "b": "v", "c": "v"}
