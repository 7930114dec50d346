"""Pydantic models of the Pulumi Cloud wire shapes the toolkit reads and writes.

Each class carries the name of the service's own schema (the one `pulumi-cloud-sdk`
generates), so the contract tests can pair them one to one. Python attributes are
snake_case; JSON is camelCase, as the service sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Base of every wire shape: camelCase aliases, fields by either name, unknown keys kept out."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    def to_wire(self) -> dict[str, object]:
        """JSON-ready dict with the service's field names, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- Transfer entities: what an org owns, discriminated on `kind` ---------------------------


class TransferEntityStack(WireModel):
    kind: Literal["TransferEntityStack"] = "TransferEntityStack"
    project_name: str
    stack_name: str
    resource_count: int = 0
    last_update: AwareDatetime | None = None


class TransferEntityStackRename(WireModel):
    kind: Literal["TransferEntityStackRename"] = "TransferEntityStackRename"
    project_name: str
    stack_name: str
    resource_count: int = 0
    last_update: AwareDatetime | None = None
    rename_as: TransferEntityStack


class TransferEntityEnvironment(WireModel):
    kind: Literal["TransferEntityEnvironment"] = "TransferEntityEnvironment"
    project_name: str
    environment_name: str


class TransferEntityEnvironmentRename(WireModel):
    kind: Literal["TransferEntityEnvironmentRename"] = "TransferEntityEnvironmentRename"
    project_name: str
    environment_name: str
    rename_as: TransferEntityEnvironment


class TransferEntityInsightsAccount(WireModel):
    kind: Literal["TransferEntityInsightsAccount"] = "TransferEntityInsightsAccount"
    name: str


class TransferEntityInsightsAccountRename(WireModel):
    kind: Literal["TransferEntityInsightsAccountRename"] = "TransferEntityInsightsAccountRename"
    name: str
    rename_as: TransferEntityInsightsAccount


class TransferEntityRegistryPackage(WireModel):
    kind: Literal["TransferEntityRegistryPackage"] = "TransferEntityRegistryPackage"
    source: str
    publisher: str
    name: str


class TransferEntityRegistryPackageRename(WireModel):
    kind: Literal["TransferEntityRegistryPackageRename"] = "TransferEntityRegistryPackageRename"
    source: str
    publisher: str
    name: str
    rename_as: TransferEntityRegistryPackage


BaseEntity = (
    TransferEntityStack
    | TransferEntityEnvironment
    | TransferEntityInsightsAccount
    | TransferEntityRegistryPackage
)
"""An entity as it exists in an org: the four base kinds."""

RenameEntity = (
    TransferEntityStackRename
    | TransferEntityEnvironmentRename
    | TransferEntityInsightsAccountRename
    | TransferEntityRegistryPackageRename
)
"""An entity together with the name it should take: the four `*Rename` kinds."""

TransferEntity = Annotated[BaseEntity | RenameEntity, Field(discriminator="kind")]


class TransferEntityFailure(WireModel):
    entity: TransferEntity
    failure_details: str


# --- The claim document ------------------------------------------------------------------


class AgentAccountSummary(WireModel):
    login: str
    org_name: str
    created_at: AwareDatetime


class AgentClaimRequest(WireModel):
    claim_token: str
    conflicts_resolution: list[TransferEntity] | None = None


class AgentClaimResponse(WireModel):
    agent: AgentAccountSummary
    entities: list[TransferEntity]
    conflicts: list[TransferEntity]
    failures: list[TransferEntityFailure]
    claim_expires_at: AwareDatetime
    transfer_token: str | None = None


class AgentClaimsStatus(WireModel):
    claims: dict[str, AgentClaimResponse]


# --- Agent sign-up -----------------------------------------------------------------------


class AgentSignupChallenge(WireModel):
    challenge_id: str = Field(alias="challengeID")
    challenge_data: str
    """`v1:<random>:<difficulty>`: the proof of work to solve."""


class AgentSignupRequest(WireModel):
    challenge_id: str = Field(alias="challengeID")
    challenge_result: str
    """The decimal nonce that solves the challenge."""


# --- Users and orgs ----------------------------------------------------------------------

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


class AgentSignupResponse(WireModel):
    access_token: str
    access_token_valid_until: AwareDatetime
    claim_token: str
    claim_token_valid_until: AwareDatetime
    user_info: User


