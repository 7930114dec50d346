"""The calls on teams and org members, as Pulumi's API document
(`/api/orgs/{org}/teams...`, `/api/orgs/{org}/members`) describes them and the pulumiservice
provider makes them: its `Team`, `TeamStackPermission` and `TeamEnvironmentPermission` resources
read a team with `GET` and change it with one `PATCH` per change. Stack tags, which its
`StackTag(s)` resources set, are the stack calls (`stacks`).

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response
from fastapi.responses import JSONResponse

from toolkit.emulator import serializers
from toolkit.emulator.routes.service import Service
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import Caller, ServiceFault, ServiceState
from toolkit.models import CreatePulumiTeamRequest, UpdateTeamRequest

TEAM = "/api/orgs/{org}/teams/{team}"

_CHANGE_OF_FIELD = {
    "new_display_name": "details",
    "new_description": "details",
    "member_action": "member",
    "member": "member",
}
"""Fields of an `UpdateTeamRequest` that together make one change."""


def teams_router(service: Service) -> APIRouter:
    router = APIRouter()
    state = service.state
    Authenticated = Annotated[Caller, Depends(service.caller)]

    @router.get("/api/orgs/{org}/teams")
    async def list_teams(who: Authenticated, org: str) -> JSONResponse:
        return json_response(serializers.team_list(state.list_teams(who, org), who.login))

    @router.post("/api/orgs/{org}/teams/pulumi", status_code=201)
    async def create_team(
        who: Authenticated, org: str, request: Annotated[CreatePulumiTeamRequest, Body()]
    ) -> JSONResponse:
        record = state.create_team(
            who,
            org,
            request.name,
            display_name=request.display_name,
            description=request.description,
        )
        return json_response(serializers.team(record, who.login), status=201)

    @router.get(TEAM)
    async def get_team(who: Authenticated, org: str, team: str) -> JSONResponse:
        return json_response(serializers.team(state.get_team(who, org, team), who.login))

    @router.delete(TEAM, status_code=204)
    async def delete_team(who: Authenticated, org: str, team: str) -> Response:
        state.delete_team(who, org, team)
        return Response(status_code=204)

    @router.patch(TEAM, status_code=204)
    async def update_team(
        who: Authenticated, org: str, team: str, change: Annotated[UpdateTeamRequest, Body()]
    ) -> Response:
        _apply(state, who, org, team, change)
        return Response(status_code=204)

    @router.get("/api/orgs/{org}/members")
    async def list_members(who: Authenticated, org: str) -> JSONResponse:
        return json_response(serializers.org_members(state.list_org_members(who, org), state.now()))

    return router


def _apply(
    state: ServiceState, who: Caller, org: str, team: str, change: UpdateTeamRequest
) -> None:
    """Carry out the one change an `UpdateTeamRequest` asks for (a new display name with a new
    description is one, as a member with its action is); 400 for none or several. A field
    sent as `null` asks for nothing: the official SDK sends every field it does not set so."""
    given = {field for field in change.model_fields_set if getattr(change, field) is not None}
    asked = {_CHANGE_OF_FIELD.get(field, field) for field in given}
    if len(asked) != 1:
        raise ServiceFault(
            400, "Bad Request: an update of a team makes exactly one change per request"
        )
    if change.new_display_name is not None or change.new_description is not None:
        state.describe_team(
            who,
            org,
            team,
            display_name=change.new_display_name,
            description=change.new_description,
        )
    elif change.member_action is not None or change.member is not None:
        if change.member_action is None or not change.member:
            raise ServiceFault(400, "Bad Request: a member change needs member and memberAction")
        state.change_team_member(who, org, team, change.member, change.member_action)
    elif grant := change.add_stack_permission or change.edit_stack_permission:
        state.grant_stack(
            who,
            org,
            team,
            grant.project_name,
            grant.stack_name,
            grant.permission,
            edit=change.edit_stack_permission is not None,
        )
    elif change.remove_stack is not None:
        state.revoke_stack(
            who, org, team, change.remove_stack.project_name, change.remove_stack.stack_name
        )
    elif settings := change.add_environment_permission or change.edit_environment_permission:
        state.grant_environment(
            who,
            org,
            team,
            settings.project_name,
            settings.env_name,
            settings.permission,
            settings.max_open_duration,
            edit=change.edit_environment_permission is not None,
        )
    elif change.remove_environment is not None:
        state.revoke_environment(
            who,
            org,
            team,
            change.remove_environment.project_name,
            change.remove_environment.env_name,
        )
    else:
        raise ServiceFault(400, "Bad Request: the team update asks for no change")
