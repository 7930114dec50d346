"""The landing program, run by the real pulumi CLI with the real pulumiservice provider plugin
against the emulator: tags and team permissions are there afterwards (read back over plain
REST), a second run changes nothing, a preview changes nothing, an unknown team fails clearly.
And the `landing:` section's rules, and what the landing manages (pure)."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from toolkit.credentials import BackendIdentity, Credentials
from toolkit.emulator.server import EmulatorServer
from toolkit.errors import InvalidInputError, LandingError
from toolkit.landing import PULUMISERVICE_PLUGIN, LandingResult
from toolkit.landing import apply_landing as apply_landing_async
from toolkit.landing import preview_landing as preview_landing_async
from toolkit.landing_program.model import LandedEnvironment, LandedStack, Landing
from toolkit.landing_spec import (
    LANDING_PROJECT,
    RUN_TAG,
    SOURCE_TAG,
    LandingSpec,
    MovedStack,
    landing_resources,
    parse_landing,
)
from toolkit.plan import ClaimTarget
from toolkit.resolution_map import ResolutionMap
from toolkit.runs import ClaimRequest, map_identity, run_key
from toolkit.sides import Sides

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

WORLD: dict[str, Any] = {
    "users": [
        {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}},
        {"login": "bob", "token": "tok-bob", "orgs": {"acme": "member"}},
    ],
    "orgs": {
        "acme": {
            "stacks": [
                {"project": "web", "stack": "prod", "tags": {"owner": "web-team"}},
                {"project": "api", "stack": "dev"},
            ],
            "environments": [{"project": "app", "name": "prod"}],
            "teams": [{"name": "platform", "members": ["alice"]}, {"name": "auditors"}],
        },
    },
}
SPEC = LandingSpec(
    stack="claim-landing",
    tags={"cost-center": "cc-42"},
    teams={"platform": "write", "auditors": "read"},
)
MOVED = [MovedStack("web/prod", "web/prod"), MovedStack("api/old", "api/dev")]


@pytest.fixture
def emulator(
    make_emulator: EmulatorFactory, pulumi_cli: Path, pulumiservice_plugin: Path
) -> EmulatorServer:
    return make_emulator(WORLD)


@pytest.fixture
def rest(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.url, headers={"Authorization": "token tok-alice"}
    ) as client:
        yield client


def identity(server: EmulatorServer, token: str = "tok-alice") -> BackendIdentity:
    return BackendIdentity(url=server.url, token=token)


def build(spec: LandingSpec = SPEC, moved: list[MovedStack] = MOVED, run_id: str = "run-1"):  # type: ignore[no-untyped-def]
    return lambda previous: landing_resources(
        spec,
        moved,
        ["app/prod"],
        source_org="agent-x",
        destination_org="acme",
        run_id=run_id,
        previous=previous,
    )


def preview_landing(server: EmulatorServer, **given: Any) -> LandingResult:
    token = given.pop("token", "tok-alice")
    return asyncio.run(
        preview_landing_async(identity(server, token), destination_org="acme", **given)
    )


def apply_landing(server: EmulatorServer, **given: Any) -> LandingResult:
    token = given.pop("token", "tok-alice")
    return asyncio.run(
        apply_landing_async(identity(server, token), destination_org="acme", **given)
    )


def tags_of(rest: httpx.Client, stack: str) -> dict[str, str]:
    answer = rest.get(f"/api/stacks/acme/{stack}")
    answer.raise_for_status()
    tags: dict[str, str] = answer.json().get("tags") or {}
    return tags


def team(rest: httpx.Client, name: str) -> dict[str, Any]:
    answer = rest.get(f"/api/orgs/acme/teams/{name}")
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def test_landing_tags_and_grants_and_a_second_run_changes_nothing(
    emulator: EmulatorServer, rest: httpx.Client, tmp_path: Path
) -> None:
    preview = preview_landing(
        emulator,
        stack="claim-landing",
        build=build(),
        workspace_root=tmp_path,
    )
    assert preview.local_preview and not preview.applied
    assert {(s.op, s.type) for s in preview.steps} >= {
        ("create", "pulumiservice:index:StackTags"),
        ("create", "pulumiservice:index:TeamStackPermission"),
        ("create", "pulumiservice:index:TeamEnvironmentPermission"),
    }
    # The preview made nothing in the destination: no landing stack, no tags, no grants.
    assert rest.get(f"/api/stacks/acme/{LANDING_PROJECT}/claim-landing").status_code == 404
    assert tags_of(rest, "web/prod") == {"owner": "web-team"}
    assert team(rest, "platform")["stacks"] == []

    applied = apply_landing(
        emulator,
        stack="claim-landing",
        build=build(),
        workspace_root=tmp_path,
    )
    assert applied.applied and applied.changed
    assert tags_of(rest, "web/prod") == {
        "owner": "web-team",
        "cost-center": "cc-42",
        SOURCE_TAG: "agent-x/web/prod",
        RUN_TAG: "run-1",
    }
    assert tags_of(rest, "api/dev")[SOURCE_TAG] == "agent-x/api/old"
    platform = team(rest, "platform")
    assert sorted(
        (s["projectName"], s["stackName"], s["permission"]) for s in platform["stacks"]
    ) == [
        ("api", "dev", 102),
        ("web", "prod", 102),
    ]
    assert [
        (e["projectName"], e["envName"], e["permission"]) for e in platform["environments"]
    ] == [("app", "prod", "write")]
    assert {s["permission"] for s in team(rest, "auditors")["stacks"]} == {101}
    # The provider's token is in the landing stack's state, encrypted: never in plaintext.
    exported = rest.get(f"/api/stacks/acme/{LANDING_PROJECT}/claim-landing/export")
    assert exported.status_code == 200 and "ciphertext" in exported.text
    assert "tok-alice" not in exported.text

    again = apply_landing(
        emulator,
        stack="claim-landing",
        build=build(),
        workspace_root=tmp_path,
    )
    assert again.steps == []
    assert again.summary() == "no changes"
    previewed = preview_landing(
        emulator,
        stack="claim-landing",
        build=build(),
        workspace_root=tmp_path,
    )
    assert not previewed.local_preview and previewed.steps == []


def test_no_file_holds_the_token_while_landing_runs(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Every file under the workspace root is read again and again during an `up`: none ever
    holds the provider's token in plaintext."""
    root = tmp_path / "workspaces"
    seen: set[Path] = set()
    leaks: list[Path] = []
    done = threading.Event()

    def files() -> list[Path]:
        try:
            return list(root.rglob("*"))
        except OSError:
            return []  # a folder went away while it was listed: list again next round

    def watch() -> None:
        while not done.is_set():
            for path in files():
                try:
                    if path.is_file() and not path.is_symlink():
                        seen.add(path)
                        if b"tok-alice" in path.read_bytes():
                            leaks.append(path)
                except OSError:
                    pass  # removed meanwhile
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        apply_landing(emulator, stack="watched", build=build(), workspace_root=root)
    finally:
        done.set()
        watcher.join()
    assert any(path.name == "Pulumi.yaml" for path in seen)
    assert leaks == []


