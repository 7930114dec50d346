"""An organization's access tokens (`/api/orgs/{org}/tokens`), as the pulumiservice provider's
`OrgAccessToken` calls them: create (the only answer holding the token's value), list (how the
provider reads one back), delete (204). A token with a custom role (`roleID`) is refused: the
emulator has no custom roles.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response
from fastapi.responses import JSONResponse

from toolkit.emulator import serializers
from toolkit.emulator.routes.service import Service
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import Caller, ServiceFault
from toolkit.models import CreateAccessTokenResponse, CreateOrgAccessTokenRequest

TOKENS = "/api/orgs/{org}/tokens"


def org_tokens_router(service: Service) -> APIRouter:
    router = APIRouter()
    state = service.state
    Authenticated = Annotated[Caller, Depends(service.caller)]

    @router.get(TOKENS)
    async def list_org_tokens(who: Authenticated, org: str) -> JSONResponse:
        return json_response(serializers.org_token_list(state.list_org_tokens(who, org)))

    @router.post(TOKENS)
    async def create_org_token(
        who: Authenticated, org: str, request: Annotated[CreateOrgAccessTokenRequest, Body()]
    ) -> JSONResponse:
        if request.role_id is not None:
            raise ServiceFault(400, "Bad Request: tokens with a custom role are not emulated")
        record, value = state.create_org_token(
            who,
            org,
            name=request.name,
            description=request.description,
            admin=request.admin,
            expires=request.expires,
        )
        return json_response(CreateAccessTokenResponse(id=record.id, token_value=value))

    @router.delete(TOKENS + "/{token_id}")
    async def delete_org_token(who: Authenticated, org: str, token_id: str) -> Response:
        state.delete_org_token(who, org, token_id)
        return Response(status_code=204)

    return router
