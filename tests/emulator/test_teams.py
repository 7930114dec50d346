"""Teams, their stack and environment permissions, and org members, over real HTTP: the calls
the pulumiservice provider makes (`PATCH /api/orgs/{org}/teams/{team}` with one change each),
read back by the official SDK, with the service's rules (unknown team 404, a member cannot
manage teams 403, unknown permissions 400)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pulumi_cloud_sdk.api_client import ApiClient
from pulumi_cloud_sdk.apis import OrganizationsApi
from pulumi_cloud_sdk.configuration import Configuration
from pulumi_cloud_sdk.models import StackPermission

from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.world import parse_world
from toolkit.errors import InvalidInputError
from toolkit.models import ListOrganizationMembersResponse, Team

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

WORLD: dict[str, Any] = {
    "users": [
        {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}},
        {"login": "bob", "token": "tok-bob", "orgs": {"acme": "member"}},
        {"login": "carol", "token": "tok-carol", "orgs": {"other": "admin"}},
    ],
    "orgs": {
        "acme": {
            "stacks": [{"project": "web", "stack": "prod"}],
            "environments": [{"project": "app", "name": "prod"}],
            "teams": [{"name": "platform", "description": "Platform", "members": ["alice", "bob"]}],
        },
        "other": {},
    },
}


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


def client(server: EmulatorServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"token {token}"})


@pytest.fixture
def alice(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with client(emulator, "tok-alice") as http:
        yield http


def sdk(server: EmulatorServer, token: str = "tok-alice") -> OrganizationsApi:
    configuration = Configuration()
    configuration.host = server.url
    configuration.access_token = token
    return OrganizationsApi(ApiClient(configuration))


def team(http: httpx.Client, name: str = "platform") -> Team:
    answer = http.get(f"/api/orgs/acme/teams/{name}")
    assert answer.status_code == 200, answer.text
    return Team.model_validate(answer.json())


def patch(http: httpx.Client, body: dict[str, Any], name: str = "platform") -> httpx.Response:
    return http.patch(f"/api/orgs/acme/teams/{name}", json=body)


def test_the_world_team_reads_through_the_sdk(emulator: EmulatorServer) -> None:
    read = sdk(emulator).get_team("acme", "platform")
    assert (read.name, read.display_name, read.description) == ("platform", "platform", "Platform")
    assert [m.github_login for m in read.members] == ["alice", "bob"]
    listed = sdk(emulator, "tok-bob").list_teams("acme")
    assert [t.name for t in listed.teams] == ["platform"]


def test_stack_permission_is_granted_changed_and_removed(
    emulator: EmulatorServer, alice: httpx.Client
) -> None:
    grant = {"projectName": "web", "stackName": "prod", "permission": 102}
    assert patch(alice, {"addStackPermission": grant}).status_code == 204
    assert [(s.project_name, s.stack_name, s.permission) for s in team(alice).stacks or []] == [
        ("web", "prod", 102)
    ]
    assert patch(alice, {"addStackPermission": {**grant, "permission": 103}}).status_code == 204
    read = sdk(emulator).get_team("acme", "platform")
    assert [s.permission for s in read.stacks] == [StackPermission.Admin]
    removed = patch(alice, {"removeStack": {"projectName": "web", "stackName": "prod"}})
    assert removed.status_code == 204
    assert team(alice).stacks == []


def test_environment_permission_is_granted_and_removed(alice: httpx.Client) -> None:
    grant = {
        "projectName": "app",
        "envName": "prod",
        "permission": "open",
        "maxOpenDuration": "1h0m0s",
    }
    assert patch(alice, {"addEnvironmentPermission": grant}).status_code == 204
    [settings] = team(alice).environments or []
    assert (settings.env_name, settings.permission, settings.max_open_duration) == (
        "prod",
        "open",
        "1h0m0s",
    )
    removed = patch(alice, {"removeEnvironment": {"projectName": "app", "envName": "prod"}})
    assert removed.status_code == 204
    assert team(alice).environments == []


def test_an_unknown_team_is_404_for_reads_and_changes(alice: httpx.Client) -> None:
    assert alice.get("/api/orgs/acme/teams/ghosts").status_code == 404
    grant = {"projectName": "web", "stackName": "prod", "permission": 101}
    answer = patch(alice, {"addStackPermission": grant}, name="ghosts")
    assert answer.status_code == 404
    assert "ghosts" in answer.json()["message"]


def test_a_member_reads_teams_but_cannot_manage_them(emulator: EmulatorServer) -> None:
    with client(emulator, "tok-bob") as bob:
        assert bob.get("/api/orgs/acme/teams/platform").status_code == 200
        grant = {"projectName": "web", "stackName": "prod", "permission": 101}
        refused = patch(bob, {"addStackPermission": grant})
        assert refused.status_code == 403
        assert "admin" in refused.json()["message"]
        assert team(bob).stacks == []
    with client(emulator, "tok-carol") as carol:
        assert carol.get("/api/orgs/acme/teams/platform").status_code == 403


def test_unknown_stacks_environments_and_permissions_are_refused(alice: httpx.Client) -> None:
    missing_stack = {"projectName": "web", "stackName": "nope", "permission": 101}
    assert patch(alice, {"addStackPermission": missing_stack}).status_code == 404
    bad_level = {"projectName": "web", "stackName": "prod", "permission": 0}
    assert patch(alice, {"addStackPermission": bad_level}).status_code == 400
    missing_env = {"projectName": "app", "envName": "nope", "permission": "read"}
    assert patch(alice, {"addEnvironmentPermission": missing_env}).status_code == 404
    two_changes = {
        "addStackPermission": {"projectName": "web", "stackName": "prod", "permission": 101},
        "removeStack": {"projectName": "web", "stackName": "prod"},
    }
    assert patch(alice, two_changes).status_code == 400
    assert patch(alice, {}).status_code == 400
    assert team(alice).stacks == []


def test_teams_are_created_joined_and_deleted(
    emulator: EmulatorServer, alice: httpx.Client
) -> None:
    made = alice.post(
        "/api/orgs/acme/teams/pulumi",
        json={
            "organization": "acme",
            "teamType": "pulumi",
            "name": "ops",
            "displayName": "Ops",
            "description": "",
        },
    )
    assert made.status_code == 201, made.text
    assert (
        alice.post(
            "/api/orgs/acme/teams/pulumi",
            json={"name": "ops", "displayName": "", "description": ""},
        ).status_code
        == 409
    )
    assert patch(alice, {"memberAction": "add", "member": "bob"}, name="ops").status_code == 204
    assert patch(alice, {"memberAction": "add", "member": "bob"}, name="ops").status_code == 409
    assert patch(alice, {"memberAction": "add", "member": "carol"}, name="ops").status_code == 400
    assert [m.github_login for m in team(alice, "ops").members or []] == ["bob"]
    assert alice.delete("/api/orgs/acme/teams/ops").status_code == 204
    assert alice.get("/api/orgs/acme/teams/ops").status_code == 404


def test_org_members_are_listed_with_their_roles(emulator: EmulatorServer) -> None:
    listed = sdk(emulator, "tok-bob").list_organization_members("acme")
    assert [(m.user.github_login, m.role.value) for m in listed.members] == [
        ("alice", "admin"),
        ("bob", "member"),
    ]
    with client(emulator, "tok-alice") as alice:
        read = ListOrganizationMembersResponse.model_validate(
            alice.get("/api/orgs/acme/members").json()
        )
    assert [m.fga_role.name for m in read.members] == ["admin", "member"]


def test_a_stack_grant_follows_a_rename_and_goes_with_a_deletion(alice: httpx.Client) -> None:
    grant = {"projectName": "web", "stackName": "prod", "permission": 101}
    assert patch(alice, {"addStackPermission": grant}).status_code == 204
    renamed = alice.post(
        "/api/stacks/acme/web/prod/rename", json={"newName": "live", "newProject": ""}
    )
    assert renamed.status_code == 200, renamed.text
    assert [s.stack_name for s in team(alice).stacks or []] == ["live"]
    assert alice.delete("/api/stacks/acme/web/live", params={"force": "true"}).status_code == 204
    assert team(alice).stacks == []


def test_a_world_team_member_must_belong_to_the_org() -> None:
    world = {
        "users": [{"login": "alice", "token": "t", "orgs": {"acme": "admin"}}],
        "orgs": {"acme": {"teams": [{"name": "platform", "members": ["alice", "zed"]}]}},
    }
    with pytest.raises(InvalidInputError, match="zed not members of acme"):
        parse_world(world)
