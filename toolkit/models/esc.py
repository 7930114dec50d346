"""ESC environments: listings, one environment's definition, tags, revisions and revision tags,
and the diagnostics of a refused definition."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import AwareDatetime

from toolkit.models.orgs import UserInfo
from toolkit.models.wire import WireModel


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


class CreateEnvironmentRequest(WireModel):
    project: str
    name: str


class CloneEnvironmentRequest(WireModel):
    """`POST .../{project}/{env}/clone`: the copy's name (and project, by default the
    source's), the source's revision to copy (0, the default, is its newest, as the esc CLI
    sends it), and what else to carry: its revision history, its teams' access, its tags, its
    revision tags."""

    name: str
    project: str | None = None
    version: int = 0
    preserve_history: bool = False
    preserve_access: bool = False
    preserve_environment_tags: bool = False
    preserve_revision_tags: bool = False


class EnvironmentMetadata(WireModel):
    id: str
    owned_by: UserInfo


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
