"""The calls on the caller's own account: who it is, with its orgs and roles, and the org the
`pulumi` CLI puts stacks named without one in.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from toolkit.emulator import serializers
from toolkit.emulator.cli_models import AppGetDefaultOrganizationResponse
from toolkit.emulator.routes.service import Service
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import Caller


def accounts_router(service: Service) -> APIRouter:
    router = APIRouter()
    state = service.state
    Authenticated = Annotated[Caller, Depends(service.caller)]

    @router.get("/api/user")
    async def get_current_user(who: Authenticated) -> JSONResponse:
        return json_response(serializers.user(state.current_user(who)))

    @router.get("/api/user/organizations/default")
    async def get_default_org(who: Authenticated) -> JSONResponse:
        body = AppGetDefaultOrganizationResponse(git_hub_login=state.default_org(who))
        return json_response(body)

    return router
