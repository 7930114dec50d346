"""The service's resource search: an org's resources found by a query, a page at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator

from toolkit.cloud.paging import PageSize, PageTokens
from toolkit.cloud.transport import Transport, segment, validate_answer
from toolkit.models import ResourceResult, ResourceSearchResult

SEARCH_PAGES = PageSize("resource search results", "size", 1000)
"""`GET /api/orgs/{org}/search/resourcesv2`: `size` (default 50); the API document names no
bound, and a service that refuses the size is asked again at its default."""


class SearchCalls(Transport):
    """The resource search (Pulumi Cloud's Insights search over every stack's latest state)."""

    async def search_resources(
        self, org: str, query: str, *, properties: bool = False
    ) -> AsyncIterator[ResourceResult]:
        """Every resource of `org` matching `query` (the service's query syntax), with its
        inputs and outputs when `properties` (402 where the org's subscription has none).
        Pages are followed by their cursor, which goes on where page numbers stop (10,000
        results), as many as the client lets a listing take."""
        path = f"/api/orgs/{segment(org)}/search/resourcesv2"
        call = f"GET {path}"
        tokens = PageTokens(call, self.max_pages_per_listing)
        params = {"query": query, "properties": "true" if properties else "false"}
        cursor: str | None = None
        while True:
            query_params = params if cursor is None else {**params, "cursor": cursor}
            content = await self._get_page(path, query_params, SEARCH_PAGES)
            page = validate_answer(ResourceSearchResult, content, call)
            for resource in page.resources:
                yield resource
            cursor = page.pagination.cursor if page.pagination else None
            if not cursor or not page.resources:
                return
            tokens.follow(cursor)
