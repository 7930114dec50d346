"""The base every part of the state builds on: one SQLite connection behind one lock, the one
way into an operation, and the lookups of orgs, roles and stacks that every part needs.

An operation enters through `_session` (the lock, and for a write one transaction; the
outermost session first lets the service catch up with its clock) or one of
its scoped forms: `_in_org` also checks the caller's role in the org (and, for a write, that
the caller may write and the org is not being claimed), `_on_stack` also finds the stack. A
refusal anywhere inside rolls the whole operation back.

The service's time is `_clock()`: the given clock plus an offset that only moves forward
(`advance_clock`), kept with the state, so tests can let hours or days pass at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Self, cast

from toolkit.emulator import checkpoints
from toolkit.emulator.checkpoints import UntypedDeployment
from toolkit.emulator.state._records import Caller, ServiceFault, StackRecord
from toolkit.emulator.state._schema import connect, insert_world
from toolkit.emulator.world import Role, World

_LAST_MOMENT = datetime(9999, 12, 31, tzinfo=UTC).timestamp()
"""The latest the service's clock may show: a day before dates run out."""


class Store:
    """The emulated service's database; each part of the state is a subclass of this."""

    def __init__(
        self, db_path: str = ":memory:", *, clock: Callable[[], float] = time.time
    ) -> None:
        """`clock` gives the current time in seconds since the epoch; tests pass their own to
        let update leases expire without waiting."""
        self._given_clock = clock
        self._lock = threading.RLock()
        self._depth = 0
        """Sessions open on this thread under the lock: the outermost one catches up."""
        self._db = connect(db_path)
        self._offset = float(self._setting("clock_offset", 0.0))

    def _clock(self) -> float:
        return self._given_clock() + self._offset

    def now(self) -> datetime:
        """The service's current time."""
        return datetime.fromtimestamp(self._clock(), UTC)

    def clock_offset(self) -> float:
        """Seconds the service's clock has been moved ahead of the given clock."""
        return self._offset

    def advance_clock(self, seconds: float) -> float:
        """Move the service's time `seconds` forward; returns the new offset."""
        if seconds < 0:
            raise ServiceFault(400, "Bad Request: the clock only moves forward")
        room = _LAST_MOMENT - self._clock()
        if seconds > room:
            raise ServiceFault(
                400,
                f"Bad Request: advanceSeconds {seconds:g} would move the clock past the year "
                f"9999; it can move at most {room:.0f} seconds further",
            )
        with self._session(write=True):
            self._offset += seconds
            self._set_setting("clock_offset", self._offset)
        return self._offset

    def rate_limit(self) -> float | None:
        """Requests a second the service answers each caller (the world's
        `service.rateLimit`); None: no limit."""
        value = self._setting("rate_limit", None)
        return None if value is None else float(value)

    def set_rate_limit(self, per_second: float | None) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("a rate limit must be above 0 requests a second")
        with self._session(write=True):
            self._set_setting("rate_limit", per_second)

    def _setting(self, name: str, default: Any) -> Any:
        row = self._db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return default if row is None else json.loads(row[0])

    def _set_setting(self, name: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (name, json.dumps(value)))

    @classmethod
    def from_world(
        cls, world: World, db_path: str = ":memory:", *, clock: Callable[[], float] = time.time
    ) -> Self:
        """A fresh state holding exactly what `world` describes."""
        state = cls(db_path, clock=clock)
        with state._session(write=True):
            insert_world(state._db, world, db_path)
        return state

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _catch_up(self) -> None:
        """Carry out what the service does on its own as time passes (a running claim moving
        stacks), so that every operation sees the state as of the service's clock."""

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[None]:
        """One operation on the state, under the lock; a write is one transaction, so it
        happens whole or not at all."""
        with self._lock:
            self._depth += 1
            try:
                if self._depth == 1:
                    self._catch_up()
                if not write:
                    yield
                    return
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                self._depth -= 1

    @contextmanager
    def _in_org(self, caller: Caller, org: str, *, write: bool = False) -> Iterator[Role]:
        """A session for a caller acting in `org`, yielding its role there (see `_role_in`);
        a write also needs an org that no claim is moving (`_refuse_if_claiming`)."""
        with self._session(write=write):
            role = self._role_in(caller, org)
            if write:
                self._refuse_if_claiming(org)
            yield role

    @contextmanager
    def _on_stack(
        self, caller: Caller, org: str, project: str, stack: str, *, write: bool = False
    ) -> Iterator[StackRecord]:
        """A session for a caller acting on one stack of `org`, yielding it; 404 if none."""
        with self._in_org(caller, org, write=write):
            yield self._existing_stack(org, project, stack)

    def _refuse_if_claiming(self, org: str) -> None:
        """A claim that is moving an agent's org holds it against every write meanwhile."""
        row = self._db.execute("SELECT claimed_by FROM orgs WHERE name = ?", (org,)).fetchone()
        if row is not None and row[0] is not None:
            raise ServiceFault(
                409, f"Conflict: organization {org!r} is being claimed; try again once it is done"
            )

    def _org_exists(self, org: str) -> bool:
        """Whether `org` exists (one soft-deleted by a claim does not)."""
        row = self._db.execute(
            "SELECT 1 FROM orgs WHERE name = ? AND deleted_at IS NULL", (org,)
        ).fetchone()
        return row is not None

    def _orgs_of(self, caller: Caller) -> list[str]:
        if caller.org_token is not None:
            scoped = caller.org_token.org
            return [scoped] if self._org_exists(scoped) else []
        rows = self._db.execute(
            "SELECT m.org FROM memberships m JOIN orgs o ON o.name = m.org"
            " WHERE m.login = ? AND o.deleted_at IS NULL ORDER BY m.org",
            (caller.login,),
        ).fetchall()
        return [org for (org,) in rows]

    def _role_of(self, caller: Caller, org: str) -> Role | None:
        """The caller's role in `org`: an account's membership, an org token's own role in its
        one org; None where it has none."""
        if caller.org_token is not None:
            return caller.org_token.role if caller.org_token.org == org else None
        row = self._db.execute(
            "SELECT role FROM memberships WHERE login = ? AND org = ?", (caller.login, org)
        ).fetchone()
        return None if row is None else row[0]

    def _role_in(self, caller: Caller, org: str) -> Role:
        """The caller's role in an existing org: 404 if there is no such org, 403 if no role."""
        if not self._org_exists(org):
            raise ServiceFault(404, f"Not Found: organization {org!r} does not exist")
        role = self._role_of(caller, org)
        if role is None:
            raise ServiceFault(
                403, f"Forbidden: {caller.login!r} is not a member of organization {org!r}"
            )
        return role

    def _find_stack(self, org: str, project: str, stack: str) -> StackRecord | None:
        row = self._db.execute(
            f"SELECT {STACK_COLUMNS} FROM stacks WHERE org = ? AND project = ? AND stack = ?",
            (org, project, stack),
        ).fetchone()
        return None if row is None else stack_record(row)

    def _existing_stack(self, org: str, project: str, stack: str) -> StackRecord:
        record = self._find_stack(org, project, stack)
        if record is None:
            raise ServiceFault(404, f"Not Found: stack {org}/{project}/{stack} does not exist")
        return record

    def _latest_checkpoint(self, record: StackRecord) -> UntypedDeployment:
        """The stack's newest checkpoint: what its export, the resource search and ESC's
        `pulumi-stacks` read."""
        row = self._db.execute(
            "SELECT deployment FROM checkpoints WHERE stack_id = ? ORDER BY version DESC LIMIT 1",
            (record.id,),
        ).fetchone()
        if row is not None:
            return cast(UntypedDeployment, json.loads(row[0]))
        return self._unsaved_checkpoint(record)

    def _unsaved_checkpoint(self, record: StackRecord) -> UntypedDeployment:
        """What a stack that has no saved checkpoint shows as its latest: its world's
        placeholder resources, else none."""
        at = datetime.fromtimestamp(record.last_update or self._clock(), UTC)
        if record.resource_count:
            return checkpoints.placeholder_deployment(
                record.project, record.stack, record.resource_count, at
            )
        return checkpoints.empty_deployment(at)

    def _stack_secrets_key(self, record: StackRecord) -> bytes:
        (key,) = self._db.execute(
            "SELECT secrets_key FROM stacks WHERE id = ?", (record.id,)
        ).fetchone()
        return bytes(key)

    def _refuse_if_updating(self, record: StackRecord, doing: str) -> None:
        """A stack cannot be renamed or moved while an update that writes its state runs."""
        if record.updating:
            raise ServiceFault(
                409,
                f"Conflict: cannot {doing} stack {record.org}/{record.project}/{record.stack}:"
                " an update is in progress",
            )

    def _owner_of(self, org: str) -> str:
        """Who entities of an org are shown as owned by: its first admin, else the org."""
        row = self._db.execute(
            "SELECT login FROM memberships WHERE org = ? AND role = 'admin' ORDER BY login",
            (org,),
        ).fetchone()
        return org if row is None else str(row[0])

    def _set_tags(self, stack_id: str, tags: dict[str, str]) -> None:
        self._db.execute(
            "UPDATE stacks SET tags = ? WHERE id = ?",
            (json.dumps(tags) if tags else None, stack_id),
        )


RUNNING_UPDATE = (
    "SELECT 1 FROM updates u WHERE u.stack_id = stacks.id AND u.status = 'running'"
    " AND u.dry_run = 0 AND u.kind != 'preview'"
)
"""Rows while a stack (`stacks` in the outer query) has an update running that writes state."""

STACK_COLUMNS = (
    "id, org, project, stack, resource_count, last_update, tags, version,"
    f" EXISTS ({RUNNING_UPDATE})"
)


def stack_record(row: Sequence[Any]) -> StackRecord:
    return StackRecord(
        id=row[0],
        org=row[1],
        project=row[2],
        stack=row[3],
        resource_count=row[4],
        last_update=row[5],
        tags=json.loads(row[6]) if row[6] else {},
        version=row[7],
        updating=bool(row[8]),
    )
