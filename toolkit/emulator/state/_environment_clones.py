"""Cloning an ESC environment within its org (`POST .../clone`): the esc CLI's `env clone`, and
the document's way to rename an environment (clone, then delete the source).

The copy has the source's definition at the version asked (its newest by default), its secrets
sealed again with the copy's own key. As the request's options say, it also keeps the source's
revision history up to that version (else the definition is its revision 1), its teams'
access, its tags, and its revision tags (those on a revision the copy has). The name must be
free in the org (409); any member of the org may clone, as any member may create.
"""

from __future__ import annotations

import uuid

from toolkit.emulator.esc_definitions import open_secrets, seal_secrets
from toolkit.emulator.secrets import new_key, sealing
from toolkit.emulator.state._environment_tags import EnvironmentTags
from toolkit.emulator.state._records import (
    Caller,
    CloneOptions,
    EnvironmentRecord,
    ServiceFault,
)
from toolkit.entities import name_problem


class EnvironmentClones(EnvironmentTags):
    def clone_environment(
        self,
        caller: Caller,
        org: str,
        project: str,
        name: str,
        *,
        to_project: str,
        to_name: str,
        options: CloneOptions,
    ) -> EnvironmentRecord:
        """The new environment `to_project`/`to_name` of `org`, a copy of
        `project`/`name` with what `options` asks."""
        for what, value in (("project", to_project), ("environment", to_name)):
            problem = name_problem(what, value)
            if problem is not None:
                raise ServiceFault(400, f"Bad Request: {problem}")
        with self._in_org(caller, org, write=True):
            source = self._existing_environment(org, project, name)
            version = self._existing_revision(source, options.version or None)
            if self._find_environment(org, to_project, to_name) is not None:
                raise ServiceFault(
                    409, f"Conflict: environment {org}/{to_project}/{to_name} already exists"
                )
            copy_id, key = uuid.uuid4().hex, new_key()
            self._db.execute(
                "INSERT INTO environments VALUES (?, ?, ?, ?, ?, ?)",
                (copy_id, org, to_project, to_name, self.now().isoformat(), key),
            )
            numbers = self._copy_revisions(source, copy_id, key, version, options.history, caller)
            if options.revision_tags:
                for revision, copied in numbers.items():
                    self._db.execute(
                        "INSERT INTO environment_revision_tags"
                        " SELECT ?, name, ?, created, modified, editor"
                        " FROM environment_revision_tags"
                        " WHERE environment_id = ? AND revision = ?",
                        (copy_id, copied, source.id, revision),
                    )
            if options.environment_tags:
                self._db.execute(
                    "INSERT INTO environment_tags"
                    " SELECT ?, name, value, created, modified, editor FROM environment_tags"
                    " WHERE environment_id = ?",
                    (copy_id, source.id),
                )
            if options.access:
                self._db.execute(
                    "INSERT INTO team_environment_permissions"
                    " SELECT org, team, ?, ?, permission, max_open_duration"
                    " FROM team_environment_permissions"
                    " WHERE org = ? AND project = ? AND environment = ?",
                    (to_project, to_name, org, project, name),
                )
            return self._existing_environment(org, to_project, to_name)

    def _copy_revisions(
        self,
        source: EnvironmentRecord,
        copy_id: str,
        key: bytes,
        version: int,
        history: bool,
        caller: Caller,
    ) -> dict[int, int]:
        """Write the copy's revisions, each definition sealed with the copy's key: the
        source's revisions up to `version` with `history`, else `version` alone as
        revision 1 (made now, by the caller). Returns the copy's number of each source
        revision copied."""
        _, unseal_source = self._sealing(source)
        seal_copy, unseal_copy = sealing(key, copy_id)
        copied = range(1, version + 1) if history else range(version, version + 1)
        numbers: dict[int, int] = {}
        for number in copied:
            created, creator = self._db.execute(
                "SELECT created, creator FROM environment_revisions"
                " WHERE environment_id = ? AND number = ?",
                (source.id, number),
            ).fetchone()
            if not history:
                created, creator = self.now().isoformat(), caller.login
            plaintext = open_secrets(self._definition_text(source, number), unseal_source)
            resealed = seal_secrets(plaintext, seal_copy, unseal_copy) if plaintext else ""
            numbers[number] = len(numbers) + 1
            self._db.execute(
                "INSERT INTO environment_revisions VALUES (?, ?, ?, ?, ?)",
                (copy_id, numbers[number], resealed, created, creator),
            )
        return numbers
