"""Stacks: listing, creating, tagging, renaming, transferring and deleting them, and their
secrets, each sealed with the stack's own key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from toolkit.emulator.secrets import UndecryptableError, decrypt, encrypt, new_key
from toolkit.emulator.state._paging import Page, decode_token, page_of
from toolkit.emulator.state._records import Caller, ServiceFault, StackRecord, StackView
from toolkit.emulator.state._store import STACK_COLUMNS, Store, stack_record
from toolkit.emulator.state._updates import move_checkpoint
from toolkit.entities import name_problem


class Stacks(Store):
    """The rules on stacks: any member of an org may create, tag, rename or delete its stacks;
    moving one to another org needs the admin role in both."""

    def list_stacks(
        self,
        caller: Caller,
        *,
        limit: int,
        organization: str | None = None,
        project: str | None = None,
        tag_name: str | None = None,
        tag_value: str | None = None,
        continuation_token: str | None = None,
    ) -> Page[StackRecord]:
        """Stacks in the caller's orgs, ordered by (org, project, stack), keyset-paged;
        optionally only those of one project, or carrying a tag (with a given value).

        One indexed range query per org (in name order) keeps every page cheap, however
        deep into a large listing it is.
        """
        after_org, after_project, after_stack = (
            decode_token(continuation_token, "stacks", 3) if continuation_token else ("", "", "")
        )
        filters: list[str] = []
        filter_params: list[Any] = []
        if project is not None:
            filters.append(" AND project = ?")
            filter_params.append(project)
        if tag_name is not None:
            value_filter = "" if tag_value is None else " AND value = ?"
            filters.append(
                f" AND EXISTS (SELECT 1 FROM json_each(tags) WHERE key = ?{value_filter})"
            )
            filter_params += [tag_name] if tag_value is None else [tag_name, tag_value]
        rows: list[tuple[Any, ...]] = []
        with self._session():
            if organization is not None:
                self._role_in(caller, organization)
                orgs = [organization]
            else:
                orgs = self._orgs_of(caller)
            for org in orgs:
                if len(rows) > limit:
                    break
                if org < after_org:
                    continue
                after = (after_project, after_stack) if org == after_org else ("", "")
                rows += self._db.execute(
                    f"SELECT {STACK_COLUMNS} FROM stacks"
                    f" WHERE org = ? AND (project, stack) > (?, ?){''.join(filters)}"
                    " ORDER BY project, stack LIMIT ?",
                    (org, *after, *filter_params, limit + 1 - len(rows)),
                ).fetchall()
        return page_of(
            [stack_record(row) for row in rows],
            limit,
            "stacks",
            key=lambda record: (record.org, record.project, record.stack),
        )

    def get_stack(self, caller: Caller, org: str, project: str, stack: str) -> StackView:
        """The stack, with its latest update (the CLI cancels that one)."""
        with self._on_stack(caller, org, project, stack) as record:
            latest = self._db.execute(
                "SELECT id FROM updates WHERE stack_id = ? AND dry_run = 0"
                " ORDER BY version DESC, started DESC LIMIT 1",
                (record.id,),
            ).fetchone()
        return StackView(record=record, latest_update=None if latest is None else latest[0])

    def create_stack(
        self, caller: Caller, org: str, project: str, stack: str, *, tags: dict[str, str]
    ) -> StackRecord:
        """A new, empty stack with its own secret key; any member of the org may create one."""
        with self._in_org(caller, org, write=True):
            _check_name("project", project)
            _check_name("stack", stack)
            if self._find_stack(org, project, stack) is not None:
                raise ServiceFault(409, f"Conflict: stack {org}/{project}/{stack} already exists")
            stack_id = uuid.uuid4().hex
            self._db.execute(
                "INSERT INTO stacks VALUES (?, ?, ?, ?, 0, 0, ?, 0, ?)",
                (
                    stack_id,
                    org,
                    project,
                    stack,
                    json.dumps(tags) if tags else None,
                    new_key(),
                ),
            )
        return StackRecord(
            id=stack_id,
            org=org,
            project=project,
            stack=stack,
            resource_count=0,
            last_update=0,
            tags=tags,
            version=0,
        )

    def project_exists(self, caller: Caller, org: str, project: str) -> bool:
        """Whether the org has a stack in `project` (a project exists through its stacks)."""
        with self._in_org(caller, org):
            row = self._db.execute(
                "SELECT 1 FROM stacks WHERE org = ? AND project = ? LIMIT 1", (org, project)
            ).fetchone()
        return row is not None

    def replace_stack_tags(
        self, caller: Caller, org: str, project: str, stack: str, tags: dict[str, str]
    ) -> None:
        """Replace all of the stack's tags (what `pulumi stack tag set/rm` sends)."""
        with self._on_stack(caller, org, project, stack, write=True) as record:
            self._set_tags(record.id, tags)

    def set_stack_tag(
        self, caller: Caller, org: str, project: str, stack: str, *, name: str, value: str
    ) -> None:
        with self._on_stack(caller, org, project, stack, write=True) as record:
            self._set_tags(record.id, {**record.tags, name: value})

    def delete_stack_tag(
        self, caller: Caller, org: str, project: str, stack: str, *, name: str
    ) -> None:
        with self._on_stack(caller, org, project, stack, write=True) as record:
            if name not in record.tags:
                raise ServiceFault(
                    404, f"Not Found: stack {org}/{project}/{stack} has no tag {name!r}"
                )
            self._set_tags(record.id, {k: v for k, v in record.tags.items() if k != name})

    def rename_stack(
        self,
        caller: Caller,
        org: str,
        project: str,
        stack: str,
        *,
        new_project: str,
        new_name: str,
    ) -> str:
        """Rename a stack within its org (project, name or both; an empty one stays as it
        is); returns the update id.

        The latest checkpoint moves along: its URNs and its secrets manager state name the
        stack anew, so the CLI can keep updating and decrypting it under the new name.
        """
        target_project = new_project or project
        target_name = new_name or stack
        with self._on_stack(caller, org, project, stack, write=True) as record:
            if not new_project and not new_name:
                raise ServiceFault(400, "Bad Request: give newName, newProject or both")
            self._refuse_if_updating(record, "rename")
            _check_name("project", target_project)
            _check_name("stack", target_name)
            if self._find_stack(org, target_project, target_name) is not None:
                raise ServiceFault(
                    409, f"Conflict: stack {org}/{target_project}/{target_name} already exists"
                )
            self._db.execute(
                "UPDATE stacks SET project = ?, stack = ? WHERE id = ?",
                (target_project, target_name, record.id),
            )
            move_checkpoint(self._db, record, (org, target_project, target_name))
        return str(uuid.uuid4())

    def transfer_stack(
        self, caller: Caller, org: str, project: str, stack: str, *, to_org: str
    ) -> None:
        """Move a stack to another org; the caller must be admin of both. The stack keeps its
        state and secret key; its checkpoint's secrets manager state names the new org."""
        with self._in_org(caller, org, write=True) as source_role:
            record = self._existing_stack(org, project, stack)
            if not self._org_exists(to_org):
                raise ServiceFault(404, f"Not Found: organization {to_org!r} does not exist")
            if to_org == org:
                raise ServiceFault(400, f"Bad Request: the stack is already in {org!r}")
            destination_role = self._role_of(caller, to_org)
            if source_role != "admin" or destination_role != "admin":
                raise ServiceFault(
                    403,
                    f"Forbidden: transferring a stack needs the admin role in both {org!r}"
                    f" and {to_org!r}",
                )
            self._refuse_if_claiming(to_org)
            self._refuse_if_updating(record, "transfer")
            if self._find_stack(to_org, project, stack) is not None:
                raise ServiceFault(
                    409, f"Conflict: stack {to_org}/{project}/{stack} already exists"
                )
            self._db.execute("UPDATE stacks SET org = ? WHERE id = ?", (to_org, record.id))
            move_checkpoint(self._db, record, (to_org, project, stack))

    def delete_stack(
        self, caller: Caller, org: str, project: str, stack: str, *, force: bool = False
    ) -> None:
        """Delete a stack; one that still has resources only with `force`."""
        with self._on_stack(caller, org, project, stack, write=True) as record:
            if record.resource_count and not force:
                # The CLI recognises exactly this message and suggests `--force`.
                raise ServiceFault(400, "Bad Request: Stack still contains resources.")
            self._db.execute("DELETE FROM stacks WHERE id = ?", (record.id,))

    def encrypt_values(
        self, caller: Caller, org: str, project: str, stack: str, plaintexts: Sequence[bytes]
    ) -> list[bytes]:
        """Each plaintext sealed with the stack's own key."""
        stack_id, key = self._stack_key(caller, org, project, stack)
        return [encrypt(key, stack_id, plaintext) for plaintext in plaintexts]

    def decrypt_values(
        self, caller: Caller, org: str, project: str, stack: str, ciphertexts: Sequence[bytes]
    ) -> list[bytes]:
        """Each ciphertext opened with the stack's key; 400 for one the key did not seal."""
        stack_id, key = self._stack_key(caller, org, project, stack)
        try:
            return [decrypt(key, stack_id, ciphertext) for ciphertext in ciphertexts]
        except UndecryptableError as exc:
            raise ServiceFault(400, f"Bad Request: {exc}") from None

    def _stack_key(self, caller: Caller, org: str, project: str, stack: str) -> tuple[str, bytes]:
        with self._on_stack(caller, org, project, stack) as record:
            return record.id, self._stack_secrets_key(record)


def _check_name(what: str, name: str) -> None:
    problem = name_problem(what, name)
    if problem is not None:
        raise ServiceFault(400, f"Bad Request: {problem}")
