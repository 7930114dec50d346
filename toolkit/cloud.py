"""Pulumi Cloud REST client: auth, bounded concurrency, safe retries, paging, typed results.

Every call goes through one request path that holds a slot of a shared semaphore while it talks
to the service, retries what is safe to retry, and turns failures into the toolkit's typed
errors. A request that may have changed state on the service (a POST whose answer was lost or
came back 5xx) is never repeated blindly: doing so could rename or transfer a stack twice.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import hashlib
import json
import logging
import math
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_random_exponential
from tenacity.retry import retry_base
from tenacity.wait import wait_base

from toolkit.errors import (
    AnswerTooLargeError,
    ConflictError,
    DeadlineExceededError,
    EndlessListingError,
    InvalidInputError,
    NotFoundError,
    ServiceError,
    TransportError,
    service_error,
)
from toolkit.models import (
    AgentClaimRequest,
    AgentClaimResponse,
    AgentClaimsStatus,
    AgentSignupChallenge,
    AgentSignupRequest,
    AgentSignupResponse,
    AppBatchDecryptRequest,
    AppBatchDecryptResponse,
    AppBatchEncryptRequest,
    AppBatchEncryptResponse,
    AppCreateStackRequest,
    AppImportStackResponse,
    AppListStacksResponse,
    AppStack,
    AppStackRenameRequest,
    AppStackSummary,
    AppUntypedDeployment,
    AppUpdateResults,
    CreateEnvironmentRequest,
    CreateEnvironmentTagRequest,
    EnvironmentDefinition,
    EnvironmentDiagnosticsResponse,
    ErrorResponse,
    InsightsAccount,
    ListEnvironmentsResponse,
    ListEnvironmentTagsResponse,
    ListInsightsAccountsResponse,
    ListPackagesResponse,
    OrgEnvironment,
    PackageMetadata,
    RenameEntity,
    Team,
    TransferStackRequest,
    UpdateEnvironmentTagRequest,
    UpdateEnvironmentTagRequestCurrentTag,
    UpdateEnvironmentTagRequestNewTag,
    User,
)
from toolkit.redaction import redact

if TYPE_CHECKING:
    from toolkit.credentials import BackendIdentity

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER = 120.0
"""Seconds: a longer Retry-After is cut to this, so one answer cannot stall a run for hours."""

ModelT = TypeVar("ModelT", bound=BaseModel)

ACCEPT = "application/vnd.pulumi+8"

DEFAULT_MAX_CONCURRENCY = 16
"""Calls one client has in flight at once unless told otherwise."""

SECRETS_BATCH_SIZE = 1000
"""Secrets sealed or opened per call at most, as the CLI batches them."""
FINISHED_UPDATE_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
IMPORT_POLL_INTERVAL = 0.1
"""Seconds before asking again whether an import has ended; doubled each time, up to
`IMPORT_POLL_MAX_INTERVAL`."""
IMPORT_POLL_MAX_INTERVAL = 2.0
IMPORT_TIMEOUT = 600.0
"""Seconds an import may run before the client stops waiting for it (and says so)."""

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures that happen before the request reaches the service, so any method may be retried."""
_UNSENDABLE_ERRORS = (httpx.LocalProtocolError,)
"""A request this client cannot put on the wire (a header value no HTTP allows): never sent,
and never sendable by trying again."""
_NOT_AN_API_HINT = "Is --api-url (or PULUMI_BACKEND_URL) pointing at a Pulumi Cloud API?"
"""What to check when an answer is not what a Pulumi Cloud API gives."""

MIB = 1024 * 1024


@dataclass(frozen=True)
class PageSize:
    """The page-size parameter of one listing and the largest page to ask it for.

    A page is one request after another, so the fewer pages, the shorter the listing.
    """

    listing: str
    parameter: str
    largest: int


STACK_PAGES = PageSize("stacks", "maxResults", 1000)
"""`GET /api/user/stacks`: Pulumi's OpenAPI document names `maxResults` but gives no bound, so
the same 1000 as Insights' documented maximum, with the fallback if a service refuses it."""
ENVIRONMENT_PAGES = PageSize("ESC environments", "maxResults", 1000)
"""`GET /api/esc/environments/{org}`: `maxResults`, no documented bound (as for stacks)."""
INSIGHTS_ACCOUNT_PAGES = PageSize("Insights accounts", "count", 1000)
"""`GET /api/preview/insights/{org}/accounts`: `count`, documented as 1 to 1000."""
REGISTRY_PACKAGE_PAGES = PageSize("registry packages", "limit", 499)
"""`GET /api/preview/registry/packages`: `limit` (default 100); 499 is what the pulumi CLI
asks of the registry's listings."""


