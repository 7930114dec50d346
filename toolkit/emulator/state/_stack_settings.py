"""What a stack carries beside its state: its deployment settings, webhooks and deployment
schedules (Pulumi's API document: `/deployments/settings`, `/hooks`, `/deployments/schedules`).

Each is kept by the stack's id, so it follows the stack through a rename and a transfer and
goes away with the stack, as on the service. Secret values in the settings are sealed with
the stack's own key (`_deployment_secrets`); a webhook's secret is kept but never shown.
Any member of the stack's org may read and write them.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from toolkit.emulator.stack_extras import schedule_problem, webhook_problem
from toolkit.emulator.state._deployment_secrets import (
    insert_schedule,
    insert_webhook,
    sealed_settings,
    webhook_body,
)
from toolkit.emulator.state._records import Caller, ServiceFault, StackRecord
from toolkit.emulator.state._store import Store


class StackSettings(Store):
    """A stack's deployment settings, webhooks and schedules."""

    # --- Deployment settings ----------------------------------------------------------

    def deployment_settings(
        self, caller: Caller, org: str, project: str, stack: str
    ) -> dict[str, Any]:
        """The settings as stored, with their `version`; 404 when the stack has none."""
        with self._on_stack(caller, org, project, stack) as record:
            stored = self._stored_settings(record)
        if stored is None:
            raise ServiceFault(404, f"Not Found: stack {org}/{project}/{stack} has no settings")
        settings, version = stored
        return {**settings, "version": version}

    def write_deployment_settings(
        self,
        caller: Caller,
        org: str,
        project: str,
        stack: str,
        settings: dict[str, Any],
        *,
        merge: bool,
    ) -> dict[str, Any]:
        """Replace the settings (PUT), or with `merge` set the given top-level sections over
        the stored ones (POST); their secret values sealed with this stack's key."""
        with self._on_stack(caller, org, project, stack, write=True) as record:
            key = self._stack_secrets_key(record)
            given = {name: value for name, value in settings.items() if name != "version"}
            written = sealed_settings(given, key, record.id)
            stored, version = self._stored_settings(record) or ({}, 0)
            if merge:
                written = {**stored, **written}
            self._db.execute(
                "INSERT OR REPLACE INTO deployment_settings VALUES (?, ?, ?)",
                (record.id, json.dumps(written), version + 1),
            )
        return {**written, "version": version + 1}

    def delete_deployment_settings(
        self, caller: Caller, org: str, project: str, stack: str
    ) -> None:
        with self._on_stack(caller, org, project, stack, write=True) as record:
            self._db.execute("DELETE FROM deployment_settings WHERE stack_id = ?", (record.id,))

    def _stored_settings(self, record: StackRecord) -> tuple[dict[str, Any], int] | None:
        """The stack's settings as stored and their version; None when it has none."""
        row = self._db.execute(
            "SELECT settings, version FROM deployment_settings WHERE stack_id = ?", (record.id,)
        ).fetchone()
        return None if row is None else (json.loads(row[0]), row[1])

    # --- Webhooks ---------------------------------------------------------------------

    def stack_webhooks(
        self, caller: Caller, org: str, project: str, stack: str
    ) -> list[dict[str, Any]]:
        """The stack's webhooks by name, as the service shows them (`WebhookResponse`)."""
        with self._on_stack(caller, org, project, stack) as record:
            rows = self._db.execute(
                "SELECT body, secret FROM stack_webhooks WHERE stack_id = ? ORDER BY name",
                (record.id,),
            ).fetchall()
        return [_webhook_view(record, json.loads(body), secret) for body, secret in rows]

    def stack_webhook(
        self, caller: Caller, org: str, project: str, stack: str, name: str
    ) -> dict[str, Any]:
        with self._on_stack(caller, org, project, stack) as record:
            return self._existing_webhook(record, name)

    def create_stack_webhook(
        self, caller: Caller, org: str, project: str, stack: str, hook: dict[str, Any]
    ) -> dict[str, Any]:
        """A new webhook (named by the service when the client gives no name); 409 when the
        stack has one of that name."""
        _refuse(webhook_problem(hook))
        name = hook.get("name") or secrets.token_hex(4)
        with self._on_stack(caller, org, project, stack, write=True) as record:
            if self._find_webhook(record, name) is not None:
                raise ServiceFault(409, f"Conflict: stack webhook {name!r} already exists")
            body, secret = webhook_body(hook, name), hook.get("secret")
            insert_webhook(self._db, record.id, body, secret)
        return _webhook_view(record, body, secret)

    def update_stack_webhook(
        self, caller: Caller, org: str, project: str, stack: str, name: str, hook: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace a webhook's fields (PATCH with the whole `Webhook`); its secret changes
        only when one is sent."""
        _refuse(webhook_problem(hook))
        with self._on_stack(caller, org, project, stack, write=True) as record:
            found = self._find_webhook(record, name)
            if found is None:
                raise ServiceFault(404, f"Not Found: stack webhook {name!r}")
            body, secret = webhook_body(hook, name), hook.get("secret") or found[1]
            self._db.execute(
                "UPDATE stack_webhooks SET body = ?, secret = ? WHERE stack_id = ? AND name = ?",
                (json.dumps(body), secret, record.id, name),
            )
        return _webhook_view(record, body, secret)

    def delete_stack_webhook(
        self, caller: Caller, org: str, project: str, stack: str, name: str
    ) -> None:
        with self._on_stack(caller, org, project, stack, write=True) as record:
            self._db.execute(
                "DELETE FROM stack_webhooks WHERE stack_id = ? AND name = ?", (record.id, name)
            )

    def _find_webhook(self, record: StackRecord, name: str) -> tuple[str, str | None] | None:
        row = self._db.execute(
            "SELECT body, secret FROM stack_webhooks WHERE stack_id = ? AND name = ?",
            (record.id, name),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def _existing_webhook(self, record: StackRecord, name: str) -> dict[str, Any]:
        found = self._find_webhook(record, name)
        if found is None:
            raise ServiceFault(404, f"Not Found: stack webhook {name!r}")
        return _webhook_view(record, json.loads(found[0]), found[1])

    # --- Deployment schedules ---------------------------------------------------------

    def deployment_schedules(
        self, caller: Caller, org: str, project: str, stack: str
    ) -> list[dict[str, Any]]:
        """The stack's schedules, oldest first, as the service shows them (`ScheduledAction`)."""
        with self._on_stack(caller, org, project, stack) as record:
            rows = self._db.execute(
                f"SELECT {_SCHEDULE_COLUMNS} FROM stack_schedules WHERE stack_id = ?"
                " ORDER BY created, id",
                (record.id,),
            ).fetchall()
        return [_schedule_view(row, record.org) for row in rows]

    def deployment_schedule(
        self, caller: Caller, org: str, project: str, stack: str, schedule_id: str
    ) -> dict[str, Any]:
        with self._on_stack(caller, org, project, stack) as record:
            return self._existing_schedule(record, schedule_id)

    def create_deployment_schedule(
        self, caller: Caller, org: str, project: str, stack: str, request: dict[str, Any]
    ) -> dict[str, Any]:
        """A new schedule: exactly one of `scheduleCron` and `scheduleOnce`, and a request."""
        _refuse(schedule_problem(request))
        schedule_id = uuid.uuid4().hex
        with self._on_stack(caller, org, project, stack, write=True) as record:
            insert_schedule(self._db, schedule_id, record.id, request, self.now().isoformat())
            return self._existing_schedule(record, schedule_id)

    def delete_deployment_schedule(
        self, caller: Caller, org: str, project: str, stack: str, schedule_id: str
    ) -> None:
        with self._on_stack(caller, org, project, stack, write=True) as record:
            self._existing_schedule(record, schedule_id)
            self._db.execute("DELETE FROM stack_schedules WHERE id = ?", (schedule_id,))

    def pause_deployment_schedule(
        self, caller: Caller, org: str, project: str, stack: str, schedule_id: str, paused: bool
    ) -> None:
        """Pause a schedule, or resume it (`paused` False); either again changes nothing."""
        with self._on_stack(caller, org, project, stack, write=True) as record:
            self._existing_schedule(record, schedule_id)
            self._db.execute(
                "UPDATE stack_schedules SET paused = ? WHERE id = ?", (int(paused), schedule_id)
            )

    def _existing_schedule(self, record: StackRecord, schedule_id: str) -> dict[str, Any]:
        row = self._db.execute(
            f"SELECT {_SCHEDULE_COLUMNS} FROM stack_schedules WHERE id = ? AND stack_id = ?",
            (schedule_id, record.id),
        ).fetchone()
        if row is None:
            raise ServiceFault(404, f"Not Found: schedule {schedule_id!r}")
        return _schedule_view(row, record.org)


def _webhook_view(record: StackRecord, body: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """`WebhookResponse`: the scope from the stack as it is now, the secret never shown."""
    return {
        "organizationName": record.org,
        "projectName": record.project,
        "stackName": record.stack,
        **body,
        "hasSecret": bool(secret),
        "secretCiphertext": "",
    }


def _refuse(problem: str | None) -> None:
    """400 saying why, for a webhook or schedule the service does not accept."""
    if problem is not None:
        raise ServiceFault(400, f"Bad Request: {problem}")


_SCHEDULE_COLUMNS = "id, request, created, paused"


def _schedule_view(row: tuple[str, str, str, int], org: str) -> dict[str, Any]:
    """`ScheduledAction` of kind `deployment`; the next run is not computed (no executions
    happen here), so it is the one-time moment or empty."""
    schedule_id, request_text, created, paused = row
    request = json.loads(request_text)
    view: dict[str, Any] = {
        "id": schedule_id,
        "orgID": org,
        "kind": "deployment",
        "paused": bool(paused),
        "definition": {"request": request["request"]},
        "created": created,
        "modified": created,
        "lastExecuted": "",
        "nextExecution": request.get("scheduleOnce") or "",
    }
    for field in ("scheduleCron", "scheduleOnce"):
        if request.get(field):
            view[field] = request[field]
    return view
