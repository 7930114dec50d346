"""Agent accounts: sign-up with a proof of work, the account's lifetimes, and claiming it.

The rules, as Pulumi documents the agent claim API and as the `pulumi` CLI expects them:
- Sign-up is a proof of work: a challenge `v1:<random>:<difficulty>`, single use and valid
  for a few minutes, answered by a decimal nonce such that sha256(challenge + ":" + nonce)
  starts with at least `difficulty` zero bits. It makes an agent login, the individual org
  of the same name (the agent its admin), an access token and a claim token.
- The agent's access token is valid for 72 hours from its creation (`accessTokenValidUntil`),
  then every call with it answers 401 (see `Accounts.authenticate`); the account's content
  stays, and the claim token works for 30 days from its creation, once.
- A claim computes the conflicts itself: an entity the claim moves collides when its name
  after the requested renames is taken in the destination, or is also the name another of
  the agent's entities ends up with. Failures are what the service cannot move: Insights
  accounts, a stack while an update runs, and (`claimMoves: launch`, as at the claim API's
  launch) ESC environments and registry packages. A commit with any conflict or failure
  changes nothing. Otherwise the commit only starts the claim and answers at once with its
  `transferToken`: it consumes the claim token and holds the agent's org against writes
  (409); then, as the service's clock runs, the claim moves one stack every
  `claimSecondsPerStack` (history, tags, checkpoints and secrets key along), and with the
  last one the environments and packages the service moves, under their resolved names,
  and soft-deletes the agent's org and token. The claim status lists the claim from its
  start; the stacks appear in the destination as they move.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from toolkit.emulator.state._records import (
    AgentAccountRecord,
    Caller,
    ClaimFailure,
    ClaimRecord,
    ServiceFault,
    SignupChallengeRecord,
    UserRecord,
)
from toolkit.emulator.state._schema import AGENT_CLAIM_WINDOW, AGENT_TOKEN_LIFETIME
from toolkit.emulator.state._store import RUNNING_UPDATE, Store
from toolkit.emulator.state._updates import move_checkpoint
from toolkit.emulator.world import (
    DEFAULT_CLAIM_SECONDS_PER_STACK,
    DEFAULT_SIGNUP_DIFFICULTY,
    ClaimMoves,
)
from toolkit.entities import (
    EntityKey,
    Inventory,
    as_rename,
    describe,
    entity_key,
    identity,
    invalid_names,
    kind_of,
    make_entity,
    name_problem,
)
from toolkit.models import (
    BaseEntity,
    RenameEntity,
    TransferEntity,
    TransferEntityEnvironment,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
)

CHALLENGE_SECONDS = 300
"""How long a sign-up challenge can be answered."""
RECENT_CLAIMS = 100
"""How many of the latest claims into an org its claim status lists."""

_NONCE = re.compile(r"[0-9]{1,20}")
_LOGIN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ENTITIES: TypeAdapter[list[TransferEntity]] = TypeAdapter(list[TransferEntity])


class Agents(Store):
    # --- Sign-up -------------------------------------------------------------------------

    def signup_difficulty(self) -> int:
        return int(self._setting("signup_difficulty", DEFAULT_SIGNUP_DIFFICULTY))

    def set_signup_difficulty(self, difficulty: int) -> None:
        if not 1 <= difficulty <= 256:
            raise ValueError("the sign-up difficulty is a number of bits, from 1 to 256")
        with self._session(write=True):
            self._set_setting("signup_difficulty", difficulty)

    def signup_challenge(self) -> SignupChallengeRecord:
        """A new proof-of-work challenge, answerable once within `CHALLENGE_SECONDS`."""
        challenge = SignupChallengeRecord(
            id=uuid.uuid4().hex, data=f"v1:{secrets.token_hex(16)}:{self.signup_difficulty()}"
        )
        with self._session(write=True):
            self._db.execute(
                "INSERT INTO signup_challenges VALUES (?, ?, ?, 0)",
                (challenge.id, challenge.data, self._clock() + CHALLENGE_SECONDS),
            )
        return challenge

    def sign_up_agent(self, challenge_id: str, challenge_result: str) -> AgentAccountRecord:
        """A new agent account for a correct answer to an unused, unexpired challenge; 400
        (and no account) otherwise."""
        now = self.now()
        with self._session(write=True):
            row = self._db.execute(
                "SELECT data, expires, used FROM signup_challenges WHERE id = ?", (challenge_id,)
            ).fetchone()
            if row is None:
                raise ServiceFault(400, "Bad Request: unknown challengeID")
            data, expires, used = row
            if used:
                raise ServiceFault(400, "Bad Request: the challenge has already been used")
            if now.timestamp() >= expires:
                raise ServiceFault(400, "Bad Request: the challenge has expired")
            if not proof_holds(data, challenge_result):
                raise ServiceFault(400, "Bad Request: proof-of-work verification failed")
            self._db.execute("UPDATE signup_challenges SET used = 1 WHERE id = ?", (challenge_id,))
            login = self._new_agent_login()
            account = AgentAccountRecord(
                user=UserRecord(login=login, is_agent=True, roles={login: "admin"}),
                token=f"pul-{secrets.token_hex(20)}",
                token_valid_until=now + AGENT_TOKEN_LIFETIME,
                claim_token=secrets.token_hex(24),
                claim_expires_at=now + AGENT_CLAIM_WINDOW,
            )
            self._db.execute("INSERT INTO orgs (name) VALUES (?)", (login,))
            self._db.execute(
                "INSERT INTO accounts VALUES (?, ?, 1, ?, ?, ?, ?, NULL, NULL)",
                (
                    login,
                    account.token,
                    account.claim_token,
                    now.isoformat(),
                    account.token_valid_until.isoformat(),
                    account.claim_expires_at.isoformat(),
                ),
            )
            self._db.execute("INSERT INTO memberships VALUES (?, ?, 'admin')", (login, login))
        return account

    def _new_agent_login(self) -> str:
        """`agent-` and 8 random lowercase letters and digits, unused by any account or org."""
        while True:
            login = "agent-" + "".join(secrets.choice(_LOGIN_ALPHABET) for _ in range(8))
            taken = self._db.execute(
                "SELECT 1 FROM accounts WHERE login = ? UNION SELECT 1 FROM orgs WHERE name = ?",
                (login, login),
            ).fetchone()
            if taken is None:
                return login

    # --- Validating and claiming ---------------------------------------------------------

    def validate_claim(self, claim_token: str) -> ClaimRecord:
        """What claiming the agent account behind `claim_token` would bring over, and what
        the service could not move; 404 for a token unknown, expired or used."""
        with self._session():
            return self._assess(self._claimable(claim_token), None, [])

    def claim(
        self,
        caller: Caller,
        destination: str,
        claim_token: str,
        resolutions: Sequence[BaseEntity | RenameEntity],
        *,
        dry_run: bool,
    ) -> ClaimRecord:
        """Preview (`dry_run`) or commit the claim of the agent behind `claim_token` into
        `destination`, with `resolutions` renaming the agent's entities. A commit that
        starts returns the record with its claim id; a blocked one changes nothing."""
        if dry_run:
            with self._session():
                return self._assess_claim(caller, destination, claim_token, resolutions)
        return self.start_claim(caller, destination, claim_token, resolutions)

    def claim_moves(self) -> ClaimMoves:
        """What the service's claim moves besides stacks (the world's `service.claimMoves`)."""
        return "launch" if self._setting("claim_moves", "current") == "launch" else "current"

    def claim_seconds_per_stack(self) -> float:
        return float(self._setting("claim_seconds_per_stack", DEFAULT_CLAIM_SECONDS_PER_STACK))

    def set_claim_seconds_per_stack(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a claim's seconds per stack cannot be negative")
        with self._session(write=True):
            self._set_setting("claim_seconds_per_stack", seconds)

    def start_claim(
        self,
        caller: Caller,
        destination: str,
        claim_token: str,
        resolutions: Sequence[BaseEntity | RenameEntity],
    ) -> ClaimRecord:
        """A commit: when nothing blocks it, consume the claim token, hold the agent's org
        against writes and record the claim as running; its stacks move later, one every
        `claim_seconds_per_stack()` of the service's clock (`_catch_up`)."""
        with self._session(write=True):
            record = self._assess_claim(caller, destination, claim_token, resolutions)
            if record.blocked:
                return record
            claim_id = uuid.uuid4().hex
            self._db.execute(
                "UPDATE orgs SET claimed_by = ? WHERE name = ?", (claim_id, record.login)
            )
            self._db.execute(
                "UPDATE accounts SET claimed_by = ? WHERE login = ?", (claim_id, record.login)
            )
            self._db.execute(
                "INSERT INTO claims VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (
                    claim_id,
                    destination,
                    record.login,
                    caller.login,
                    self._clock(),
                    _encode(record, moved=0),
                ),
            )
        return replace(record, claim_id=claim_id)

    def complete_claim(self, claim_id: str) -> ClaimRecord:
        """Finish a running claim now, whatever its pace (see `_advance_claim`)."""
        with self._session(write=True):
            return self._advance_claim(claim_id, None)

    def _catch_up(self) -> None:
        """Move the stacks of every running claim that are due by the service's clock."""
        running = self._db.execute(
            "SELECT id, started FROM claims WHERE status = 'running'"
        ).fetchall()
        if not running:
            return
        pace = self.claim_seconds_per_stack()
        for claim_id, started in running:
            due = None if pace == 0 else int((self._clock() - started) / pace)
            with self._session(write=True):
                self._advance_claim(claim_id, due)

    def _advance_claim(self, claim_id: str, due: int | None) -> ClaimRecord:
        """Move the running claim's stacks, in order, until `due` of them have moved (None:
        all). With the last stack, the environments the service moves follow, the agent's
        org and token are soft-deleted and the claim has succeeded. Should a name still to
        be landed have been taken in the destination since the claim started, the claim is
        undone instead (stacks moved back, token usable again, org released) and the record
        returned lists the conflicts."""
        row = self._db.execute(
            "SELECT destination, agent, status, document FROM claims WHERE id = ?",
            (claim_id,),
        ).fetchone()
        if row is None or row[2] != "running":
            raise ServiceFault(404, f"Not Found: no claim {claim_id} is running")
        destination, agent, _, document = row
        record = _decode(document, claim_id)
        moved = int(json.loads(document)["moved"])
        moves = [(entity, _target(entity)) for entity in record.entities]
        stacks = [move for move in moves if isinstance(move[1], TransferEntityStack)]
        others = [move for move in moves if not isinstance(move[1], TransferEntityStack)]
        reached = len(stacks) if due is None else min(due, len(stacks))
        if reached <= moved and reached < len(stacks):
            return record
        taken = [
            entity for entity, target in stacks[moved:] + others if self._taken(destination, target)
        ]
        if taken:
            for entity, target in stacks[:moved]:
                self._move(destination, agent, target, _source(entity))
            self._db.execute("UPDATE orgs SET claimed_by = NULL WHERE name = ?", (agent,))
            self._db.execute("UPDATE accounts SET claimed_by = NULL WHERE login = ?", (agent,))
            self._db.execute("DELETE FROM claims WHERE id = ?", (claim_id,))
            return replace(record, conflicts=taken, failures=[], claim_id=None)
        for entity, target in stacks[moved:reached]:
            self._move(agent, destination, entity, target)
        self._db.execute(
            "UPDATE claims SET document = ? WHERE id = ?",
            (_encode(record, moved=reached), claim_id),
        )
        if reached == len(stacks):
            for entity, target in others:
                self._move(agent, destination, entity, target)
            now = self.now().isoformat()
            self._db.execute("UPDATE orgs SET deleted_at = ? WHERE name = ?", (now, agent))
            self._db.execute("UPDATE accounts SET deleted_at = ? WHERE login = ?", (now, agent))
            self._db.execute("UPDATE claims SET status = 'succeeded' WHERE id = ?", (claim_id,))
        return record

    def claims_status(self, caller: Caller, destination: str) -> list[ClaimRecord]:
        """The latest claims into `destination`, newest first; the caller needs a role there."""
        with self._session():
            self._refuse_without_role(caller, destination)
            rows = self._db.execute(
                "SELECT id, document FROM claims WHERE destination = ?"
                " ORDER BY started DESC LIMIT ?",
                (destination, RECENT_CLAIMS),
            ).fetchall()
        return [_decode(document, claim_id) for claim_id, document in rows]

    def _claimable(self, claim_token: str) -> tuple[str, datetime, datetime]:
        """(login, created, claim expiry) of the agent whose claim token this is; 404 unless
        the token is known, unused and within its claim window."""
        row = self._db.execute(
            "SELECT login, created_at, claim_expires_at FROM accounts"
            " WHERE claim_token = ? AND claimed_by IS NULL AND deleted_at IS NULL",
            (claim_token,),
        ).fetchone()
        if row is None or self.now() >= datetime.fromisoformat(row[2]):
            raise ServiceFault(404, "Not Found: the claim token is unknown, expired or used")
        return row[0], datetime.fromisoformat(row[1]), datetime.fromisoformat(row[2])

    def _refuse_without_role(self, caller: Caller, org: str) -> None:
        if not self._org_exists(org) or self._role_of(caller, org) is None:
            raise ServiceFault(
                403, f"Forbidden: {caller.login!r} has no role in organization {org!r}"
            )

    def _assess_claim(
        self,
        caller: Caller,
        destination: str,
        claim_token: str,
        resolutions: Sequence[BaseEntity | RenameEntity],
    ) -> ClaimRecord:
        agent = self._claimable(claim_token)
        if caller.login == agent[0]:
            raise ServiceFault(403, "Forbidden: an agent account cannot claim itself")
        self._refuse_without_role(caller, destination)
        if destination == agent[0]:
            raise ServiceFault(400, "Bad Request: the destination is the agent's own organization")
        return self._assess(agent, destination, resolutions)

    def _assess(
        self,
        agent: tuple[str, datetime, datetime],
        destination: str | None,
        resolutions: Sequence[BaseEntity | RenameEntity],
    ) -> ClaimRecord:
        """The claim document of `agent` into `destination` (None: no destination yet, so
        no conflicts), after checking the renames (400 for one the service cannot apply)."""
        login, created_at, claim_expires_at = agent
        inventory = self._inventory(login)
        updating = {
            ("TransferEntityStack", project, stack)
            for project, stack in self._db.execute(
                f"SELECT project, stack FROM stacks WHERE org = ? AND EXISTS ({RUNNING_UPDATE})",
                (login,),
            )
        }
        movable = _MOVABLE_KINDS[self.claim_moves()]
        targets = _checked_renames(inventory, resolutions, movable)
        entities: list[BaseEntity | RenameEntity] = []
        failures: list[ClaimFailure] = []
        landing: dict[BaseEntity, list[BaseEntity | RenameEntity]] = {}
        for entity in inventory.entities:
            key = entity_key(entity)
            shown = as_rename(entity, targets[key]) if key in targets else entity
            entities.append(shown)
            details = _failure_details(entity, key in updating, movable)
            if details is not None:
                failures.append(ClaimFailure(entity=shown, details=details))
            else:
                landing.setdefault(_target(shown), []).append(shown)
        conflicts = [
            shown
            for target, arriving in landing.items()
            if len(arriving) > 1 or (destination is not None and self._taken(destination, target))
            for shown in arriving
        ]
        return ClaimRecord(
            login=login,
            created_at=created_at,
            claim_expires_at=claim_expires_at,
            entities=entities,
            conflicts=sorted(conflicts, key=entities.index),
            failures=failures,
        )

    def _taken(self, org: str, entity: BaseEntity) -> bool:
        """Whether `org` already has an entity of this kind and identity."""
        if isinstance(entity, TransferEntityStack):
            query = "SELECT 1 FROM stacks WHERE org = ? AND project = ? AND stack = ?"
        elif isinstance(entity, TransferEntityEnvironment):
            query = "SELECT 1 FROM environments WHERE org = ? AND project = ? AND name = ?"
        elif isinstance(entity, TransferEntityRegistryPackage):
            query = (
                "SELECT 1 FROM registry_packages"
                " WHERE org = ? AND source = ? AND publisher = ? AND name = ?"
            )
        else:
            raise ValueError(f"a claim never moves a {entity.kind}")
        return self._db.execute(query, (org, *identity(entity))).fetchone() is not None

    def _move(
        self, agent: str, destination: str, entity: BaseEntity | RenameEntity, target: BaseEntity
    ) -> None:
        """Move one of the agent's entities to `destination` as `target`; a stack takes its
        history, tags and secrets key along, and its checkpoint names it anew."""
        if isinstance(target, TransferEntityStack):
            project, stack = identity(entity)
            record = self._existing_stack(agent, project, stack)
            self._db.execute(
                "UPDATE stacks SET org = ?, project = ?, stack = ? WHERE id = ?",
                (destination, target.project_name, target.stack_name, record.id),
            )
            move_checkpoint(self._db, record, (destination, target.project_name, target.stack_name))
        elif isinstance(target, TransferEntityEnvironment):
            self._db.execute(
                "UPDATE environments SET org = ?, project = ?, name = ?"
                " WHERE org = ? AND project = ? AND name = ?",
                (
                    destination,
                    target.project_name,
                    target.environment_name,
                    agent,
                    *identity(entity),
                ),
            )
        elif isinstance(target, TransferEntityRegistryPackage):
            self._db.execute(
                "UPDATE registry_packages SET org = ?, source = ?, publisher = ?, name = ?"
                " WHERE org = ? AND source = ? AND publisher = ? AND name = ?",
                (destination, *identity(target), agent, *identity(entity)),
            )
        else:
            raise ValueError(f"a claim never moves a {target.kind}")

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