class UserInfo(WireModel):
    name: str
    github_login: str
    avatar_url: str
    email: str | None = None


# --- Stacks ------------------------------------------------------------------------------


class AppStackSummary(WireModel):
    id: str
    org_name: str
    project_name: str
    stack_name: str
    last_update: int | None = 0
    """Unix seconds of the last update's start; 0 while an update is in progress (as the
    CLI reads it). The service leaves it out for a stack never updated (None when written
    here); a reader, like the SDK, then holds its default, 0."""
    resource_count: int = 0


class AppListStacksResponse(WireModel):
    stacks: list[AppStackSummary]
    continuation_token: str | None = None


class AppStack(WireModel):
    id: str
    org_name: str
    project_name: str
    stack_name: str
    active_update: str
    tags: dict[str, str] | None = None
    version: int


class AppStackRenameRequest(WireModel):
    new_name: str | None = None
    new_project: str | None = None


class AppUntypedDeployment(WireModel):
    """A deployment of any schema version; the receiver checks its content."""

    version: int = 0
    features: list[str] | None = None
    deployment: Any = None


class AppStackConfig(WireModel):
    environment: str
    secrets_provider: str | None = None
    encrypted_key: str | None = None
    encryption_salt: str | None = None


class AppCreateStackRequest(WireModel):
    stack_name: str
    tags: dict[str, str] | None = None
    teams: list[str] | None = None
    state: AppUntypedDeployment | None = None
    config: AppStackConfig | None = None


class AppImportStackResponse(WireModel):
    update_id: str


class AppBatchEncryptRequest(WireModel):
    plaintexts: list[str]


class AppBatchEncryptResponse(WireModel):
    ciphertexts: list[str]


class AppBatchDecryptRequest(WireModel):
    ciphertexts: list[str]


class AppBatchDecryptResponse(WireModel):
    plaintexts: dict[str, str]
    """Each plaintext keyed by the ciphertext it came from, both base64 as sent."""


class AppUpdateResults(WireModel):
    status: str
    events: list[dict[str, Any]]
    continuation_token: str | None = None


class TransferStackRequest(WireModel):
    to_org: str
    project_name: str | None = None
    stack_name: str | None = None
    from_org: str | None = None


# --- ESC environments, Insights accounts, registry packages ------------------------------


class EnvironmentReferrerMetadata(WireModel):
    environment_referrer_count: int = 0
    stack_referrer_count: int = 0
    insights_account_referrer_count: int = 0


class EnvironmentSettings(WireModel):
    deletion_protected: bool = False


class OrgEnvironment(WireModel):
    id: str
    organization: str
    project: str | None = None
    name: str
    created: str
    modified: str
    owned_by: UserInfo
    tags: dict[str, str]
    referrer_metadata: EnvironmentReferrerMetadata
    settings: EnvironmentSettings


class ListEnvironmentsResponse(WireModel):
    environments: list[OrgEnvironment]
    next_token: str | None = None


# --- ESC: one environment, its tags, revisions and diagnostics --------------------------


class CreateEnvironmentRequest(WireModel):
    project: str
    name: str


class EnvironmentTag(WireModel):
    name: str
    value: str
    created: AwareDatetime
    modified: AwareDatetime
    editor_login: str
    editor_name: str


class ListEnvironmentTagsResponse(WireModel):
    tags: dict[str, EnvironmentTag]
    next_token: str
    """Empty on the last page."""


class CreateEnvironmentTagRequest(WireModel):
    name: str
    value: str


class UpdateEnvironmentTagRequestCurrentTag(WireModel):
    value: str


class UpdateEnvironmentTagRequestNewTag(WireModel):
    name: str | None = None
    """Empty or absent: the name stays."""
    value: str | None = None
    """Empty or absent: the value stays."""


class UpdateEnvironmentTagRequest(WireModel):
    current_tag: UpdateEnvironmentTagRequestCurrentTag
    new_tag: UpdateEnvironmentTagRequestNewTag


class EnvironmentRevision(WireModel):
    number: int
    created: AwareDatetime
    creator_login: str | None = None
    creator_name: str | None = None
    tags: list[str] | None = None


class EnvironmentRevisionTag(WireModel):
    name: str
    revision: int
    created: AwareDatetime
    modified: AwareDatetime
    editor_login: str | None = None
    editor_name: str | None = None


