"""The shapes of the calls only the `pulumi` CLI makes, as the routes read and answer them
(`routes.accounts`, `routes.stacks`, `routes.updates`).

They carry the names `pulumi-cloud-sdk` gives those shapes and follow the CLI's client
(`pkg/backend/httpstate/client` in pulumi v3.274.1). They live here, not in `toolkit.models`,
because only the emulator speaks this part of the protocol.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from toolkit.models import UserInfo, WireModel


class AppAPICapabilityConfig(WireModel):
    capability: str
    version: int | None = None


class AppCapabilitiesResponse(WireModel):
    capabilities: list[AppAPICapabilityConfig]


class AppMessage(WireModel):
    severity: Literal["info", "warning", "error"]
    message: str


class AppGetDefaultOrganizationResponse(WireModel):
    """The org the CLI puts stacks named without one in (keys as Go writes untagged fields)."""

    git_hub_login: str = Field(alias="GitHubLogin")
    messages: list[AppMessage] = Field(default_factory=list, alias="Messages")


class AppCreateStackResponse(WireModel):
    pass


class StackTag(WireModel):
    name: str
    value: str


class AppEncryptValueRequest(WireModel):
    plaintext: str


class AppEncryptValueResponse(WireModel):
    ciphertext: str


class AppDecryptValueRequest(WireModel):
    ciphertext: str


class AppDecryptValueResponse(WireModel):
    plaintext: str


class AppConfigValue(WireModel):
    string: str = ""
    secret: bool = False
    object: bool = False


class AppUpdateOptions(WireModel):
    dry_run: bool = False


class AppUpdateMetadata(WireModel):
    message: str = ""
    environment: dict[str, str] | None = None


class AppUpdateProgramRequest(WireModel):
    name: str
    runtime: str
    main: str = ""
    description: str = ""
    options: AppUpdateOptions = AppUpdateOptions()
    config: dict[str, AppConfigValue] | None = None
    metadata: AppUpdateMetadata = AppUpdateMetadata()


class AppUpdateProgramResponse(WireModel):
    update_id: str = Field(alias="updateID")


class AppStartUpdateRequest(WireModel):
    tags: dict[str, str] | None = None
    journal_version: int | None = None
    """The journal version the CLI could write; the emulator answers without one, so the CLI
    sends full checkpoints instead."""


class AppStartUpdateResponse(WireModel):
    version: int
    token: str
    token_expiration: int


class AppRenewUpdateLeaseRequest(WireModel):
    token: str | None = None
    duration: int


class AppRenewUpdateLeaseResponse(WireModel):
    token: str
    token_expiration: int


class AppPatchUpdateCheckpointRequest(WireModel):
    is_invalid: bool = False
    version: int
    features: list[str] | None = None
    deployment: dict[str, Any]


class AppEngineEventBatch(WireModel):
    events: list[dict[str, Any]]


class AppCompleteUpdateRequest(WireModel):
    status: Literal["succeeded", "failed", "cancelled"]


class AppUpdateInfo(WireModel):
    kind: str
    start_time: int
    message: str
    environment: dict[str, str]
    config: dict[str, AppConfigValue]
    result: Literal["not-started", "in-progress", "succeeded", "failed"]
    end_time: int
    version: int
    resource_changes: dict[str, int] | None = None


class GetHistoryResponse(WireModel):
    """The answer to `GET .../updates`, named as the CLI's `apitype` names it (the SDK declares
    that endpoint's answer as untyped)."""

    updates: list[AppUpdateInfo]


class UpdateInfo(WireModel):
    info: AppUpdateInfo
    update_id: str = Field(alias="updateID")
    version: int
    latest_version: int
    requested_by: UserInfo
