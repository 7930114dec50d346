"""The emulated service's state and rules, kept apart from HTTP.

`ServiceState` is what Pulumi Cloud knows (accounts, org roles, stacks with their checkpoints,
updates and secret keys, ESC environments, Insights accounts, registry packages, agent claim
tokens) and the rules it enforces on them. It lives in SQLite so that large worlds load and
page quickly, several threads can use it (the HTTP server and the tests that inspect it),
renames and transfers are atomic (one transaction each), and, given a file path, it survives
an emulator restart.

Every refused operation raises `ServiceFault` carrying the HTTP status the service would
answer with; the HTTP layer only translates it.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, cast

from toolkit.emulator import checkpoints
from toolkit.emulator.checkpoints import UntypedDeployment
from toolkit.emulator.secrets import UndecryptableError, decrypt, encrypt, new_stack_key
from toolkit.emulator.world import Role, World
from toolkit.entities import Inventory, name_problem
from toolkit.models import (
    TransferEntityEnvironment,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
)

T = TypeVar("T")

SCHEMA_VERSION = 2

LEASE_SECONDS = 300
"""How long an update's lease token stays valid unless renewed (the CLI renews at half-life)."""
MAX_LEASE_SECONDS = 3600

_SCHEMA = """
CREATE TABLE accounts (
    login TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    is_agent INTEGER NOT NULL,
    claim_token TEXT UNIQUE,
    created_at TEXT,
    claim_expires_at TEXT
);
CREATE TABLE orgs (name TEXT PRIMARY KEY);
CREATE TABLE memberships (
    login TEXT NOT NULL REFERENCES accounts(login),
    org TEXT NOT NULL REFERENCES orgs(name),
    role TEXT NOT NULL,
    PRIMARY KEY (login, org)
);
CREATE TABLE stacks (
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL REFERENCES orgs(name),
    project TEXT NOT NULL,
    stack TEXT NOT NULL,
    resource_count INTEGER NOT NULL,
    last_update INTEGER NOT NULL,
    tags TEXT,
    version INTEGER NOT NULL,
    secrets_key BLOB NOT NULL,
    PRIMARY KEY (org, project, stack)
);
CREATE TABLE checkpoints (
    stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    deployment TEXT NOT NULL,
    PRIMARY KEY (stack_id, version)
);
CREATE TABLE updates (
    id TEXT PRIMARY KEY,
    stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    lease_token TEXT UNIQUE,
    lease_expires REAL,
    program TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    started INTEGER,
    ended INTEGER
);
CREATE TABLE update_events (
    update_id TEXT NOT NULL REFERENCES updates(id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (update_id, sequence)
);
CREATE TABLE environments (
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL REFERENCES orgs(name),
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (org, project, name)
);
CREATE TABLE insights_accounts (
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL REFERENCES orgs(name),
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    PRIMARY KEY (org, name)
);
CREATE TABLE registry_packages (
    org TEXT NOT NULL REFERENCES orgs(name),
    source TEXT NOT NULL,
    publisher TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (source, publisher, name, org)
);
CREATE INDEX memberships_by_org ON memberships (org);
CREATE INDEX registry_packages_by_publisher ON registry_packages (publisher, source, name);
CREATE INDEX updates_by_stack ON updates (stack_id, status);
"""


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
class Page(Generic[T]):
    """One page of a listing; `next_token` is None on the last page."""

    items: list[T]
    next_token: str | None


@dataclass(frozen=True)
class StackRecord:
    """A stack as stored, for tests that inspect the state without HTTP."""

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


