"""How the emulator's HTTP layer answers: the state's records as the service's wire models,
and its errors as the service's error bodies.

The state knows accounts, stacks, updates and the rest as plain records; what the service adds
on the wire (ids derived from names, placeholder URLs, fields the emulator does not model) is
decided here, once for every route that shows the same thing.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, cast

from fastapi import Response
from fastapi.responses import JSONResponse

from toolkit.emulator.cli_models import (
    AppConfigValue,
    AppUpdateInfo,
    AppUpdateMetadata,
    GetHistoryResponse,
    UpdateInfo,
)
from toolkit.emulator.esc_definitions import Diagnostic, Position
from toolkit.emulator.esc_evaluation import Evaluation
from toolkit.emulator.state import (
    AgentAccountRecord,
    ClaimRecord,
    DefinitionRecord,
    EnvironmentRecord,
    EnvironmentTagRecord,
    FoundResource,
    InsightsAccountRecord,
    InvalidDefinitionFault,
    OrgMemberRecord,
    OrgTokenRecord,
    PackageRecord,
    Page,
    RevisionRecord,
    RevisionTagRecord,
    SearchAnswer,
    SignupChallengeRecord,
    StackRecord,
    StackView,
    TeamRecord,
    UpdateRecord,
    UserRecord,
)
from toolkit.models import (  # teams and org members
    AccessToken,
    AgentAccountSummary,
    AgentClaimResponse,
    AgentClaimsStatus,
    AgentSignupChallenge,
    AgentSignupResponse,
    AppListStacksResponse,
    AppStack,
    AppStackSummary,
    EnvironmentDiagnostic,
    EnvironmentDiagnosticsResponse,
    EnvironmentPermission,
    EnvironmentReferrerMetadata,
    EnvironmentRevision,
    EnvironmentRevisionTag,
    EnvironmentSettings,
    EnvironmentTag,
    ErrorResponse,
    EscPos,
    EscRange,
    FGARole,
    InsightsAccount,
    ListAccessTokensResponse,
    ListEnvironmentRevisionTagsResponse,
    ListEnvironmentsResponse,
    ListEnvironmentTagsResponse,
    ListInsightsAccountsResponse,
    ListOrganizationMembersResponse,
    ListPackagesResponse,
    ListTeamsResponse,
    OrganizationMember,
    OrganizationSummaryWithRole,
    OrgEnvironment,
    PackageMetadata,
    ResourceResult,
    ResourceSearchPagination,
    ResourceSearchResult,
    StackPermission,
    Team,
    TeamEnvironmentSettings,
    TeamMemberInfo,
    TeamStackPermission,
    TokenInfo,
    TransferEntityFailure,
    User,
    UserInfo,
    WireModel,
)


class _WrittenJSON(JSONResponse):
    """A JSON answer whose body is already written: given bytes, they are the body."""

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else super().render(content)


def json_response(body: WireModel | dict[str, Any], *, status: int = 200) -> JSONResponse:
    """A wire model in the service's JSON (camelCase, no unset optionals), or a plain body.
    A model is written by pydantic-core straight to bytes, the same bytes as the json module
    writes from its dict at a quarter of the CPU: every listing page is one."""
    if isinstance(body, WireModel):
        written = body.model_dump_json(by_alias=True, exclude_none=True).encode()
        return _WrittenJSON(written, status_code=status)
    return JSONResponse(body, status_code=status)


def error(status: int, message: str, *, retry_after: float | None = None) -> JSONResponse:
    """The service's error body, `{"code", "message"}`, with `Retry-After` if given."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    body = ErrorResponse(code=status, message=message).to_wire()
    return JSONResponse(body, status_code=status, headers=headers)


def refused_definition(fault: InvalidDefinitionFault) -> JSONResponse:
    """An ESC definition refused: the error body with the definition's diagnostics."""
    diagnostics = EnvironmentDiagnosticsResponse(
        diagnostics=[diagnostic(found, fault.environment) for found in fault.diagnostics]
    )
    body = {**ErrorResponse(code=fault.status, message=fault.message).to_wire()}
    body.update(diagnostics.to_wire())
    return JSONResponse(body, status_code=fault.status)


# --- Accounts -------------------------------------------------------------------------------


