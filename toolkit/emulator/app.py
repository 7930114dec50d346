"""The emulator's HTTP layer: Pulumi Cloud's paths over `ServiceState`.

Handlers only parse the request, call the state and answer with what `responses` makes of
the records it returns; the rules live in `state`. The calls only the `pulumi` CLI makes
(stack init, export/import, secrets, the update lifecycle) are in `cli_api.py`, ESC's
environment calls in `esc_api.py`, those on teams and org members (the pulumiservice
provider's) in `teams_api.py`. Around every
service request an ASGI middleware adds the configured latency, applies armed faults and
fault rates, and records the request.
Paths under `/_emulator/` control those knobs (and restart the server) and are neither
delayed, faulted nor logged.

(No `from __future__ import annotations` here: FastAPI reads the handlers' annotations at
runtime, and some of them name aliases local to `create_app`.)
"""

import asyncio
import gzip
import time
from typing import Annotated, Literal, Protocol

from fastapi import Body, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolkit.emulator import responses
from toolkit.emulator.cli_api import cli_router
from toolkit.emulator.esc_api import esc_router
from toolkit.emulator.faults import (
    FaultInjector,
    FaultRates,
    FaultRule,
    RecordedRequest,
    RequestLog,
)
from toolkit.emulator.responses import json_response
from toolkit.emulator.state import Caller, InvalidDefinitionFault, ServiceFault, ServiceState
from toolkit.emulator.teams_api import teams_router
from toolkit.models import (
    AgentClaimRequest,
    AgentSignupRequest,
    AppImportStackResponse,
    AppStackRenameRequest,
    EnvironmentDiagnosticsResponse,
    ErrorResponse,
    TransferStackRequest,
)
from toolkit.redaction import redact

CONTROL_PREFIX = "/_emulator/"

INSIGHTS_MAX_COUNT = 1000
"""The largest `count` the Insights account listing takes: Pulumi's OpenAPI document answers
any other with 400 "count must be in the range [1, 1000]"."""


class Restarter(Protocol):
    """The server running the app, as `POST /_emulator/restart` needs it."""

    @property
    def restarts(self) -> int:
        """Restarts completed so far."""
        ...

    def restart_soon(self, down_seconds: float) -> None:
        """Restart from another thread, once the current answer has left; return at once."""
        ...