class ListEnvironmentRevisionTagsResponse(WireModel):
    tags: list[EnvironmentRevisionTag]
    next_token: str
    """Empty on the last page."""


class CreateEnvironmentRevisionTagRequest(WireModel):
    name: str
    revision: int = 0
    """0 (or absent): the newest revision."""


class UpdateEnvironmentRevisionTagRequest(WireModel):
    revision: int = 0
    """0 (or absent): the newest revision."""


class EscPos(WireModel):
    line: int
    column: int
    byte: int


class EscRange(WireModel):
    environment: str
    begin: EscPos
    end: EscPos


class EnvironmentDiagnostic(WireModel):
    summary: str
    range: EscRange | None = None
    path: str | None = None
    severity: str | None = None


class EnvironmentDiagnosticsResponse(WireModel):
    """The diagnostics of a definition the service refused (beside `code` and `message`)."""

    diagnostics: list[EnvironmentDiagnostic] | None = None


class UpdateEnvironmentResponse(WireModel):
    diagnostics: list[EnvironmentDiagnostic] | None = None


class OpenEnvironmentResponse(WireModel):
    id: str
    diagnostics: list[EnvironmentDiagnostic] | None = None


@dataclass(frozen=True)
class EnvironmentDefinition:
    """An environment's definition as `GET /api/esc/environments/{org}/{project}/{env}`
    answers it: the YAML body (static secrets as ciphertext), with the `ETag` an update can
    name in `If-Match` and the revision (`Pulumi-ESC-Revision`) it is."""

    yaml: str
    etag: str | None
    revision: int


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


class ErrorResponse(WireModel):
    """The body of every non-2xx answer from the service."""

    code: int
    message: str


# --- Teams and org members (what the pulumiservice provider reads and writes) ---------------

TeamRole = Literal["none", "member", "admin"]
StackPermission = Literal[0, 101, 102, 103, 104]
"""None, read, write (the provider's `edit`), admin, creator."""
EnvironmentPermission = Literal["none", "read", "open", "write", "admin"]


class TeamMemberInfo(WireModel):
    name: str
    github_login: str
    avatar_url: str
    email: str | None = None
    role: TeamRole


class TeamStackPermission(WireModel):
    project_name: str
    stack_name: str
    permission: StackPermission


class TeamEnvironmentSettings(WireModel):
    project_name: str
    env_name: str
    permission: EnvironmentPermission
    max_open_duration: str | None = None
    """A Go duration (`1h30m0s`), as the provider writes it."""


class Team(WireModel):
    kind: Literal["github", "pulumi", "scim"]
    name: str
    display_name: str
    description: str
    members: list[TeamMemberInfo] | None = None
    stacks: list[TeamStackPermission] | None = None
    environments: list[TeamEnvironmentSettings] | None = None
    user_role: TeamRole | None = None


class ListTeamsResponse(WireModel):
    teams: list[Team]


class CreatePulumiTeamRequest(WireModel):
    name: str
    display_name: str
    description: str


class RemoveStackIdentifier(WireModel):
    project_name: str
    stack_name: str


class RemoveEnvironmentIdentifier(WireModel):
    project_name: str
    env_name: str


class UpdateTeamRequest(WireModel):
    """`PATCH /api/orgs/{org}/teams/{team}`: one change to a team per request."""

    new_display_name: str | None = None
    new_description: str | None = None
    member_action: Literal["add", "remove", "promote", "demote"] | None = None
    member: str | None = None
    add_stack_permission: TeamStackPermission | None = None
    edit_stack_permission: TeamStackPermission | None = None
    remove_stack: RemoveStackIdentifier | None = None
    add_environment_permission: TeamEnvironmentSettings | None = None
    edit_environment_permission: TeamEnvironmentSettings | None = None
    remove_environment: RemoveEnvironmentIdentifier | None = None


class FGARole(WireModel):
    id: str
    name: str
    modified_at: AwareDatetime


class OrganizationMember(WireModel):
    role: Literal[
        "none", "member", "admin", "potential-member", "stack-collaborator", "billing-manager"
    ]
    user: UserInfo
    created: AwareDatetime
    known_to_pulumi: bool
    virtual_admin: bool
    fga_role: FGARole


class ListOrganizationMembersResponse(WireModel):
    members: list[OrganizationMember]
    continuation_token: str | None = None
