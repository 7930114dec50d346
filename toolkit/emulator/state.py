"""The emulated service's state and rules, kept apart from HTTP.

`ServiceState` is what Pulumi Cloud knows (accounts, org roles, stacks, ESC environments,
Insights accounts, registry packages, agent claim tokens) and the rules it enforces on
them. It lives in SQLite so that large worlds load and page quickly, several threads can
use it (the HTTP server and the tests that inspect it), renames and transfers are atomic
(one transaction each), and, given a file path, it survives an emulator restart.

Every refused operation raises `ServiceFault` carrying the HTTP status the service would
answer with; the HTTP layer only translates it.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from toolkit.emulator.world import NAME_PATTERN, Role, World
from toolkit.models import (
    AgentAccountSummary,
    AgentClaimResponse,
    AppStack,
    AppStackSummary,
    BaseEntity,
    EnvironmentReferrerMetadata,
    EnvironmentSettings,
    InsightsAccount,
    OrganizationSummaryWithRole,
    OrgEnvironment,
    PackageMetadata,
    TransferEntityEnvironment,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
    User,
    UserInfo,
)

T = TypeVar("T")

SCHEMA_VERSION = 1

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
    PRIMARY KEY (org, project, stack)
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


class ServiceState:
    """All of the emulated service's state, in one SQLite database, safe across threads."""

    def __init__(self, db_path: str = ":memory:") -> None:
        self.db_path = db_path
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
    def from_world(cls, world: World, db_path: str = ":memory:") -> ServiceState:
        """A fresh state holding exactly what `world` describes."""
        state = cls(db_path)
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
        with self._lock:
            row = self._db.execute(
                "SELECT login, is_agent FROM accounts WHERE token = ?", (token,)
            ).fetchone()
        if row is None:
            raise ServiceFault(401, "Unauthorized: the access token is not valid")
        return Caller(login=row[0], is_agent=bool(row[1]))

    def current_user(self, caller: Caller) -> User:
        """The document of `GET /api/user`: who the caller is and its orgs with roles."""
        with self._lock:
            rows = self._db.execute(
                "SELECT org, role FROM memberships WHERE login = ? ORDER BY org",
                (caller.login,),
            ).fetchall()
        return User(
            id=_stable_id("user", caller.login),
            github_login=caller.login,
            name=caller.login,
            email=f"{caller.login}@example.com",
            avatar_url="",
            organizations=[
                OrganizationSummaryWithRole(name=org, github_login=org, avatar_url="", role=role)
                for org, role in rows
            ],
            identities=[],
            has_mfa=False,
            is_org_managed=False,
            is_managed_by_multi_org=False,
            is_agent=caller.is_agent,
        )

    # --- stacks --------------------------------------------------------------------------

    def list_stacks(
        self,
        caller: Caller,
        *,
        limit: int,
        organization: str | None = None,
        project: str | None = None,
        continuation_token: str | None = None,
    ) -> Page[AppStackSummary]:
        """Stacks in the caller's orgs, ordered by (org, project, stack), keyset-paged.

        One indexed range query per org (in name order) keeps every page cheap, however
        deep into a large listing it is.
        """
        after_org, after_project, after_stack = (
            _decode_token(continuation_token, "stacks", 3) if continuation_token else ("", "", "")
        )
        project_filter = "" if project is None else " AND project = ?"
        rows: list[tuple[Any, ...]] = []
        with self._lock:
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
                    "SELECT id, org, project, stack, last_update, resource_count FROM stacks"
                    f" WHERE org = ? AND (project, stack) > (?, ?){project_filter}"
                    " ORDER BY project, stack LIMIT ?",
                    (org, *after, *([] if project is None else [project]), limit + 1 - len(rows)),
                ).fetchall()
        return _page(
            rows,
            limit,
            "stacks",
            key=lambda row: (row[1], row[2], row[3]),
            build=lambda row: AppStackSummary(
                id=row[0],
                org_name=row[1],
                project_name=row[2],
                stack_name=row[3],
                last_update=row[4],
                resource_count=row[5],
            ),
        )

    def get_stack(self, caller: Caller, org: str, project: str, stack: str) -> AppStack:
        with self._lock:
            self._role_in(caller, org)
            record = self._existing_stack(org, project, stack)
        return AppStack(
            id=record.id,
            org_name=record.org,
            project_name=record.project,
            stack_name=record.stack,
            active_update="",
            tags=record.tags,
            version=record.version,
        )

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
        """Rename a stack within its org (project, name or both); returns the update id."""
        target_project = new_project or project
        target_name = new_name or stack
        with self._lock, self._transaction():
            self._role_in(caller, org)
            record = self._existing_stack(org, project, stack)
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
        return str(uuid.uuid4())

    def transfer_stack(
        self, caller: Caller, org: str, project: str, stack: str, *, to_org: str
    ) -> None:
        """Move a stack to another org; the caller must be admin of both."""
        with self._lock, self._transaction():
            source_role = self._role_in(caller, org)
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

    def delete_stack(
        self, caller: Caller, org: str, project: str, stack: str, *, force: bool = False
    ) -> None:
        """Delete a stack; one that still has resources only with `force`."""
        with self._lock, self._transaction():
            self._role_in(caller, org)
            record = self._existing_stack(org, project, stack)
            if record.resource_count and not force:
                raise ServiceFault(
                    400,
                    f"Bad Request: stack {org}/{project}/{stack} still has"
                    f" {record.resource_count} resources; destroy them or delete with force",
                )
            self._db.execute("DELETE FROM stacks WHERE id = ?", (record.id,))

    # --- other entities ------------------------------------------------------------------

    def list_environments(
        self, caller: Caller, org: str, *, limit: int, continuation_token: str | None = None
    ) -> Page[OrgEnvironment]:
        """ESC environments of an org, ordered by (project, name), keyset-paged."""
        where = "org = ?"
        params: list[Any] = [org]
        if continuation_token is not None:
            where += " AND (project, name) > (?, ?)"
            params.extend(_decode_token(continuation_token, "environments", 2))
        with self._lock:
            self._role_in(caller, org)
            owner = self._owner_of(org)
            rows = self._db.execute(
                "SELECT id, project, name, created FROM environments"
                f" WHERE {where} ORDER BY project, name LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        return _page(
            rows,
            limit,
            "environments",
            key=lambda row: (row[1], row[2]),
            build=lambda row: OrgEnvironment(
                id=row[0],
                organization=org,
                project=row[1],
                name=row[2],
                created=row[3],
                modified=row[3],
                owned_by=owner,
                tags={},
                referrer_metadata=EnvironmentReferrerMetadata(),
                settings=EnvironmentSettings(),
            ),
        )

    def list_insights_accounts(
        self, caller: Caller, org: str, *, limit: int, continuation_token: str | None = None
    ) -> Page[InsightsAccount]:
        """Insights accounts of an org, ordered by name, keyset-paged."""
        where = "org = ?"
        params: list[Any] = [org]
        if continuation_token is not None:
            where += " AND name > ?"
            params.extend(_decode_token(continuation_token, "insights", 1))
        with self._lock:
            self._role_in(caller, org)
            owner = self._owner_of(org)
            rows = self._db.execute(
                "SELECT id, name, provider FROM insights_accounts"
                f" WHERE {where} ORDER BY name LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        return _page(
            rows,
            limit,
            "insights",
            key=lambda row: (row[1],),
            build=lambda row: InsightsAccount(
                id=row[0],
                name=row[1],
                owned_by=owner,
                provider=row[2],
                scheduled_scan_enabled=False,
            ),
        )

    def list_registry_packages(
        self,
        caller: Caller,
        *,
        limit: int,
        org_login: str | None = None,
        continuation_token: str | None = None,
    ) -> Page[PackageMetadata]:
        """Registry packages of the caller's orgs (only those `org_login` publishes, if given)."""
        where = ["p.org IN (SELECT org FROM memberships WHERE login = ?)"]
        params: list[Any] = [caller.login]
        with self._lock:
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
        return _page(
            rows,
            limit,
            "packages",
            key=lambda row: (row[0], row[1], row[2], row[3]),
            build=lambda row: PackageMetadata(
                source=row[0],
                publisher=row[1],
                name=row[2],
                version="1.0.0",
                is_featured=False,
                package_status="ga",
                readme_url=f"registry/{row[0]}/{row[1]}/{row[2]}/readme.md",
                schema_url=f"registry/{row[0]}/{row[1]}/{row[2]}/schema.json",
                created_at=datetime.fromisoformat(row[4]),
                visibility="private",
            ),
        )

    # --- agent accounts ------------------------------------------------------------------

    def validate_claim(self, claim_token: str) -> AgentClaimResponse:
        """What claiming the agent account behind `claim_token` would bring over."""
        with self._lock:
            row = self._db.execute(
                "SELECT login, created_at, claim_expires_at FROM accounts WHERE claim_token = ?",
                (claim_token,),
            ).fetchone()
            if row is None:
                raise ServiceFault(404, "Not Found: the claim token is not valid")
            login, created_at, claim_expires_at = row
            entities = self._inventory(login)
        return AgentClaimResponse(
            agent=AgentAccountSummary(
                login=login, org_name=login, created_at=datetime.fromisoformat(created_at)
            ),
            entities=entities,
            conflicts=[],
            failures=[],
            claim_expires_at=datetime.fromisoformat(claim_expires_at),
        )

    # --- direct reads, for tests ---------------------------------------------------------

    def stack_names(self, org: str) -> set[tuple[str, str]]:
        """(project, stack) of every stack in `org`, read straight from the database."""
        with self._lock:
            rows = self._db.execute(
                "SELECT project, stack FROM stacks WHERE org = ?", (org,)
            ).fetchall()
        return {(project, stack) for project, stack in rows}

    def find_stack(self, org: str, project: str, stack: str) -> StackRecord | None:
        with self._lock:
            return self._find_stack(org, project, stack)

    def environment_names(self, org: str) -> set[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT project, name FROM environments WHERE org = ?", (org,)
            ).fetchall()
        return {(project, name) for project, name in rows}

    def org_names(self) -> set[str]:
        with self._lock:
            return {name for (name,) in self._db.execute("SELECT name FROM orgs")}

    # --- internals -----------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _load(self, world: World) -> None:
        loaded_at = datetime.now(UTC).isoformat()
        memberships = world.memberships()
        with self._lock, self._transaction():
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
                "INSERT INTO stacks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
            "SELECT id, org, project, stack, resource_count, last_update, tags, version"
            " FROM stacks WHERE org = ? AND project = ? AND stack = ?",
            (org, project, stack),
        ).fetchone()
        if row is None:
            return None
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

    def _existing_stack(self, org: str, project: str, stack: str) -> StackRecord:
        record = self._find_stack(org, project, stack)
        if record is None:
            raise ServiceFault(404, f"Not Found: stack {org}/{project}/{stack} does not exist")
        return record

    def _owner_of(self, org: str) -> UserInfo:
        """Who entities of an org are shown as owned by: its first admin, else the org."""
        row = self._db.execute(
            "SELECT login FROM memberships WHERE org = ? AND role = 'admin' ORDER BY login",
            (org,),
        ).fetchone()
        login = org if row is None else row[0]
        return UserInfo(name=login, github_login=login, avatar_url="")

    def _inventory(self, org: str) -> list[BaseEntity]:
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
        return [
            *(
                TransferEntityStack(
                    project_name=project,
                    stack_name=stack,
                    resource_count=count,
                    last_update=datetime.fromtimestamp(updated, UTC) if updated else None,
                )
                for project, stack, count, updated in stacks
            ),
            *(
                TransferEntityEnvironment(project_name=project, environment_name=name)
                for project, name in environments
            ),
            *(TransferEntityInsightsAccount(name=name) for (name,) in accounts),
            *(
                TransferEntityRegistryPackage(source=source, publisher=publisher, name=name)
                for source, publisher, name in packages
            ),
        ]


def _check_name(what: str, name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ServiceFault(
            400,
            f"Bad Request: {what} name {name!r} is invalid: use 1-100 letters, digits,"
            " '_', '.' or '-'",
        )


def _page(
    rows: Sequence[tuple[Any, ...]],
    limit: int,
    scope: str,
    *,
    key: Callable[[tuple[Any, ...]], tuple[str, ...]],
    build: Callable[[tuple[Any, ...]], T],
) -> Page[T]:
    """Turn `limit + 1` fetched rows into a page and the token that resumes after it."""
    more = len(rows) > limit
    shown = rows[:limit]
    next_token = _encode_token(scope, key(shown[-1])) if more else None
    return Page(items=[build(row) for row in shown], next_token=next_token)


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


def _stable_id(kind: str, name: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"pulumi-claim-emulator:{kind}:{name}").hex