def _user_agent() -> str:
    try:
        return f"pulumi-claim/{version('pulumi-claim')}"
    except PackageNotFoundError:
        return "pulumi-claim"


def _segment(value: str) -> str:
    """One URL path segment, escaped so a name can never change the path's shape."""
    return quote(value, safe="")


class CloudClient:
    """Async client of the Pulumi Cloud REST API, for one identity (one token).

    Use as `async with CloudClient(url, token) as client: ...`. List methods page through every
    page. Errors are `toolkit.errors.ServiceError` subclasses (by status) or `TransportError`.
    With an empty token no `Authorization` header is sent, as agent sign-up needs.

    What a service controls is bounded, so that a broken or hostile one gives an error rather
    than a run that never ends or fills the memory: the class attributes below, well above
    what a real service needs, which a test (or a caller) may lower on a client or the class.
    """

    max_pages_per_listing: int = 10_000
    """Pages one listing may take: 100,000 stacks at the service's default 100 a page are
    1,000 pages (this client asks for 1,000 a page)."""
    request_deadline: float = 900.0
    """Seconds one attempt of a call may take, from sending to the last byte of its answer:
    the per-read timeout alone lets an answer dripped a byte at a time last for days. A
    stack state of 1 GB comes in well within it at 10 Mbit/s."""
    max_answer_bytes: int = 128 * MIB
    """Largest answer read (decoded), but for a stack's state: a page of 1,000 stacks is
    about 250 KB."""
    max_state_bytes: int = 2048 * MIB
    """Largest stack state (`export`) read: states of hundreds of MB exist."""

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

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        timeout: float = 30.0,
        max_attempts: int = 5,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._max_attempts = max_attempts
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._headers = {
            "Accept": ACCEPT,
            "Content-Type": "application/json",
            "User-Agent": _user_agent(),
        }
        if token:
            self._headers["Authorization"] = f"token {token}"
        self._timeout = timeout
        self._transport = transport
        self._ssl_context: ssl.SSLContext | None = None
        """Made on the first https connection and shared by them all: loading the system's
        certificates takes tens of milliseconds, too long to do per connection."""
        self._opened: list[httpx.AsyncClient] = []
        self._idle: list[httpx.AsyncClient] = []
        self._refused_page_sizes: set[str] = set()
        """Listings whose page size the service refused: asked at its default from then on."""

    def __repr__(self) -> str:
        return f"CloudClient(api_url={self.api_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for http in self._opened:
            await http.aclose()
        self._opened.clear()
        self._idle.clear()

    # --- Users -----------------------------------------------------------------------------

    async def get_current_user(self) -> User:
        return await self._get(User, "/api/user")

    # --- Stacks ----------------------------------------------------------------------------

    async def list_stacks(self, org: str, project: str | None = None) -> list[AppStackSummary]:
        """Every stack of `org` this identity can see (optionally of one project)."""
        return [stack async for stack in self.iter_stacks(org, project)]

    async def iter_stacks(
        self, org: str | None, project: str | None = None
    ) -> AsyncIterator[AppStackSummary]:
        """`list_stacks`, one page at a time: a caller that keeps only what it needs never
        holds every summary at once (100,000 of them take over 100 MB). `org` None: the
        stacks of every org the caller belongs to."""
        params = {} if org is None else {"organization": org}
        if project is not None:
            params["project"] = project
        pages = self._pages(
            AppListStacksResponse,
            "/api/user/stacks",
            lambda page: page.continuation_token,
            params=params,
            page_size=STACK_PAGES,
        )
        async for page in pages:
            for stack in page.stacks:
                yield stack

    async def get_stack(self, org: str, project: str, stack: str) -> AppStack:
        return await self._get(AppStack, _stack_path(org, project, stack))

    async def stack_exists(self, org: str, project: str, stack: str) -> bool:
        try:
            await self.get_stack(org, project, stack)
        except NotFoundError:
            return False
        return True

    async def create_stack(
        self, org: str, project: str, stack: str, *, tags: Mapping[str, str] | None = None
    ) -> None:
        """Create an empty stack, as `pulumi stack init` does."""
        body = AppCreateStackRequest(stack_name=stack, tags=dict(tags) if tags else None)
        await self._request("POST", f"/api/stacks/{_segment(org)}/{_segment(project)}", body=body)

    async def rename_stack(
        self, org: str, project: str, stack: str, *, new_project: str, new_name: str
    ) -> None:
        """Rename a stack inside its org; the project may change too."""
        body = AppStackRenameRequest(new_project=new_project, new_name=new_name)
        await self._request("POST", f"{_stack_path(org, project, stack)}/rename", body=body)

    async def transfer_stack(self, org: str, project: str, stack: str, *, to_org: str) -> None:
        """Move a stack, name unchanged, to another org (the identity must admin both)."""
        body = TransferStackRequest(
            project_name=project, stack_name=stack, from_org=org, to_org=to_org
        )
        await self._request("POST", f"{_stack_path(org, project, stack)}/transfer", body=body)

    async def delete_stack(
        self, org: str, project: str, stack: str, *, force: bool = False
    ) -> None:
        """Delete a stack; `force` deletes it even while it still has resources."""
        params = {"force": "true"} if force else None
        await self._request("DELETE", _stack_path(org, project, stack), params=params)

    # --- Stack state: what `pulumi stack export` and `import` do over REST ----------------

    async def export_stack(self, org: str, project: str, stack: str) -> AppUntypedDeployment:
        """The stack's latest deployment, its secrets sealed with the stack's own key."""
        path = f"{_stack_path(org, project, stack)}/export"
        response = await self._request("GET", path, largest_answer=self.max_state_bytes)
        return _parse(AppUntypedDeployment, response, f"GET {path}")

    async def decrypt_values(
        self, org: str, project: str, stack: str, ciphertexts: Sequence[str]
    ) -> dict[str, str]:
        """Each ciphertext (base64, as a deployment holds it) opened with the stack's key, as
        text; keyed by the ciphertext. Sent in batches, and retried, as the CLI sends them."""
        path = f"{_stack_path(org, project, stack)}/batch-decrypt"

        async def batch(texts: list[str]) -> dict[str, str]:
            request = AppBatchDecryptRequest(ciphertexts=texts)
            opened = (await self._secrets_batch(path, request, AppBatchDecryptResponse)).plaintexts
            missing = set(texts) - opened.keys()
            if missing:
                raise TransportError(f"POST {path} left {len(missing)} value(s) unopened")
            return {sent: _from_base64(opened[sent], path) for sent in texts}

        opened: dict[str, str] = {}
        for part in await asyncio.gather(*map(batch, _batches(sorted(set(ciphertexts))))):
            opened.update(part)
        return opened

    async def encrypt_values(
        self, org: str, project: str, stack: str, plaintexts: Sequence[str]
    ) -> list[str]:
        """Each plaintext sealed with the stack's key, in order, as base64 (as a deployment
        holds it); each gets a ciphertext of its own, equal plaintexts too."""
        path = f"{_stack_path(org, project, stack)}/batch-encrypt"

        async def batch(texts: list[str]) -> list[str]:
            encoded = [base64.b64encode(text.encode()).decode() for text in texts]
            request = AppBatchEncryptRequest(plaintexts=encoded)
            sealed = (await self._secrets_batch(path, request, AppBatchEncryptResponse)).ciphertexts
            if len(sealed) != len(texts):
                raise TransportError(f"POST {path} sealed {len(sealed)} of {len(texts)} value(s)")
            return sealed

        parts = await asyncio.gather(*map(batch, _batches(list(plaintexts))))
        return [ciphertext for part in parts for ciphertext in part]

    async def _secrets_batch(self, path: str, request: BaseModel, answer: type[ModelT]) -> ModelT:
        """One batch of secrets sealed or opened: safe to repeat, and gzip-encoded, as the CLI
        sends it."""
        response = await self._request(
            "POST", path, body=request, always_retry=True, compressed=True
        )
        return _parse(answer, response, f"POST {path}")

    async def import_stack(
        self, org: str, project: str, stack: str, deployment: AppUntypedDeployment
    ) -> str:
        """Make `deployment` (secrets sealed with this stack's key) the stack's state, as
        `pulumi stack import` does, and wait for the import's update to end; return its
        final status (`succeeded`, `failed` or `cancelled`)."""
        stack_path = _stack_path(org, project, stack)
        response = await self._request(
            "POST", f"{stack_path}/import", body=deployment, compressed=True
        )
        update = _parse(AppImportStackResponse, response, f"POST {stack_path}/import")
        status_path = f"{stack_path}/update/{_segment(update.update_id)}"
        delay = IMPORT_POLL_INTERVAL
        deadline = time.monotonic() + IMPORT_TIMEOUT
        while True:
            results = await self._get(AppUpdateResults, status_path)
            if results.status in FINISHED_UPDATE_STATUSES:
                return results.status
            if time.monotonic() > deadline:
                raise TransportError(
                    f"the import into {org}/{project}/{stack} had not ended after "
                    f"{IMPORT_TIMEOUT:.0f} s (its update is {results.status})",
                    hint="See the stack's update in Pulumi Cloud, then run the same command again.",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, IMPORT_POLL_MAX_INTERVAL)

    async def replace_stack_tags(
        self, org: str, project: str, stack: str, tags: Mapping[str, str]
    ) -> None:
        """Make `tags` all of the stack's tags, as `pulumi stack tag set` does."""
        await self._request(
            "PATCH",
            f"{_stack_path(org, project, stack)}/tags",
            text=json.dumps(dict(tags)),
            always_retry=True,
        )

    # --- ESC environments ------------------------------------------------------------------

    async def list_environments(self, org: str) -> list[OrgEnvironment]:
        path = f"/api/esc/environments/{_segment(org)}"
        pages = self._pages(
            ListEnvironmentsResponse,
            path,
            lambda page: page.next_token,
            page_size=ENVIRONMENT_PAGES,
        )
        return [env async for page in pages for env in page.environments]

    async def get_environment(self, org: str, project: str, name: str) -> EnvironmentDefinition:
        """The environment's definition (static secrets as its ciphertext), with the ETag an
        update can name and the revision it is."""
        response = await self._request("GET", _environment_path(org, project, name))
        return _definition(response, f"GET {_environment_path(org, project, name)}")

    async def get_environment_decrypted(self, org: str, project: str, name: str) -> str:
        """The environment's definition with its static secrets in plaintext: keep it in
        memory only."""
        path = f"{_environment_path(org, project, name)}/decrypt"
        response = await self._request("GET", path)
        return response.text

    async def create_environment(self, org: str, project: str, name: str) -> None:
        """Create an empty environment; `ConflictError` if the org has one of that name."""
        body = CreateEnvironmentRequest(project=project, name=name)
        await self._request("POST", f"/api/esc/environments/{_segment(org)}", body=body)

    async def update_environment(
        self, org: str, project: str, name: str, yaml_text: str, *, etag: str | None = None
    ) -> int:
        """Write a new definition and return the revision it became; a definition the
        service refuses is an `InvalidInputError` listing its diagnostics.

        With the `etag` of a read, the write is conditional: `ConflictError` if the
        environment changed since, so a write whose answer was lost is sent again (a repeat
        of one that was applied is refused with 409, never written twice). Without it, never
        repeated blindly: a lost answer may have made the revision."""
        path = _environment_path(org, project, name)
        headers = {"Content-Type": "application/x-yaml"}
        if etag is not None:
            headers["If-Match"] = etag
        try:
            response = await self._request(
                "PATCH", path, text=yaml_text, headers=headers, always_retry=etag is not None
            )
        except ServiceError as exc:
            if exc.status == 400 and exc.diagnostics:
                raise InvalidInputError(
                    f"the service refused the definition of environment {org}/{project}/{name}:"
                    + "".join(f"\n  - {summary}" for summary in exc.diagnostics),
                    hint="Fix the definition and write it again; nothing was changed.",
                ) from None
            raise
        return _revision_of(response, f"PATCH {path}")

    async def delete_environment(self, org: str, project: str, name: str) -> None:
        await self._request("DELETE", _environment_path(org, project, name))

    async def environment_exists(self, org: str, project: str, name: str) -> bool:
        try:
            await self._request("HEAD", _environment_path(org, project, name))
        except NotFoundError:
            return False
        return True

    async def list_environment_tags(self, org: str, project: str, name: str) -> dict[str, str]:
        """The environment's tags, name -> value."""
        path = f"{_environment_path(org, project, name)}/tags"
        tags: dict[str, str] = {}
        tokens = _PageTokens(f"GET {path}", self.max_pages_per_listing)
        after = ""
        while True:
            params = {"after": after} if after else None
            page = await self._get(ListEnvironmentTagsResponse, path, params=params)
            tags.update((tag.name, tag.value) for tag in page.tags.values())
            # The service's last page says "0"; an empty token or an empty page ends it too.
            if page.next_token in ("", "0") or not page.tags:
                return tags
            tokens.follow(page.next_token)
            after = page.next_token

    async def set_environment_tag(
        self, org: str, project: str, name: str, key: str, value: str
    ) -> None:
        """Give the environment tag `key` the value `value`, creating it if it is missing.

        Safe to repeat: both writes are conditional (a create is refused with 409 when the
        tag exists, a change when its value is no longer the one read), so a write whose
        answer was lost is sent again, and a refusal counts as done when the tag holds
        `value` after all (the write that was lost had been applied)."""
        path = f"{_environment_path(org, project, name)}/tags"
        current = await self.list_environment_tags(org, project, name)
        if current.get(key) == value:
            return
        try:
            if key not in current:
                create = CreateEnvironmentTagRequest(name=key, value=value)
                await self._request("POST", path, body=create, always_retry=True)
            else:
                update = UpdateEnvironmentTagRequest(
                    current_tag=UpdateEnvironmentTagRequestCurrentTag(value=current[key]),
                    new_tag=UpdateEnvironmentTagRequestNewTag(name=key, value=value),
                )
                await self._request(
                    "PATCH", f"{path}/{_segment(key)}", body=update, always_retry=True
                )
        except ConflictError:
            if (await self.list_environment_tags(org, project, name)).get(key) != value:
                raise

    # --- Insights, registry ------------------------------------------------------------------

    async def list_insights_accounts(self, org: str) -> list[InsightsAccount]:
        path = f"/api/preview/insights/{_segment(org)}/accounts"
        pages = self._pages(
            ListInsightsAccountsResponse,
            path,
            lambda page: page.next_token,
            page_size=INSIGHTS_ACCOUNT_PAGES,
        )
        return [account async for page in pages for account in page.accounts]

    async def list_registry_packages(self, org: str) -> list[PackageMetadata]:
        """Packages `org` publishes; the listing also shows packages it merely can see."""
        pages = self._pages(
            ListPackagesResponse,
            "/api/preview/registry/packages",
            lambda page: page.continuation_token,
            params={"orgLogin": org},
            page_size=REGISTRY_PACKAGE_PAGES,
        )
        return [pkg async for page in pages for pkg in page.packages if pkg.publisher == org]

    # --- Teams -------------------------------------------------------------------------------

    async def get_team(self, org: str, team: str) -> Team:
        """A team of `org` with its members and grants; NotFoundError if it has none such."""
        return await self._get(Team, f"/api/orgs/{_segment(org)}/teams/{_segment(team)}")

    # --- Agent claims ------------------------------------------------------------------------

    async def validate_claim_token(self, claim_token: str) -> AgentClaimResponse:
        """What the claim token would claim: the agent, its entities, when the claim expires."""
        response = await self._request(
            "GET",
            f"/api/agents/signup/validate/{_segment(claim_token)}",
            shown_path="/api/agents/signup/validate/***",
            secrets=(claim_token,),
        )
        return _parse(AgentClaimResponse, response, "GET /api/agents/signup/validate/***")

    async def claim_agent(
        self,
        destination_org: str,
        claim_token: str,
        conflicts_resolution: Sequence[RenameEntity],
        *,
        dry_run: bool,
    ) -> AgentClaimResponse:
        """Preview (`dry_run`) or commit the claim of an agent account into `destination_org`,
        renaming as `conflicts_resolution` says; the service answers a blocked commit with the
        same document, its conflicts and failures filled in."""
        path = f"/api/agents/{_segment(destination_org)}/claim"
        body = AgentClaimRequest(
            claim_token=claim_token, conflicts_resolution=list(conflicts_resolution)
        )
        response = await self._request(
            "POST",
            path,
            params={"dryRun": "true" if dry_run else "false"},
            body=body,
            secrets=(claim_token,),
        )
        return _parse(AgentClaimResponse, response, f"POST {path}")

    async def agent_claims_status(self, destination_org: str) -> AgentClaimsStatus:
        """The recent claims into `destination_org`, by claim id (a commit's transferToken)."""
        return await self._get(
            AgentClaimsStatus, f"/api/agents/{_segment(destination_org)}/claim/status"
        )

    async def agent_signup_challenge(self) -> AgentSignupChallenge:
        """A proof-of-work challenge for signing up an agent account (no token needed)."""
        return await self._get(AgentSignupChallenge, "/api/agents/signup")

    async def sign_up_agent(self, challenge_id: str, challenge_result: str) -> AgentSignupResponse:
        """Sign up an agent account with a solved challenge (see `toolkit.agent_signup`); the answer
        holds its access token and claim token. Never repeated blindly: a lost answer may
        have made an account."""
        body = AgentSignupRequest(challenge_id=challenge_id, challenge_result=challenge_result)
        response = await self._request("POST", "/api/agents/signup", body=body)
        return _parse(AgentSignupResponse, response, "POST /api/agents/signup")

    # --- Request machinery -------------------------------------------------------------------

    async def _get(
        self, model: type[ModelT], path: str, *, params: dict[str, str] | None = None
    ) -> ModelT:
        response = await self._request("GET", path, params=params)
        return _parse(model, response, f"GET {path}")

    async def _pages(
        self,
        model: type[ModelT],
        path: str,
        next_token: Callable[[ModelT], str | None],
        *,
        params: dict[str, str] | None = None,
        page_size: PageSize,
    ) -> AsyncIterator[ModelT]:
        """Each page of a list call, following its token (sent back as `continuationToken`),
        asked at `page_size` unless the service refused that size before."""
        tokens = _PageTokens(f"GET {path}", self.max_pages_per_listing)
        token: str | None = None
        while True:
            query = dict(params or {})
            if token:
                query["continuationToken"] = token
            page = await self._get_page(model, path, query, page_size)
            yield page
            token = next_token(page)
            if not token:
                return
            tokens.follow(token)

    async def _get_page(
        self, model: type[ModelT], path: str, query: dict[str, str], page_size: PageSize
    ) -> ModelT:
        """One page at the largest size; if the service refuses that size (a 400 naming its
        parameter), the same page once more at the service's default, which this client then
        keeps to for that listing."""
        if page_size.listing in self._refused_page_sizes:
            return await self._get(model, path, params=query)
        try:
            return await self._get(
                model, path, params={**query, page_size.parameter: str(page_size.largest)}
            )
        except ServiceError as exc:
            if exc.status != 400 or not re.search(
                rf"\b{page_size.parameter}\b", exc.service_message
            ):
                raise
            logger.warning(
                "the service refused pages of %d %s (%s); listing at its default page size",
                page_size.largest,
                page_size.listing,
                exc.service_message,
            )
            self._refused_page_sizes.add(page_size.listing)
        return await self._get(model, path, params=query)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: BaseModel | None = None,
        text: str | None = None,
        headers: Mapping[str, str] | None = None,
        shown_path: str | None = None,
        secrets: Sequence[str] = (),
        always_retry: bool = False,
        compressed: bool = False,
        largest_answer: int | None = None,
    ) -> httpx.Response:
        """Send one call with retries; return the 2xx response or raise the typed error.

        The body is `body` as JSON, or `text` as it is (an ESC definition's YAML), with
        `headers` added. `shown_path` replaces `path` in errors and logs when the path holds
        a secret; `secrets` (a claim token) are masked in error text, as the client's own
        token is. `always_retry`: the call is safe to repeat whatever its method (sealing or
        opening secrets, replacing a stack's tags, a conditional write the service refuses
        once applied). `compressed`: the body goes gzip-encoded, as the CLI sends states and
        batches of secrets. `largest_answer`: bytes of answer read at most,
        `max_answer_bytes` unless given.
        """
        shown = shown_path or path
        call = f"{method} {shown}"
        content: str | bytes | None = (
            body.model_dump_json(by_alias=True, exclude_none=True) if body is not None else text
        )
        if compressed and content is not None:
            content = gzip.compress(content.encode() if isinstance(content, str) else content)
            headers = {**(headers or {}), "Content-Encoding": "gzip"}

        async def attempt() -> httpx.Response:
            async with self._connection() as http:
                request = http.build_request(
                    method, path, params=params, content=content, headers=headers
                )
                return await self._exchange(http, request, largest_answer, call)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=_ServiceBackoff(self._retry_base_delay, self._retry_max_delay),
            retry=_RetryPolicy(method, always=always_retry),
            before_sleep=_log_retry(method, shown),
            retry_error_callback=_last_outcome,
        )
        try:
            response: httpx.Response = await retrying(attempt)
        except httpx.TransportError as exc:
            never_sent = isinstance(exc, _NOT_SENT_ERRORS + _UNSENDABLE_ERRORS)
            unsure = "" if never_sent else " (it may have been applied)"
            raise TransportError(
                f"{method} {shown} got no answer from {self.api_url}{unsure}: "
                f"{type(exc).__name__}: {self._redact(str(exc), secrets)}",
                hint="Check the network and --api-url / PULUMI_BACKEND_URL, then run again.",
            ) from None
        logger.info("%s %s -> %d", method, shown, response.status_code)
        if response.is_success:
            return response
        raise self._error_for(response, method, shown, secrets)

    async def _exchange(
        self,
        http: httpx.AsyncClient,
        request: httpx.Request,
        largest_answer: int | None,
        call: str,
    ) -> httpx.Response:
        """One attempt: send `request` and read its whole answer within `request_deadline`
        seconds and `largest_answer` bytes (`max_answer_bytes` unless given)."""
        deadline = asyncio.timeout(self.request_deadline)
        try:
            async with deadline:
                streamed = await http.send(request, stream=True)
                try:
                    return await _read_answer(
                        streamed, largest_answer or self.max_answer_bytes, call
                    )
                finally:
                    await streamed.aclose()
        except TimeoutError:
            if not deadline.expired():
                raise
        raise DeadlineExceededError(
            f"{call} was not answered in full within {self.request_deadline:g} s "
            f"by {self.api_url} (it may have been applied)",
            hint=_NOT_AN_API_HINT + " If it is, check the network, then run again.",
        )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[httpx.AsyncClient]:
        """One of `max_concurrency` slots: an HTTP client with a single connection of its own.

        A slot per connection, rather than one httpx pool of them all, because a shared pool
        hands a connection that just became idle to several requests arriving together, and all
        but one start over: at 16 requests in flight, that costs a third of the CPU of a call.
        """
        async with self._slots:
            http = self._idle.pop() if self._idle else self._open_connection()
            try:
                yield http
            finally:
                self._idle.append(http)

    def _open_connection(self) -> httpx.AsyncClient:
        http = httpx.AsyncClient(
            base_url=self.api_url,
            headers=self._headers,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            transport=self._transport,
            verify=self._tls() if self.api_url.startswith("https://") else False,
        )
        self._opened.append(http)
        return http

    def _tls(self) -> ssl.SSLContext:
        # (A plain http:// URL, allowed only for loopback or with --insecure, has no TLS.)
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def _error_for(
        self, response: httpx.Response, method: str, shown_path: str, secrets: Sequence[str]
    ) -> ServiceError:
        """The typed error for a non-2xx answer, with the service's own message (and, for a
        refused ESC definition, the summaries of its diagnostics, or for a redirect where to)."""
        try:
            message = ErrorResponse.model_validate_json(response.content).message
        except ValidationError:
            message = response.text.strip()[:500] or response.reason_phrase
        if response.is_redirect:
            message = f"a redirect to {response.headers['Location']}, not followed"
        try:
            found = EnvironmentDiagnosticsResponse.model_validate_json(response.content)
        except ValidationError:
            found = EnvironmentDiagnosticsResponse()
        error = service_error(
            response.status_code, self._redact(message, secrets), method=method, path=shown_path
        )
        error.diagnostics = [self._redact(d.summary, secrets) for d in found.diagnostics or []]
        return error

    def _redact(self, text: str, secrets: Sequence[str]) -> str:
        """`text` from the service or the network, masked by the toolkit's one rule, with
        this client's token and the call's own `secrets`."""
        return redact(text, (self._token, *secrets))