class ServiceState:
    """All of the emulated service's state, in one SQLite database, safe across threads."""

    def __init__(
        self, db_path: str = ":memory:", *, clock: Callable[[], float] = time.time
    ) -> None:
        """`clock` gives the current time in seconds since the epoch; tests pass their own to
        let update leases expire without waiting."""
        self.db_path = db_path
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        if db_path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version == 0:
            if self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise ValueError(f"{db_path} is a SQLite database of something else")
            self._db.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
        elif version != SCHEMA_VERSION:
            raise ValueError(f"{db_path} holds emulator state of another version ({version})")

    @classmethod
    def from_world(
        cls, world: World, db_path: str = ":memory:", *, clock: Callable[[], float] = time.time
    ) -> ServiceState:
        """A fresh state holding exactly what `world` describes."""
        state = cls(db_path, clock=clock)
        state._load(world)
        return state

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- identity ------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Caller:
        """The caller an access token belongs to; 401 for a missing or unknown token."""
        if not token:
            raise ServiceFault(401, "Unauthorized: no access token was given")
        with self._session():
            row = self._db.execute(
                "SELECT login, is_agent FROM accounts WHERE token = ?", (token,)
            ).fetchone()
        if row is None:
            raise ServiceFault(401, "Unauthorized: the access token is not valid")
        return Caller(login=row[0], is_agent=bool(row[1]))

    def current_user(self, caller: Caller) -> UserRecord:
        """Who the caller is and its orgs with roles (`GET /api/user`)."""
        with self._session():
            rows = self._db.execute(
                "SELECT org, role FROM memberships WHERE login = ? ORDER BY org",
                (caller.login,),
            ).fetchall()
        return UserRecord(login=caller.login, is_agent=caller.is_agent, roles=dict(rows))

    # --- stacks --------------------------------------------------------------------------

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
            _decode_token(continuation_token, "stacks", 3) if continuation_token else ("", "", "")
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
                    f"SELECT {_STACK_COLUMNS} FROM stacks"
                    f" WHERE org = ? AND (project, stack) > (?, ?){''.join(filters)}"
                    " ORDER BY project, stack LIMIT ?",
                    (org, *after, *filter_params, limit + 1 - len(rows)),
                ).fetchall()
        return _page(
            [_stack_record(row) for row in rows],
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
                    new_stack_key(),
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
        new_project: str | None,
        new_name: str | None,
    ) -> str:
        """Rename a stack within its org (project, name or both); returns the update id.

        The latest checkpoint moves along: its URNs and its secrets manager state name the
        stack anew, so the CLI can keep updating and decrypting it under the new name.
        """
        target_project = new_project or project
        target_name = new_name or stack
        with self._on_stack(caller, org, project, stack, write=True) as record:
            if not new_project and not new_name:
                raise ServiceFault(400, "Bad Request: give newName, newProject or both")
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
            self._move_checkpoint(record, (org, target_project, target_name))
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
            if self._find_stack(to_org, project, stack) is not None:
                raise ServiceFault(
                    409, f"Conflict: stack {to_org}/{project}/{stack} already exists"
                )
            self._db.execute("UPDATE stacks SET org = ? WHERE id = ?", (to_org, record.id))
            self._move_checkpoint(record, (to_org, project, stack))

    def delete_stack(
        self, caller: Caller, org: str, project: str, stack: str, *, force: bool = False
    ) -> None:
        """Delete a stack; one that still has resources only with `force`."""
        with self._on_stack(caller, org, project, stack, write=True) as record:
            if record.resource_count and not force:
                # The CLI recognises exactly this message and suggests `--force`.
                raise ServiceFault(400, "Bad Request: Stack still contains resources.")
            self._db.execute("DELETE FROM stacks WHERE id = ?", (record.id,))

    # --- checkpoints and secrets ---------------------------------------------------------

    def export_deployment(
        self, caller: Caller, org: str, project: str, stack: str, *, version: int | None = None
    ) -> UntypedDeployment:
        """The stack's latest checkpoint (or the one update `version` wrote), secrets still
        ciphertext: the CLI decrypts them through the stack when asked to show them.

        A stack never updated exports a deployment without resources; a world stack declared
        with N resources and never updated exports N placeholder resources, so that what the
        listings count is what the state holds.
        """
        with self._on_stack(caller, org, project, stack) as record:
            if version is None:
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
        succeeded by the time this returns; returns that update's id (the CLI polls it)."""
        checked = _checked_deployment(deployment)
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

    # --- updates: up, preview, refresh, destroy ----------------------------------------

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

    # --- other entities ------------------------------------------------------------------

    def list_environments(
        self, caller: Caller, org: str, *, limit: int, continuation_token: str | None = None
    ) -> Page[EnvironmentRecord]:
        """ESC environments of an org, ordered by (project, name), keyset-paged."""
        where = "org = ?"
        params: list[Any] = [org]
        if continuation_token is not None:
            where += " AND (project, name) > (?, ?)"
            params.extend(_decode_token(continuation_token, "environments", 2))
        with self._in_org(caller, org):
            owner = self._owner_of(org)
            rows = self._db.execute(
                "SELECT id, project, name, created FROM environments"
                f" WHERE {where} ORDER BY project, name LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        environments = [
            EnvironmentRecord(
                id=row_id, org=org, project=project, name=name, created=created, owner=owner
            )
            for row_id, project, name, created in rows
        ]
        return _page(environments, limit, "environments", key=lambda e: (e.project, e.name))

    def list_insights_accounts(
        self, caller: Caller, org: str, *, limit: int, continuation_token: str | None = None
    ) -> Page[InsightsAccountRecord]:
        """Insights accounts of an org, ordered by name, keyset-paged."""
        where = "org = ?"
        params: list[Any] = [org]
        if continuation_token is not None:
            where += " AND name > ?"
            params.extend(_decode_token(continuation_token, "insights", 1))
        with self._in_org(caller, org):
            owner = self._owner_of(org)
            rows = self._db.execute(
                "SELECT id, name, provider FROM insights_accounts"
                f" WHERE {where} ORDER BY name LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        accounts = [
            InsightsAccountRecord(id=row_id, name=name, provider=provider, owner=owner)
            for row_id, name, provider in rows
        ]
        return _page(accounts, limit, "insights", key=lambda account: (account.name,))

    def list_registry_packages(
        self,
        caller: Caller,
        *,
        limit: int,
        org_login: str | None = None,
        continuation_token: str | None = None,
    ) -> Page[PackageRecord]:
        """Registry packages of the caller's orgs (only those `org_login` publishes, if given)."""
        where = ["p.org IN (SELECT org FROM memberships WHERE login = ?)"]
        params: list[Any] = [caller.login]
        with self._session():
            if org_login is not None:
                self._role_in(caller, org_login)
                where.append("p.publisher = ?")
                params.append(org_login)
            if continuation_token is not None:
                where.append("(p.source, p.publisher, p.name, p.org) > (?, ?, ?, ?)")
                params.extend(_decode_token(continuation_token, "packages", 4))
            rows = self._db.execute(
                "SELECT p.source, p.publisher, p.name, p.org, p.created_at"
                f" FROM registry_packages p WHERE {' AND '.join(where)}"
                " ORDER BY p.source, p.publisher, p.name, p.org LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        packages = [
            PackageRecord(
                source=source,
                publisher=publisher,
                name=name,
                org=package_org,
                created_at=datetime.fromisoformat(created_at),
            )
            for source, publisher, name, package_org, created_at in rows
        ]
        return _page(
            packages, limit, "packages", key=lambda p: (p.source, p.publisher, p.name, p.org)
        )

    # --- agent accounts ------------------------------------------------------------------

    def validate_claim(self, claim_token: str) -> ClaimRecord:
        """What claiming the agent account behind `claim_token` would bring over."""
        with self._session():
            row = self._db.execute(
                "SELECT login, created_at, claim_expires_at FROM accounts WHERE claim_token = ?",
                (claim_token,),
            ).fetchone()
            if row is None:
                raise ServiceFault(404, "Not Found: the claim token is not valid")
            login, created_at, claim_expires_at = row
            inventory = self._inventory(login)
        return ClaimRecord(
            login=login,
            created_at=datetime.fromisoformat(created_at),
            claim_expires_at=datetime.fromisoformat(claim_expires_at),
            inventory=inventory,
        )

    # --- direct reads, for tests ---------------------------------------------------------

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

    # --- internals -----------------------------------------------------------------------

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

    def _load(self, world: World) -> None:
        loaded_at = datetime.now(UTC).isoformat()
        memberships = world.memberships()
        with self._session(write=True):
            if self._db.execute("SELECT count(*) FROM accounts").fetchone()[0]:
                raise ValueError(f"{self.db_path} already holds a world")
            db = self._db
            db.executemany(
                "INSERT INTO orgs (name) VALUES (?)", [(name,) for name in world.org_names()]
            )
            db.executemany(
                "INSERT INTO accounts (login, token, is_agent) VALUES (?, ?, 0)",
                [(user.login, user.token) for user in world.users],
            )
            db.executemany(
                "INSERT INTO accounts VALUES (?, ?, 1, ?, ?, ?)",
                [
                    (
                        agent.login,
                        agent.token,
                        agent.claim_token,
                        _utc(agent.created_at).isoformat(),
                        _utc(agent.claim_expires_at).isoformat(),
                    )
                    for agent in world.agents
                ],
            )
            db.executemany(
                "INSERT INTO memberships VALUES (?, ?, ?)",
                [
                    (login, org, role)
                    for login, roles in memberships.items()
                    for org, role in roles.items()
                ],
            )
            db.executemany(
                "INSERT INTO stacks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        uuid.uuid4().hex,
                        org,
                        s.project,
                        s.stack,
                        s.resource_count,
                        int(_utc(s.last_update).timestamp()) if s.last_update else 0,
                        json.dumps(s.tags) if s.tags else None,
                        1 if s.last_update else 0,
                        new_stack_key(),
                    )
                    for org, content in world.orgs.items()
                    for s in content.stacks
                ],
            )
            db.executemany(
                "INSERT INTO environments VALUES (?, ?, ?, ?, ?)",
                [
                    (uuid.uuid4().hex, org, e.project, e.name, loaded_at)
                    for org, content in world.orgs.items()
                    for e in content.environments
                ],
            )
            db.executemany(
                "INSERT INTO insights_accounts VALUES (?, ?, ?, ?)",
                [
                    (uuid.uuid4().hex, org, a.name, a.provider)
                    for org, content in world.orgs.items()
                    for a in content.insights_accounts
                ],
            )
            db.executemany(
                "INSERT INTO registry_packages VALUES (?, ?, ?, ?, ?)",
                [
                    (org, p.source, p.publisher, p.name, loaded_at)
                    for org, content in world.orgs.items()
                    for p in content.registry_packages
                ],
            )

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
            f"SELECT {_STACK_COLUMNS} FROM stacks WHERE org = ? AND project = ? AND stack = ?",
            (org, project, stack),
        ).fetchone()
        return None if row is None else _stack_record(row)

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

    def _stack_key(self, caller: Caller, org: str, project: str, stack: str) -> tuple[str, bytes]:
        with self._on_stack(caller, org, project, stack) as record:
            (key,) = self._db.execute(
                "SELECT secrets_key FROM stacks WHERE id = ?", (record.id,)
            ).fetchone()
        return record.id, key

    def _latest_checkpoint(self, record: StackRecord) -> UntypedDeployment:
        row = self._db.execute(
            "SELECT deployment FROM checkpoints WHERE stack_id = ? ORDER BY version DESC LIMIT 1",
            (record.id,),
        ).fetchone()
        if row is not None:
            return cast(UntypedDeployment, json.loads(row[0]))
        at = datetime.fromtimestamp(record.last_update or self._clock(), UTC)
        if record.resource_count:
            return checkpoints.placeholder_deployment(
                record.project, record.stack, record.resource_count, at
            )
        return checkpoints.empty_deployment(at)

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

    def _move_checkpoint(self, record: StackRecord, new: tuple[str, str, str]) -> None:
        """Rewrite the latest checkpoint of a stack that is moving from its current identity
        to `new` (org, project, stack)."""
        row = self._db.execute(
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
        self._db.execute(
            "UPDATE checkpoints SET deployment = ? WHERE stack_id = ? AND version = ?",
            (json.dumps(moved), record.id, row[0]),
        )

    def _refuse_if_busy(self, record: StackRecord) -> None:
        busy = self._db.execute(
            "SELECT 1 FROM updates WHERE stack_id = ? AND status = 'running' AND dry_run = 0"
            " AND kind != 'preview' LIMIT 1",
            (record.id,),
        ).fetchone()
        if busy is not None:
            # The CLI turns a 409 from starting an update into its "update in progress" advice.
            raise ServiceFault(409, "Conflict: Another update is currently in progress.")

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

    def _stack_id_of(self, update_id: str) -> str:
        (stack_id,) = self._db.execute(
            "SELECT stack_id FROM updates WHERE id = ?", (update_id,)
        ).fetchone()
        return str(stack_id)

    def _owner_of(self, org: str) -> str:
        """Who entities of an org are shown as owned by: its first admin, else the org."""
        row = self._db.execute(
            "SELECT login FROM memberships WHERE org = ? AND role = 'admin' ORDER BY login",
            (org,),
        ).fetchone()
        return org if row is None else str(row[0])

    def _inventory(self, org: str) -> Inventory:
        db = self._db
        stacks = db.execute(
            "SELECT project, stack, resource_count, last_update FROM stacks WHERE org = ?"
            " ORDER BY project, stack",
            (org,),
        ).fetchall()
        environments = db.execute(
            "SELECT project, name FROM environments WHERE org = ? ORDER BY project, name", (org,)
        ).fetchall()
        accounts = db.execute(
            "SELECT name FROM insights_accounts WHERE org = ? ORDER BY name", (org,)
        ).fetchall()
        packages = db.execute(
            "SELECT source, publisher, name FROM registry_packages WHERE org = ?"
            " ORDER BY source, publisher, name",
            (org,),
        ).fetchall()
        return Inventory(
            org=org,
            stacks=[
                TransferEntityStack(
                    project_name=project,
                    stack_name=stack,
                    resource_count=count,
                    last_update=datetime.fromtimestamp(updated, UTC) if updated else None,
                )
                for project, stack, count, updated in stacks
            ],
            environments=[
                TransferEntityEnvironment(project_name=project, environment_name=name)
                for project, name in environments
            ],
            insights_accounts=[TransferEntityInsightsAccount(name=name) for (name,) in accounts],
            registry_packages=[
                TransferEntityRegistryPackage(source=source, publisher=publisher, name=name)
                for source, publisher, name in packages
            ],
        )


_STACK_COLUMNS = "id, org, project, stack, resource_count, last_update, tags, version"


def _stack_record(row: Sequence[Any]) -> StackRecord:
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


_UPDATE_COLUMNS = "id, kind, dry_run, status, version, started, ended, program, requested_by"


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
    )