def user(record: UserRecord) -> User:
    """The document of `GET /api/user`; its id is derived from the login, so it stays the same
    across restarts."""
    return User(
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"pulumi-claim-emulator:user:{record.login}").hex,
        github_login=record.login,
        name=record.login,
        email=f"{record.login}@example.com",
        avatar_url="",
        organizations=[
            OrganizationSummaryWithRole(name=org, github_login=org, avatar_url="", role=role)
            for org, role in record.roles.items()
        ],
        identities=[],
        has_mfa=False,
        is_org_managed=False,
        is_managed_by_multi_org=False,
        is_agent=record.is_agent,
        token_info=None
        if record.org_token is None
        else TokenInfo(name=record.org_token.token_name, organization=record.org_token.org),
    )


@functools.lru_cache(maxsize=1024)
def user_info(login: str) -> UserInfo:
    """One frozen model per login, shared: a page of environments names the same owner on
    each of its hundred items, and pydantic takes a model instance as it is."""
    return UserInfo(name=login, github_login=login, avatar_url="")


def org_token_list(records: list[OrgTokenRecord]) -> ListAccessTokensResponse:
    return ListAccessTokensResponse(
        tokens=[
            AccessToken(
                id=record.id,
                name=record.name,
                description=record.description,
                created=record.created,
                last_used=record.last_used,
                expires=record.expires,
                admin=record.admin,
                created_by=record.created_by,
            )
            for record in records
        ]
    )


# --- Agents -----------------------------------------------------------------------------


def signup_challenge(record: SignupChallengeRecord) -> AgentSignupChallenge:
    return AgentSignupChallenge(challenge_id=record.id, challenge_data=record.data)


def signup(record: AgentAccountRecord) -> AgentSignupResponse:
    """The new agent's credentials; its access token counts as valid while it may write."""
    return AgentSignupResponse(
        access_token=record.token,
        access_token_valid_until=record.token_valid_until,
        claim_token=record.claim_token,
        claim_token_valid_until=record.claim_expires_at,
        user_info=user(record.user),
    )


def claim(record: ClaimRecord) -> AgentClaimResponse:
    """The claim document: the same shape for validate, preview, commit and claim status."""
    return AgentClaimResponse(
        agent=AgentAccountSummary(
            login=record.login, org_name=record.login, created_at=record.created_at
        ),
        entities=record.entities,
        conflicts=record.conflicts,
        failures=[
            TransferEntityFailure(entity=failure.entity, failure_details=failure.details)
            for failure in record.failures
        ],
        claim_expires_at=record.claim_expires_at,
        transfer_token=record.claim_id,
    )


def claims_status(records: list[ClaimRecord]) -> AgentClaimsStatus:
    return AgentClaimsStatus(
        claims={record.claim_id: claim(record) for record in records if record.claim_id}
    )


# --- Stacks ---------------------------------------------------------------------------------


def stack_summary(record: StackRecord) -> AppStackSummary:
    """A stack in a listing; `lastUpdate` as the CLI reads it: 0 while an update runs, absent
    for a stack never updated."""
    return AppStackSummary(
        id=record.id,
        org_name=record.org,
        project_name=record.project,
        stack_name=record.stack,
        last_update=0 if record.updating else (record.last_update or None),
        resource_count=record.resource_count,
    )


def stack_list(page: Page[StackRecord]) -> AppListStacksResponse:
    return AppListStacksResponse(
        stacks=[stack_summary(record) for record in page.items],
        continuation_token=page.next_token,
    )


def stack(view: StackView) -> AppStack:
    record = view.record
    return AppStack(
        id=record.id,
        org_name=record.org,
        project_name=record.project,
        stack_name=record.stack,
        active_update=view.latest_update or "",
        tags=record.tags,
        version=record.version,
    )


# --- Updates --------------------------------------------------------------------------------


def update_info(update: UpdateRecord) -> AppUpdateInfo:
    """An update as the stack's history shows it, with the message, environment and config
    the CLI sent when it created the update."""
    metadata = AppUpdateMetadata.model_validate(update.program.get("metadata") or {})
    config = update.program.get("config") or {}
    return AppUpdateInfo(
        kind=update.kind,
        start_time=update.started or 0,
        message=metadata.message,
        environment=metadata.environment or {},
        config={key: AppConfigValue.model_validate(value) for key, value in config.items()},
        result=_RESULTS[update.status],
        end_time=update.ended or 0,
        version=update.version,
        resource_changes=update.resource_changes,
    )


_RESULTS: dict[str, Literal["not-started", "in-progress", "succeeded", "failed"]] = {
    "not started": "not-started",
    "running": "in-progress",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "failed",
}
"""An update's status as its history shows the result."""


def update_history(updates: list[UpdateRecord]) -> GetHistoryResponse:
    return GetHistoryResponse(updates=[update_info(update) for update in updates])


