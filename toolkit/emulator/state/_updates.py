"""Updates and checkpoints: the lifecycle the CLI drives for `up`, `preview`, `refresh` and
`destroy` (create, start with a lease, checkpoints, engine events, renew, complete, cancel),
the stack's history, and export and import of its state."""

from __future__ import annotations

import json
import secrets
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

from toolkit.emulator import checkpoints
from toolkit.emulator.checkpoints import UntypedDeployment
from toolkit.emulator.state._records import (
    FINISHED,
    Caller,
    Lease,
    ServiceFault,
    StackRecord,
    UpdateKind,
    UpdateRecord,
)
from toolkit.emulator.state._store import Store

LEASE_SECONDS = 300
"""How long an update's lease token stays valid unless renewed (the CLI renews at half-life)."""
MAX_LEASE_SECONDS = 3600


class Updates(Store):
    """A stack's updates and the checkpoints they write; one state-writing update at a time."""

    def export_deployment(
        self, caller: Caller, org: str, project: str, stack: str, *, version: int | None = None
    ) -> UntypedDeployment:
        """The stack's latest checkpoint (or the one update `version` wrote), secrets still
        ciphertext: the CLI decrypts them through the stack when asked to show them.

        A stack never updated exports a deployment without resources; a world stack declared
        with N resources and never updated exports N placeholder resources, so that what the
        listings count is what the state holds; that is also the version its first update
        (the world's `lastUpdate`) wrote.
        """
        with self._on_stack(caller, org, project, stack) as record:
            if version is None or (version == record.version and not self._has_checkpoint(record)):
                return self._latest_checkpoint(record)
            row = self._db.execute(
                "SELECT deployment FROM checkpoints WHERE stack_id = ? AND version = ?",
                (record.id, version),
            ).fetchone()
        if row is None:
            raise ServiceFault(
                404, f"Not Found: stack {org}/{project}/{stack} has no version {version}"
            )
        return cast(UntypedDeployment, json.loads(row[0]))

    def import_deployment(
        self, caller: Caller, org: str, project: str, stack: str, deployment: Any
    ) -> str:
        """Make `deployment` the stack's latest checkpoint, through an import update that has
        succeeded by the time this returns; returns that update's id (the CLI polls it).

        As the service does, 400 for a deployment whose `service` secrets manager names
        another stack: its ciphertext is sealed with that stack's key, not this one's.
        """
        checked = _checked_deployment(deployment)
        sealed_for = checkpoints.sealed_for(checked)
        if sealed_for is not None and sealed_for != (org, project, stack):
            raise ServiceFault(
                400,
                "Bad Request: cannot import deployment with encrypted secrets from a different"
                " stack",
            )
        now = int(self._clock())
        update_id = uuid.uuid4().hex
        with self._on_stack(caller, org, project, stack, write=True) as record:
            self._refuse_if_busy(record)
            version = record.version + 1
            self._db.execute(
                "INSERT INTO updates VALUES (?, ?, 'import', 0, 'succeeded', ?, NULL, NULL, '{}',"
                " ?, ?, ?)",
                (update_id, record.id, version, caller.login, now, now),
            )
            self._write_checkpoint(record.id, version, checked)
            self._db.execute(
                "UPDATE stacks SET version = ?, last_update = ? WHERE id = ?",
                (version, now, record.id),
            )
        return update_id

    def create_update(
        self,
        caller: Caller,
        org: str,
        project: str,
        stack: str,
        *,
        kind: UpdateKind,
        dry_run: bool,
        program: dict[str, Any],
    ) -> str:
        """Record an update the CLI is about to run (its program, config and metadata as the
        CLI sent them); it holds nothing until started. Returns its id."""
        update_id = uuid.uuid4().hex
        with self._on_stack(caller, org, project, stack, write=True) as record:
            self._db.execute(
                "INSERT INTO updates VALUES (?, ?, ?, ?, 'not started', 0, NULL, NULL, ?, ?,"
                " NULL, NULL)",
                (update_id, record.id, kind, int(dry_run), json.dumps(program), caller.login),
            )
        return update_id

    def start_update(
        self,
        caller: Caller,
        org: str,
        project: str,
        stack: str,
        update_id: str,
        *,
        tags: dict[str, str] | None,
    ) -> Lease:
        """Start an update: 409 while another state-writing update of the stack runs (until it
        completes or is cancelled, whatever its lease). One that writes state takes the
        stack's next version. `tags`, when given, replace the stack's tags."""
        now = self._clock()
        token = secrets.token_urlsafe(24)
        with self._on_stack(caller, org, project, stack, write=True) as record:
            update = self._update_of(record, update_id)
            if update.status != "not started":
                raise ServiceFault(409, f"Conflict: update {update_id} is already {update.status}")
            version = record.version
            if _writes_state(update):
                self._refuse_if_busy(record)
                version += 1
                self._db.execute("UPDATE stacks SET version = ? WHERE id = ?", (version, record.id))
            self._db.execute(
                "UPDATE updates SET status = 'running', version = ?, lease_token = ?,"
                " lease_expires = ?, started = ? WHERE id = ?",
                (version, token, now + LEASE_SECONDS, int(now), update_id),
            )
            if tags is not None:
                self._set_tags(record.id, tags)
        return Lease(version=version, token=token, expires=int(now + LEASE_SECONDS))

    def renew_lease(self, token: str | None, update_id: str, *, duration: int) -> Lease:
        """Extend a running update's lease by `duration` seconds from now (at most an hour);
        403 once it has expired."""
        now = self._clock()
        seconds = min(max(duration, 1), MAX_LEASE_SECONDS)
        with self._leased(token, update_id) as update:
            self._db.execute(
                "UPDATE updates SET lease_expires = ? WHERE id = ?", (now + seconds, update_id)
            )
        assert token is not None  # _leased refused a missing token
        return Lease(version=update.version, token=token, expires=int(now + seconds))

    def save_checkpoint(self, token: str | None, update_id: str, deployment: Any) -> None:
        """Store the full checkpoint a running update sends (each one replaces the last)."""
        checked = _checked_deployment(deployment)
        with self._leased(token, update_id) as update:
            if not _writes_state(update):
                raise ServiceFault(400, "Bad Request: a preview does not write checkpoints")
            stack_id = self._stack_id_of(update_id)
            self._write_checkpoint(stack_id, update.version, checked)

    def record_events(
        self, token: str | None, update_id: str, events: Sequence[dict[str, Any]]
    ) -> None:
        """Keep a running update's engine events by sequence number (a resent batch replaces
        the events it carried before, so the CLI may retry it)."""
        rows = []
        for event in events:
            sequence = event.get("sequence")
            if not isinstance(sequence, int) or isinstance(sequence, bool):
                raise ServiceFault(400, "Bad Request: every engine event needs a sequence number")
            rows.append((update_id, sequence, json.dumps(event)))
        with self._leased(token, update_id):
            self._db.executemany("INSERT OR REPLACE INTO update_events VALUES (?, ?, ?)", rows)

    def complete_update(
        self, token: str | None, update_id: str, status: Literal["succeeded", "failed", "cancelled"]
    ) -> None:
        """Finish a running update; one that wrote state marks the stack updated now."""
        now = int(self._clock())
        with self._leased(token, update_id) as update:
            self._db.execute(
                "UPDATE updates SET status = ?, ended = ? WHERE id = ?", (status, now, update_id)
            )
            if _writes_state(update):
                self._db.execute(
                    "UPDATE stacks SET last_update = ? WHERE id = ?",
                    (now, self._stack_id_of(update_id)),
                )

    def cancel_update(
        self, caller: Caller, org: str, project: str, stack: str, update_id: str
    ) -> None:
        """Cancel an update that has not finished (`pulumi cancel`): its lease token stops
        working and the stack is free for the next update."""
        now = int(self._clock())
        with self._on_stack(caller, org, project, stack, write=True) as record:
            update = self._update_of(record, update_id)
            if update.status in FINISHED:
                raise ServiceFault(409, f"Conflict: update {update_id} has already finished")
            self._db.execute(
                "UPDATE updates SET status = 'cancelled', ended = ? WHERE id = ?",
                (now, update_id),
            )

    def get_update(
        self, caller: Caller, org: str, project: str, stack: str, update_id: str
    ) -> UpdateRecord:
        with self._on_stack(caller, org, project, stack) as record:
            return self._update_of(record, update_id)

    def update_history(
        self, caller: Caller, org: str, project: str, stack: str, *, page_size: int, page: int
    ) -> list[UpdateRecord]:
        """The stack's updates that write state (not previews) and have started, newest first,
        paged from 1."""
        with self._on_stack(caller, org, project, stack) as record:
            rows = self._db.execute(
                f"SELECT {_UPDATE_COLUMNS} FROM updates WHERE stack_id = ? AND dry_run = 0"
                " AND kind != 'preview' AND status != 'not started'"
                " ORDER BY version DESC, started DESC LIMIT ? OFFSET ?",
                (record.id, page_size, page_size * (max(page, 1) - 1)),
            ).fetchall()
        return [_update_record(row) for row in rows]

    @contextmanager
    def _leased(self, token: str | None, update_id: str) -> Iterator[UpdateRecord]:
        """A write for the running update `token` is the lease of, yielding it: 401 for a token
        that is not its lease, 403 once the update has finished or its lease expired."""
        with self._session(write=True):
            if not token:
                raise ServiceFault(401, "Unauthorized: this call needs the update's lease token")
            row = self._db.execute(
                f"SELECT {_UPDATE_COLUMNS}, lease_token, lease_expires FROM updates WHERE id = ?",
                (update_id,),
            ).fetchone()
            if row is None or not secrets.compare_digest(row[-2] or "", token):
                raise ServiceFault(401, "Unauthorized: the token is not this update's lease")
            update = _update_record(row[:-2])
            if update.status != "running":
                raise ServiceFault(403, f"Forbidden: the update is {update.status}")
            if self._clock() >= row[-1]:
                raise ServiceFault(403, "Forbidden: the update's lease has expired")
            yield update

    def _update_of(self, record: StackRecord, update_id: str) -> UpdateRecord:
        row = self._db.execute(
            f"SELECT {_UPDATE_COLUMNS} FROM updates WHERE id = ? AND stack_id = ?",
            (update_id, record.id),
        ).fetchone()
        if row is None:
            raise ServiceFault(
                404,
                f"Not Found: stack {record.org}/{record.project}/{record.stack} has no update"
                f" {update_id}",
            )
        return _update_record(row)

    def _refuse_if_busy(self, record: StackRecord) -> None:
        busy = self._db.execute(
            "SELECT 1 FROM updates WHERE stack_id = ? AND status = 'running' AND dry_run = 0"
            " AND kind != 'preview' LIMIT 1",
            (record.id,),
        ).fetchone()
        if busy is not None:
            # The CLI turns a 409 from starting an update into its "update in progress" advice.
            raise ServiceFault(409, "Conflict: Another update is currently in progress.")

    def _has_checkpoint(self, record: StackRecord) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM checkpoints WHERE stack_id = ? LIMIT 1", (record.id,)
        ).fetchone()
        return row is not None

    def _write_checkpoint(self, stack_id: str, version: int, deployment: UntypedDeployment) -> None:
        """Store the checkpoint of a stack version; the stack's resource count follows it."""
        self._db.execute(
            "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)",
            (stack_id, version, json.dumps(deployment)),
        )
        self._db.execute(
            "UPDATE stacks SET resource_count = ? WHERE id = ?",
            (checkpoints.resource_count(deployment), stack_id),
        )

    def _stack_id_of(self, update_id: str) -> str:
        (stack_id,) = self._db.execute(
            "SELECT stack_id FROM updates WHERE id = ?", (update_id,)
        ).fetchone()
        return str(stack_id)