def _writes_state(update: UpdateRecord) -> bool:
    """Whether an update changes the stack (previews and dry runs only look)."""
    return update.kind != "preview" and not update.dry_run


def _checked_deployment(document: Any) -> UntypedDeployment:
    try:
        return checkpoints.checked_deployment(document)
    except ValueError as exc:
        raise ServiceFault(400, f"Bad Request: {exc}") from None


def _check_name(what: str, name: str) -> None:
    problem = name_problem(what, name)
    if problem is not None:
        raise ServiceFault(400, f"Bad Request: {problem}")


def _page(
    items: Sequence[T], limit: int, scope: str, *, key: Callable[[T], tuple[str, ...]]
) -> Page[T]:
    """Turn `limit + 1` fetched items into a page and the token that resumes after it."""
    shown = list(items[:limit])
    next_token = _encode_token(scope, key(shown[-1])) if len(items) > limit else None
    return Page(items=shown, next_token=next_token)


def _encode_token(scope: str, key: tuple[str, ...]) -> str:
    raw = json.dumps([scope, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, scope: str, size: int) -> list[str]:
    """The key a continuation token resumes after; 400 for anything this listing did not issue."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        decoded = None
    if (
        not isinstance(decoded, list)
        or len(decoded) != size + 1
        or decoded[0] != scope
        or not all(isinstance(part, str) for part in decoded)
    ):
        raise ServiceFault(400, "Bad Request: invalid continuation token")
    return decoded[1:]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
