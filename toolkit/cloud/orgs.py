"""Calls on an org and its user: who the token is, Insights accounts, registry packages, teams."""

from __future__ import annotations

from toolkit.cloud.paging import PageSize
from toolkit.cloud.transport import Transport, segment
from toolkit.models import (
    InsightsAccount,
    ListInsightsAccountsResponse,
    ListPackagesResponse,
    PackageMetadata,
    Team,
    User,
)

INSIGHTS_ACCOUNT_PAGES = PageSize("Insights accounts", "count", 1000)
"""`GET /api/preview/insights/{org}/accounts`: `count`, documented as 1 to 1000."""
REGISTRY_PACKAGE_PAGES = PageSize("registry packages", "limit", 499)
"""`GET /api/preview/registry/packages`: `limit` (default 100); 499 is what the pulumi CLI
asks of the registry's listings."""


class OrgCalls(Transport):
    """The calls on the user, an org's Insights accounts, registry packages and teams."""

    # --- Users -----------------------------------------------------------------------------

    async def get_current_user(self) -> User:
        return await self._get(User, "/api/user")

    # --- Insights, registry ------------------------------------------------------------------

    async def list_insights_accounts(self, org: str) -> list[InsightsAccount]:
        path = f"/api/preview/insights/{segment(org)}/accounts"
        pages = self._pages(
            ListInsightsAccountsResponse,
            path,
            "nextToken",
            page_size=INSIGHTS_ACCOUNT_PAGES,
        )
        return [account async for page in pages for account in page.accounts]

    async def list_registry_packages(self, org: str) -> list[PackageMetadata]:
        """Packages `org` publishes; the listing also shows packages it merely can see."""
        return [pkg for pkg in await self.list_owned_registry_packages(org) if pkg.publisher == org]

    async def list_owned_registry_packages(self, org: str) -> list[PackageMetadata]:
        """Packages `org` owns (`orgLogin`), whoever they are published by: a package a claim
        moved in keeps the agent as its publisher."""
        pages = self._pages(
            ListPackagesResponse,
            "/api/preview/registry/packages",
            "continuationToken",
            params={"orgLogin": org},
            page_size=REGISTRY_PACKAGE_PAGES,
        )
        return [pkg async for page in pages for pkg in page.packages]

    # --- Teams -------------------------------------------------------------------------------

    async def get_team(self, org: str, team: str) -> Team:
        """A team of `org` with its members and grants; NotFoundError if it has none such."""
        return await self._get(Team, f"/api/orgs/{segment(org)}/teams/{segment(team)}")