async def _read_answer(streamed: httpx.Response, largest: int, call: str) -> httpx.Response:
    """The answer with its whole body, read (decoded) chunk by chunk and given up past
    `largest` bytes, so that a huge or endless answer costs no more memory than that."""
    body = bytearray()
    async for chunk in streamed.aiter_bytes():
        body += chunk
        if len(body) > largest:
            raise AnswerTooLargeError(
                f"{call} answered with more than {_size(largest)}, the largest answer this "
                f"client reads; it stopped reading there (status {streamed.status_code})",
                hint=_NOT_AN_API_HINT,
            )
    decoded_away = {"content-encoding", "content-length", "transfer-encoding"}
    return httpx.Response(
        streamed.status_code,
        headers=[(k, v) for k, v in streamed.headers.multi_items() if k not in decoded_away],
        content=bytes(body),
        request=streamed.request,
        extensions=streamed.extensions,
    )


def _size(count: int) -> str:
    return f"{count / MIB:g} MiB" if count >= MIB else f"{count} bytes"


class _PageTokens:
    """The page tokens one listing has followed, which a service cannot make endless: a token
    handed out before, or a page past `max_pages`, ends the listing with an error. Kept as
    digests, so that their memory does not grow with the tokens' length."""

    def __init__(self, call: str, max_pages: int) -> None:
        self._call = call
        self._max_pages = max_pages
        self._seen: set[bytes] = set()

    def follow(self, token: str) -> None:
        """Allow the page after the last one read, at `token`, or raise `EndlessListingError`."""
        digest = hashlib.sha256(token.encode()).digest()
        if digest in self._seen:
            raise EndlessListingError(
                f"{self._call} handed out a page token it had handed out before; "
                "the listing would never end",
                hint=_NOT_AN_API_HINT,
            )
        if len(self._seen) + 1 >= self._max_pages:
            raise EndlessListingError(
                f"{self._call} still had more after {self._max_pages:,} pages; "
                "the listing was stopped there",
                hint=_NOT_AN_API_HINT,
            )
        self._seen.add(digest)


