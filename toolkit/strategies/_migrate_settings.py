"""What a migrated stack needs in its new home beside its state and tags: its deployment
settings, webhooks and deployment schedules, copied over REST from the source stack to the new
one (both sides on Pulumi Cloud; a self-managed backend has none of them).

Copying again finishes the job and never duplicates: the settings are written whole, a webhook
is created only when the new stack has none of its name, a schedule only when the new stack
has none with the same timing and request (then paused if its source is). What the service
never shows cannot be copied: a secret value of the settings (the source stack's ciphertext,
which the new stack's key cannot open) and a webhook's signing secret. Each is listed, with
what to do; once the user has set it in the new stack, copying again finds it there and the
move is done.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolkit.cloud import CloudClient
from toolkit.errors import ClaimError
from toolkit.models import JsonObject, ScheduledAction, Webhook, WebhookResponse
from toolkit.strategies._migration import StepFailed

_SECRET_KEYS = frozenset({"secret", "ciphertext"})
_NOT_WRITTEN = ("version", "source")
"""Fields of the settings the service sets itself (`DeploymentSettings` beyond
`DeploymentSettingsRequest`)."""


@dataclass(frozen=True)
class StackExtras:
    """What a stack carries beside its state and tags."""

    deployment_settings: JsonObject | None
    webhooks: Sequence[WebhookResponse]
    schedules: Sequence[ScheduledAction]


@dataclass(frozen=True)
class ExtrasCopy:
    """What copying a stack's extras writes to the new stack, and what it cannot copy."""

    deployment_settings: JsonObject | None
    webhooks: list[Webhook] = field(default_factory=list)
    schedules: list[tuple[JsonObject, bool]] = field(default_factory=list)
    """Each schedule to create (a `CreateScheduledDeploymentRequest`), and whether to pause
    it then, as its source is paused."""
    to_pause: list[str] = field(default_factory=list)
    """The ids of schedules the new stack has already whose source is paused."""
    not_copied: list[str] = field(default_factory=list)
    """Each thing left out, said as the report says it."""

    def summary(self) -> str | None:
        """What was written, in words ("the deployment settings, 1 webhook(s)"); None when
        nothing was."""
        parts = ["the deployment settings"] if self.deployment_settings is not None else []
        if self.webhooks:
            parts.append(f"{len(self.webhooks)} webhook(s)")
        if self.schedules:
            parts.append(f"{len(self.schedules)} schedule(s)")
        return ", ".join(parts) or None


async def read_extras(client: CloudClient, name: str) -> StackExtras:
    """The three reads at once: a migration's longest chain of calls grows by one, not three."""
    org, project, stack = name.split("/")
    settings, webhooks, schedules = await asyncio.gather(
        client.deployment_settings(org, project, stack),
        client.stack_webhooks(org, project, stack),
        client.deployment_schedules(org, project, stack),
    )
    return StackExtras(settings, webhooks, schedules)


def extras_copy(source: StackExtras, present: StackExtras, target_name: str) -> ExtrasCopy:
    """What to write so that the new stack `target_name`, holding `present`, carries what
    the source holds."""
    org, project, stack = target_name.split("/")
    not_copied: list[str] = []
    settings = None
    if source.deployment_settings is not None:
        given = {
            name: value
            for name, value in source.deployment_settings.items()
            if name not in _NOT_WRITTEN
        }
        settings = _without_foreign_secrets(
            given, present.deployment_settings or {}, "", not_copied
        )
    present_hooks = {hook.name: hook for hook in present.webhooks}
    webhooks = []
    for hook in source.webhooks:
        landed = present_hooks.get(hook.name)
        if landed is None:
            webhooks.append(
                Webhook(
                    organization_name=org,
                    project_name=project,
                    stack_name=stack,
                    name=hook.name,
                    display_name=hook.display_name,
                    payload_url=hook.payload_url,
                    active=hook.active,
                    format=hook.format,
                    filters=hook.filters,
                    groups=hook.groups,
                )
            )
        if hook.has_secret and not (landed is not None and landed.has_secret):
            not_copied.append(
                f"webhook {hook.name!r}: its signing secret, which the service never shows "
                f"(set it on the webhook of {target_name} in Pulumi Cloud)"
            )
    present_schedules = {
        json.dumps(_schedule_request(schedule), sort_keys=True): schedule
        for schedule in present.schedules
    }
    schedules: list[tuple[JsonObject, bool]] = []
    to_pause: list[str] = []
    for schedule in source.schedules:
        request = _schedule_request(schedule)
        twin = present_schedules.get(json.dumps(request, sort_keys=True))
        if twin is None:
            schedules.append((request, schedule.paused))
        elif schedule.paused and not twin.paused:
            to_pause.append(twin.id)
    return ExtrasCopy(settings, webhooks, schedules, to_pause, not_copied)