def test_a_later_run_keeps_what_an_earlier_one_landed(
    emulator: EmulatorServer, rest: httpx.Client, tmp_path: Path
) -> None:
    first = build(moved=[MovedStack("web/prod", "web/prod")], run_id="run-1")
    apply_landing(emulator, stack="s", build=first, workspace_root=tmp_path)
    later = build(moved=[MovedStack("api/dev", "api/dev")], run_id="run-2")
    result = apply_landing(emulator, stack="s", build=later, workspace_root=tmp_path)
    assert {s.op for s in result.steps} == {"create"}
    assert tags_of(rest, "web/prod")[RUN_TAG] == "run-1"
    assert tags_of(rest, "api/dev")[RUN_TAG] == "run-2"


def test_an_unknown_team_fails_clearly_and_lands_nothing(
    emulator: EmulatorServer, rest: httpx.Client, tmp_path: Path
) -> None:
    spec = LandingSpec(tags={"a": "b"}, teams={"platform": "read", "ghosts": "admin"})
    for run in (preview_landing, apply_landing):
        with pytest.raises(LandingError) as raised:
            run(
                emulator,
                stack="agent-x",
                build=build(spec=spec),
                workspace_root=tmp_path,
            )
        assert "organization acme has no team ghosts" in str(raised.value)
        assert "run the same command again" in str(raised.value)
    assert rest.get(f"/api/stacks/acme/{LANDING_PROJECT}/agent-x").status_code == 404
    assert tags_of(rest, "web/prod") == {"owner": "web-team"}


def test_a_member_who_cannot_manage_teams_gets_the_services_refusal(
    emulator: EmulatorServer, rest: httpx.Client, tmp_path: Path
) -> None:
    with pytest.raises(LandingError) as raised:
        apply_landing(
            emulator,
            token="tok-bob",
            stack="by-bob",
            build=build(),
            workspace_root=tmp_path,
        )
    assert "only an organization admin can manage its teams" in str(raised.value)
    assert "tok-bob" not in str(raised.value)
    assert team(rest, "platform")["stacks"] == []


