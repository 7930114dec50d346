"""Secret values in a stack's deployment settings, sealed with the stack's own key, and loading
a world's deployment settings, webhooks and schedules.

The service's wire form of a secret value (`apitype.SecretValue` in the pulumiservice
provider) is an object: `{"secret": plaintext}` when a client sets one, `{"ciphertext":
base64}` as the service stores and returns it. A client may send back the ciphertext it read,
which the service accepts only if its own stack's key sealed it. Apart from `_stack_settings`
because the schema's world loading needs it too, before any `Store` exists; so are how a
webhook and a schedule are kept, for the same reason.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from toolkit.emulator.secrets import Seal, Unseal, sealing
from toolkit.emulator.state._records import ServiceFault
from toolkit.emulator.world import WorldStack

SECRET_KEYS = frozenset({"secret", "ciphertext"})


def is_secret_value(value: object) -> bool:
    """Whether `value` is a secret value's wire form (an object of `secret`/`ciphertext`)."""
    return isinstance(value, dict) and bool(value) and set(value) <= SECRET_KEYS


def sealed_settings(settings: Any, key: bytes, stack_id: str) -> Any:
    """`settings` with every secret value stored as the stack's ciphertext: a plaintext
    sealed, a ciphertext kept if this stack's key sealed it, else 400."""
    return _sealed(settings, sealing(key, stack_id), "")


def _sealed(settings: Any, stack_sealing: tuple[Seal, Unseal], where: str) -> Any:
    if is_secret_value(settings):
        seal, unseal = stack_sealing
        if "secret" in settings:
            return {"ciphertext": seal(str(settings["secret"]))}
        ciphertext = settings["ciphertext"]
        if not _opens(unseal, ciphertext):
            raise ServiceFault(
                400,
                f"Bad Request: {where}: the ciphertext was not encrypted by this stack; "
                "send the value as a secret instead",
            )
        return {"ciphertext": ciphertext}
    if isinstance(settings, dict):
        return {
            name: _sealed(value, stack_sealing, f"{where}.{name}" if where else name)
            for name, value in settings.items()
        }
    if isinstance(settings, list):
        return [
            _sealed(value, stack_sealing, f"{where}[{index}]")
            for index, value in enumerate(settings)
        ]
    return settings


def _opens(unseal: Unseal, ciphertext: object) -> bool:
    """Whether `ciphertext` is one this stack's key sealed."""
    if not isinstance(ciphertext, str):
        return False
    try:
        unseal(ciphertext)
    except ValueError:
        return False
    return True


def insert_world_stack_settings(
    db: sqlite3.Connection, stack_id: str, key: bytes, stack: WorldStack, loaded_at: str
) -> None:
    """A world stack's deployment settings (secrets sealed), webhooks and schedules, each
    kept as the API keeps one a client creates."""
    if stack.deployment_settings is not None:
        settings = sealed_settings(stack.deployment_settings, key, stack_id)
        db.execute(
            "INSERT INTO deployment_settings VALUES (?, ?, 1)", (stack_id, json.dumps(settings))
        )
    for hook in stack.webhooks:
        insert_webhook(db, stack_id, webhook_body(hook.wire_body(), hook.name), hook.secret)
    for schedule in stack.schedules:
        insert_schedule(db, uuid.uuid4().hex, stack_id, schedule, loaded_at)


_WEBHOOK_FIELDS = ("displayName", "payloadUrl", "active", "format", "filters", "groups")


def webhook_body(hook: dict[str, Any], name: str) -> dict[str, Any]:
    """What is kept of a webhook: its own fields, not its scope (the stack says it)."""
    body = {field: hook[field] for field in _WEBHOOK_FIELDS if hook.get(field) is not None}
    return {"name": name, "displayName": name, "active": False, **body}


def insert_webhook(
    db: sqlite3.Connection, stack_id: str, body: dict[str, Any], secret: str | None
) -> None:
    db.execute(
        "INSERT INTO stack_webhooks VALUES (?, ?, ?, ?)",
        (stack_id, body["name"], json.dumps(body), secret),
    )


def insert_schedule(
    db: sqlite3.Connection, schedule_id: str, stack_id: str, request: dict[str, Any], created: str
) -> None:
    db.execute(
        "INSERT INTO stack_schedules (id, stack_id, request, created) VALUES (?, ?, ?, ?)",
        (schedule_id, stack_id, json.dumps(request), created),
    )
