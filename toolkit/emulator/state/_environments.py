"""ESC environments: listing, creating, reading, updating and deleting them, evaluating them
(`open` sessions, `yaml/check`), their revisions and revision tags. Their tags are in
`_environment_tags`.

The rules, as the service has them: any member of an org may read and write its
environments (non-members get 403, an unknown org or environment 404). Every update makes a
new revision; an update naming the revision it started from (`If-Match` with the ETag a read
handed out) is refused with 409 when another update came first. Static secrets are stored
sealed with the environment's own key and opened only by a decrypting read or an open. The
revision tag `latest` always names the newest revision and cannot be set or removed. A
definition whose evaluation has errors (`toolkit.emulator.esc_evaluation`) is refused; that
check leaves providers unopened, as ESC's does. An open reads, for `fn::open::pulumi-stacks`,
the outputs of the named stacks of the environment's org, from their latest checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from toolkit.emulator import checkpoints
from toolkit.emulator.esc_definitions import (
    DEFAULT_PROJECT,
    DefinitionError,
    open_secrets,
    seal_secrets,
)
from toolkit.emulator.esc_evaluation import (
    CHECKED,
    Evaluation,
    ImportedDefinition,
    LoadImport,
    evaluate,
)
from toolkit.emulator.esc_providers import ProviderError, ReadStack
from toolkit.emulator.secrets import Seal, Unseal, decrypt, new_key, sealing
from toolkit.emulator.state._paging import Page, decode_token, page_of
from toolkit.emulator.state._records import (
    Caller,
    DefinitionRecord,
    EnvironmentRecord,
    InvalidDefinitionFault,
    RevisionRecord,
    RevisionTagRecord,
    ServiceFault,
)
from toolkit.emulator.state._store import Store
from toolkit.entities import name_problem

LATEST = "latest"
"""The revision tag that always names an environment's newest revision."""


