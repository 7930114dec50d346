"""Stacks: summaries and listings, create, rename, transfer; a stack's state (export, import, its
secrets sealed and opened in batches) and its updates."""

from __future__ import annotations

from typing import Any, Literal

from toolkit.models.wire import WireModel


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
    """Both fields are required; an empty one keeps the stack's current name or project."""

    new_name: str
    new_project: str


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
    """Bytes travel as base64 text, which the models keep as it is: a deployment holds each
    ciphertext in that same text (so do the other batch shapes)."""

    plaintexts: list[str]


class AppBatchEncryptResponse(WireModel):
    ciphertexts: list[str]


class AppBatchDecryptRequest(WireModel):
    ciphertexts: list[str]


class AppBatchDecryptResponse(WireModel):
    plaintexts: dict[str, str]
    """Each plaintext keyed by the ciphertext it came from, both base64 as sent."""


class AppUpdateEvent(WireModel):
    index: str
    kind: Literal["stdout", "stderr"]
    fields: dict[str, Any]


class AppUpdateResults(WireModel):
    """What `GET .../update/{id}` says of an update (an import's, say) while it runs."""

    status: Literal["not started", "requested", "running", "failed", "succeeded", "cancelled"]
    events: list[AppUpdateEvent]
    continuation_token: str | None = None


class TransferStackRequest(WireModel):
    to_org: str
    project_name: str | None = None
    stack_name: str | None = None
    from_org: str | None = None