def proof_holds(challenge_data: str, challenge_result: str) -> bool:
    """Whether a decimal nonce answers the challenge: sha256(data + ":" + nonce) starts with
    at least the challenge's difficulty in zero bits."""
    if not _NONCE.fullmatch(challenge_result):
        return False
    difficulty = int(challenge_data.rsplit(":", 1)[1])
    digest = hashlib.sha256(f"{challenge_data}:{challenge_result}".encode()).digest()
    return int.from_bytes(digest, "big") >> (256 - difficulty) == 0


def _checked_renames(
    inventory: Inventory,
    resolutions: Sequence[BaseEntity | RenameEntity],
    movable: frozenset[str],
) -> dict[EntityKey, BaseEntity]:
    """The name each renamed entity should take, by the entity's key; 400 for a resolution
    that is not a rename, renames what the agent does not own or what the claim does not
    move, renames one entity twice, or asks for an invalid name."""
    owned = {entity_key(entity) for entity in inventory.entities}
    targets: dict[EntityKey, BaseEntity] = {}
    for resolution in resolutions:
        kind = kind_of(resolution)
        if not isinstance(resolution, RenameEntity):
            raise ServiceFault(
                400, f"Bad Request: conflictsResolution holds renames only, not {resolution.kind}"
            )
        key = entity_key(resolution)
        if key not in owned:
            raise ServiceFault(400, f"Bad Request: the agent has no {describe(resolution)}")
        if kind.wire_kind not in movable:
            raise ServiceFault(
                400,
                f"Bad Request: {describe(resolution)} cannot be renamed: a claim does not move"
                f" {kind.label}s",
            )
        if key in targets:
            raise ServiceFault(400, f"Bad Request: {describe(resolution)} is renamed twice")
        target = resolution.rename_as
        for part in invalid_names(target):
            raise ServiceFault(400, f"Bad Request: {name_problem(kind.label, part)}")
        targets[key] = make_entity(kind.wire_kind, identity(target))
    return targets