def _stack_path(org: str, project: str, stack: str) -> str:
    return f"/api/stacks/{_segment(org)}/{_segment(project)}/{_segment(stack)}"


def _environment_path(org: str, project: str, name: str) -> str:
    return f"/api/esc/environments/{_segment(org)}/{_segment(project)}/{_segment(name)}"


def _batches(values: list[str]) -> list[list[str]]:
    return [
        values[start : start + SECRETS_BATCH_SIZE]
        for start in range(0, len(values), SECRETS_BATCH_SIZE)
    ]


def _from_base64(text: str, path: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise TransportError(f"POST {path} answered with a value that is not base64 text") from None


def _revision_of(response: httpx.Response, call: str) -> int:
    """The revision an ESC answer names in its `Pulumi-ESC-Revision` header."""
    try:
        return int(response.headers["Pulumi-ESC-Revision"])
    except (KeyError, ValueError):
        raise TransportError(
            f"{call} answered without a revision number (Pulumi-ESC-Revision)",
            hint=_NOT_AN_API_HINT,
        ) from None


def _definition(response: httpx.Response, call: str) -> EnvironmentDefinition:
    return EnvironmentDefinition(
        yaml=response.text,
        etag=response.headers.get("ETag"),
        revision=_revision_of(response, call),
    )


def _parse(model: type[ModelT], response: httpx.Response, call: str) -> ModelT:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise TransportError(
            f"{call} answered with a body that is not a {model.__name__}: "
            f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}",
            hint=_NOT_AN_API_HINT,
        ) from None


