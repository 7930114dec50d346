"""Pulumi ESC's environment calls: listing, definitions, metadata, clones, evaluation (`open`,
`yaml/check`), tags, revisions and revision tags.

Paths, bodies and headers follow the clients that call them: the `pulumi env` commands (the
esc CLI in `pkg/cmd/esc/cli/client` of pulumi v3.274.1) and `pulumi-esc-sdk`. A definition
travels as YAML in both directions (whatever Content-Type the client names: the CLI says
JSON); reads answer with its `ETag` and revision (`Pulumi-ESC-Revision`), an update may
name the ETag it started from in `If-Match`. A definition the service refuses answers 400
with the ESC diagnostics beside the usual `code` and `message`.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

import re
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from toolkit.emulator import serializers
from toolkit.emulator.esc_evaluation import property_at
from toolkit.emulator.routes.service import Service
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import Caller, CloneOptions, InvalidDefinitionFault, ServiceFault
from toolkit.models import (
    CloneEnvironmentRequest,
    CreateEnvironmentRequest,
    CreateEnvironmentRevisionTagRequest,
    CreateEnvironmentTagRequest,
    EnvironmentMetadata,
    OpenEnvironmentResponse,
    UpdateEnvironmentResponse,
    UpdateEnvironmentRevisionTagRequest,
    UpdateEnvironmentTagRequest,
)

ENVIRONMENTS = "/api/esc/environments"
ENVIRONMENT = ENVIRONMENTS + "/{org}/{project}/{env}"


def environments_router(service: Service) -> APIRouter:
    router = APIRouter()
    state = service.state
    Authenticated = Annotated[Caller, Depends(service.caller)]
    MaxResults = Annotated[int | None, Query(alias="maxResults", ge=1)]

    # --- Listing ------------------------------------------------------------------------

    # The org and the token are strings as sent: read from the request rather than declared,
    # each declared parameter costing FastAPI's resolution on every page.

    @router.get(ENVIRONMENTS)
    async def list_all_environments(
        who: Authenticated, http_request: Request, max_results: MaxResults = None
    ) -> JSONResponse:
        page = state.list_all_environments(
            who,
            limit=service.limit(max_results),
            continuation_token=http_request.query_params.get("continuationToken"),
        )
        return json_response(serializers.environment_list(page))

    @router.get(ENVIRONMENTS + "/{org}")
    async def list_environments(
        who: Authenticated, http_request: Request, max_results: MaxResults = None
    ) -> JSONResponse:
        page = state.list_environments(
            who,
            http_request.path_params["org"],
            limit=service.limit(max_results),
            continuation_token=http_request.query_params.get("continuationToken"),
        )
        return json_response(serializers.environment_list(page))

    # --- One environment ----------------------------------------------------------------

    @router.post(ENVIRONMENTS + "/{org}")
    async def create_environment(
        who: Authenticated, org: str, request: Annotated[CreateEnvironmentRequest, Body()]
    ) -> Response:
        state.create_environment(who, org, request.project, request.name)
        return json_response({})

    @router.get(ENVIRONMENT)
    async def get_environment(who: Authenticated, org: str, project: str, env: str) -> Response:
        return serializers.definition(state.environment_definition(who, org, project, env))

    @router.head(ENVIRONMENT)
    async def environment_exists(who: Authenticated, org: str, project: str, env: str) -> Response:
        state.get_environment(who, org, project, env)
        return Response(status_code=200)

    @router.get(ENVIRONMENT + "/metadata")
    async def get_environment_metadata(
        who: Authenticated, org: str, project: str, env: str
    ) -> JSONResponse:
        record = state.get_environment(who, org, project, env)
        body = EnvironmentMetadata(id=record.id, owned_by=serializers.user_info(record.owner))
        return json_response(body)

    @router.post(ENVIRONMENT + "/clone", status_code=204)
    async def clone_environment(
        who: Authenticated,
        org: str,
        project: str,
        env: str,
        request: Annotated[CloneEnvironmentRequest, Body()],
    ) -> Response:
        options = CloneOptions(
            version=request.version or None,
            history=request.preserve_history,
            access=request.preserve_access,
            environment_tags=request.preserve_environment_tags,
            revision_tags=request.preserve_revision_tags,
        )
        state.clone_environment(
            who,
            org,
            project,
            env,
            to_project=request.project or project,
            to_name=request.name,
            options=options,
        )
        return Response(status_code=204)

    @router.get(ENVIRONMENT + "/decrypt")
    async def decrypt_environment(who: Authenticated, org: str, project: str, env: str) -> Response:
        record = state.environment_definition(who, org, project, env, decrypt=True)
        return serializers.definition(record)

    @router.patch(ENVIRONMENT)
    async def update_environment(
        who: Authenticated,
        org: str,
        project: str,
        env: str,
        request: Request,
        if_match: Annotated[str | None, Header(alias="If-Match")] = None,
    ) -> Response:
        record = state.update_environment(
            who, org, project, env, await _text(request), if_match=if_match
        )
        # A clean update has no diagnostics, and the service leaves the field out: the
        # provider's `Environment` takes any list there, even an empty one, for a failed check.
        answer = json_response(UpdateEnvironmentResponse())
        answer.headers.update(serializers.revision_headers(record))
        return answer

    @router.delete(ENVIRONMENT)
    async def delete_environment(who: Authenticated, org: str, project: str, env: str) -> Response:
        state.delete_environment(who, org, project, env)
        return Response(status_code=200)

    # --- Evaluation ---------------------------------------------------------------------

    @router.post(ENVIRONMENTS + "/{org}/yaml/check")
    async def check_environment(
        who: Authenticated,
        org: str,
        request: Request,
        show_secrets: Annotated[bool, Query(alias="showSecrets")] = False,
    ) -> JSONResponse:
        evaluation = state.check_environment(who, org, await _text(request))
        if evaluation.failed:
            raise InvalidDefinitionFault(evaluation.diagnostics)
        body = serializers.evaluated_environment(
            evaluation, show_secrets=show_secrets, checked=True
        )
        return json_response(body)

    async def open_at(
        who: Caller, org: str, project: str, env: str, version: str | None, duration: str
    ) -> JSONResponse:
        session, evaluation = state.open_environment(
            who, org, project, env, version=version, seconds=_seconds(duration)
        )
        found = [serializers.diagnostic(d, f"{project}/{env}") for d in evaluation.diagnostics]
        return json_response(OpenEnvironmentResponse(id=session, diagnostics=found or None))

    @router.post(ENVIRONMENT + "/open")
    async def open_environment(
        who: Authenticated, org: str, project: str, env: str, duration: str = "2h"
    ) -> JSONResponse:
        return await open_at(who, org, project, env, None, duration)

    @router.post(ENVIRONMENT + "/versions/{version}/open")
    async def open_environment_at_version(
        who: Authenticated, org: str, project: str, env: str, version: str, duration: str = "2h"
    ) -> JSONResponse:
        return await open_at(who, org, project, env, version, duration)

    # pulumi-esc-sdk asks for the session's property at `open//{session}`.
    @router.get(ENVIRONMENT + "/open/{session}")
    @router.get(ENVIRONMENT + "/open//{session}")
    async def read_open_environment(
        who: Authenticated,
        org: str,
        project: str,
        env: str,
        session: str,
        property: str | None = None,
    ) -> JSONResponse:
        evaluation = state.opened_environment(who, org, project, env, session)
        if property is None:
            return json_response(serializers.evaluated_environment(evaluation, show_secrets=True))
        value = property_at(evaluation.values, property)
        if value is None:
            raise ServiceFault(404, f"Not Found: the environment has no property {property!r}")
        return json_response(value.to_wire(show_secrets=True))

    # --- Environment tags ---------------------------------------------------------------

    @router.get(ENVIRONMENT + "/tags")
    async def list_environment_tags(
        who: Authenticated,
        org: str,
        project: str,
        env: str,
        after: str | None = None,
        count: Annotated[int | None, Query(ge=0)] = None,
    ) -> JSONResponse:
        # `after` is the previous page's token; "0" (the last page's) resumes after nothing.
        resume = None if after in (None, "", serializers.LAST_TAG_PAGE) else after
        page = state.list_environment_tags(
            who, org, project, env, after=resume, count=count or None
        )
        return json_response(serializers.environment_tags(page))

    @router.post(ENVIRONMENT + "/tags")
    async def create_environment_tag(
        who: Authenticated,
        org: str,
        project: str,
        env: str,
        request: Annotated[CreateEnvironmentTagRequest, Body()],
    ) -> JSONResponse:
        tag = state.create_environment_tag(who, org, project, env, request.name, request.value)
        return json_response(serializers.environment_tag(tag))

    @router.get(ENVIRONMENT + "/tags/{tag}")
    async def get_environment_tag(
        who: Authenticated, org: str, project: str, env: str, tag: str
    ) -> JSONResponse:
        return json_response(
            serializers.environment_tag(state.environment_tag(who, org, project, env, tag))
        )

    @router.patch(ENVIRONMENT + "/tags/{tag}")
    async def update_environment_tag(
        who: Authenticated,
        org: str,
        project: str,
        env: str,
        tag: str,
        request: Annotated[UpdateEnvironmentTagRequest, Body()],
    ) -> JSONResponse:
        updated = state.update_environment_tag(
            who,
            org,
            project,
            env,
            tag,
            current_value=request.current_tag.value,
            new_name=request.new_tag.name or "",
            new_value=request.new_tag.value or "",
        )
        return json_response(serializers.environment_tag(updated))

    @router.delete(ENVIRONMENT + "/tags/{tag}")
    async def delete_environment_tag(
        who: Authenticated, org: str, project: str, env: str, tag: str
    ) -> Response:
        state.delete_environment_tag(who, org, project, env, tag)
        return Response(status_code=204)

    # --- Revisions and revision tags ----------------------------------------------------

    @router.get(ENVIRONMENT + "/versions")
    async def list_revisions(
        who: Authenticated,
        org: str,
        project: str,
        env: str,
        before: Annotated[int | None, Query(ge=0)] = None,
        count: Annotated[int | None, Query(ge=0)] = None,
    ) -> JSONResponse:
        # 0 is how the CLI says "no bound" (`env version history` sends before=0).
        revisions = state.list_revisions(
            who, org, project, env, before=before or None, count=count or None
        )
        return JSONResponse([serializers.environment_revision(r).to_wire() for r in revisions])

    @router.get(ENVIRONMENT + "/versions/tags")
    async def list_revision_tags(
        who: Authenticated,
        org: str,
        project: str,
        env: str,
        after: str | None = None,
        count: Annotated[int | None, Query(ge=0)] = None,
    ) -> JSONResponse:
        tags = state.list_revision_tags(
            who, org, project, env, after=after or None, count=count or None
        )
        return json_response(serializers.revision_tags(tags))

    @router.post(ENVIRONMENT + "/versions/tags", status_code=204)
    async def create_revision_tag(
        who: Authenticated,
        org: str,
        project: str,
        env: str,
        request: Annotated[CreateEnvironmentRevisionTagRequest, Body()],
    ) -> Response:
        state.create_revision_tag(who, org, project, env, request.name, request.revision or None)
        return Response(status_code=204)

    @router.get(ENVIRONMENT + "/versions/tags/{tag}")
    async def get_revision_tag(
        who: Authenticated, org: str, project: str, env: str, tag: str
    ) -> JSONResponse:
        return json_response(
            serializers.revision_tag(state.revision_tag(who, org, project, env, tag))
        )

    @router.patch(ENVIRONMENT + "/versions/tags/{tag}", status_code=204)
    async def update_revision_tag(
        who: Authenticated,
        org: str,
        project: str,
        env: str,
        tag: str,
        request: Annotated[UpdateEnvironmentRevisionTagRequest, Body()],
    ) -> Response:
        state.update_revision_tag(who, org, project, env, tag, request.revision or None)
        return Response(status_code=204)

    @router.delete(ENVIRONMENT + "/versions/tags/{tag}", status_code=204)
    async def delete_revision_tag(
        who: Authenticated, org: str, project: str, env: str, tag: str
    ) -> Response:
        state.delete_revision_tag(who, org, project, env, tag)
        return Response(status_code=204)

    # After `/versions/tags`, which these would otherwise take for a version named "tags".
    @router.get(ENVIRONMENT + "/versions/{version}")
    async def get_environment_at_version(
        who: Authenticated, org: str, project: str, env: str, version: str
    ) -> Response:
        record = state.environment_definition(who, org, project, env, version=version)
        return serializers.definition(record)

    @router.get(ENVIRONMENT + "/versions/{version}/decrypt")
    async def decrypt_environment_at_version(
        who: Authenticated, org: str, project: str, env: str, version: str
    ) -> Response:
        record = state.environment_definition(who, org, project, env, version=version, decrypt=True)
        return serializers.definition(record)

    return router


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _seconds(duration: str) -> float:
    """A Go duration (`2h0m0s`, `90m`, `30s`) in seconds; 400 for anything else."""
    parts = _DURATION_PART.findall(duration)
    if not duration or "".join(n + u for n, u in parts) != duration:
        raise ServiceFault(400, f"Bad Request: invalid duration {duration!r}")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ServiceFault(400, f"Bad Request: the duration {duration!r} is not positive")
    return seconds


async def _text(request: Request) -> str:
    """A request's body as the UTF-8 text of a definition; 400 for anything else."""
    body = await request.body()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ServiceFault(400, "Bad Request: the definition is not UTF-8 text") from None
