"""The emulated service's state and rules, kept apart from HTTP.

`ServiceState` is what Pulumi Cloud knows (accounts, org roles, stacks with their checkpoints,
updates and secret keys, ESC environments, Insights accounts, registry packages, agent claim
tokens) and the rules it enforces on them. It lives in SQLite so that large worlds load and
page quickly, several threads can use it (the HTTP server and the tests that inspect it),
renames and transfers are atomic (one transaction each), and, given a file path, it survives
an emulator restart.

Every refused operation raises `ServiceFault` carrying the HTTP status the service would
answer with; the HTTP layer only translates it. Answers are records (`StackRecord`,
`UpdateRecord`, ...); the HTTP layer decides how the wire shows them.

Each part of the service is one module holding a subclass of `Store` (`_store`: the connection,
the lock, the one way into an operation), and `ServiceState` combines them: `_accounts` (tokens
and roles; org access tokens in `_org_tokens`), `_agents` (agent sign-up, lifetimes and
claims), `_stacks`, `_updates` (updates, leases, checkpoints; the resource search over the
checkpoints in `_resource_search`), `_environments` (ESC
environments: definitions with their secrets sealed by each environment's key in
`_environment_secrets`, revisions, revision tags, open sessions; their tags in
`_environment_tags`, their clones in `_environment_clones`), `_catalog` (Insights accounts,
registry packages), `_teams` (teams, their members and their stack and environment permissions,
org members), `_stack_settings` (a stack's deployment settings, webhooks and schedules;
their secrets sealed by the stack's key in `_deployment_secrets`) and `_inspection` (direct
reads for tests). Each module adds its tables to
`_schema` and its class to `ServiceState`.
"""

from toolkit.emulator.state._accounts import Accounts
from toolkit.emulator.state._agents import Agents
from toolkit.emulator.state._catalog import Catalog
from toolkit.emulator.state._environment_clones import EnvironmentClones
from toolkit.emulator.state._inspection import Inspection
from toolkit.emulator.state._paging import Page
from toolkit.emulator.state._records import (
    FINISHED,
    AgentAccountRecord,
    Caller,
    ClaimFailure,
    ClaimRecord,
    CloneOptions,
    DefinitionRecord,
    EnvironmentRecord,
    EnvironmentTagRecord,
    InsightsAccountRecord,
    InvalidDefinitionFault,
    Lease,
    OrgMemberRecord,
    OrgTokenRecord,
    PackageRecord,
    RevisionRecord,
    RevisionTagRecord,
    ServiceFault,
    SignupChallengeRecord,
    StackRecord,
    StackView,
    TeamEnvironmentGrant,
    TeamMemberRecord,
    TeamRecord,
    TeamStackGrant,
    UpdateKind,
    UpdateRecord,
    UpdateStatus,
    UserRecord,
)
from toolkit.emulator.state._resource_search import (
    PAGED_RESULTS,
    FoundResource,
    ResourceSearches,
    SearchAnswer,
)
from toolkit.emulator.state._stack_settings import StackSettings
from toolkit.emulator.state._stacks import Stacks
from toolkit.emulator.state._teams import Teams
from toolkit.emulator.state._updates import LEASE_SECONDS, Updates

__all__ = [
    "FINISHED",
    "LEASE_SECONDS",
    "PAGED_RESULTS",
    "AgentAccountRecord",
    "Caller",
    "ClaimFailure",
    "ClaimRecord",
    "CloneOptions",
    "DefinitionRecord",
    "EnvironmentRecord",
    "EnvironmentTagRecord",
    "FoundResource",
    "InsightsAccountRecord",
    "InvalidDefinitionFault",
    "Lease",
    "OrgMemberRecord",
    "OrgTokenRecord",
    "PackageRecord",
    "Page",
    "RevisionRecord",
    "RevisionTagRecord",
    "SearchAnswer",
    "ServiceFault",
    "ServiceState",
    "SignupChallengeRecord",
    "StackRecord",
    "StackView",
    "TeamEnvironmentGrant",
    "TeamMemberRecord",
    "TeamRecord",
    "TeamStackGrant",
    "UpdateKind",
    "UpdateRecord",
    "UpdateStatus",
    "UserRecord",
]


class ServiceState(
    Accounts,
    Agents,
    Stacks,
    ResourceSearches,
    StackSettings,
    Updates,
    Teams,
    EnvironmentClones,
    Catalog,
    Inspection,
):
    """All of the emulated service's state, in one SQLite database, safe across threads."""
