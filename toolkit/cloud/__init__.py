"""Pulumi Cloud REST client: auth, bounded concurrency, safe retries, paging, typed results.

`CloudClient` is one identity's client: the request path (`transport`) with the typed calls
of each resource family (`stacks`, `stack_settings`, `environments`, `orgs`, `agents`, `search`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.cloud.agents import AgentCalls
from toolkit.cloud.environments import EnvironmentCalls
from toolkit.cloud.orgs import OrgCalls
from toolkit.cloud.paging import PageSize
from toolkit.cloud.search import SearchCalls
from toolkit.cloud.stack_settings import StackSettingsCalls
from toolkit.cloud.stacks import StackCalls
from toolkit.cloud.transport import ACCEPT, DEFAULT_MAX_CONCURRENCY

if TYPE_CHECKING:
    from toolkit.credentials import BackendIdentity

__all__ = ["ACCEPT", "DEFAULT_MAX_CONCURRENCY", "CloudClient", "PageSize"]


class CloudClient(
    StackCalls, StackSettingsCalls, EnvironmentCalls, OrgCalls, AgentCalls, SearchCalls
):
    """Async client of the Pulumi Cloud REST API, for one identity (one token).

    Use as `async with CloudClient(url, token) as client: ...`. List methods page through every
    page. Errors are `toolkit.errors.ServiceError` subclasses (by status) or `TransportError`.
    With an empty token no `Authorization` header is sent, as agent sign-up needs. What a
    service controls is bounded (`Transport`'s class attributes, which a test or a caller may
    lower on a client or on this class).
    """

    @classmethod
    def for_identity(
        cls, identity: BackendIdentity, *, max_concurrency: int | None = None
    ) -> CloudClient:
        """The client acting as `identity` on its Pulumi Cloud; `max_concurrency` None: the
        default."""
        return cls(
            identity.url,
            identity.token or "",
            max_concurrency=max_concurrency or DEFAULT_MAX_CONCURRENCY,
        )
