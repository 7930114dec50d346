"""The update lifecycle the `pulumi` CLI drives for `up`, `preview`, `refresh` and `destroy`
(create, start with a lease, full checkpoints, engine events, lease renewal, complete,
cancel), a stack's export and import, and its history.

With these and the stack calls (`stacks`), the unmodified CLI works against the emulator after
`pulumi login <url>`. The calls and their bodies follow the CLI's client
(`pkg/backend/httpstate/client` in pulumi v3.274.1); their shapes are in `cli_models`.

Capabilities advertise only what is implemented: batch encryption. So the CLI sends whole
checkpoints (no deltas, no journal) of deployment schema version 3.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from toolkit.emulator import serializers
from toolkit.emulator.cli_models import (
    AppAPICapabilityConfig,
    AppCapabilitiesResponse,
    AppCompleteUpdateRequest,
    AppEngineEventBatch,
    AppPatchUpdateCheckpointRequest,
    AppRenewUpdateLeaseRequest,
    AppRenewUpdateLeaseResponse,
    AppStartUpdateRequest,
    AppStartUpdateResponse,
    AppUpdateProgramRequest,
    AppUpdateProgramResponse,
)
from toolkit.emulator.routes.service import Service, stack_path
from toolkit.emulator.routes.stacks import STACK
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import FINISHED, Caller, ServiceFault, UpdateKind
from toolkit.models import AppImportStackResponse, AppUntypedDeployment, AppUpdateResults

UPDATE = STACK + "/{kind}/{update_id}"
"""The path of an update's calls. Its status and start (`.../{kind}/{update_id}`) are routed
once per kind instead, which keeps them off the stack's other paths of two segments
(`.../export/{version}`, `.../deployments/settings`, `.../hooks/{name}`)."""
PROGRAM_KINDS: tuple[UpdateKind, ...] = ("update", "preview", "refresh", "destroy")
"""The kinds of update the CLI creates by running a program (an import is made by the service)."""


def updates_router(service: Service) -> APIRouter:
    router = APIRouter()
    state = service.state
    Authenticated = Annotated[Caller, Depends(service.caller)]
    LeaseToken = Annotated[str | None, Depends(service.lease_token)]

    @router.get("/api/capabilities")
    async def get_capabilities() -> JSONResponse:
        body = AppCapabilitiesResponse(
            capabilities=[AppAPICapabilityConfig(capability="batch-encrypt", version=1)]
        )
        return json_response(body)

    @router.get(STACK + "/export")
    async def export_stack(who: Authenticated, http_request: Request) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        return json_response(state.export_deployment(who, org, project, stack))

    @router.get(STACK + "/export/{version}")
    async def export_stack_version(
        who: Authenticated, http_request: Request, version: int
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        return json_response(state.export_deployment(who, org, project, stack, version=version))

    @router.post(STACK + "/import")
    async def import_stack(
        who: Authenticated,
        http_request: Request,
        deployment: Annotated[AppUntypedDeployment, Body()],
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        update_id = state.import_deployment(who, org, project, stack, deployment.to_wire())
        return json_response(AppImportStackResponse(update_id=update_id))

    @router.get(STACK + "/updates")
    async def get_stack_updates(
        who: Authenticated,
        http_request: Request,
        page_size: Annotated[int, Query(alias="pageSize", ge=1, le=500)] = 100,
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        updates = state.update_history(who, org, project, stack, page_size=page_size, page=page)
        return json_response(serializers.update_history(updates))

    @router.get(STACK + "/updates/latest")
    async def get_latest_stack_update(who: Authenticated, http_request: Request) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        updates = state.update_history(who, org, project, stack, page_size=1, page=1)
        if not updates:
            raise ServiceFault(404, f"Not Found: stack {org}/{project}/{stack} has no updates")
        (latest,) = updates
        return json_response(serializers.latest_update(latest))

    async def get_update_status(
        who: Authenticated, http_request: Request, update_id: str
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        update = state.get_update(who, org, project, stack, update_id)
        finished = update.status in FINISHED
        # A continuation token tells a polling CLI that more may come; none, that it is over.
        results = AppUpdateResults(
            status=update.status, events=[], continuation_token=None if finished else "0"
        )
        return json_response(results)

    async def start_update(
        who: Authenticated,
        http_request: Request,
        update_id: str,
        request: Annotated[AppStartUpdateRequest, Body()],
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        lease = state.start_update(who, org, project, stack, update_id, tags=request.tags)
        body = AppStartUpdateResponse(
            version=lease.version, token=lease.token, token_expiration=lease.expires
        )
        return json_response(body)

    for kind in PROGRAM_KINDS:
        router.add_api_route(f"{STACK}/{kind}", _update_creator(service, kind), methods=["POST"])
        update = f"{STACK}/{kind}/{{update_id}}"
        router.add_api_route(update, get_update_status, methods=["GET"])
        router.add_api_route(update, start_update, methods=["POST"])

    @router.post(UPDATE + "/renew_lease")
    async def renew_lease(
        token: LeaseToken,
        kind: str,
        update_id: str,
        request: Annotated[AppRenewUpdateLeaseRequest, Body()],
    ) -> JSONResponse:
        _check_kind(kind)
        lease = state.renew_lease(token, update_id, duration=request.duration)
        return json_response(
            AppRenewUpdateLeaseResponse(token=lease.token, token_expiration=lease.expires)
        )

    @router.patch(UPDATE + "/checkpoint", status_code=204)
    async def patch_checkpoint(
        token: LeaseToken,
        kind: str,
        update_id: str,
        request: Annotated[AppPatchUpdateCheckpointRequest, Body()],
    ) -> Response:
        _check_kind(kind)
        if request.is_invalid:
            raise ServiceFault(400, "Bad Request: the CLI marked this checkpoint invalid")
        deployment = AppUntypedDeployment(
            version=request.version, features=request.features, deployment=request.deployment
        )
        state.save_checkpoint(token, update_id, deployment.to_wire())
        return Response(status_code=204)

    @router.post(UPDATE + "/events/batch")
    async def post_engine_events(
        token: LeaseToken,
        kind: str,
        update_id: str,
        batch: Annotated[AppEngineEventBatch, Body()],
    ) -> Response:
        _check_kind(kind)
        state.record_events(token, update_id, batch.events)
        return Response(status_code=200)

    @router.post(UPDATE + "/complete", status_code=204)
    async def complete_update(
        token: LeaseToken,
        kind: str,
        update_id: str,
        request: Annotated[AppCompleteUpdateRequest, Body()],
    ) -> Response:
        _check_kind(kind)
        state.complete_update(token, update_id, request.status)
        return Response(status_code=204)

    @router.post(UPDATE + "/cancel", status_code=204)
    async def cancel_update(
        who: Authenticated, http_request: Request, kind: str, update_id: str
    ) -> Response:
        org, project, stack = stack_path(http_request)
        _check_kind(kind)
        state.cancel_update(who, org, project, stack, update_id)
        return Response(status_code=204)

    return router


def _update_creator(service: Service, kind: UpdateKind) -> Callable[..., Awaitable[JSONResponse]]:
    """The handler of `POST .../{kind}` for one kind of update (one route per kind, so these
    never shadow the stack's other POST routes)."""

    async def create_update(
        who: Annotated[Caller, Depends(service.caller)],
        http_request: Request,
        request: Annotated[AppUpdateProgramRequest, Body()],
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        update_id = service.state.create_update(
            who,
            org,
            project,
            stack,
            kind=kind,
            dry_run=request.options.dry_run,
            program=request.to_wire(),
        )
        return json_response(AppUpdateProgramResponse(update_id=update_id))

    return create_update


def _check_kind(kind: str) -> None:
    """Paths under an update name its kind; the CLI always says `update`, whatever it runs."""
    if kind not in PROGRAM_KINDS:
        raise ServiceFault(404, f"Not Found: no such kind of update: {kind!r}")
