"""What the state hands out: frozen records of what it holds, and the fault it raises.

Records carry the state's facts only; how the service shows them on the wire is the HTTP
layer's business (`toolkit.emulator.responses`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from toolkit.emulator.world import Role
from toolkit.entities import Inventory


class ServiceFault(Exception):
    """A request the service refuses: the HTTP status and message it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Caller:
    """The identity behind an access token."""

    login: str
    is_agent: bool


@dataclass(frozen=True)
class UserRecord:
    """An account and its role in each org it belongs to (in org name order)."""

    login: str
    is_agent: bool
    roles: dict[str, Role]


@dataclass(frozen=True)
class StackRecord:
    """A stack as stored."""

    id: str
    org: str
    project: str
    stack: str
    resource_count: int
    last_update: int
    tags: dict[str, str]
    version: int


@dataclass(frozen=True)
class StackView:
    """A stack as one look at it shows it: the record and the id of its latest update that
    writes state (None if it has none), which is the one the CLI cancels."""

    record: StackRecord
    latest_update: str | None


@dataclass(frozen=True)
class EnvironmentRecord:
    id: str
    org: str
    project: str
    name: str
    created: str
    owner: str
    """The login the environment is shown as owned by."""


@dataclass(frozen=True)
class InsightsAccountRecord:
    id: str
    name: str
    provider: str
    owner: str
    """The login the account is shown as owned by."""


@dataclass(frozen=True)
class PackageRecord:
    source: str
    publisher: str
    name: str
    org: str
    created_at: datetime


@dataclass(frozen=True)
class ClaimRecord:
    """What a claim token would claim: the agent account and everything its org owns."""

    login: str
    """The agent's login, which is also the name of its individual org."""
    created_at: datetime
    claim_expires_at: datetime
    inventory: Inventory


UpdateKind = Literal["update", "preview", "refresh", "destroy", "import"]
UpdateStatus = Literal["not started", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Lease:
    """What starting an update (or renewing its lease) hands the CLI: the stack version the
    update writes, and the token that authorizes its checkpoints, events and completion."""

    version: int
    token: str
    expires: int


@dataclass(frozen=True)
class UpdateRecord:
    """One update of a stack, as its history and status calls show it."""

    id: str
    kind: UpdateKind
    dry_run: bool
    status: UpdateStatus
    version: int
    started: int | None
    ended: int | None
    program: dict[str, Any]
    requested_by: str
    """The login of whoever created it."""
