"""The calls the `pulumi` CLI makes to a Pulumi Cloud backend, over `ServiceState`.

With these, the unmodified CLI works against the emulator after `pulumi login <url>`: stack
init/select/ls/rm/rename/tag, export and import, secrets through the stack's own key, and the
update lifecycle of `up`, `preview`, `refresh` and `destroy` (create, start with a lease,
full checkpoints, engine events, lease renewal, complete, cancel). The calls and their bodies
follow the CLI's client (`pkg/backend/httpstate/client` in pulumi v3.274.1); their shapes are
in `cli_models`.

Capabilities advertise only what is implemented: batch encryption. So the CLI sends whole
checkpoints (no deltas, no journal) of deployment schema version 3.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.responses import JSONResponse

from toolkit.emulator import responses
from toolkit.emulator.cli_models import (
    AppAPICapabilityConfig,
    AppCapabilitiesResponse,
    AppCompleteUpdateRequest,
    AppCreateStackResponse,
    AppDecryptValueRequest,
    AppDecryptValueResponse,
    AppEncryptValueRequest,
    AppEncryptValueResponse,
    AppEngineEventBatch,
    AppGetDefaultOrganizationResponse,
    AppPatchUpdateCheckpointRequest,
    AppRenewUpdateLeaseRequest,
    AppRenewUpdateLeaseResponse,
    AppStartUpdateRequest,
    AppStartUpdateResponse,
    AppUpdateProgramRequest,
    AppUpdateProgramResponse,
    StackTag,
)
from toolkit.emulator.responses import json_response
from toolkit.emulator.state import FINISHED, Caller, ServiceFault, ServiceState, UpdateKind
from toolkit.models import (
    AppBatchDecryptRequest,
    AppBatchDecryptResponse,
    AppBatchEncryptRequest,
    AppBatchEncryptResponse,
    AppCreateStackRequest,
    AppImportStackResponse,
    AppUntypedDeployment,
    AppUpdateResults,
)

STACK = "/api/stacks/{org}/{project}/{stack}"
UPDATE = STACK + "/{kind}/{update_id}"
PROGRAM_KINDS: tuple[UpdateKind, ...] = ("update", "preview", "refresh", "destroy")
"""The kinds of update the CLI creates by running a program (an import is made by the service)."""


def cli_router(
    state: ServiceState,
    authenticate: Callable[..., Awaitable[Caller]],
    lease_token: Callable[..., Awaitable[str | None]],
) -> APIRouter:
    """The CLI's calls, with the app's dependencies for the caller (`Authorization: token`)
    and for an update's lease (`Authorization: update-token`)."""
    router = APIRouter()
    Authenticated = Annotated[Caller, Depends(authenticate)]
    LeaseToken = Annotated[str | None, Depends(lease_token)]

    @router.get("/api/capabilities")
    async def get_capabilities() -> JSONResponse:
        body = AppCapabilitiesResponse(
            capabilities=[AppAPICapabilityConfig(capability="batch-encrypt", version=1)]
        )
        return json_response(body)

    @router.get("/api/user/organizations/default")
    async def get_default_org(who: Authenticated) -> JSONResponse:
        body = AppGetDefaultOrganizationResponse(git_hub_login=state.default_org(who))
        return json_response(body)

    @router.head("/api/stacks/{org}/{project}")
    async def project_exists(who: Authenticated, org: str, project: str) -> Response:
        return Response(status_code=200 if state.project_exists(who, org, project) else 404)

    @router.post("/api/stacks/{org}/{project}")
    async def create_stack(
        who: Authenticated,
        org: str,
        project: str,
        request: Annotated[AppCreateStackRequest, Body()],
    ) -> JSONResponse:
        if request.state is not None or request.config is not None:
            raise ServiceFault(
                400, "Bad Request: the emulator creates stacks without initial state or config"
            )
        state.create_stack(who, org, project, request.stack_name, tags=request.tags or {})
        return json_response(AppCreateStackResponse())

    @router.patch(STACK + "/tags", status_code=204)
    async def replace_stack_tags(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        tags: Annotated[dict[str, str], Body()],
    ) -> Response:
        state.replace_stack_tags(who, org, project, stack, tags)
        return Response(status_code=204)

    @router.post(STACK + "/tags", status_code=204)
    async def add_stack_tag(
        who: Authenticated, org: str, project: str, stack: str, tag: Annotated[StackTag, Body()]
    ) -> Response:
        state.set_stack_tag(who, org, project, stack, name=tag.name, value=tag.value)
        return Response(status_code=204)

    @router.patch(STACK + "/tags/{tag_name}", status_code=204)
    async def update_stack_tag(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        tag_name: str,
        tag: Annotated[StackTag, Body()],
    ) -> Response:
        if tag.name != tag_name:
            raise ServiceFault(400, f"Bad Request: the tag {tag.name!r} is not {tag_name!r}")
        state.set_stack_tag(who, org, project, stack, name=tag.name, value=tag.value)
        return Response(status_code=204)

    @router.delete(STACK + "/tags/{tag_name}", status_code=204)
    async def delete_stack_tag(
        who: Authenticated, org: str, project: str, stack: str, tag_name: str
    ) -> Response:
        state.delete_stack_tag(who, org, project, stack, name=tag_name)
        return Response(status_code=204)

    @router.get(STACK + "/export")
    async def export_stack(who: Authenticated, org: str, project: str, stack: str) -> JSONResponse:
        return json_response(state.export_deployment(who, org, project, stack))

    @router.get(STACK + "/export/{version}")
    async def export_stack_version(
        who: Authenticated, org: str, project: str, stack: str, version: int
    ) -> JSONResponse:
        return json_response(state.export_deployment(who, org, project, stack, version=version))

    @router.post(STACK + "/import")
    async def import_stack(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        deployment: Annotated[AppUntypedDeployment, Body()],
    ) -> JSONResponse:
        update_id = state.import_deployment(who, org, project, stack, deployment.to_wire())
        return json_response(AppImportStackResponse(update_id=update_id))

    @router.post(STACK + "/encrypt")
    async def encrypt_value(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        request: Annotated[AppEncryptValueRequest, Body()],
    ) -> JSONResponse:
        (ciphertext,) = state.encrypt_values(
            who, org, project, stack, [_from_base64(request.plaintext)]
        )
        return json_response(AppEncryptValueResponse(ciphertext=_to_base64(ciphertext)))

    @router.post(STACK + "/decrypt")
    async def decrypt_value(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        request: Annotated[AppDecryptValueRequest, Body()],
    ) -> JSONResponse:
        (plaintext,) = state.decrypt_values(
            who, org, project, stack, [_from_base64(request.ciphertext)]
        )
        return json_response(AppDecryptValueResponse(plaintext=_to_base64(plaintext)))

    @router.post(STACK + "/batch-encrypt")
    async def batch_encrypt(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        request: Annotated[AppBatchEncryptRequest, Body()],
    ) -> JSONResponse:
        plaintexts = [_from_base64(text) for text in request.plaintexts]
        ciphertexts = state.encrypt_values(who, org, project, stack, plaintexts)
        return json_response(
            AppBatchEncryptResponse(ciphertexts=[_to_base64(c) for c in ciphertexts])
        )

    @router.post(STACK + "/batch-decrypt")
    async def batch_decrypt(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        request: Annotated[AppBatchDecryptRequest, Body()],
    ) -> JSONResponse:
        ciphertexts = [_from_base64(text) for text in request.ciphertexts]
        plaintexts = state.decrypt_values(who, org, project, stack, ciphertexts)
        opened = {
            sent: _to_base64(plaintext)
            for sent, plaintext in zip(request.ciphertexts, plaintexts, strict=True)
        }
        return json_response(AppBatchDecryptResponse(plaintexts=opened))

    @router.post(STACK + "/decrypt/log-decryption", status_code=204)
    @router.post(STACK + "/decrypt/log-batch-decryption", status_code=204)
    async def log_decryption(who: Authenticated, org: str, project: str, stack: str) -> Response:
        # The service audits `--show-secrets`; the emulator keeps no audit log, but the stack
        # must exist and the caller must see it.
        state.get_stack(who, org, project, stack)
        return Response(status_code=204)

    @router.get(STACK + "/updates")
    async def get_stack_updates(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        page_size: Annotated[int, Query(alias="pageSize", ge=1, le=500)] = 100,
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> JSONResponse:
        updates = state.update_history(who, org, project, stack, page_size=page_size, page=page)
        return json_response(responses.update_history(updates))

    @router.get(STACK + "/updates/latest")
    async def get_latest_stack_update(
        who: Authenticated, org: str, project: str, stack: str
    ) -> JSONResponse:
        updates = state.update_history(who, org, project, stack, page_size=1, page=1)
        if not updates:
            raise ServiceFault(404, f"Not Found: stack {org}/{project}/{stack} has no updates")
        (latest,) = updates
        return json_response(responses.latest_update(latest))

    for kind in PROGRAM_KINDS:
        router.add_api_route(
            f"{STACK}/{kind}", _update_creator(state, authenticate, kind), methods=["POST"]
        )

    @router.get(UPDATE)
    async def get_update_status(
        who: Authenticated, org: str, project: str, stack: str, kind: str, update_id: str
    ) -> JSONResponse:
        _check_kind(kind)
        update = state.get_update(who, org, project, stack, update_id)
        finished = update.status in FINISHED
        # A continuation token tells a polling CLI that more may come; none, that it is over.
        results = AppUpdateResults(
            status=update.status, events=[], continuation_token=None if finished else "0"
        )
        return json_response(results)

    @router.post(UPDATE)
    async def start_update(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        kind: str,
        update_id: str,
        request: Annotated[AppStartUpdateRequest, Body()],
    ) -> JSONResponse:
        _check_kind(kind)
        lease = state.start_update(who, org, project, stack, update_id, tags=request.tags)
        body = AppStartUpdateResponse(
            version=lease.version, token=lease.token, token_expiration=lease.expires
        )
        return json_response(body)

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

    @router.post(UPDATE + "/events/batch", status_code=204)
    async def post_engine_events(
        token: LeaseToken,
        kind: str,
        update_id: str,
        batch: Annotated[AppEngineEventBatch, Body()],
    ) -> Response:
        _check_kind(kind)
        state.record_events(token, update_id, batch.events)
        return Response(status_code=204)

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
        who: Authenticated, org: str, project: str, stack: str, kind: str, update_id: str
    ) -> Response:
        _check_kind(kind)
        state.cancel_update(who, org, project, stack, update_id)
        return Response(status_code=204)

    return router


def _update_creator(
    state: ServiceState, authenticate: Callable[..., Awaitable[Caller]], kind: UpdateKind
) -> Callable[..., Awaitable[JSONResponse]]:
    """The handler of `POST .../{kind}` for one kind of update (one route per kind, so these
    never shadow the stack's other POST routes)."""

    async def create_update(
        who: Annotated[Caller, Depends(authenticate)],
        org: str,
        project: str,
        stack: str,
        request: Annotated[AppUpdateProgramRequest, Body()],
    ) -> JSONResponse:
        update_id = state.create_update(
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


def _from_base64(text: str) -> bytes:
    """Bytes the CLI sent base64-encoded (how Go writes `[]byte` in JSON)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceFault(400, "Bad Request: a value is not valid base64") from None


def _to_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
