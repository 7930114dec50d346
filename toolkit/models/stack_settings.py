"""What a stack carries beside its state: its webhooks and deployment schedules.

A stack's deployment settings travel as the service's JSON document, whole (`JsonObject`):
the toolkit copies them without reading more than their secret values, and a model of every
nested section would only drop what the service adds later.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from toolkit.models.wire import WireModel

JsonObject = dict[str, Any]


class Webhook(WireModel):
    """A webhook as a client creates it; `secret` signs its deliveries and is never read
    back."""

    organization_name: str
    project_name: str | None = None
    stack_name: str | None = None
    env_name: str | None = None
    name: str | None = None
    display_name: str
    payload_url: str
    secret: str | None = None
    active: bool
    format: str | None = None
    filters: list[str] | None = None
    groups: list[str] | None = None


class WebhookResponse(Webhook):
    """A webhook as the service shows it: whether it has a secret, never the secret."""

    has_secret: bool
    secret_ciphertext: str


class ScheduledAction(WireModel):
    """A stack's schedule; for a deployment, `definition` holds the `request` it runs."""

    id: str
    org_id: str = Field(alias="orgID")
    schedule_cron: str | None = None
    schedule_once: str | None = None
    next_execution: str
    paused: bool
    kind: Literal["deployment", "environment_rotation", "scan", "agent_automation"]
    definition: dict[str, Any]
    created: str
    modified: str
    last_executed: str


class ListScheduledActionsResponse(WireModel):
    schedules: list[ScheduledAction]