# --- Retry policy ------------------------------------------------------------------------


class _RetryPolicy(retry_base):
    """Which failed attempts are worth another try, given the request's method.

    429 means the service refused the call without doing it: always retry. A 5xx or a
    connection lost mid-call leaves unknown whether the change happened, so only methods that
    are safe to repeat are retried. A connection that never opened is safe for any method.
    """

    def __init__(self, method: str, *, always: bool = False) -> None:
        self._idempotent = always or method.upper() in _IDEMPOTENT_METHODS

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is None:
            return False
        if outcome.failed:
            exc = outcome.exception()
            if isinstance(exc, _UNSENDABLE_ERRORS):
                return False
            if isinstance(exc, _NOT_SENT_ERRORS):
                return True
            return self._idempotent and isinstance(exc, httpx.TransportError)
        response: httpx.Response = outcome.result()
        if response.status_code == 429:
            return True
        return self._idempotent and response.status_code in _TRANSIENT_STATUSES


class _ServiceBackoff(wait_base):
    """Exponential backoff with full jitter, but never shorter than the service's Retry-After."""

    def __init__(self, base_delay: float, max_delay: float) -> None:
        self._jittered = wait_random_exponential(multiplier=base_delay, max=max_delay)

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self._jittered(retry_state)
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = _retry_after_seconds(outcome.result())
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay


def _retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds to wait: either delta-seconds or an HTTP date."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _log_retry(method: str, shown_path: str) -> Callable[[RetryCallState], None]:
    def log(retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        if outcome is None:
            return
        if outcome.failed:
            reason = type(outcome.exception()).__name__
        else:
            reason = str(outcome.result().status_code)
        sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
        logger.info(
            "%s %s got %s; retrying in %.2fs (attempt %d)",
            method,
            shown_path,
            reason,
            sleep,
            retry_state.attempt_number + 1,
        )

    return log


def _last_outcome(retry_state: RetryCallState) -> httpx.Response:
    """When the attempts run out, hand back the last answer (or raise its exception)."""
    assert retry_state.outcome is not None
    response: httpx.Response = retry_state.outcome.result()
    return response
