"""The calls on what a stack carries beside its state: deployment settings, webhooks and
deployment schedules, as Pulumi's API document gives them and the pulumiservice provider's
client (`provider/pkg/pulumiapi`: deployment_settings.go, webhooks.go, stack_schedules.go)
sends them: settings read with GET, replaced with PUT (the provider's create and update), a
part of them set with POST, removed with DELETE; webhooks listed, created (201), read,
changed with PATCH and deleted (204) by name; schedules listed (`{"schedules": [...]}`),
created, read, paused, resumed and deleted by id.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse

from toolkit.emulator.routes.service import Service, stack_path
from toolkit.emulator.routes.stacks import STACK
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import Caller

SETTINGS = STACK + "/deployments/settings"
HOOKS = STACK + "/hooks"
SCHEDULES = STACK + "/deployments/schedules"


def stack_settings_router(service: Service) -> APIRouter:
    router = APIRouter()
    state = service.state
    Authenticated = Annotated[Caller, Depends(service.caller)]
    JsonObject = Annotated[dict[str, Any], Body()]

    # --- Deployment settings ------------------------------------------------------------

    @router.get(SETTINGS)
    async def get_settings(who: Authenticated, http_request: Request) -> JSONResponse:
        return json_response(state.deployment_settings(who, *stack_path(http_request)))

    @router.put(SETTINGS)
    async def replace_settings(
        who: Authenticated, http_request: Request, settings: JsonObject
    ) -> JSONResponse:
        written = state.write_deployment_settings(
            who, *stack_path(http_request), settings, merge=False
        )
        return json_response(written)

    @router.post(SETTINGS)
    async def patch_settings(
        who: Authenticated, http_request: Request, settings: JsonObject
    ) -> JSONResponse:
        written = state.write_deployment_settings(
            who, *stack_path(http_request), settings, merge=True
        )
        return json_response(written)

    @router.delete(SETTINGS)
    async def delete_settings(who: Authenticated, http_request: Request) -> JSONResponse:
        state.delete_deployment_settings(who, *stack_path(http_request))
        return JSONResponse(True)

    # --- Webhooks -----------------------------------------------------------------------

    @router.get(HOOKS)
    async def list_hooks(who: Authenticated, http_request: Request) -> JSONResponse:
        return JSONResponse(state.stack_webhooks(who, *stack_path(http_request)))

    @router.post(HOOKS)
    async def create_hook(
        who: Authenticated, http_request: Request, hook: JsonObject
    ) -> JSONResponse:
        created = state.create_stack_webhook(who, *stack_path(http_request), hook)
        return json_response(created, status=201)

    @router.get(HOOKS + "/{hook_name}")
    async def get_hook(who: Authenticated, http_request: Request, hook_name: str) -> JSONResponse:
        return json_response(state.stack_webhook(who, *stack_path(http_request), hook_name))

    @router.patch(HOOKS + "/{hook_name}")
    async def update_hook(
        who: Authenticated, http_request: Request, hook_name: str, hook: JsonObject
    ) -> JSONResponse:
        updated = state.update_stack_webhook(who, *stack_path(http_request), hook_name, hook)
        return json_response(updated)

    @router.delete(HOOKS + "/{hook_name}", status_code=204)
    async def delete_hook(who: Authenticated, http_request: Request, hook_name: str) -> Response:
        state.delete_stack_webhook(who, *stack_path(http_request), hook_name)
        return Response(status_code=204)

    # --- Deployment schedules -----------------------------------------------------------

    @router.get(SCHEDULES)
    async def list_schedules(who: Authenticated, http_request: Request) -> JSONResponse:
        schedules = state.deployment_schedules(who, *stack_path(http_request))
        return json_response({"schedules": schedules})

    @router.post(SCHEDULES)
    async def create_schedule(
        who: Authenticated, http_request: Request, request: JsonObject
    ) -> JSONResponse:
        created = state.create_deployment_schedule(who, *stack_path(http_request), request)
        return json_response(created)

    @router.get(SCHEDULES + "/{schedule_id}")
    async def get_schedule(
        who: Authenticated, http_request: Request, schedule_id: str
    ) -> JSONResponse:
        found = state.deployment_schedule(who, *stack_path(http_request), schedule_id)
        return json_response(found)

    for action, paused in (("pause", True), ("resume", False)):
        router.add_api_route(
            f"{SCHEDULES}/{{schedule_id}}/{action}",
            _schedule_pauser(service, paused=paused),
            methods=["POST"],
        )

    @router.delete(SCHEDULES + "/{schedule_id}")
    async def delete_schedule(
        who: Authenticated, http_request: Request, schedule_id: str
    ) -> Response:
        state.delete_deployment_schedule(who, *stack_path(http_request), schedule_id)
        return Response(status_code=200)

    return router


def _schedule_pauser(service: Service, *, paused: bool) -> Callable[..., Awaitable[Response]]:
    """The handler that pauses a schedule (`paused`) or resumes it."""

    async def pause_schedule(
        who: Annotated[Caller, Depends(service.caller)], http_request: Request, schedule_id: str
    ) -> Response:
        service.state.pause_deployment_schedule(
            who, *stack_path(http_request), schedule_id, paused=paused
        )
        return Response(status_code=200)

    return pause_schedule