class Environments(Store):
    # --- Listing -----------------------------------------------------------------------------

    def list_environments(
        self, caller: Caller, org: str, *, limit: int, continuation_token: str | None = None
    ) -> Page[EnvironmentRecord]:
        """ESC environments of an org, ordered by (project, name), keyset-paged."""
        with self._in_org(caller, org):
            return self._environment_page([org], limit, continuation_token)

    def list_all_environments(
        self, caller: Caller, *, limit: int, continuation_token: str | None = None
    ) -> Page[EnvironmentRecord]:
        """ESC environments of every org the caller belongs to, ordered by (org, project,
        name), keyset-paged (`GET /api/esc/environments`)."""
        with self._session():
            return self._environment_page(self._orgs_of(caller), limit, continuation_token)

    def _environment_page(
        self, orgs: list[str], limit: int, continuation_token: str | None
    ) -> Page[EnvironmentRecord]:
        after = (
            decode_token(continuation_token, "environments", 3)
            if continuation_token is not None
            else ["", "", ""]
        )
        records: list[EnvironmentRecord] = []
        for org in orgs:
            if org < after[0] or len(records) > limit:
                continue
            params: list[Any] = [org]
            where = "e.org = ?"
            if org == after[0]:
                where += " AND (e.project, e.name) > (?, ?)"
                params.extend(after[1:])
            owner = self._owner_of(org)
            rows = self._db.execute(
                f"SELECT {_ENVIRONMENT_COLUMNS} FROM environments e"
                f" WHERE {where} ORDER BY e.project, e.name LIMIT ?",
                (*params, limit + 1 - len(records)),
            ).fetchall()
            records.extend(_environment_record(row, owner) for row in rows)
        return page_of(records, limit, "environments", key=lambda e: (e.org, e.project, e.name))

    # --- One environment -------------------------------------------------------------------

    def create_environment(
        self, caller: Caller, org: str, project: str, name: str
    ) -> EnvironmentRecord:
        """A new, empty environment (its revision 1); 409 if the name is taken in the org."""
        for what, value in (("project", project), ("environment", name)):
            problem = name_problem(what, value)
            if problem is not None:
                raise ServiceFault(400, f"Bad Request: {problem}")
        with self._in_org(caller, org, write=True):
            if self._find_environment(org, project, name) is not None:
                raise ServiceFault(
                    409, f"Conflict: environment {org}/{project}/{name} already exists"
                )
            environment_id = uuid.uuid4().hex
            now = self.now().isoformat()
            self._db.execute(
                "INSERT INTO environments VALUES (?, ?, ?, ?, ?, ?)",
                (environment_id, org, project, name, now, new_key()),
            )
            self._db.execute(
                "INSERT INTO environment_revisions VALUES (?, 1, '', ?, ?)",
                (environment_id, now, caller.login),
            )
            return self._existing_environment(org, project, name)

    def get_environment(
        self, caller: Caller, org: str, project: str, name: str
    ) -> EnvironmentRecord:
        with self._in_org(caller, org):
            return self._existing_environment(org, project, name)

    def environment_definition(
        self,
        caller: Caller,
        org: str,
        project: str,
        name: str,
        *,
        version: str | None = None,
        decrypt: bool = False,
    ) -> DefinitionRecord:
        """The definition at `version` (a revision number or a revision tag; the newest if
        None), its secrets sealed unless `decrypt`."""
        with self._in_org(caller, org):
            environment = self._existing_environment(org, project, name)
            revision = self._revision_number(environment, version)
            text = self._definition_text(environment, revision)
            if decrypt:
                text = open_secrets(text, self._sealing(environment)[1])
        return DefinitionRecord(yaml=text, revision=revision, etag=_etag(environment, revision))

    def update_environment(
        self,
        caller: Caller,
        org: str,
        project: str,
        name: str,
        yaml_text: str,
        *,
        if_match: str | None = None,
    ) -> DefinitionRecord:
        """Write a new revision holding `yaml_text`, its plaintext secrets sealed; 409 when
        `if_match` names a revision that is no longer the newest; `DefinitionError` (400 with
        diagnostics) for a definition the service refuses, and nothing is written."""
        with self._in_org(caller, org, write=True):
            environment = self._existing_environment(org, project, name)
            latest = self._latest_revision(environment.id)
            if if_match is not None and if_match not in ("*", _etag(environment, latest)):
                raise ServiceFault(
                    409,
                    f"Conflict: environment {org}/{project}/{name} was changed since it was"
                    f" read (it is at revision {latest}); read it again and reapply the change",
                )
            try:
                sealed = seal_secrets(yaml_text, *self._sealing(environment))
                self._refuse_if_failing(environment, sealed)
            except DefinitionError as exc:
                raise InvalidDefinitionFault(exc.diagnostics, _label(environment)) from None
            revision = latest + 1
            self._db.execute(
                "INSERT INTO environment_revisions VALUES (?, ?, ?, ?, ?)",
                (environment.id, revision, sealed, self.now().isoformat(), caller.login),
            )
        return DefinitionRecord(yaml=sealed, revision=revision, etag=_etag(environment, revision))

    def delete_environment(self, caller: Caller, org: str, project: str, name: str) -> None:
        """Delete an environment with its revisions and tags."""
        with self._in_org(caller, org, write=True):
            environment = self._existing_environment(org, project, name)
            self._db.execute("DELETE FROM environments WHERE id = ?", (environment.id,))

    # --- Evaluation ------------------------------------------------------------------------

    def open_environment(
        self,
        caller: Caller,
        org: str,
        project: str,
        name: str,
        *,
        version: str | None = None,
        seconds: float,
    ) -> tuple[str, Evaluation]:
        """Evaluate the environment at `version` (the newest if None) and keep the result
        readable for `seconds` under the returned session id; 400 with diagnostics if the
        evaluation has errors. Only the session's revision is stored, never its values."""
        with self._session(write=True):
            self._role_in(caller, org)
            environment = self._existing_environment(org, project, name)
            revision = self._revision_number(environment, version)
            evaluation = self._evaluate(environment, revision)
            if evaluation.failed:
                raise InvalidDefinitionFault(evaluation.errors(), _label(environment))
            session = uuid.uuid4().hex
            self._db.execute(
                "INSERT INTO environment_sessions VALUES (?, ?, ?, ?)",
                (session, environment.id, revision, self._clock() + seconds),
            )
        return session, evaluation

    def opened_environment(
        self, caller: Caller, org: str, project: str, name: str, session: str
    ) -> Evaluation:
        """What an open session of the environment shows; 404 once it has expired."""
        with self._in_org(caller, org):
            environment = self._existing_environment(org, project, name)
            row = self._db.execute(
                "SELECT revision, expires FROM environment_sessions"
                " WHERE id = ? AND environment_id = ?",
                (session, environment.id),
            ).fetchone()
            if row is None or row[1] < self._clock():
                raise ServiceFault(
                    404, f"Not Found: no open session {session!r} of {org}/{project}/{name}"
                )
            return self._evaluate(environment, int(row[0]))

    def check_environment(self, caller: Caller, org: str, yaml_text: str) -> Evaluation:
        """Evaluate a definition that is not stored (`yaml/check`) in the context of `org`:
        its imports are the org's environments; its own sealed secrets stay sealed."""
        with self._in_org(caller, org):
            definition = ImportedDefinition(yaml_text, None, CHECKED)
            return evaluate(definition, self._import_loader(org))

    # --- Revisions and revision tags -------------------------------------------------------

    def list_revisions(
        self,
        caller: Caller,
        org: str,
        project: str,
        name: str,
        *,
        before: int | None = None,
        count: int | None = None,
    ) -> list[RevisionRecord]:
        """Revisions, newest first: those before revision `before` if given, at most `count`."""
        with self._in_org(caller, org):
            environment = self._existing_environment(org, project, name)
            rows = self._db.execute(
                "SELECT number, created, creator FROM environment_revisions"
                " WHERE environment_id = ? AND number < ? ORDER BY number DESC LIMIT ?",
                (environment.id, before if before is not None else 2**62, count or -1),
            ).fetchall()
            tags = self._revision_tags_by_number(environment.id)
        return [
            RevisionRecord(number, created, creator, tags.get(number, []))
            for number, created, creator in rows
        ]

    def list_revision_tags(
        self,
        caller: Caller,
        org: str,
        project: str,
        name: str,
        *,
        after: str | None = None,
        count: int | None = None,
    ) -> list[RevisionTagRecord]:
        """Revision tags by name (`latest` among them), after `after` if given, at most
        `count`."""
        with self._in_org(caller, org):
            environment = self._existing_environment(org, project, name)
            tags = [self._latest_tag(environment), *self._stored_revision_tags(environment.id)]
        tags.sort(key=lambda tag: tag.name)
        shown = [tag for tag in tags if after is None or tag.name > after]
        return shown[:count] if count else shown

    def revision_tag(
        self, caller: Caller, org: str, project: str, name: str, tag: str
    ) -> RevisionTagRecord:
        with self._in_org(caller, org):
            environment = self._existing_environment(org, project, name)
            return self._existing_revision_tag(environment, tag)

    def create_revision_tag(
        self, caller: Caller, org: str, project: str, name: str, tag: str, revision: int | None
    ) -> None:
        """Tag a revision (the newest if None); 409 if the tag exists, 400 for `latest`."""
        self._refuse_latest(tag)
        with self._in_org(caller, org, write=True):
            environment = self._existing_environment(org, project, name)
            number = self._existing_revision(environment, revision)
            if self._find_revision_tag(environment.id, tag) is not None:
                raise ServiceFault(
                    409, f"Conflict: environment {org}/{project}/{name} already has tag {tag!r}"
                )
            now = self.now().isoformat()
            self._db.execute(
                "INSERT INTO environment_revision_tags VALUES (?, ?, ?, ?, ?, ?)",
                (environment.id, tag, number, now, now, caller.login),
            )

    def update_revision_tag(
        self, caller: Caller, org: str, project: str, name: str, tag: str, revision: int | None
    ) -> None:
        """Point a tag at another revision (the newest if None)."""
        self._refuse_latest(tag)
        with self._in_org(caller, org, write=True):
            environment = self._existing_environment(org, project, name)
            self._existing_revision_tag(environment, tag)
            number = self._existing_revision(environment, revision)
            self._db.execute(
                "UPDATE environment_revision_tags SET revision = ?, modified = ?, editor = ?"
                " WHERE environment_id = ? AND name = ?",
                (number, self.now().isoformat(), caller.login, environment.id, tag),
            )

    def delete_revision_tag(
        self, caller: Caller, org: str, project: str, name: str, tag: str
    ) -> None:
        self._refuse_latest(tag)
        with self._in_org(caller, org, write=True):
            environment = self._existing_environment(org, project, name)
            self._existing_revision_tag(environment, tag)
            self._db.execute(
                "DELETE FROM environment_revision_tags WHERE environment_id = ? AND name = ?",
                (environment.id, tag),
            )

    # --- Lookups ---------------------------------------------------------------------------

    def _find_environment(self, org: str, project: str, name: str) -> EnvironmentRecord | None:
        row = self._db.execute(
            f"SELECT {_ENVIRONMENT_COLUMNS} FROM environments e"
            " WHERE e.org = ? AND e.project = ? AND e.name = ?",
            (org, project, name),
        ).fetchone()
        return None if row is None else _environment_record(row, self._owner_of(org))

    def _existing_environment(self, org: str, project: str, name: str) -> EnvironmentRecord:
        record = self._find_environment(org, project, name)
        if record is None:
            raise ServiceFault(404, f"Not Found: environment {org}/{project}/{name} does not exist")
        return record

    def _sealing(self, environment: EnvironmentRecord) -> tuple[Seal, Unseal]:
        (key,) = self._db.execute(
            "SELECT secrets_key FROM environments WHERE id = ?", (environment.id,)
        ).fetchone()
        return sealing(key, environment.id)

    def _latest_revision(self, environment_id: str) -> int:
        (number,) = self._db.execute(
            "SELECT max(number) FROM environment_revisions WHERE environment_id = ?",
            (environment_id,),
        ).fetchone()
        return int(number)

    def _revision_number(self, environment: EnvironmentRecord, version: str | None) -> int:
        """The revision a version names: a number (it must exist) or a revision tag."""
        if version is None or version == LATEST:
            return self._latest_revision(environment.id)
        if version[:1].isdigit():
            if not version.isdigit():
                raise ServiceFault(400, f"Bad Request: invalid revision number {version!r}")
            return self._existing_revision(environment, int(version))
        return self._existing_revision_tag(environment, version).revision

    def _existing_revision(self, environment: EnvironmentRecord, number: int | None) -> int:
        latest = self._latest_revision(environment.id)
        if number is None:
            return latest
        if not 1 <= number <= latest:
            raise ServiceFault(
                404,
                f"Not Found: environment {environment.org}/{environment.project}/"
                f"{environment.name} has no revision {number}",
            )
        return number

    def _latest_tag(self, environment: EnvironmentRecord) -> RevisionTagRecord:
        number = self._latest_revision(environment.id)
        created, creator = self._db.execute(
            "SELECT created, creator FROM environment_revisions"
            " WHERE environment_id = ? AND number = ?",
            (environment.id, number),
        ).fetchone()
        return RevisionTagRecord(LATEST, number, environment.created, created, creator)

    def _stored_revision_tags(self, environment_id: str) -> list[RevisionTagRecord]:
        rows = self._db.execute(
            "SELECT name, revision, created, modified, editor FROM environment_revision_tags"
            " WHERE environment_id = ? ORDER BY name",
            (environment_id,),
        ).fetchall()
        return [RevisionTagRecord(*row) for row in rows]

    def _revision_tags_by_number(self, environment_id: str) -> dict[int, list[str]]:
        tags: dict[int, list[str]] = {self._latest_revision(environment_id): [LATEST]}
        for tag in self._stored_revision_tags(environment_id):
            tags.setdefault(tag.revision, []).append(tag.name)
        return tags

    def _find_revision_tag(self, environment_id: str, tag: str) -> RevisionTagRecord | None:
        row = self._db.execute(
            "SELECT name, revision, created, modified, editor FROM environment_revision_tags"
            " WHERE environment_id = ? AND name = ?",
            (environment_id, tag),
        ).fetchone()
        return None if row is None else RevisionTagRecord(*row)

    def _existing_revision_tag(self, environment: EnvironmentRecord, tag: str) -> RevisionTagRecord:
        if tag == LATEST:
            return self._latest_tag(environment)
        record = self._find_revision_tag(environment.id, tag)
        if record is None:
            raise ServiceFault(
                404,
                f"Not Found: environment {environment.org}/{environment.project}/"
                f"{environment.name} has no revision tag {tag!r}",
            )
        return record

    @staticmethod
    def _refuse_latest(tag: str) -> None:
        if tag == LATEST:
            raise ServiceFault(
                400, "Bad Request: the tag 'latest' always names the newest revision"
            )
        if not tag or tag[:1].isdigit():
            raise ServiceFault(
                400,
                f"Bad Request: invalid revision tag name {tag!r}: it must not start with a digit",
            )

    def _refuse_if_failing(self, environment: EnvironmentRecord, definition: str) -> None:
        """The service refuses a definition whose evaluation has errors (an unknown import,
        a reference to nothing, ...)."""
        evaluation = evaluate(
            ImportedDefinition(definition, self._sealing(environment)[1], _label(environment)),
            self._import_loader(environment.org),
        )
        if evaluation.failed:
            raise DefinitionError(evaluation.errors())

    def _import_loader(self, org: str) -> LoadImport:
        """Imports name environments of the same org: `project/name`, or `name` alone in the
        `default` project."""

        def load(imported: str) -> ImportedDefinition | None:
            environment = self._find_environment(org, *_import_path(imported))
            if environment is None:
                return None
            number = self._latest_revision(environment.id)
            return ImportedDefinition(
                self._definition_text(environment, number),
                self._sealing(environment)[1],
                _label(environment),
            )

        return load

    def _stack_reader(self, org: str) -> ReadStack:
        """What `fn::open::pulumi-stacks` reads: a stack of the org's outputs, its secrets
        opened with the stack's key; None for a stack the org does not have. Secrets the
        stack's key did not seal (another secrets manager's) make the open fail."""

        def read(project: str, stack: str) -> dict[str, Any] | None:
            record = self._find_stack(org, project, stack)
            if record is None:
                return None
            key = self._stack_secrets_key(record)
            try:
                return checkpoints.stack_outputs(
                    self._latest_checkpoint(record),
                    lambda ciphertext: decrypt(key, record.id, ciphertext),
                )
            except ValueError as exc:
                raise ProviderError(
                    f"cannot read the outputs of stack {project}/{stack}: {exc}"
                ) from None

        return read

    def _definition_text(self, environment: EnvironmentRecord, revision: int) -> str:
        (text,) = self._db.execute(
            "SELECT definition FROM environment_revisions WHERE environment_id = ? AND number = ?",
            (environment.id, revision),
        ).fetchone()
        return str(text)

    def _evaluate(self, environment: EnvironmentRecord, revision: int) -> Evaluation:
        definition = ImportedDefinition(
            self._definition_text(environment, revision),
            self._sealing(environment)[1],
            _label(environment),
        )
        org = environment.org
        return evaluate(definition, self._import_loader(org), self._stack_reader(org))