def latest_update(update: UpdateRecord) -> UpdateInfo:
    return UpdateInfo(
        info=update_info(update),
        update_id=update.id,
        version=update.version,
        latest_version=update.version,
        requested_by=user_info(update.requested_by),
    )


# --- The catalog: environments, Insights accounts, registry packages -----------------------


def environment(record: EnvironmentRecord) -> OrgEnvironment:
    return OrgEnvironment(
        id=record.id,
        organization=record.org,
        project=record.project,
        name=record.name,
        created=record.created,
        modified=record.modified or record.created,
        owned_by=user_info(record.owner),
        tags=record.tags,
        referrer_metadata=_NO_REFERRERS,
        settings=_DEFAULT_SETTINGS,
    )


# The emulator keeps no referrers and no settings: every environment shares these (frozen).
_NO_REFERRERS = EnvironmentReferrerMetadata()
_DEFAULT_SETTINGS = EnvironmentSettings()


def environment_list(page: Page[EnvironmentRecord]) -> ListEnvironmentsResponse:
    return ListEnvironmentsResponse(
        environments=[environment(record) for record in page.items], next_token=page.next_token
    )


def environment_tag(record: EnvironmentTagRecord) -> EnvironmentTag:
    return EnvironmentTag(
        name=record.name,
        value=record.value,
        created=_moment(record.created),
        modified=_moment(record.modified),
        editor_login=record.editor,
        editor_name=record.editor,
    )


def environment_tags(page: Page[EnvironmentTagRecord]) -> ListEnvironmentTagsResponse:
    """A page of an environment's tags; the service marks the last page with the token "0"
    (`pulumi env tag list` stops on it)."""
    return ListEnvironmentTagsResponse(
        tags={record.name: environment_tag(record) for record in page.items},
        next_token=page.next_token or LAST_TAG_PAGE,
    )


LAST_TAG_PAGE = "0"


def environment_revision(record: RevisionRecord) -> EnvironmentRevision:
    return EnvironmentRevision(
        number=record.number,
        created=_moment(record.created),
        creator_login=record.creator,
        creator_name=record.creator,
        tags=record.tags or None,
    )


def revision_tag(record: RevisionTagRecord) -> EnvironmentRevisionTag:
    return EnvironmentRevisionTag(
        name=record.name,
        revision=record.revision,
        created=_moment(record.created),
        modified=_moment(record.modified),
        editor_login=record.editor,
        editor_name=record.editor,
    )


def revision_tags(records: list[RevisionTagRecord]) -> ListEnvironmentRevisionTagsResponse:
    return ListEnvironmentRevisionTagsResponse(
        tags=[revision_tag(record) for record in records], next_token=""
    )


def diagnostic(found: Diagnostic, environment: str = "<yaml>") -> EnvironmentDiagnostic:
    """An ESC diagnostic; ranges name the environment (`<yaml>` for text being checked)."""
    where = None
    if found.begin is not None and found.end is not None:
        where = EscRange(environment=environment, begin=_pos(found.begin), end=_pos(found.end))
    return EnvironmentDiagnostic(
        summary=found.summary, range=where, path=found.path, severity=found.severity
    )


def evaluated_environment(
    evaluation: Evaluation, *, show_secrets: bool, checked: bool = False
) -> dict[str, Any]:
    """An evaluated environment (`EscEnvironment`; with its diagnostics and function summary
    for `yaml/check`); secrets in plaintext only if `show_secrets`."""
    body: dict[str, Any] = {
        "exprs": evaluation.exprs,
        "properties": evaluation.properties(show_secrets=show_secrets),
    }
    if checked:
        body["diagnostics"] = [diagnostic(found).to_wire() for found in evaluation.diagnostics]
        body["environmentFunctionSummary"] = {
            "funcCounts": evaluation.builtin_counts(),
            "rotationPaths": [],
        }
    return body


def definition(record: DefinitionRecord) -> Response:
    """A definition as YAML, with the ETag an update may name and the revision it is."""
    return Response(
        content=record.yaml.encode(),
        media_type="application/x-yaml",
        headers=revision_headers(record),
    )


def revision_headers(record: DefinitionRecord) -> dict[str, str]:
    return {"ETag": record.etag, "Pulumi-ESC-Revision": str(record.revision)}


def _pos(position: Position) -> EscPos:
    return EscPos(line=position.line, column=position.column, byte=position.byte)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def insights_account(record: InsightsAccountRecord) -> InsightsAccount:
    return InsightsAccount(
        id=record.id,
        name=record.name,
        owned_by=user_info(record.owner),
        provider=record.provider,
        scheduled_scan_enabled=False,
    )


