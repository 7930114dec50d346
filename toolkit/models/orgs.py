"""Users and orgs: who a token is, its orgs and roles; an org's access tokens, Insights
accounts and registry packages."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field, field_validator

from toolkit.models.wire import WireModel

OrganizationRole = Literal[
    "none", "member", "admin", "potential-member", "stack-collaborator", "billing-manager"
]


class OrganizationSummaryWithRole(WireModel):
    name: str
    github_login: str
    avatar_url: str
    email: str | None = None
    role: OrganizationRole


class TokenInfo(WireModel):
    name: str
    organization: str | None = None
    team: str | None = None


class User(WireModel):
    id: str
    github_login: str
    name: str
    email: str
    avatar_url: str
    organizations: list[OrganizationSummaryWithRole]
    identities: list[str]
    has_mfa: bool = Field(alias="hasMFA")
    is_org_managed: bool
    is_managed_by_multi_org: bool
    site_admin: bool = False
    token_info: TokenInfo | None = None
    is_agent: bool = False


class UserInfo(WireModel):
    name: str
    github_login: str
    avatar_url: str
    email: str | None = None


class CreateOrgAccessTokenRequest(WireModel):
    """`POST /api/orgs/{org}/tokens`. The document requires `description` and `expires`; the
    provider's `OrgAccessToken` sends neither `expires` nor `roleID` (0: never expires)."""

    name: str
    admin: bool
    description: str = ""
    expires: int = 0
    role_id: str | None = Field(default=None, alias="roleID")


class CreateAccessTokenResponse(WireModel):
    id: str
    token_value: str


class AccessToken(WireModel):
    """An access token as listed: never its value, which only its creation answers."""

    id: str
    name: str
    description: str
    created: str
    last_used: int
    expires: int
    admin: bool
    created_by: str


class ListAccessTokensResponse(WireModel):
    tokens: list[AccessToken]


class InsightsAccount(WireModel):
    id: str
    name: str
    owned_by: UserInfo
    provider: str
    scheduled_scan_enabled: bool


class ListInsightsAccountsResponse(WireModel):
    accounts: list[InsightsAccount] = Field(default_factory=list)
    next_token: str | None = None

    @field_validator("accounts", mode="before")
    @classmethod
    def _null_is_empty(cls, accounts: object) -> object:
        """`accounts` is optional in the service's schema: `null` is an empty page."""
        return [] if accounts is None else accounts


class PackageMetadata(WireModel):
    name: str
    publisher: str
    source: str
    version: str
    is_featured: bool
    package_status: Literal["ga", "public_preview"]
    readme_url: str = Field(alias="readmeURL")
    schema_url: str = Field(alias="schemaURL")
    created_at: AwareDatetime
    visibility: Literal["public", "private"]


class ListPackagesResponse(WireModel):
    packages: list[PackageMetadata]
    continuation_token: str | None = None