_ENVIRONMENT_COLUMNS = (
    "e.id, e.org, e.project, e.name, e.created,"
    " (SELECT r.created FROM environment_revisions r WHERE r.environment_id = e.id"
    " ORDER BY r.number DESC LIMIT 1),"
    " (SELECT json_group_object(t.name, t.value) FROM environment_tags t"
    " WHERE t.environment_id = e.id)"
)


def _environment_record(row: Any, owner: str) -> EnvironmentRecord:
    environment_id, org, project, name, created, modified, tags = row
    return EnvironmentRecord(
        id=environment_id,
        org=org,
        project=project,
        name=name,
        created=created,
        owner=owner,
        modified=modified or created,
        # Most environments have no tags: their "{}" needs no decoding.
        tags=json.loads(tags) if tags and tags != "{}" else {},
    )


def _label(environment: EnvironmentRecord) -> str:
    """How an environment names itself in ranges and imports: `project/name`."""
    return f"{environment.project}/{environment.name}"


def _import_path(imported: str) -> tuple[str, str]:
    """(project, name) of an import: `project/name`, or `name` in the default project."""
    project, _, name = imported.rpartition("/")
    return (project or DEFAULT_PROJECT, name)


def _etag(environment: EnvironmentRecord, revision: int) -> str:
    """The ETag of an environment at a revision: opaque, and different for every revision."""
    digest = hashlib.sha256(f"{environment.id}:{revision}".encode()).hexdigest()[:20]
    return f'"{digest}"'
