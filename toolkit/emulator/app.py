"""The emulator's app: Pulumi Cloud's paths (`routes`, one router per family of resources)
over `ServiceState`, its errors as the service's error bodies, and the middlewares
(`middleware`) around them.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from toolkit.emulator import serializers
from toolkit.emulator.faults import FaultInjector, RequestLog
from toolkit.emulator.middleware import GzipRequestBodies, Instrumentation
from toolkit.emulator.rate_limit import RateLimiter
from toolkit.emulator.routes.accounts import accounts_router
from toolkit.emulator.routes.agents import agents_router
from toolkit.emulator.routes.catalog import catalog_router
from toolkit.emulator.routes.control import Restarter, control_router
from toolkit.emulator.routes.environments import environments_router
from toolkit.emulator.routes.org_tokens import org_tokens_router
from toolkit.emulator.routes.search import search_router
from toolkit.emulator.routes.service import Service
from toolkit.emulator.routes.stack_settings import stack_settings_router
from toolkit.emulator.routes.stacks import stacks_router
from toolkit.emulator.routes.teams import teams_router
from toolkit.emulator.routes.updates import updates_router
from toolkit.emulator.state import InvalidDefinitionFault, ServiceFault, ServiceState


def create_app(
    state: ServiceState,
    *,
    page_size: int = 100,
    max_page_size: int | None = None,
    faults: FaultInjector | None = None,
    requests: RequestLog | None = None,
    rate_limits: RateLimiter | None = None,
    restarter: Restarter | None = None,
) -> FastAPI:
    """A FastAPI app serving `state` as Pulumi Cloud does, with the test knobs applied
    (latency, faults, fault rates: `faults`; the rate limit: `rate_limits`, by default the
    world's); `POST /_emulator/restart` only with a `restarter`.

    `page_size` is the page a list call gets when it names no size, `max_page_size` (by
    default the same) the largest it gets whatever it asks.
    """
    service = Service(
        state,
        page_size=page_size,
        largest_page=page_size if max_page_size is None else max_page_size,
    )
    faults = faults if faults is not None else FaultInjector()
    requests = requests if requests is not None else RequestLog()
    rate_limits = rate_limits if rate_limits is not None else RateLimiter(state.rate_limit())
    app = FastAPI(
        title="Pulumi Cloud emulator",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # No OpenTelemetry: FastAPI otherwise asks the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(GzipRequestBodies)
    app.add_middleware(Instrumentation, faults=faults, requests=requests, rate_limits=rate_limits)
    _add_error_handlers(app)
    routers = [
        accounts_router(service),
        stacks_router(service),
        updates_router(service),
        agents_router(service),
        catalog_router(service),
        environments_router(service),
        # After the routes a claim's calls take most (a stack's, its updates', the
        # environments'): each route before a request's own costs it a match.
        stack_settings_router(service),
        search_router(service),
        teams_router(service),
        org_tokens_router(service),
        control_router(state, faults, requests, rate_limits, restarter),
    ]
    for router in routers:
        # The routes themselves, in order, rather than `include_router`: FastAPI matches an
        # included router's paths twice (to pick the router, then its route), a tenth of
        # the app's CPU a call.
        app.router.routes.extend(router.routes)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error leaves as the service's `{"code", "message"}` body."""

    async def service_fault(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceFault)
        if isinstance(exc, InvalidDefinitionFault):
            return serializers.refused_definition(exc)
        return serializers.error(exc.status, exc.message)

    async def invalid_request(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        return serializers.error(400, f"Bad Request: {problems}")

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return serializers.error(exc.status_code, str(exc.detail))

    app.add_exception_handler(ServiceFault, service_fault)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
