"""What the service accepts of a stack's webhook and deployment schedule, as a client creates
one (Pulumi's API document: `Webhook`, `CreateScheduledDeploymentRequest`).

Apart from the state because a world file's stacks are held to the same rules as it is read
(`world`), before any state exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def webhook_problem(hook: dict[str, Any]) -> str | None:
    """Why the service refuses `hook`, or None when it accepts it."""
    if not hook.get("payloadUrl"):
        return "a webhook needs a payloadUrl"
    return None


def schedule_problem(request: dict[str, Any]) -> str | None:
    """Why the service refuses a schedule made from `request`, or None when it accepts it:
    exactly one of `scheduleCron` and `scheduleOnce` (a timestamp), and a deployment request."""
    cron, once = request.get("scheduleCron"), request.get("scheduleOnce")
    if bool(cron) == bool(once):
        return "give exactly one of scheduleCron and scheduleOnce"
    if once:
        try:
            datetime.fromisoformat(str(once))
        except ValueError:
            return f"scheduleOnce {once!r} is no timestamp"
    if not isinstance(request.get("request"), dict):
        return "a schedule needs the deployment request to run"
    return None