def insights_account_list(page: Page[InsightsAccountRecord]) -> ListInsightsAccountsResponse:
    return ListInsightsAccountsResponse(
        accounts=[insights_account(record) for record in page.items], next_token=page.next_token
    )


def resource_search_result(
    answer: SearchAnswer, *, properties: bool, next_link: str | None, previous_link: str | None
) -> ResourceSearchResult:
    """A page of the resource search: `next` and `previous` are links to the pages around it,
    `cursor` resumes after it."""
    return ResourceSearchResult(
        total=answer.total,
        resources=[found_resource(found, properties=properties) for found in answer.page.items],
        pagination=ResourceSearchPagination(
            previous=previous_link, next=next_link, cursor=answer.page.next_token
        ),
    )


def found_resource(found: FoundResource, *, properties: bool) -> ResourceResult:
    """A resource as the search index shows it: its package and module are its type's
    first two parts; its properties, asked for, are its inputs with its outputs over them."""
    resource = found.resource
    return ResourceResult(
        package=found.package,
        module=found.module,
        type=found.type,
        urn=found.urn,
        name=found.name,
        id=resource.get("id"),
        project=found.project,
        stack=found.stack,
        custom=bool(resource.get("custom")),
        external=bool(resource.get("external")),
        delete=bool(resource.get("delete")),
        protected=bool(resource.get("protect")),
        created=resource.get("created") or found.modified,
        modified=resource.get("modified") or found.modified,
        dependencies=list(resource.get("dependencies") or []),
        parent_urn=resource.get("parent"),
        provider_urn=resource.get("provider"),
        managed="managed",
        properties=(
            {**(resource.get("inputs") or {}), **(resource.get("outputs") or {})}
            if properties
            else None
        ),
    )


def package(record: PackageRecord) -> PackageMetadata:
    """A registry package; the emulator keeps no versions or documents, so every package is
    a private 1.0.0 whose readme and schema URLs only name it."""
    path = f"registry/{record.source}/{record.publisher}/{record.name}"
    return PackageMetadata(
        source=record.source,
        publisher=record.publisher,
        name=record.name,
        version="1.0.0",
        is_featured=False,
        package_status="ga",
        readme_url=f"{path}/readme.md",
        schema_url=f"{path}/schema.json",
        created_at=record.created_at,
        visibility="private",
    )


def package_list(page: Page[PackageRecord]) -> ListPackagesResponse:
    return ListPackagesResponse(
        packages=[package(record) for record in page.items], continuation_token=page.next_token
    )


# --- Teams and org members ------------------------------------------------------------------

_ROLE_CREATED = datetime(2020, 1, 1, tzinfo=UTC)
"""When the built-in org roles were made: the emulator has no custom roles to date."""


def team(record: TeamRecord, caller: str) -> Team:
    """A team as `GET /api/orgs/{org}/teams/{team}` shows it; `userRole` is the caller's."""
    roles = {member.login: member.role for member in record.members}
    return Team(
        kind="pulumi",
        name=record.name,
        display_name=record.display_name,
        description=record.description,
        members=[
            TeamMemberInfo(
                name=member.login, github_login=member.login, avatar_url="", role=member.role
            )
            for member in record.members
        ],
        stacks=[
            TeamStackPermission(
                project_name=grant.project,
                stack_name=grant.stack,
                permission=cast(StackPermission, grant.permission),
            )
            for grant in record.stacks
        ],
        environments=[
            TeamEnvironmentSettings(
                project_name=grant.project,
                env_name=grant.environment,
                permission=cast(EnvironmentPermission, grant.permission),
                max_open_duration=grant.max_open_duration,
            )
            for grant in record.environments
        ],
        user_role=roles.get(caller, "none"),
    )


def team_list(records: list[TeamRecord], caller: str) -> ListTeamsResponse:
    return ListTeamsResponse(teams=[team(record, caller) for record in records])


def org_members(
    records: list[OrgMemberRecord], joined: datetime
) -> ListOrganizationMembersResponse:
    """The org's members in one page; `joined` stands for when each joined (the emulator
    does not record it)."""
    return ListOrganizationMembersResponse(
        members=[
            OrganizationMember(
                role=record.role,
                user=user_info(record.login),
                created=joined,
                known_to_pulumi=True,
                virtual_admin=False,
                fga_role=FGARole(id=record.role, name=record.role, modified_at=_ROLE_CREATED),
            )
            for record in records
        ]
    )