def create_app(
    state: ServiceState,
    *,
    page_size: int = 100,
    max_page_size: int | None = None,
    faults: FaultInjector | None = None,
    requests: RequestLog | None = None,
    restarter: Restarter | None = None,
) -> FastAPI:
    """A FastAPI app serving `state` as Pulumi Cloud does, with the test knobs applied
    (latency, faults, fault rates: `faults`); `POST /_emulator/restart` only with a
    `restarter`.

    `page_size` is the page a list call gets when it names no size, `max_page_size` (by
    default the same) the largest it gets whatever it asks.
    """
    largest_page = page_size if max_page_size is None else max_page_size
    if page_size < 1:
        raise ValueError(f"the page size must be at least 1, got {page_size}")
    if largest_page < page_size:
        raise ValueError(
            f"the largest page ({largest_page}) must be at least the default one ({page_size})"
        )
    faults = faults if faults is not None else FaultInjector()
    requests = requests if requests is not None else RequestLog()
    app = FastAPI(title="Pulumi Cloud emulator", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(_GzipRequestBodies)
    app.add_middleware(_Instrumentation, faults=faults, requests=requests)
    _add_error_handlers(app)

    async def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
        return state.authenticate(_credential(authorization, "token"))

    async def token_if_sent(authorization: Annotated[str | None, Header()] = None) -> None:
        if authorization is not None:
            state.authenticate(_credential(authorization, "token"))

    async def lease_token(authorization: Annotated[str | None, Header()] = None) -> str | None:
        return _credential(authorization, "update-token")

    def limit(requested: int | None) -> int:
        """The page size of a list call: the default when none was asked, else what was asked
        (the query refuses less than 1), at most the largest page. A larger ask gets a
        smaller page rather than a refusal: the OpenAPI document names no bound for
        `maxResults` or `limit`, and a client follows the continuation token either way."""
        return page_size if requested is None else min(requested, largest_page)

    Authenticated = Annotated[Caller, Depends(caller)]

    @app.get("/api/user")
    async def get_current_user(who: Authenticated) -> JSONResponse:
        return json_response(responses.user(state.current_user(who)))

    @app.get("/api/user/stacks")
    async def list_user_stacks(
        who: Authenticated,
        organization: str | None = None,
        project: str | None = None,
        tag_name: Annotated[str | None, Query(alias="tagName")] = None,
        tag_value: Annotated[str | None, Query(alias="tagValue")] = None,
        max_results: Annotated[int | None, Query(alias="maxResults", ge=1)] = None,
        continuation_token: Annotated[str | None, Query(alias="continuationToken")] = None,
    ) -> JSONResponse:
        page = state.list_stacks(
            who,
            limit=limit(max_results),
            organization=organization,
            project=project,
            tag_name=tag_name,
            tag_value=tag_value,
            continuation_token=continuation_token,
        )
        return json_response(responses.stack_list(page))

    @app.get("/api/stacks/{org}/{project}/{stack}")
    async def get_stack(who: Authenticated, org: str, project: str, stack: str) -> JSONResponse:
        return json_response(responses.stack(state.get_stack(who, org, project, stack)))

    @app.post("/api/stacks/{org}/{project}/{stack}/rename")
    async def rename_stack(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        request: Annotated[AppStackRenameRequest, Body()],
    ) -> JSONResponse:
        update_id = state.rename_stack(
            who, org, project, stack, new_project=request.new_project, new_name=request.new_name
        )
        return json_response(AppImportStackResponse(update_id=update_id))

    @app.post("/api/stacks/{org}/{project}/{stack}/transfer", status_code=204)
    async def transfer_stack(
        who: Authenticated,
        org: str,
        project: str,
        stack: str,
        request: Annotated[TransferStackRequest, Body()],
    ) -> Response:
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

    @app.delete("/api/stacks/{org}/{project}/{stack}", status_code=204)
    async def delete_stack(
        who: Authenticated, org: str, project: str, stack: str, force: bool = False
    ) -> Response:
        state.delete_stack(who, org, project, stack, force=force)
        return Response(status_code=204)

    @app.get("/api/preview/insights/{org}/accounts")
    async def list_insights_accounts(
        who: Authenticated,
        org: str,
        count: int | None = None,
        continuation_token: Annotated[str | None, Query(alias="continuationToken")] = None,
    ) -> JSONResponse:
        if count is not None and not 1 <= count <= INSIGHTS_MAX_COUNT:
            raise ServiceFault(400, f"count must be in the range [1, {INSIGHTS_MAX_COUNT}]")
        page = state.list_insights_accounts(
            who, org, limit=limit(count), continuation_token=continuation_token
        )
        return json_response(responses.insights_account_list(page))

    @app.get("/api/preview/registry/packages")
    async def list_registry_packages(
        who: Authenticated,
        org_login: Annotated[str | None, Query(alias="orgLogin")] = None,
        page_limit: Annotated[int | None, Query(alias="limit", ge=1)] = None,
        continuation_token: Annotated[str | None, Query(alias="continuationToken")] = None,
    ) -> JSONResponse:
        page = state.list_registry_packages(
            who,
            limit=limit(page_limit),
            org_login=org_login,
            continuation_token=continuation_token,
        )
        return json_response(responses.package_list(page))

    # Sign-up needs no credentials: the proof of work stands in for them.
    @app.get("/api/agents/signup")
    async def signup_challenge() -> JSONResponse:
        return json_response(responses.signup_challenge(state.signup_challenge()))

    @app.post("/api/agents/signup")
    async def signup(request: Annotated[AgentSignupRequest, Body()]) -> JSONResponse:
        account = state.sign_up_agent(request.challenge_id, request.challenge_result)
        return json_response(responses.signup(account))

    # The claim token is the credential here; an access token, if sent, must still be valid.
    @app.get("/api/agents/signup/validate/{claim_token}", dependencies=[Depends(token_if_sent)])
    async def validate_claim_token(claim_token: str) -> JSONResponse:
        return json_response(responses.claim(state.validate_claim(claim_token)))

    @app.post("/api/agents/{org}/claim")
    async def claim(
        who: Authenticated,
        org: str,
        request: Annotated[AgentClaimRequest, Body()],
        dry_run: Annotated[bool, Query(alias="dryRun")] = False,
    ) -> JSONResponse:
        if not request.claim_token:
            raise ServiceFault(400, "Bad Request: claimToken is missing")
        record = state.claim(
            who,
            org,
            request.claim_token,
            request.conflicts_resolution or [],
            dry_run=dry_run,
        )
        return json_response(responses.claim(record))

    @app.get("/api/agents/{org}/claim/status")
    async def claim_status(who: Authenticated, org: str) -> JSONResponse:
        return json_response(responses.claims_status(state.claims_status(who, org)))

    app.include_router(cli_router(state, caller, lease_token))
    app.include_router(esc_router(state, caller, limit))
    app.include_router(teams_router(state, caller))
    _add_control_routes(app, state, faults, requests)
    if restarter is not None:
        _add_restart_routes(app, restarter)
    return app


class ClockAdvance(BaseModel):
    """The body of `POST /_emulator/clock`."""

    model_config = ConfigDict(extra="forbid")

    advance_seconds: float = Field(alias="advanceSeconds", ge=0, allow_inf_nan=False)


class Latency(BaseModel):
    """The body of `PUT /_emulator/latency`."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(alias="latencyMs", ge=0)


class Restart(BaseModel):
    """The body of `POST /_emulator/restart` (optional)."""

    model_config = ConfigDict(extra="forbid")

    down_seconds: float = Field(default=0.0, alias="downSeconds", ge=0, le=300)
    """How long nothing listens between the stop and the start."""


def _add_control_routes(
    app: FastAPI, state: ServiceState, faults: FaultInjector, requests: RequestLog
) -> None:
    """The `/_emulator/` endpoints: move the service's clock forward, arm and clear faults,
    set and clear fault rates (and read what they did), set the latency, read and clear the
    request log."""

    def clock() -> JSONResponse:
        return json_response(
            {"now": state.now().isoformat(), "offsetSeconds": state.clock_offset()}
        )

    @app.get(CONTROL_PREFIX + "clock")
    async def read_clock() -> JSONResponse:
        return clock()

    @app.post(CONTROL_PREFIX + "clock")
    async def advance_clock(body: Annotated[ClockAdvance, Body()]) -> JSONResponse:
        state.advance_clock(body.advance_seconds)
        return clock()

    @app.post(CONTROL_PREFIX + "faults", status_code=201)
    async def arm_fault(rule: Annotated[FaultRule, Body()]) -> JSONResponse:
        faults.arm(rule)
        return json_response(rule.model_dump(mode="json", by_alias=True), status=201)

    @app.get(CONTROL_PREFIX + "faults")
    async def list_faults() -> JSONResponse:
        armed = [
            {**a.rule.model_dump(mode="json", by_alias=True), "remaining": a.remaining}
            for a in faults.armed()
        ]
        return json_response({"faults": armed})

    @app.delete(CONTROL_PREFIX + "faults", status_code=204)
    async def clear_faults() -> Response:
        faults.clear()
        return Response(status_code=204)

    def fault_rates() -> JSONResponse:
        rates = faults.rates()
        counts = faults.rate_counts()
        return json_response(
            {
                "rates": None if rates is None else rates.model_dump(mode="json", by_alias=True),
                "considered": counts.considered,
                "fired": counts.fired,
            }
        )

    @app.put(CONTROL_PREFIX + "fault-rates")
    async def set_fault_rates(rates: Annotated[FaultRates, Body()]) -> JSONResponse:
        faults.set_rates(rates)
        return fault_rates()

    @app.get(CONTROL_PREFIX + "fault-rates")
    async def read_fault_rates() -> JSONResponse:
        return fault_rates()

    @app.delete(CONTROL_PREFIX + "fault-rates", status_code=204)
    async def clear_fault_rates() -> Response:
        faults.clear_rates()
        return Response(status_code=204)

    @app.get(CONTROL_PREFIX + "latency")
    async def read_latency() -> JSONResponse:
        return json_response({"latencyMs": faults.latency_ms})

    @app.put(CONTROL_PREFIX + "latency")
    async def set_latency(body: Annotated[Latency, Body()]) -> JSONResponse:
        faults.latency_ms = body.latency_ms
        return json_response({"latencyMs": faults.latency_ms})

    @app.get(CONTROL_PREFIX + "requests")
    async def list_requests() -> JSONResponse:
        entries = [
            {
                "method": e.method,
                "path": e.path,
                "query": e.query,
                "status": e.status,
                "started": e.started,
                "finished": e.finished,
                "injected": e.injected,
            }
            for e in requests.entries()
        ]
        return json_response({"requests": entries, "peakInFlight": requests.peak_in_flight})

    @app.delete(CONTROL_PREFIX + "requests", status_code=204)
    async def clear_requests() -> Response:
        requests.clear()
        return Response(status_code=204)


def _add_restart_routes(app: FastAPI, restarter: Restarter) -> None:
    """`POST /_emulator/restart` answers 202 first, then the server closes every connection,
    stops listening and listens again with the same state; `GET` counts the restarts done,
    so a client knows when its restart is over."""

    @app.post(CONTROL_PREFIX + "restart", status_code=202)
    async def restart(body: Annotated[Restart | None, Body()] = None) -> JSONResponse:
        down_seconds = Restart().down_seconds if body is None else body.down_seconds
        answer = json_response({"restarts": restarter.restarts}, status=202)
        answer.background = BackgroundTask(restarter.restart_soon, down_seconds)
        return answer

    @app.get(CONTROL_PREFIX + "restart")
    async def count_restarts() -> JSONResponse:
        return json_response({"restarts": restarter.restarts})


def _add_error_handlers(app: FastAPI) -> None:
    """Every error leaves as the service's `{"code", "message"}` body."""

    async def service_fault(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceFault)
        if isinstance(exc, InvalidDefinitionFault):
            return _refused_definition(exc)
        return _error(exc.status, exc.message)

    async def invalid_request(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        return _error(400, f"Bad Request: {problems}")

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    app.add_exception_handler(ServiceFault, service_fault)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)


def _credential(authorization: str | None, scheme: Literal["token", "update-token"]) -> str | None:
    """The token of an `Authorization: <scheme> <token>` header: an access token (`token`) or
    an update's lease (`update-token`); None for a missing header or another scheme."""
    if authorization is None:
        return None
    sent_scheme, _, token = authorization.partition(" ")
    return token.strip() if sent_scheme.lower() == scheme else None


def _refused_definition(fault: InvalidDefinitionFault) -> JSONResponse:
    """An ESC definition refused: the error body with the definition's diagnostics."""
    diagnostics = EnvironmentDiagnosticsResponse(
        diagnostics=[responses.diagnostic(found, fault.environment) for found in fault.diagnostics]
    )
    body = {**ErrorResponse(code=fault.status, message=fault.message).to_wire()}
    body.update(diagnostics.to_wire())
    return JSONResponse(body, status_code=fault.status)


def _error(status: int, message: str, *, retry_after: float | None = None) -> JSONResponse:
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    body = ErrorResponse(code=status, message=message).to_wire()
    return JSONResponse(body, status_code=status, headers=headers)


class _Instrumentation:
    """ASGI middleware: latency, faults and the request log around service requests."""

    def __init__(self, app: ASGIApp, *, faults: FaultInjector, requests: RequestLog) -> None:
        self.app = app
        self.faults = faults
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status: int | None = None
        rule: FaultRule | None = None
        recorded = False

        def record() -> None:
            # Recorded as the answer starts to leave, so a client that has its answer always
            # finds the request in the log.
            nonlocal recorded
            if not recorded:
                recorded = True
                self.requests.finished(
                    RecordedRequest(
                        method=scope["method"],
                        path=redact(scope["path"]),
                        query=redact(scope["query_string"].decode("latin-1")),
                        status=status,
                        started=started,
                        finished=time.monotonic(),
                        injected=rule is not None,
                    )
                )

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                record()
            await send(message)

        async def discard(message: Message) -> None:
            pass

        self.requests.started()
        try:
            latency_ms = self.faults.latency_ms
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            rule = self.faults.take(scope["method"], scope["path"])
            if rule is not None and rule.action == "hold":
                await self.faults.held()
            if rule is None or rule.action == "hold":
                await self.app(scope, receive, send_recording)
                return
            if rule.action in ("after", "dropAfterApply"):
                # Carried out in full (the state change is committed when the app returns),
                # its answer thrown away.
                await self.app(scope, receive, discard)
            if rule.action in ("drop", "dropAfterApply"):
                record()
                await _drop_connection(receive)
            else:
                response = _error(rule.status, rule.message, retry_after=rule.retry_after)
                await response(scope, receive, send_recording)
        except asyncio.CancelledError:
            # Only a stop or restart of the server cancels a request, once it has cut the
            # request's connection: there is no one left to answer, and no error of the app
            # for uvicorn to log. Returning lets the stop finish.
            pass
        finally:
            record()


class _GzipRequestBodies:
    """ASGI middleware: inflate request bodies sent with `Content-Encoding: gzip`, as the CLI
    sends checkpoints, engine events, imports and batch encryptions."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", [])) if scope["type"] == "http" else {}
        if headers.get(b"content-encoding", b"").lower() != b"gzip":
            await self.app(scope, receive, send)
            return
        compressed = bytearray()
        while True:
            message = await receive()
            compressed += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            body = gzip.decompress(bytes(compressed))
        except (OSError, EOFError):
            await _error(400, "Bad Request: the gzip-encoded body is corrupt")(scope, receive, send)
            return
        scope = {
            **scope,
            "headers": [
                (name, value)
                for name, value in scope["headers"]
                if name not in (b"content-encoding", b"content-length")
            ]
            + [(b"content-length", str(len(body)).encode())],
        }
        delivered = False

        async def inflated() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, inflated, send)


async def _drop_connection(receive: Receive) -> None:
    """Close the client's connection without an answer, as a network failure would.

    ASGI has no message for this, so reach the connection's transport through the server's
    receive callable (uvicorn's request cycle object holds it).
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if not isinstance(transport, asyncio.Transport):
        raise RuntimeError("this ASGI server does not let the emulator drop connections")
    transport.abort()
    # Let the server see the connection go before the app returns, so it sends nothing.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
