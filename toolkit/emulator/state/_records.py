"""What the state hands out: frozen records of what it holds, and the fault it raises.

Records carry the state's facts only; how the service shows them on the wire is the HTTP
layer's business (`toolkit.emulator.serializers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from toolkit.emulator.esc_definitions import Diagnostic
from toolkit.emulator.world import Role
from toolkit.models import BaseEntity, RenameEntity


class ServiceFault(Exception):
    """A request the service refuses: the HTTP status and message it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class InvalidDefinitionFault(ServiceFault):
    """An environment definition the service refuses (400), with its ESC diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic], environment: str = "<yaml>") -> None:
        summaries = "; ".join(d.summary for d in diagnostics)
        super().__init__(400, f"Bad Request: the environment definition is invalid: {summaries}")
        self.diagnostics = diagnostics
        self.environment = environment
        """The name the diagnostics' ranges carry: `project/name`, or `<yaml>` for a check."""


@dataclass(frozen=True)
class OrgTokenScope:
    """What an organization access token may do: act in its one org with the role it was
    made with (`admin` for an admin token, else `member`)."""

    org: str
    role: Role
    token_name: str


@dataclass(frozen=True)
class Caller:
    """The identity behind an access token: an account, or an org whose access token it is
    (`org_token`, its login then the org's name)."""

    login: str
    is_agent: bool
    org_token: OrgTokenScope | None = None


@dataclass(frozen=True)
class CloneOptions:
    """What a clone of an environment copies besides its definition at `version` (its newest
    if None): its revision history, its teams' access, its tags, its revision tags."""

    version: int | None = None
    history: bool = False
    access: bool = False
    environment_tags: bool = False
    revision_tags: bool = False


@dataclass(frozen=True)
class OrgTokenRecord:
    """An organization access token as stored: never its value, which only its creation
    hands out. `expires` and `last_used` are epoch seconds, 0 for never."""

    id: str
    org: str
    name: str
    description: str
    admin: bool
    created: str
    created_by: str
    expires: int
    last_used: int


@dataclass(frozen=True)
class UserRecord:
    """An account and its role in each org it belongs to (in org name order)."""

    login: str
    is_agent: bool
    roles: dict[str, Role]
    org_token: OrgTokenScope | None = None


@dataclass(frozen=True)
class StackRecord:
    """A stack as stored."""

    id: str
    org: str
    project: str
    stack: str
    resource_count: int
    last_update: int
    tags: dict[str, str]
    version: int
    updating: bool = False
    """Whether an update that writes the stack's state is running."""


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
    modified: str = ""
    """When its latest revision was made (its creation, if never updated)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Its environment tags."""


@dataclass(frozen=True)
class DefinitionRecord:
    """One revision of an environment's definition, as a read shows it."""

    yaml: str
    """The YAML text: secrets sealed, or opened for a decrypting read."""
    revision: int
    etag: str
    """What `If-Match` must name to update the environment from this revision."""


@dataclass(frozen=True)
class EnvironmentTagRecord:
    name: str
    value: str
    created: str
    modified: str
    editor: str
    """The login that set its current value."""


@dataclass(frozen=True)
class RevisionRecord:
    number: int
    created: str
    creator: str
    tags: list[str]
    """The revision tags that name it (`latest` for the newest)."""


@dataclass(frozen=True)
class RevisionTagRecord:
    name: str
    revision: int
    created: str
    modified: str
    editor: str


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
class SignupChallengeRecord:
    """A proof-of-work challenge handed to an agent about to sign up."""

    id: str
    data: str
    """`v1:<random>:<difficulty>`."""


@dataclass(frozen=True)
class AgentAccountRecord:
    """An agent account sign-up has just made, with its credentials."""

    user: UserRecord
    token: str
    token_valid_until: datetime
    claim_token: str
    claim_expires_at: datetime


@dataclass(frozen=True)
class ClaimFailure:
    entity: BaseEntity | RenameEntity
    details: str
    """Why the service cannot move it, as the service says it."""


@dataclass(frozen=True)
class ClaimRecord:
    """The service's answer about claiming an agent account: what it owns (renamed entities
    in their `*Rename` form), what collides with the destination, what the service cannot
    move, and, once a commit has started, the claim's id."""

    login: str
    """The agent's login, which is also the name of its individual org."""
    created_at: datetime
    claim_expires_at: datetime
    entities: list[BaseEntity | RenameEntity]
    conflicts: list[BaseEntity | RenameEntity]
    failures: list[ClaimFailure]
    claim_id: str | None = None

    @property
    def blocked(self) -> bool:
        return bool(self.conflicts or self.failures)


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
    resource_changes: dict[str, int] | None
    """Resources created, updated, deleted, ... by operation, as the CLI's summary engine
    event counted them; None before that event arrives."""


# --- Teams ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeamMemberRecord:
    login: str
    role: Literal["member", "admin"]
    """The member's role in the team (not in the org)."""


@dataclass(frozen=True)
class TeamStackGrant:
    project: str
    stack: str
    permission: int
    """The service's StackPermission: 101 read, 102 write, 103 admin."""


@dataclass(frozen=True)
class TeamEnvironmentGrant:
    project: str
    environment: str
    permission: str
    max_open_duration: str | None


@dataclass(frozen=True)
class TeamRecord:
    """A team with its members and what it grants, each list in name order."""

    org: str
    name: str
    display_name: str
    description: str
    members: list[TeamMemberRecord]
    stacks: list[TeamStackGrant]
    environments: list[TeamEnvironmentGrant]


@dataclass(frozen=True)
class OrgMemberRecord:
    login: str
    role: Role
