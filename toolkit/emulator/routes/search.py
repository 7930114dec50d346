"""The resource search: `GET /api/orgs/{org}/search/resourcesv2`, and its deprecated v1
(`/search/resources`), which answers the same shape.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from toolkit.emulator import serializers
from toolkit.emulator.routes.service import Service
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import PAGED_RESULTS, Caller, SearchAnswer

DEFAULT_SEARCH_SIZE = 50
"""The page a search gets when it names no `size`, as Pulumi's API reference says."""

SEARCH_PATHS = ("/api/orgs/{org}/search/resourcesv2", "/api/orgs/{org}/search/resources")


def search_router(service: Service) -> APIRouter:
    router = APIRouter()
    state = service.state
    Authenticated = Annotated[Caller, Depends(service.caller)]

    async def search_resources(
        request: Request,
        who: Authenticated,
        org: str,
        query: str = "",
        properties: bool = False,
        page: Annotated[int | None, Query(ge=1)] = None,
        size: Annotated[int | None, Query(ge=1)] = None,
        cursor: str | None = None,
    ) -> JSONResponse:
        shown = service.limit(size, default=DEFAULT_SEARCH_SIZE)
        answer = state.search_resources(
            who, org, query=query, properties=properties, size=shown, page=page, cursor=cursor
        )
        asked = dict(request.query_params)
        return json_response(
            serializers.resource_search_result(
                answer,
                properties=properties,
                next_link=_next_link(request.url.path, asked, answer, page, shown, cursor),
                previous_link=_previous_link(request.url.path, asked, page, cursor),
            )
        )

    for path in SEARCH_PATHS:
        router.add_api_route(path, search_resources, methods=["GET"])
    return router


def _next_link(
    path: str,
    asked: dict[str, str],
    answer: SearchAnswer,
    page: int | None,
    size: int,
    cursor: str | None,
) -> str | None:
    """The page after this one: by number while numbers reach it, else by the cursor."""
    token = answer.page.next_token
    if token is None:
        return None
    following = (page or 1) + 1
    if cursor is None and following * size <= PAGED_RESULTS:
        return _link(path, {**asked, "page": str(following)})
    beyond = {key: value for key, value in asked.items() if key != "page"}
    return _link(path, {**beyond, "cursor": token})


def _previous_link(
    path: str, asked: dict[str, str], page: int | None, cursor: str | None
) -> str | None:
    if cursor is not None or page is None or page <= 1:
        return None
    return _link(path, {**asked, "page": str(page - 1)})


def _link(path: str, query: dict[str, str]) -> str:
    return f"{path}?{urlencode(query)}"