async def write_extras(client: CloudClient, target_name: str, copy: ExtrasCopy) -> None:
    """Write `copy` to `target_name`, its writes side by side (a schedule's pause after its
    creation): each is made, whichever fails, and then the first error in `copy`'s order is
    raised; a run again finds what was written and writes the rest."""
    org, project, stack = target_name.split("/")

    async def schedule(request: JsonObject, paused: bool) -> None:
        created = await client.create_deployment_schedule(org, project, stack, request)
        if paused:
            await client.pause_deployment_schedule(org, project, stack, created.id)

    writes: list[Awaitable[object]] = []
    if copy.deployment_settings is not None:
        settings = copy.deployment_settings
        writes.append(client.replace_deployment_settings(org, project, stack, settings))
    writes += [client.create_stack_webhook(org, project, stack, hook) for hook in copy.webhooks]
    writes += [schedule(request, paused) for request, paused in copy.schedules]
    writes += [
        client.pause_deployment_schedule(org, project, stack, paused_id)
        for paused_id in copy.to_pause
    ]
    for outcome in await asyncio.gather(*writes, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


NOTHING_CARRIED = StackExtras(None, (), ())
"""What a stack holds when it was just created."""


async def copy_settings(
    source: CloudClient,
    destination: CloudClient,
    source_name: str,
    target_name: str,
    *,
    created_now: bool,
) -> ExtrasCopy:
    """Copy what `source_name` carries to `target_name` and return what was written;
    StepFailed when a call fails, or after writing all it could, when something could not be
    copied. `created_now`: this attempt created `target_name`, which holds nothing yet, so it
    is not read (three calls a stack fewer on a first run); a later attempt reads it."""
    try:
        carried, present = await asyncio.gather(
            read_extras(source, source_name),
            _nothing() if created_now else read_extras(destination, target_name),
        )
        copy = extras_copy(carried, present, target_name)
        await write_extras(destination, target_name, copy)
    except ClaimError as error:
        raise StepFailed(
            "settings",
            f"copying the deployment settings, webhooks and schedules of {source_name} to "
            f"{target_name} failed: {error.message}; run the same command again to finish",
        ) from error
    if copy.not_copied:
        raise StepFailed(
            "settings",
            f"{target_name} holds the state of {source_name} but not all it carried: "
            + "; ".join(copy.not_copied)
            + f"; {source_name} is left as it is. Once set, run the same command again",
        )
    return copy


async def _nothing() -> StackExtras:
    return NOTHING_CARRIED


def _without_foreign_secrets(settings: Any, present: Any, where: str, not_copied: list[str]) -> Any:
    """`settings` without the source stack's sealed values, which the new stack cannot open:
    each is kept only where the new stack already holds a secret value of its own there,
    else left out and listed in `not_copied`."""
    if isinstance(settings, dict) and settings and set(settings) <= _SECRET_KEYS:
        if isinstance(present, dict) and present and set(present) <= _SECRET_KEYS:
            return present
        not_copied.append(
            f"deployment setting {where}: a secret value, which only the source stack can "
            f"decrypt (set it again in the new stack's deployment settings)"
        )
        return None
    if isinstance(settings, dict):
        kept = {}
        for name, value in settings.items():
            inner = present.get(name) if isinstance(present, dict) else None
            written = _without_foreign_secrets(
                value, inner, f"{where}.{name}" if where else name, not_copied
            )
            if written is not None:
                kept[name] = written
        return kept
    return settings


def _schedule_request(schedule: ScheduledAction) -> JsonObject:
    """The `CreateScheduledDeploymentRequest` that makes `schedule` again."""
    request: JsonObject = {"request": schedule.definition.get("request", {})}
    if schedule.schedule_cron:
        request["scheduleCron"] = schedule.schedule_cron
    if schedule.schedule_once:
        request["scheduleOnce"] = schedule.schedule_once
    return request
