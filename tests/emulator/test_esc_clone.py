"""Cloning an ESC environment within its org as the esc CLI does it (`pulumi env clone`, the
unmodified pulumi CLI over real HTTP: `POST .../{project}/{env}/clone` with the body of
`CloneEnvironmentRequest` in pulumi/esc's `cmd/esc/cli/client`): the copy has the source's
definition, its secrets open to the same plaintext under the copy's own key, and as the
options ask, its history, tags, revision tags and team access. A clone onto a taken name is
refused and changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from tests.emulator.test_esc import PulumiEnv
from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

SECRET = "clone-me-plaintext"
FIRST = f"values:\n  region: eu-west-1\n  pw:\n    fn::secret: {SECRET}\n"
SECOND = f"values:\n  region: us-east-1\n  pw:\n    fn::secret: {SECRET}\n"

WORLD: dict[str, Any] = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}}],
    "orgs": {
        "acme": {
            "environments": [
                {"project": "app", "name": "base", "definition": FIRST, "tags": {"team": "web"}}
            ],
            "teams": [{"name": "platform", "members": ["alice"]}],
        }
    },
}


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    server = make_emulator(WORLD)
    with httpx.Client(base_url=server.url, headers={"Authorization": "token tok-alice"}) as alice:
        base = "/api/esc/environments/acme/app/base"
        assert alice.patch(base, content=SECOND).status_code == 200
        assert alice.post(f"{base}/versions/tags", json={"name": "first", "revision": 1}).is_success
    caller = server.state.authenticate("tok-alice")
    server.state.grant_environment(caller, "acme", "platform", "app", "base", "write", None)
    return server


@pytest.fixture
def pulumi_env(pulumi_cli: Path, emulator: EmulatorServer, tmp_path: Path) -> PulumiEnv:
    return PulumiEnv(pulumi_cli, tmp_path, emulator.url, "tok-alice")


def revisions(emulator: EmulatorServer, project: str, name: str) -> list[int]:
    caller = emulator.state.authenticate("tok-alice")
    return [r.number for r in emulator.state.list_revisions(caller, "acme", project, name)]


def team_environments(emulator: EmulatorServer) -> list[tuple[str, str, str]]:
    caller = emulator.state.authenticate("tok-alice")
    team = emulator.state.get_team(caller, "acme", "platform")
    return sorted((g.project, g.environment, g.permission) for g in team.environments)


def test_pulumi_env_clone_with_every_option_copies_all_of_it(
    pulumi_env: PulumiEnv, emulator: EmulatorServer
) -> None:
    state = emulator.state
    alice = state.authenticate("tok-alice")
    pulumi_env.run(
        "clone",
        "acme/app/base",
        "ops/copy",
        "--preserve-history",
        "--preserve-access",
        "--preserve-env-tags",
        "--preserve-rev-tags",
    )

    source = state.environment_definition(alice, "acme", "app", "base", decrypt=True)
    copy = state.environment_definition(alice, "acme", "ops", "copy", decrypt=True)
    assert yaml.safe_load(copy.yaml) == yaml.safe_load(source.yaml) == yaml.safe_load(SECOND)
    sealed = state.environment_definition(alice, "acme", "ops", "copy")
    assert SECRET not in sealed.yaml
    assert sealed.yaml != state.environment_definition(alice, "acme", "app", "base").yaml
    assert json.loads(pulumi_env.run("open", "acme/ops/copy").stdout) == {
        "region": "us-east-1",
        "pw": SECRET,
    }
    assert revisions(emulator, "ops", "copy") == revisions(emulator, "app", "base") == [2, 1]
    first = state.environment_definition(alice, "acme", "ops", "copy", version="first")
    assert first.revision == 1
    assert yaml.safe_load(first.yaml)["values"]["region"] == "eu-west-1"
    assert state.get_environment(alice, "acme", "ops", "copy").tags == {"team": "web"}
    assert team_environments(emulator) == [("app", "base", "write"), ("ops", "copy", "write")]


def test_pulumi_env_clone_without_options_copies_the_definition_alone(
    pulumi_env: PulumiEnv, emulator: EmulatorServer
) -> None:
    state = emulator.state
    alice = state.authenticate("tok-alice")
    pulumi_env.run("clone", "acme/app/base", "plain")

    copy = state.environment_definition(alice, "acme", "app", "plain", decrypt=True)
    assert yaml.safe_load(copy.yaml) == yaml.safe_load(SECOND)
    assert revisions(emulator, "app", "plain") == [1]
    assert state.get_environment(alice, "acme", "app", "plain").tags == {}
    assert [t.name for t in state.list_revision_tags(alice, "acme", "app", "plain")] == ["latest"]
    assert team_environments(emulator) == [("app", "base", "write")]


def test_a_clone_at_a_version_copies_that_revision(emulator: EmulatorServer) -> None:
    alice = emulator.state.authenticate("tok-alice")
    answer = httpx.post(
        f"{emulator.url}/api/esc/environments/acme/app/base/clone",
        json={"name": "old", "version": 1},
        headers={"Authorization": "token tok-alice"},
    )
    assert answer.status_code == 204, answer.text
    copy = emulator.state.environment_definition(alice, "acme", "app", "old", decrypt=True)
    assert yaml.safe_load(copy.yaml) == yaml.safe_load(FIRST)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "base"}, 409),
        ({"name": "copy", "version": 9}, 404),
        ({"name": "bad name!"}, 400),
        ({"project": "ops"}, 400),
    ],
)
def test_a_clone_the_service_refuses_changes_nothing(
    emulator: EmulatorServer, body: dict[str, Any], status: int
) -> None:
    alice = emulator.state.authenticate("tok-alice")
    before = emulator.state.list_environments(alice, "acme", limit=100).items
    answer = httpx.post(
        f"{emulator.url}/api/esc/environments/acme/app/base/clone",
        json=body,
        headers={"Authorization": "token tok-alice"},
    )
    assert answer.status_code == status, answer.text
    assert emulator.state.list_environments(alice, "acme", limit=100).items == before