_MOVABLE_KINDS: dict[ClaimMoves, frozenset[str]] = {
    "current": frozenset(
        {"TransferEntityStack", "TransferEntityEnvironment", "TransferEntityRegistryPackage"}
    ),
    "launch": frozenset({"TransferEntityStack"}),
}
"""The kinds a claim moves, by `claimMoves`: Pulumi's API document of 2026-07 lists only
Insights accounts as failures; at the claim API's launch only stacks moved."""


def _failure_details(entity: BaseEntity, updating: bool, movable: frozenset[str]) -> str | None:
    """Why the service cannot move `entity` with the claim, or None when it can."""
    name = "/".join(identity(entity))
    if isinstance(entity, TransferEntityStack):
        if updating:
            return f"Stack {name} has an update in progress; claim again once it has finished."
        return None
    if entity.kind in movable:
        return None
    if isinstance(entity, TransferEntityEnvironment):
        return (
            f"ESC environment {name} cannot be transferred by an agent claim yet; recreate it"
            " in the destination organization."
        )
    if isinstance(entity, TransferEntityInsightsAccount):
        return (
            f"Insights account {name} cannot be transferred: Insights accounts have no"
            " transfer primitive yet; add the account again in the destination organization."
        )
    return (
        f"Registry package {name} cannot be transferred: publish it again from the destination"
        " organization."
    )