def test_a_missing_plugin_says_how_to_install_it(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "empty-home"))
    from toolkit.workspaces import isolated_workspace

    with (
        pytest.raises(InvalidInputError) as raised,
        isolated_workspace(
            identity(emulator), project=LANDING_PROJECT, plugins=[PULUMISERVICE_PLUGIN]
        ),
    ):
        pass
    assert "pulumi plugin install resource pulumiservice v1.3.0" in str(raised.value)
    assert "scripts/install-pulumiservice-plugin" in str(raised.value)
    assert str(tmp_path / "empty-home" / "plugins") in str(raised.value)


def test_the_plugin_is_found_under_the_users_pulumi_home(
    emulator: EmulatorServer,
    rest: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumiservice_plugin: Path,
) -> None:
    # A user whose PULUMI_HOME is elsewhere has the plugin there, and only there.
    home = tmp_path / "pulumi-home"
    shutil.copytree(pulumiservice_plugin, home / "plugins" / PULUMISERVICE_PLUGIN, symlinks=True)
    monkeypatch.setenv("PULUMI_HOME", str(home))
    result = apply_landing(emulator, stack="homed", build=build(), workspace_root=tmp_path / "ws")
    assert result.changed
    assert tags_of(rest, "api/dev")[RUN_TAG] == "run-1"


def test_landing_is_part_of_the_run_key() -> None:
    credentials = Credentials(
        api_url="https://api.example", destination_token="t", source_token="t"
    )
    request = ClaimRequest(
        target=ClaimTarget("agent-x", "acme"),
        resolution_map=ResolutionMap.empty(),
        map_identity=map_identity("landing: {}\n"),
    )
    sides = Sides.of(request.target, credentials)
    keys = {
        run_key(sides, request),
        run_key(sides, replace(request, landing=LandingSpec())),
        run_key(sides, replace(request, landing=LandingSpec(teams={"ops": "read"}))),
    }
    assert len(keys) == 3


# --- The landing: section -----------------------------------------------------------------


def test_a_landing_section_is_read() -> None:
    spec, problems = parse_landing(
        {"stack": "claim-landing", "tags": {"cost-center": "cc-42"}, "teams": {"ops": "admin"}},
        origin="map.yaml",
    )
    assert problems == []
    assert spec == LandingSpec(
        stack="claim-landing", tags={"cost-center": "cc-42"}, teams={"ops": "admin"}
    )
    assert spec.stack_name("agent-x") == "claim-landing"
    assert LandingSpec().stack_name("agent-x") == "agent-x"
    assert parse_landing(None, origin="map.yaml") == (None, [])


def test_every_problem_of_a_landing_section_is_listed() -> None:
    spec, problems = parse_landing(
        {
            "stack": "no spaces",
            "tags": {"pulumi-claim:run": "x", "n": 42, "bad name": "v"},
            "teams": {"ops": "owner", "dev": "read"},
            "extra": 1,
        },
        origin="map.yaml",
    )
    assert spec is None
    assert problems == [
        "map.yaml: landing: unknown key 'extra'; expected stack, tags, teams",
        "map.yaml: landing.stack: 'no spaces' is not a stack name (letters, digits, -, _ and .,"
        " at most 100)",
        "map.yaml: landing.tags: 'n': 42 is not text (quote it)",
        "map.yaml: landing.tags: 'pulumi-claim:run': the prefix pulumi-claim: is reserved",
        "map.yaml: landing.tags: 'bad name' is not a tag name (letters, digits, -, _, . and :,"
        " at most 40)",
        "map.yaml: landing.teams: 'ops': 'owner' is not one of read, write, admin",
    ]
    assert parse_landing(["x"], origin="m")[1] == [
        "m: landing: expected a mapping with stack, tags, teams"
    ]


def test_landing_resources_tag_every_moved_stack_and_keep_earlier_ones() -> None:
    previous = Landing(
        organization="acme",
        stacks=[LandedStack("old", "one", {SOURCE_TAG: "src/old/one", RUN_TAG: "r0", "x": "y"})],
        environments=[LandedEnvironment("app", "dev")],
        teams={"gone": "read"},
    )
    landing = landing_resources(
        LandingSpec(tags={"cc": "42"}, teams={"ops": "admin"}),
        [MovedStack("web/prod", "web/live")],
        ["app/prod"],
        source_org="src",
        destination_org="acme",
        run_id="r1",
        previous=previous,
    )
    assert landing == Landing(
        organization="acme",
        stacks=[
            LandedStack("old", "one", {"cc": "42", SOURCE_TAG: "src/old/one", RUN_TAG: "r0"}),
            LandedStack("web", "live", {"cc": "42", SOURCE_TAG: "src/web/prod", RUN_TAG: "r1"}),
        ],
        environments=[LandedEnvironment("app", "dev"), LandedEnvironment("app", "prod")],
        teams={"ops": "admin"},
    )
