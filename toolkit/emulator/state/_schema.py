"""The state's SQLite schema, opening a database that holds it, and loading a world into it."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

from toolkit.emulator import checkpoints
from toolkit.emulator.secrets import new_key
from toolkit.emulator.state._deployment_secrets import insert_world_stack_settings
from toolkit.emulator.state._environment_secrets import insert_world_environments
from toolkit.emulator.world import Role, World

SCHEMA_VERSION = 7

AGENT_TOKEN_LIFETIME = timedelta(hours=72)
"""How long after its creation an agent's access token is valid (`accessTokenValidUntil`);
after that every call with it answers 401, while the account waits to be claimed."""
AGENT_CLAIM_WINDOW = timedelta(days=30)
"""How long after its creation an agent account can be claimed."""

_SCHEMA = """
CREATE TABLE accounts (
    login TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    is_agent INTEGER NOT NULL,
    claim_token TEXT UNIQUE,
    created_at TEXT,
    token_valid_until TEXT,
    claim_expires_at TEXT,
    claimed_by TEXT,
    deleted_at TEXT
);
CREATE TABLE orgs (name TEXT PRIMARY KEY, claimed_by TEXT, deleted_at TEXT);
-- Organization access tokens (state/_org_tokens.py): a digest of each value, never the value;
-- a deleted token stays, its name taken for good.
CREATE TABLE org_tokens (
    id TEXT PRIMARY KEY,
    org TEXT NOT NULL REFERENCES orgs(name),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    admin INTEGER NOT NULL,
    token_digest TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    deleted_at TEXT,
    UNIQUE (org, name)
);
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE signup_challenges (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires REAL NOT NULL,
    used INTEGER NOT NULL
);
CREATE TABLE claims (
    id TEXT PRIMARY KEY,
    destination TEXT NOT NULL,
    agent TEXT NOT NULL,
    claimed_by TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    document TEXT NOT NULL
);
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
-- ESC environments (state/_environments.py): each revision's definition holds its secrets
-- sealed with the environment's own key.
CREATE TABLE environments (
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL REFERENCES orgs(name),
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    secrets_key BLOB NOT NULL,
    PRIMARY KEY (org, project, name)
);
CREATE TABLE environment_revisions (
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    definition TEXT NOT NULL,
    created TEXT NOT NULL,
    creator TEXT NOT NULL,
    PRIMARY KEY (environment_id, number)
);
CREATE TABLE environment_tags (
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    created TEXT NOT NULL,
    modified TEXT NOT NULL,
    editor TEXT NOT NULL,
    PRIMARY KEY (environment_id, name)
);
CREATE TABLE environment_revision_tags (
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created TEXT NOT NULL,
    modified TEXT NOT NULL,
    editor TEXT NOT NULL,
    PRIMARY KEY (environment_id, name)
);
CREATE TABLE environment_sessions (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    revision INTEGER NOT NULL,
    expires REAL NOT NULL
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
-- Teams: members and the stacks and environments they grant access to.
CREATE TABLE teams (
    org TEXT NOT NULL REFERENCES orgs(name),
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (org, name)
);
CREATE TABLE team_members (
    org TEXT NOT NULL,
    team TEXT NOT NULL,
    login TEXT NOT NULL REFERENCES accounts(login),
    role TEXT NOT NULL,
    PRIMARY KEY (org, team, login),
    FOREIGN KEY (org, team) REFERENCES teams(org, name) ON DELETE CASCADE
);
CREATE TABLE team_stack_permissions (
    org TEXT NOT NULL,
    team TEXT NOT NULL,
    stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    permission INTEGER NOT NULL,
    PRIMARY KEY (org, team, stack_id),
    FOREIGN KEY (org, team) REFERENCES teams(org, name) ON DELETE CASCADE
);
CREATE TABLE team_environment_permissions (
    org TEXT NOT NULL,
    team TEXT NOT NULL,
    project TEXT NOT NULL,
    environment TEXT NOT NULL,
    permission TEXT NOT NULL,
    max_open_duration TEXT,
    PRIMARY KEY (org, team, project, environment),
    FOREIGN KEY (org, team) REFERENCES teams(org, name) ON DELETE CASCADE
);
CREATE TABLE deployment_settings (
    stack_id TEXT PRIMARY KEY REFERENCES stacks(id) ON DELETE CASCADE,
    settings TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE stack_webhooks (
    stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    secret TEXT,
    PRIMARY KEY (stack_id, name)
);
CREATE TABLE stack_schedules (
    id TEXT PRIMARY KEY,
    stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    request TEXT NOT NULL,
    created TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX claims_by_destination ON claims (destination, started);
CREATE INDEX memberships_by_org ON memberships (org);
CREATE INDEX registry_packages_by_publisher ON registry_packages (publisher, source, name);
CREATE INDEX updates_by_stack ON updates (stack_id, status);
"""


def connect(db_path: str) -> sqlite3.Connection:
    """A connection to the state in `db_path`, creating the schema in a new database; a file
    holding something else, or state of another schema version, is refused (ValueError)."""
    db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    if db_path != ":memory:":
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version == 0:
        if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise ValueError(f"{db_path} is a SQLite database of something else")
        db.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
    elif version != SCHEMA_VERSION:
        raise ValueError(f"{db_path} holds emulator state of another version ({version})")
    return db


def insert_world(db: sqlite3.Connection, world: World, db_path: str) -> None:
    """Fill an empty state with exactly what `world` describes (inside the caller's
    transaction); every stack gets its own secret key."""
    loaded_at = datetime.now(UTC).isoformat()
    memberships = world.memberships()
    if db.execute("SELECT count(*) FROM accounts").fetchone()[0]:
        raise ValueError(f"{db_path} already holds a world")
    db.executemany("INSERT INTO orgs (name) VALUES (?)", [(name,) for name in world.org_names()])
    db.executemany(
        "INSERT INTO settings VALUES (?, ?)",
        [(name, json.dumps(value)) for name, value in world.service.model_dump().items()],
    )
    db.executemany(
        "INSERT INTO accounts (login, token, is_agent) VALUES (?, ?, 0)",
        [(user.login, user.token) for user in world.users],
    )
    db.executemany(
        "INSERT INTO accounts VALUES (?, ?, 1, ?, ?, ?, ?, NULL, NULL)",
        [
            (
                agent.login,
                agent.token,
                agent.claim_token,
                _utc(agent.created_at).isoformat(),
                (_utc(agent.created_at) + AGENT_TOKEN_LIFETIME).isoformat(),
                _utc(agent.claim_expires_at).isoformat(),
            )
            for agent in world.agents
        ],
    )
    db.executemany(
        "INSERT INTO memberships VALUES (?, ?, ?)",
        [(login, org, role) for login, roles in memberships.items() for org, role in roles.items()],
    )
    _insert_stacks(db, world, memberships, loaded_at)
    insert_world_environments(db, world, loaded_at)
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
    _insert_teams(db, world)


def _insert_stacks(
    db: sqlite3.Connection, world: World, memberships: dict[str, dict[str, Role]], loaded_at: str
) -> None:
    """The world's stacks, each with its own secret key, deployment settings, webhooks and
    schedules. A stack with a `lastUpdate` was
    updated once then, by an admin of its org (the agent, in an agent's org): that first
    update, with a summary engine event that created its resources, is its history."""
    for org, content in world.orgs.items():
        admins = sorted(login for login, roles in memberships.items() if roles.get(org) == "admin")
        for s in content.stacks:
            stack_id = uuid.uuid4().hex
            key = new_key()
            updated = int(_utc(s.last_update).timestamp()) if s.last_update else 0
            version = 1 if s.last_update else 0
            referencing = (
                checkpoints.placeholder_deployment(
                    s.project,
                    s.stack,
                    s.resource_count,
                    datetime.fromtimestamp(updated, UTC),
                    stack_references=s.stack_references,
                )
                if s.stack_references
                else None
            )
            db.execute(
                "INSERT INTO stacks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    stack_id,
                    org,
                    s.project,
                    s.stack,
                    s.resource_count
                    if referencing is None
                    else checkpoints.resource_count(referencing),
                    updated,
                    json.dumps(s.tags) if s.tags else None,
                    version,
                    key,
                ),
            )
            if referencing is not None:
                # Its StackReferences are stored with it: a placeholder checkpoint is made
                # from the resource count alone.
                db.execute(
                    "INSERT INTO checkpoints VALUES (?, ?, ?)",
                    (stack_id, version, json.dumps(referencing)),
                )
            insert_world_stack_settings(db, stack_id, key, s, loaded_at)
            if not s.last_update:
                continue
            update_id = uuid.uuid4().hex
            db.execute(
                "INSERT INTO updates VALUES (?, ?, 'update', 0, 'succeeded', 1, NULL, NULL, ?, ?,"
                " ?, ?)",
                (
                    update_id,
                    stack_id,
                    json.dumps({"name": s.project}),
                    (admins or [org])[0],
                    updated,
                    updated,
                ),
            )
            summary = {"resourceChanges": {"create": s.resource_count}, "result": "succeeded"}
            db.execute(
                "INSERT INTO update_events VALUES (?, 1, ?)",
                (
                    update_id,
                    json.dumps({"sequence": 1, "timestamp": updated, "summaryEvent": summary}),
                ),
            )


def _insert_teams(db: sqlite3.Connection, world: World) -> None:
    """The world's teams and their members (each a member of the team's org)."""
    db.executemany(
        "INSERT INTO teams VALUES (?, ?, ?, ?)",
        [
            (org, t.name, t.display_name or t.name, t.description)
            for org, content in world.orgs.items()
            for t in content.teams
        ],
    )
    db.executemany(
        "INSERT INTO team_members VALUES (?, ?, ?, 'member')",
        [
            (org, t.name, login)
            for org, content in world.orgs.items()
            for t in content.teams
            for login in t.members
        ],
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
