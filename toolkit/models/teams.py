"""Teams and org members (what the pulumiservice provider reads and writes)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime

from toolkit.models.orgs import UserInfo
from toolkit.models.wire import WireModel

TeamRole = Literal["none", "member", "admin"]


StackPermission = Literal[0, 101, 102, 103, 104]
"""None, read, write (the provider's `edit`), admin, creator."""


EnvironmentPermission = Literal["none", "read", "open", "write", "admin"]


class TeamMemberInfo(WireModel):
    name: str
    github_login: str
    avatar_url: str
    email: str | None = None
    role: TeamRole


class TeamStackPermission(WireModel):
    project_name: str
    stack_name: str
    permission: StackPermission


class TeamEnvironmentSettings(WireModel):
    project_name: str
    env_name: str
    permission: EnvironmentPermission
    max_open_duration: str | None = None
    """A Go duration (`1h30m0s`), as the provider writes it."""


class Team(WireModel):
    kind: Literal["github", "pulumi", "scim"]
    name: str
    display_name: str
    description: str
    members: list[TeamMemberInfo] | None = None
    stacks: list[TeamStackPermission] | None = None
    environments: list[TeamEnvironmentSettings] | None = None
    user_role: TeamRole | None = None


class ListTeamsResponse(WireModel):
    teams: list[Team]


class CreatePulumiTeamRequest(WireModel):
    name: str
    display_name: str
    description: str


class RemoveStackIdentifier(WireModel):
    project_name: str
    stack_name: str


class RemoveEnvironmentIdentifier(WireModel):
    project_name: str
    env_name: str


class UpdateTeamRequest(WireModel):
    """`PATCH /api/orgs/{org}/teams/{team}`: one change to a team per request."""

    new_display_name: str | None = None
    new_description: str | None = None
    member_action: Literal["add", "remove", "promote", "demote"] | None = None
    member: str | None = None
    add_stack_permission: TeamStackPermission | None = None
    edit_stack_permission: TeamStackPermission | None = None
    remove_stack: RemoveStackIdentifier | None = None
    add_environment_permission: TeamEnvironmentSettings | None = None
    edit_environment_permission: TeamEnvironmentSettings | None = None
    remove_environment: RemoveEnvironmentIdentifier | None = None


class FGARole(WireModel):
    id: str
    name: str
    modified_at: AwareDatetime


class OrganizationMember(WireModel):
    role: Literal[
        "none", "member", "admin", "potential-member", "stack-collaborator", "billing-manager"
    ]
    user: UserInfo
    created: AwareDatetime
    known_to_pulumi: bool
    virtual_admin: bool
    fga_role: FGARole


class ListOrganizationMembersResponse(WireModel):
    members: list[OrganizationMember]
    continuation_token: str | None = None