def move_checkpoint(db: sqlite3.Connection, record: StackRecord, new: tuple[str, str, str]) -> None:
    """Rewrite the latest checkpoint of a stack that is moving from its current identity
    to `new` (org, project, stack): a rename or a transfer takes its state along."""
    row = db.execute(
        "SELECT version, deployment FROM checkpoints WHERE stack_id = ?"
        " ORDER BY version DESC LIMIT 1",
        (record.id,),
    ).fetchone()
    if row is None:
        return
    try:
        moved = checkpoints.moved(
            json.loads(row[1]), old=(record.org, record.project, record.stack), new=new
        )
    except ValueError as exc:
        raise ServiceFault(400, f"Bad Request: the stack's state cannot move: {exc}") from None
    db.execute(
        "UPDATE checkpoints SET deployment = ? WHERE stack_id = ? AND version = ?",
        (json.dumps(moved), record.id, row[0]),
    )


_UPDATE_COLUMNS = (
    "id, kind, dry_run, status, version, started, ended, program, requested_by,"
    " (SELECT json_extract(e.event, '$.summaryEvent.resourceChanges') FROM update_events e"
    "  WHERE e.update_id = updates.id AND json_extract(e.event, '$.summaryEvent') IS NOT NULL"
    "  ORDER BY e.sequence DESC LIMIT 1)"
)
"""An update's columns, and the resource changes of its latest summary engine event (the
CLI sends one as the update ends: the history's `resourceChanges`)."""


def _update_record(row: Sequence[Any]) -> UpdateRecord:
    return UpdateRecord(
        id=row[0],
        kind=row[1],
        dry_run=bool(row[2]),
        status=row[3],
        version=row[4],
        started=row[5],
        ended=row[6],
        program=json.loads(row[7]),
        requested_by=row[8],
        resource_changes=json.loads(row[9]) if row[9] is not None else None,
    )


def _writes_state(update: UpdateRecord) -> bool:
    """Whether an update changes the stack (previews and dry runs only look)."""
    return update.kind != "preview" and not update.dry_run


def _checked_deployment(document: Any) -> UntypedDeployment:
    try:
        return checkpoints.checked_deployment(document)
    except ValueError as exc:
        raise ServiceFault(400, f"Bad Request: {exc}") from None
