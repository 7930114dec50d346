"""The calls on the catalog the claim moves besides stacks and environments: an org's Insights
accounts and its private registry packages.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from toolkit.emulator import serializers
from toolkit.emulator.routes.service import Service
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import Caller, ServiceFault

INSIGHTS_MAX_COUNT = 1000
"""The largest `count` the Insights account listing takes: Pulumi's OpenAPI document answers
any other with 400 "count must be in the range [1, 1000]"."""


def catalog_router(service: Service) -> APIRouter:
    router = APIRouter()
    state = service.state
    Authenticated = Annotated[Caller, Depends(service.caller)]

    @router.get("/api/preview/insights/{org}/accounts")
    async def list_insights_accounts(
        who: Authenticated,
        org: str,
        count: int | None = None,
        continuation_token: Annotated[str | None, Query(alias="continuationToken")] = None,
    ) -> JSONResponse:
        if count is not None and not 1 <= count <= INSIGHTS_MAX_COUNT:
            raise ServiceFault(400, f"count must be in the range [1, {INSIGHTS_MAX_COUNT}]")
        page = state.list_insights_accounts(
            who, org, limit=service.limit(count), continuation_token=continuation_token
        )
        return json_response(serializers.insights_account_list(page))

    @router.get("/api/preview/registry/packages")
    async def list_registry_packages(
        who: Authenticated,
        org_login: Annotated[str | None, Query(alias="orgLogin")] = None,
        page_limit: Annotated[int | None, Query(alias="limit", ge=1)] = None,
        continuation_token: Annotated[str | None, Query(alias="continuationToken")] = None,
    ) -> JSONResponse:
        page = state.list_registry_packages(
            who,
            limit=service.limit(page_limit),
            org_login=org_login,
            continuation_token=continuation_token,
        )
        return json_response(serializers.package_list(page))

    return router
