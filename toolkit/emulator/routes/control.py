"""The `/_emulator/` endpoints, for tests and rehearsals: move the service's clock forward, arm
and clear faults, set and clear fault rates (and read what they did), set the latency, the
rate limit and what the resource search answers, read and clear the request log, and restart
the server. The instrumentation middleware leaves these paths alone: they are neither
delayed, limited, faulted nor logged.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

from typing import Annotated, Protocol

from fastapi import APIRouter, Body, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from toolkit.emulator.faults import FaultInjector, FaultRates, FaultRule, RequestLog
from toolkit.emulator.rate_limit import RateLimiter
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import ResourceSearch

CONTROL_PREFIX = "/_emulator/"


class Restarter(Protocol):
    """The server running the app, as `POST /_emulator/restart` needs it."""

    @property
    def restarts(self) -> int:
        """Restarts completed so far."""
        ...

    def restart_soon(self, down_seconds: float) -> None:
        """Restart from another thread, once the current answer has left; return at once."""
        ...


class ClockAdvance(BaseModel):
    """The body of `POST /_emulator/clock`."""

    model_config = ConfigDict(extra="forbid")

    advance_seconds: float = Field(alias="advanceSeconds", ge=0, allow_inf_nan=False)


class Latency(BaseModel):
    """The body of `PUT /_emulator/latency`."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(alias="latencyMs", ge=0)


class RateLimit(BaseModel):
    """The body of `PUT /_emulator/rate-limit`."""

    model_config = ConfigDict(extra="forbid")

    per_second: float | None = Field(alias="perSecond", gt=0, allow_inf_nan=False)
    """Requests a second each caller may make; null: no limit."""


class ResourceSearchAnswer(BaseModel):
    """The body of `PUT /_emulator/resource-search`."""

    model_config = ConfigDict(extra="forbid")

    answer: ResourceSearch
    """What the search answers, as the world's `service.resourceSearch`."""


class Restart(BaseModel):
    """The body of `POST /_emulator/restart` (optional)."""

    model_config = ConfigDict(extra="forbid")

    down_seconds: float = Field(default=0.0, alias="downSeconds", ge=0, le=300)
    """How long nothing listens between the stop and the start."""


def control_router(
    state: ServiceState,
    faults: FaultInjector,
    requests: RequestLog,
    rate_limits: RateLimiter,
    restarter: Restarter | None,
) -> APIRouter:
    """The knobs over `state`, `faults`, `requests` and `rate_limits`; the restart only with
    a `restarter`."""
    router = APIRouter()

    def clock() -> JSONResponse:
        return json_response(
            {"now": state.now().isoformat(), "offsetSeconds": state.clock_offset()}
        )

    @router.get(CONTROL_PREFIX + "clock")
    async def read_clock() -> JSONResponse:
        return clock()

    @router.post(CONTROL_PREFIX + "clock")
    async def advance_clock(body: Annotated[ClockAdvance, Body()]) -> JSONResponse:
        state.advance_clock(body.advance_seconds)
        return clock()

    @router.post(CONTROL_PREFIX + "faults", status_code=201)
    async def arm_fault(rule: Annotated[FaultRule, Body()]) -> JSONResponse:
        faults.arm(rule)
        return json_response(rule.model_dump(mode="json", by_alias=True), status=201)

    @router.get(CONTROL_PREFIX + "faults")
    async def list_faults() -> JSONResponse:
        armed = [
            {**a.rule.model_dump(mode="json", by_alias=True), "remaining": a.remaining}
            for a in faults.armed()
        ]
        return json_response({"faults": armed})

    @router.delete(CONTROL_PREFIX + "faults", status_code=204)
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

    @router.put(CONTROL_PREFIX + "fault-rates")
    async def set_fault_rates(rates: Annotated[FaultRates, Body()]) -> JSONResponse:
        faults.set_rates(rates)
        return fault_rates()

    @router.get(CONTROL_PREFIX + "fault-rates")
    async def read_fault_rates() -> JSONResponse:
        return fault_rates()

    @router.delete(CONTROL_PREFIX + "fault-rates", status_code=204)
    async def clear_fault_rates() -> Response:
        faults.clear_rates()
        return Response(status_code=204)

    @router.get(CONTROL_PREFIX + "latency")
    async def read_latency() -> JSONResponse:
        return json_response({"latencyMs": faults.latency_ms})

    @router.put(CONTROL_PREFIX + "latency")
    async def set_latency(body: Annotated[Latency, Body()]) -> JSONResponse:
        faults.latency_ms = body.latency_ms
        return json_response({"latencyMs": faults.latency_ms})

    @router.get(CONTROL_PREFIX + "rate-limit")
    async def read_rate_limit() -> JSONResponse:
        return json_response({"perSecond": rate_limits.per_second})

    @router.put(CONTROL_PREFIX + "rate-limit")
    async def set_rate_limit(body: Annotated[RateLimit, Body()]) -> JSONResponse:
        rate_limits.per_second = body.per_second
        return json_response({"perSecond": rate_limits.per_second})

    @router.get(CONTROL_PREFIX + "resource-search")
    async def read_resource_search() -> JSONResponse:
        return json_response({"answer": state.resource_search()})

    @router.put(CONTROL_PREFIX + "resource-search")
    async def set_resource_search(body: Annotated[ResourceSearchAnswer, Body()]) -> JSONResponse:
        state.set_resource_search(body.answer)
        return json_response({"answer": state.resource_search()})

    @router.get(CONTROL_PREFIX + "requests")
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

    @router.delete(CONTROL_PREFIX + "requests", status_code=204)
    async def clear_requests() -> Response:
        requests.clear()
        return Response(status_code=204)

    if restarter is not None:
        _add_restart_routes(router, restarter)
    return router


def _add_restart_routes(router: APIRouter, restarter: Restarter) -> None:
    """`POST /_emulator/restart` answers 202 first, then the server closes every connection,
    stops listening and listens again with the same state; `GET` counts the restarts done,
    so a client knows when its restart is over."""

    @router.post(CONTROL_PREFIX + "restart", status_code=202)
    async def restart(body: Annotated[Restart | None, Body()] = None) -> JSONResponse:
        down_seconds = Restart().down_seconds if body is None else body.down_seconds
        answer = json_response({"restarts": restarter.restarts}, status=202)
        answer.background = BackgroundTask(restarter.restart_soon, down_seconds)
        return answer

    @router.get(CONTROL_PREFIX + "restart")
    async def count_restarts() -> JSONResponse:
        return json_response({"restarts": restarter.restarts})
