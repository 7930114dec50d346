"""A stack's deployment settings, webhooks and deployment schedules: the calls the
pulumiservice provider's client makes (`provider/pkg/pulumiapi`), which a migration uses to
give a new stack what its source had."""

from __future__ import annotations

import json
from typing import Any

from toolkit.cloud.stacks import stack_path
from toolkit.cloud.transport import (
    Transport,
    decode_answer,
    parse_answer,
    segment,
    validate_answer,
)
from toolkit.errors import NOT_AN_API_HINT, NotFoundError, TransportError
from toolkit.models import (
    JsonObject,
    ListScheduledActionsResponse,
    ScheduledAction,
    Webhook,
    WebhookResponse,
)


class StackSettingsCalls(Transport):
    """The calls on what a stack carries beside its state."""

    async def deployment_settings(self, org: str, project: str, stack: str) -> JsonObject | None:
        """The stack's deployment settings as the service keeps them (secret values as the
        stack's ciphertext); None when it has none."""
        path = f"{stack_path(org, project, stack)}/deployments/settings"
        try:
            response = await self._request("GET", path)
        except NotFoundError:
            return None
        settings = decode_answer(response, f"GET {path}")
        if not isinstance(settings, dict):
            raise TransportError(
                f"GET {path} answered with something other than settings", hint=NOT_AN_API_HINT
            )
        return settings

    async def replace_deployment_settings(
        self, org: str, project: str, stack: str, settings: JsonObject
    ) -> None:
        """Make `settings` the stack's whole deployment settings (PUT, as the provider
        writes them); safe to repeat."""
        await self._request(
            "PUT",
            f"{stack_path(org, project, stack)}/deployments/settings",
            text=json.dumps(settings),
            always_retry=True,
        )

    async def stack_webhooks(self, org: str, project: str, stack: str) -> list[WebhookResponse]:
        path = f"{stack_path(org, project, stack)}/hooks"
        call = f"GET {path}"
        hooks = decode_answer(await self._request("GET", path), call)
        if not isinstance(hooks, list):
            raise TransportError(
                f"{call} answered with something other than a list of webhooks",
                hint=NOT_AN_API_HINT,
            )
        return [validate_answer(WebhookResponse, hook, call) for hook in hooks]

    async def create_stack_webhook(
        self, org: str, project: str, stack: str, webhook: Webhook
    ) -> WebhookResponse:
        """Create a webhook by its name; a ConflictError when the stack has one so named."""
        path = f"{stack_path(org, project, stack)}/hooks"
        response = await self._request("POST", path, body=webhook)
        return parse_answer(WebhookResponse, response, f"POST {path}")

    async def deployment_schedules(
        self, org: str, project: str, stack: str
    ) -> list[ScheduledAction]:
        path = f"{stack_path(org, project, stack)}/deployments/schedules"
        return (await self._get(ListScheduledActionsResponse, path)).schedules

    async def create_deployment_schedule(
        self, org: str, project: str, stack: str, schedule: dict[str, Any]
    ) -> ScheduledAction:
        """Create a schedule from a `CreateScheduledDeploymentRequest` (its cron or its one
        moment, and the deployment request it runs)."""
        path = f"{stack_path(org, project, stack)}/deployments/schedules"
        response = await self._request("POST", path, text=json.dumps(schedule))
        return parse_answer(ScheduledAction, response, f"POST {path}")

    async def pause_deployment_schedule(
        self, org: str, project: str, stack: str, schedule_id: str
    ) -> None:
        """Pause a schedule; safe to repeat."""
        schedule = segment(schedule_id)
        path = f"{stack_path(org, project, stack)}/deployments/schedules/{schedule}/pause"
        await self._request("POST", path, always_retry=True)
