"""The calls on stacks: listing, creating, reading, renaming, transferring and deleting them,
their tags, and their secrets, sealed and opened with the stack's own key.

The REST API's calls follow Pulumi's API document; those the `pulumi` CLI makes (stack
init/select/ls/rm/rename/tag, its secrets) follow its client (`pkg/backend/httpstate/client`
in pulumi v3.274.1), their shapes in `cli_models`. The pulumiservice provider's `StackTag(s)`
resources set tags with the CLI's calls.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from toolkit.emulator import serializers
from toolkit.emulator.cli_models import (
    AppCreateStackResponse,
    AppDecryptValueRequest,
    AppDecryptValueResponse,
    AppEncryptValueRequest,
    AppEncryptValueResponse,
    StackTag,
)
from toolkit.emulator.routes.service import Service, project_path, stack_path
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import Caller, ServiceFault
from toolkit.models import (
    AppBatchDecryptRequest,
    AppBatchDecryptResponse,
    AppBatchEncryptRequest,
    AppBatchEncryptResponse,
    AppCreateStackRequest,
    AppImportStackResponse,
    AppStackRenameRequest,
    TransferStackRequest,
)

STACK = "/api/stacks/{org}/{project}/{stack}"


def stacks_router(service: Service) -> APIRouter:
    router = APIRouter()
    state = service.state
    Authenticated = Annotated[Caller, Depends(service.caller)]

    # --- Listing ------------------------------------------------------------------------

    @router.get("/api/user/stacks")
    async def list_user_stacks(
        who: Authenticated,
        http_request: Request,
        max_results: Annotated[int | None, Query(alias="maxResults", ge=1)] = None,
    ) -> JSONResponse:
        # The filters and the token are strings as sent: read from the query rather than
        # declared, each declared parameter costing FastAPI's resolution on every page.
        query = http_request.query_params
        page = state.list_stacks(
            who,
            limit=service.limit(max_results),
            organization=query.get("organization"),
            project=query.get("project"),
            tag_name=query.get("tagName"),
            tag_value=query.get("tagValue"),
            continuation_token=query.get("continuationToken"),
        )
        return json_response(serializers.stack_list(page))

    # --- One stack ----------------------------------------------------------------------

    @router.head("/api/stacks/{org}/{project}")
    async def project_exists(who: Authenticated, org: str, project: str) -> Response:
        return Response(status_code=200 if state.project_exists(who, org, project) else 404)

    @router.post("/api/stacks/{org}/{project}")
    async def create_stack(
        who: Authenticated,
        http_request: Request,
        request: Annotated[AppCreateStackRequest, Body()],
    ) -> JSONResponse:
        org, project = project_path(http_request)
        if request.state is not None or request.config is not None:
            raise ServiceFault(
                400, "Bad Request: the emulator creates stacks without initial state or config"
            )
        state.create_stack(who, org, project, request.stack_name, tags=request.tags or {})
        return json_response(AppCreateStackResponse())

    @router.get(STACK)
    async def get_stack(who: Authenticated, http_request: Request) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        return json_response(serializers.stack(state.get_stack(who, org, project, stack)))

    @router.post(STACK + "/rename")
    async def rename_stack(
        who: Authenticated,
        http_request: Request,
        request: Annotated[AppStackRenameRequest, Body()],
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        update_id = state.rename_stack(
            who, org, project, stack, new_project=request.new_project, new_name=request.new_name
        )
        return json_response(AppImportStackResponse(update_id=update_id))

    @router.post(STACK + "/transfer", status_code=204)
    async def transfer_stack(
        who: Authenticated,
        http_request: Request,
        request: Annotated[TransferStackRequest, Body()],
    ) -> Response:
        org, project, stack = stack_path(http_request)
        stated = {
            "fromOrg": (request.from_org, org),
            "projectName": (request.project_name, project),
            "stackName": (request.stack_name, stack),
        }
        for field, (given, in_path) in stated.items():
            if given is not None and given != in_path:
                raise ServiceFault(
                    400, f"Bad Request: {field} {given!r} disagrees with the path ({in_path!r})"
                )
        state.transfer_stack(who, org, project, stack, to_org=request.to_org)
        return Response(status_code=204)

    @router.delete(STACK, status_code=204)
    async def delete_stack(
        who: Authenticated, http_request: Request, force: bool = False
    ) -> Response:
        org, project, stack = stack_path(http_request)
        state.delete_stack(who, org, project, stack, force=force)
        return Response(status_code=204)

    # --- Tags ---------------------------------------------------------------------------

    @router.patch(STACK + "/tags", status_code=204)
    async def replace_stack_tags(
        who: Authenticated,
        http_request: Request,
        tags: Annotated[dict[str, str], Body()],
    ) -> Response:
        org, project, stack = stack_path(http_request)
        state.replace_stack_tags(who, org, project, stack, tags)
        return Response(status_code=204)

    @router.post(STACK + "/tags", status_code=204)
    async def add_stack_tag(
        who: Authenticated, http_request: Request, tag: Annotated[StackTag, Body()]
    ) -> Response:
        org, project, stack = stack_path(http_request)
        state.set_stack_tag(who, org, project, stack, name=tag.name, value=tag.value)
        return Response(status_code=204)

    @router.patch(STACK + "/tags/{tag_name}", status_code=204)
    async def update_stack_tag(
        who: Authenticated,
        http_request: Request,
        tag_name: str,
        tag: Annotated[StackTag, Body()],
    ) -> Response:
        org, project, stack = stack_path(http_request)
        if tag.name != tag_name:
            raise ServiceFault(400, f"Bad Request: the tag {tag.name!r} is not {tag_name!r}")
        state.set_stack_tag(who, org, project, stack, name=tag.name, value=tag.value)
        return Response(status_code=204)

    @router.delete(STACK + "/tags/{tag_name}", status_code=204)
    async def delete_stack_tag(
        who: Authenticated, http_request: Request, tag_name: str
    ) -> Response:
        org, project, stack = stack_path(http_request)
        state.delete_stack_tag(who, org, project, stack, name=tag_name)
        return Response(status_code=204)

    # --- Secrets ------------------------------------------------------------------------

    @router.post(STACK + "/encrypt")
    async def encrypt_value(
        who: Authenticated,
        http_request: Request,
        request: Annotated[AppEncryptValueRequest, Body()],
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        (ciphertext,) = state.encrypt_values(
            who, org, project, stack, [_from_base64(request.plaintext)]
        )
        return json_response(AppEncryptValueResponse(ciphertext=_to_base64(ciphertext)))

    @router.post(STACK + "/decrypt")
    async def decrypt_value(
        who: Authenticated,
        http_request: Request,
        request: Annotated[AppDecryptValueRequest, Body()],
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        (plaintext,) = state.decrypt_values(
            who, org, project, stack, [_from_base64(request.ciphertext)]
        )
        return json_response(AppDecryptValueResponse(plaintext=_to_base64(plaintext)))

    @router.post(STACK + "/batch-encrypt")
    async def batch_encrypt(
        who: Authenticated,
        http_request: Request,
        request: Annotated[AppBatchEncryptRequest, Body()],
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        plaintexts = [_from_base64(text) for text in request.plaintexts]
        ciphertexts = state.encrypt_values(who, org, project, stack, plaintexts)
        return json_response(
            AppBatchEncryptResponse(ciphertexts=[_to_base64(c) for c in ciphertexts])
        )

    @router.post(STACK + "/batch-decrypt")
    async def batch_decrypt(
        who: Authenticated,
        http_request: Request,
        request: Annotated[AppBatchDecryptRequest, Body()],
    ) -> JSONResponse:
        org, project, stack = stack_path(http_request)
        ciphertexts = [_from_base64(text) for text in request.ciphertexts]
        plaintexts = state.decrypt_values(who, org, project, stack, ciphertexts)
        opened = {
            sent: _to_base64(plaintext)
            for sent, plaintext in zip(request.ciphertexts, plaintexts, strict=True)
        }
        return json_response(AppBatchDecryptResponse(plaintexts=opened))

    @router.post(STACK + "/decrypt/log-decryption", status_code=204)
    @router.post(STACK + "/decrypt/log-batch-decryption", status_code=204)
    async def log_decryption(who: Authenticated, http_request: Request) -> Response:
        org, project, stack = stack_path(http_request)
        # The service audits `--show-secrets`; the emulator keeps no audit log, but the stack
        # must exist and the caller must see it.
        state.get_stack(who, org, project, stack)
        return Response(status_code=204)

    return router


def _from_base64(text: str) -> bytes:
    """Bytes the CLI sent base64-encoded (how Go writes `[]byte` in JSON)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceFault(400, "Bad Request: a value is not valid base64") from None


def _to_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
