"""Direct reads for tests: what the database holds, without a caller, roles or HTTP."""

from __future__ import annotations

import json
from typing import Any, cast

from toolkit.emulator.checkpoints import UntypedDeployment
from toolkit.emulator.state._records import StackRecord
from toolkit.emulator.state._store import Store


class Inspection(Store):
    def stack_names(self, org: str) -> set[tuple[str, str]]:
        """(project, stack) of every stack in `org`, read straight from the database."""
        with self._session():
            rows = self._db.execute(
                "SELECT project, stack FROM stacks WHERE org = ?", (org,)
            ).fetchall()
        return {(project, stack) for project, stack in rows}

    def find_stack(self, org: str, project: str, stack: str) -> StackRecord | None:
        with self._session():
            return self._find_stack(org, project, stack)

    def checkpoint_of(self, org: str, project: str, stack: str) -> UntypedDeployment | None:
        """The stack's latest stored checkpoint as it is in the database (None: never written)."""
        with self._session():
            row = self._db.execute(
                "SELECT c.deployment FROM checkpoints c JOIN stacks s ON s.id = c.stack_id"
                " WHERE s.org = ? AND s.project = ? AND s.stack = ?"
                " ORDER BY c.version DESC LIMIT 1",
                (org, project, stack),
            ).fetchone()
        return None if row is None else cast(UntypedDeployment, json.loads(row[0]))

    def events_of(self, update_id: str) -> list[dict[str, Any]]:
        """The engine events recorded for an update, in sequence order."""
        with self._session():
            rows = self._db.execute(
                "SELECT event FROM update_events WHERE update_id = ? ORDER BY sequence",
                (update_id,),
            ).fetchall()
        return [json.loads(event) for (event,) in rows]

    def environment_names(self, org: str) -> set[tuple[str, str]]:
        with self._session():
            rows = self._db.execute(
                "SELECT project, name FROM environments WHERE org = ?", (org,)
            ).fetchall()
        return {(project, name) for project, name in rows}

    def org_names(self) -> set[str]:
        with self._session():
            return {name for (name,) in self._db.execute("SELECT name FROM orgs")}