def _target(entity: BaseEntity | RenameEntity) -> BaseEntity:
    """The entity a claim lands: its `renameAs` for a rename, else the entity itself."""
    base = entity.rename_as if isinstance(entity, RenameEntity) else entity
    return make_entity(kind_of(base).wire_kind, identity(base))


def _source(entity: BaseEntity | RenameEntity) -> BaseEntity:
    """The entity as the agent's org names it, before any rename."""
    return make_entity(kind_of(entity).wire_kind, identity(entity))


def _encode(record: ClaimRecord, *, moved: int) -> str:
    """A started claim's record as the claims table keeps it, with how many of its stacks
    have moved."""
    document: dict[str, Any] = {
        "moved": moved,
        "login": record.login,
        "createdAt": record.created_at.isoformat(),
        "claimExpiresAt": record.claim_expires_at.isoformat(),
        "entities": [entity.to_wire() for entity in record.entities],
    }
    return json.dumps(document)


def _decode(document: str, claim_id: str) -> ClaimRecord:
    fields = json.loads(document)
    return ClaimRecord(
        login=fields["login"],
        created_at=datetime.fromisoformat(fields["createdAt"]),
        claim_expires_at=datetime.fromisoformat(fields["claimExpiresAt"]),
        entities=list(_ENTITIES.validate_python(fields["entities"])),
        conflicts=[],
        failures=[],
        claim_id=claim_id,
    )
