"""The base every part of the state builds on: one SQLite connection behind one lock, the one
way into an operation, and the lookups of orgs, roles and stacks that every part needs.

An operation enters through `_session` (the lock, and for a write one transaction) or one of
its scoped forms: `_in_org` also checks the caller's role in the org, `_on_stack` also finds
the stack. A refusal anywhere inside rolls the whole operation back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

from toolkit.emulator.state._records import Caller, ServiceFault, StackRecord
from toolkit.emulator.state._schema import connect, insert_world
from toolkit.emulator.world import Role, World


class Store:
    """The emulated service's database; each part of the state is a subclass of this."""

    def __init__(
        self, db_path: str = ":memory:", *, clock: Callable[[], float] = time.time
    ) -> None:
        """`clock` gives the current time in seconds since the epoch; tests pass their own to
        let update leases expire without waiting."""
        self._clock = clock
        self._lock = threading.RLock()
        self._db = connect(db_path)

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

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[None]:
        """One operation on the state, under the lock; a write is one transaction, so it
        happens whole or not at all."""
        with self._lock:
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

    @contextmanager
    def _in_org(self, caller: Caller, org: str, *, write: bool = False) -> Iterator[Role]:
        """A session for a caller acting in `org`, yielding its role there (see `_role_in`)."""
        with self._session(write=write):
            yield self._role_in(caller, org)

    @contextmanager
    def _on_stack(
        self, caller: Caller, org: str, project: str, stack: str, *, write: bool = False
    ) -> Iterator[StackRecord]:
        """A session for a caller acting on one stack of `org`, yielding it; 404 if none."""
        with self._in_org(caller, org, write=write):
            yield self._existing_stack(org, project, stack)

    def _org_exists(self, org: str) -> bool:
        return self._db.execute("SELECT 1 FROM orgs WHERE name = ?", (org,)).fetchone() is not None

    def _orgs_of(self, caller: Caller) -> list[str]:
        rows = self._db.execute(
            "SELECT org FROM memberships WHERE login = ? ORDER BY org", (caller.login,)
        ).fetchall()
        return [org for (org,) in rows]

    def _role_of(self, caller: Caller, org: str) -> Role | None:
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

    def _set_tags(self, stack_id: str, tags: dict[str, str]) -> None:
        self._db.execute(
            "UPDATE stacks SET tags = ? WHERE id = ?",
            (json.dumps(tags) if tags else None, stack_id),
        )


STACK_COLUMNS = "id, org, project, stack, resource_count, last_update, tags, version"


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
    )
