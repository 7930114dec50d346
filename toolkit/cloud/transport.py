"""The way to the Pulumi Cloud REST API for one identity: auth, bounded concurrency, safe
retries, paging, bounds on what a service controls, and typed errors.

Every call goes through one request path that holds an adaptive slot (`concurrency`) while it talks
to the service, retries what is safe to retry, and turns failures into the toolkit's typed
errors. A request that may have changed state on the service (a POST whose answer was lost or
came back 5xx) is never repeated blindly: doing so could rename or transfer a stack twice.
The calls themselves, by resource family, are in the other modules of `toolkit.cloud`.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import math
import random
import re
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cache
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Final, Self, TypeVar
from urllib.parse import quote, urlencode

import pydantic_core
from multidict import CIMultiDictProxy
from pydantic import BaseModel, ValidationError
from yarl import URL

from toolkit.cloud.concurrency import STARTING_LIMIT, AdaptiveLimit, AdaptiveSlots
from toolkit.cloud.http_library import aiohttp
from toolkit.cloud.paging import PageSize, PageTokens, abandon, page_token
from toolkit.errors import (
    NOT_AN_API_HINT,
    AnswerTooLargeError,
    DeadlineExceededError,
    ServiceError,
    TransportError,
    service_error,
)
from toolkit.models import EnvironmentDiagnosticsResponse, ErrorResponse
from toolkit.redaction import redact

logger = logging.getLogger("toolkit.cloud")
"""The client's log: one line per call, retries and refused page sizes."""

MAX_RETRY_AFTER = 120.0
"""Seconds: a longer Retry-After is cut to this, so one answer cannot stall a run for hours."""

ModelT = TypeVar("ModelT", bound=BaseModel)

ACCEPT = "application/vnd.pulumi+8"

DEFAULT_MAX_CONCURRENCY = STARTING_LIMIT
"""The most calls one client has in flight at once unless told otherwise (the ceiling of its
adaptive limit)."""

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
_NOT_SENT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
"""Failures that happen before the request reaches the service, so any method may be retried."""
_UNSENDABLE_CHARACTERS = re.compile(r"[\r\n\x00]")
"""What no HTTP header value may hold: a request with one is never sent."""
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
"""What to check when an answer is not what a Pulumi Cloud API gives."""

MIB = 1024 * 1024

DECODED_STRINGS_CACHED: Final = "keys"
"""Which strings of a decoded answer go through pydantic-core's cache of decoded strings:
only the keys, which repeat on every item of a page. Its values (ids, names, tokens) are
mostly seen once, and caching each of them cost more than it saved: decoding a page of 100
stacks took 0.15 ms of CPU with every string cached, 0.06 ms with the keys alone, and it is
done before the next page is asked (docs/performance.md, "The chain of pages at 20 ms")."""

GZIP_LEVEL = 3
"""How hard the bodies sent gzip-encoded (states, batches of secrets) are compressed: at 3 a
state of 20 resources takes a third of the CPU of Python's default 9 for 14 % more bytes, and
a batch of 1,000 secrets a ninth (docs/performance.md, "Where the CPU goes")."""


@cache
def _user_agent() -> str:
    """`pulumi-claim/<version>`, read from the installed package's metadata once a process:
    reading it searches the import path, which took longer than a listing's page of CPU, and a
    preview makes a client for each identity and check."""
    try:
        return f"pulumi-claim/{version('pulumi-claim')}"
    except PackageNotFoundError:
        return "pulumi-claim"


def segment(value: str) -> str:
    """One URL path segment, escaped so a name can never change the path's shape."""
    return quote(value, safe="")


@dataclass(frozen=True)
class Answer:
    """One whole answer of the service: its status, headers and body (decoded)."""

    status_code: int
    reason_phrase: str
    headers: CIMultiDictProxy[str]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return self.status_code in _REDIRECT_STATUSES and "Location" in self.headers

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class _UnsendableRequest(Exception):
    """A request this client cannot put on the wire (a header value no HTTP allows): never
    sent, and never sendable by trying again."""


class Transport:
    """One identity's connections to the service (one token), and the one request path.

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
    idle_connection_seconds: float = 4.0
    """How long a connection may wait unused and still be used again: less than servers
    keep one (5 s or more), so that a call is never sent on a connection the server is
    closing. One that is, fails with no answer; a change sent on it may not be retried."""

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
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
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
        self._slots = AdaptiveSlots(AdaptiveLimit(max_concurrency))
        self._headers = {
            "Accept": ACCEPT,
            "Content-Type": "application/json",
            "User-Agent": _user_agent(),
        }
        if token:
            self._headers["Authorization"] = f"token {token}"
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        self._trace_configs = list(trace_configs)
        """Hooks that see each request and answer on the wire (a test's recorder)."""
        self._session: aiohttp.ClientSession | None = None
        self._refused_page_sizes: set[str] = set()
        """Listings whose page size the service refused: asked at its default from then on."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_url={self.api_url!r})"

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
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _get(
        self, model: type[ModelT], path: str, *, params: dict[str, str] | None = None
    ) -> ModelT:
        response = await self._request("GET", path, params=params)
        return parse_answer(model, response, f"GET {path}")

    async def _pages(
        self,
        model: type[ModelT],
        path: str,
        token_key: str,
        *,
        params: dict[str, str] | None = None,
        page_size: PageSize,
    ) -> AsyncIterator[ModelT]:
        """Each page of a list call, following its token (the answer's `token_key`, sent back
        as `continuationToken`), asked at `page_size` unless the service refused that size
        before.

        The next page is asked as soon as its token is read, before this page is validated
        and handed on: along a chain of pages, each one that must wait for the one before, the
        client's own work then overlaps the service's."""
        call = f"GET {path}"
        tokens = PageTokens(call, self.max_pages_per_listing)
        asked = asyncio.ensure_future(self._get_page(path, dict(params or {}), page_size))
        try:
            while True:
                content = await asked
                token = page_token(content, token_key)
                if token:
                    tokens.follow(token)
                    query = {**(params or {}), "continuationToken": token}
                    asked = asyncio.ensure_future(self._get_page(path, query, page_size))
                    await asyncio.sleep(0)  # lets the request go out before the validation
                yield validate_answer(model, content, call)
                if not token:
                    return
        finally:
            abandon(asked)

    async def _get_page(self, path: str, query: dict[str, str], page_size: PageSize) -> object:
        """One page, decoded, at the largest size; if the service refuses that size (a 400
        naming its parameter), the same page once more at the service's default, which this
        client then keeps to for that listing."""

        async def get(params: dict[str, str]) -> object:
            return decode_answer(await self._request("GET", path, params=params), f"GET {path}")

        if page_size.listing in self._refused_page_sizes:
            return await get(query)
        try:
            return await get({**query, page_size.parameter: str(page_size.largest)})
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
        return await get(query)

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
    ) -> Answer:
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
        content: bytes | None = (
            body.model_dump_json(by_alias=True, exclude_none=True).encode()
            if body is not None
            else None
            if text is None
            else text.encode()
        )
        if compressed and content is not None:
            content = gzip.compress(content, compresslevel=GZIP_LEVEL, mtime=0)
            headers = {**(headers or {}), "Content-Encoding": "gzip"}
        query = f"?{urlencode(params, quote_via=quote)}" if params else ""
        url = URL(f"{self.api_url}{path}{query}", encoded=True)

        async def attempt() -> Answer:
            async with self._slots.slot() as slot:
                sent = self._http().request(
                    method, url, data=content, headers=headers, allow_redirects=False
                )
                answer = await self._exchange(sent, largest_answer, call)
                slot.answered(answer.status_code, _retry_after_seconds(answer))
                return answer

        try:
            _refuse_unsendable({**self._headers, **(headers or {})})
            response = await self._attempts(
                attempt, _RetryPolicy(method, always=always_retry), call
            )
        except (aiohttp.ClientError, _UnsendableRequest) as exc:
            never_sent = isinstance(exc, (*_NOT_SENT_ERRORS, _UnsendableRequest))
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

    async def _attempts(
        self, attempt: Callable[[], Awaitable[Answer]], retry: _RetryPolicy, call: str
    ) -> Answer:
        """`attempt()` until an answer or failure not worth another try, or until the
        client's attempts run out: then the last answer, or the last failure raised.

        A plain loop, as every call of the client goes through it: a retry library's
        machinery cost more CPU a call than the rest of the request path."""
        attempts = 0
        while True:
            attempts += 1
            last = attempts >= self._max_attempts
            try:
                answer = await attempt()
            except aiohttp.ClientError as exc:
                if last or not retry.after_failure(exc):
                    raise
                reason, retry_after = type(exc).__name__, None
            else:
                if last or not retry.after_answer(answer):
                    return answer
                reason, retry_after = str(answer.status_code), _retry_after_seconds(answer)
            delay = self._backoff(attempts, retry_after)
            logger.info(
                "%s got %s; retrying in %.2fs (attempt %d)", call, reason, delay, attempts + 1
            )
            await asyncio.sleep(delay)

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before the next attempt, after `attempts` failed ones: exponential
        backoff with full jitter, but never shorter than the service's Retry-After (cut to
        `MAX_RETRY_AFTER`)."""
        ceiling = min(self._retry_max_delay, self._retry_base_delay * 2.0 ** (attempts - 1))
        delay = random.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay

    async def _exchange(
        self,
        sent: AbstractAsyncContextManager[aiohttp.ClientResponse],
        largest_answer: int | None,
        call: str,
    ) -> Answer:
        """One attempt: send the request and read its whole answer within `request_deadline`
        seconds and `largest_answer` bytes (`max_answer_bytes` unless given)."""
        deadline = asyncio.timeout(self.request_deadline)
        try:
            async with deadline, sent as streamed:
                return await _read_answer(streamed, largest_answer or self.max_answer_bytes, call)
        except TimeoutError:
            if not deadline.expired():
                raise
        raise DeadlineExceededError(
            f"{call} was not answered in full within {self.request_deadline:g} s "
            f"by {self.api_url} (it may have been applied)",
            hint=NOT_AN_API_HINT + " If it is, check the network, then run again.",
        )

    def _http(self) -> aiohttp.ClientSession:
        """The client's one session, whose pool keeps as many connections as calls may be in
        flight (`--concurrency`), so a call holding a slot never waits for one."""
        return self._session or self._open_session()

    def _open_session(self) -> aiohttp.ClientSession:
        """The session, made on the first call: it belongs to the event loop that runs it."""
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(
                limit=self.max_concurrency,
                keepalive_timeout=self.idle_connection_seconds,
                # (A plain http:// URL, allowed only for loopback or with --insecure, has no TLS.)
                ssl=_tls() if self.api_url.startswith("https://") else False,
            ),
            # The service sets no cookie a call needs; reading them costs CPU on every answer.
            cookie_jar=aiohttp.DummyCookieJar(),
            proxy=_environment_proxy(self.api_url),
            trace_configs=self._trace_configs or None,
        )
        return self._session

    def _error_for(
        self, response: Answer, method: str, shown_path: str, secrets: Sequence[str]
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


def _tls() -> ssl.SSLContext:
    """Certificates checked against the certifi bundle, as most Python HTTP clients do."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _environment_proxy(api_url: str) -> str | None:
    """The proxy HTTP(S)_PROXY names for the service, unless NO_PROXY exempts its host, as
    other HTTP tools take them: read once per client (aiohttp's `trust_env` reads them again
    on a thread of its own for every call, almost half the CPU of a call)."""
    url = URL(api_url)
    if not url.host or urllib.request.proxy_bypass(url.host):
        return None
    return urllib.request.getproxies().get(url.scheme)


def _refuse_unsendable(headers: Mapping[str, str]) -> None:
    """Raise `_UnsendableRequest` if a header value holds what no HTTP allows (a token with
    a line break), naming the header but never its value."""
    for name, value in headers.items():
        if _UNSENDABLE_CHARACTERS.search(value):
            raise _UnsendableRequest(f"the {name} header holds a line break or a NUL character")


async def _read_answer(streamed: aiohttp.ClientResponse, largest: int, call: str) -> Answer:
    """The answer with its whole body, read (decoded) chunk by chunk and given up past
    `largest` bytes, so that a huge or endless answer costs no more memory than that."""
    body = bytearray()
    async for chunk in streamed.content.iter_any():
        body += chunk
        if len(body) > largest:
            raise AnswerTooLargeError(
                f"{call} answered with more than {_size(largest)}, the largest answer this "
                f"client reads; it stopped reading there (status {streamed.status})",
                hint=NOT_AN_API_HINT,
            )
    return Answer(
        status_code=streamed.status,
        reason_phrase=streamed.reason or _reason(streamed.status),
        headers=streamed.headers,
        content=bytes(body),
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


def _size(count: int) -> str:
    return f"{count / MIB:g} MiB" if count >= MIB else f"{count} bytes"


def parse_answer(model: type[ModelT], response: Answer, call: str) -> ModelT:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise _not_a(model, exc, call) from None


def decode_answer(response: Answer, call: str) -> object:
    """The answer's JSON body as Python values, decoded once: a page's token is read from it
    before the page is validated (`validate_answer`)."""
    try:
        return pydantic_core.from_json(response.content, cache_strings=DECODED_STRINGS_CACHED)
    except ValueError as exc:
        raise TransportError(
            f"{call} answered with a body that is not JSON: {exc}", hint=NOT_AN_API_HINT
        ) from None


def validate_answer(model: type[ModelT], content: object, call: str) -> ModelT:
    """A decoded answer as `model`, as `parse_answer` reads an undecoded one."""
    try:
        return model.model_validate(content)
    except ValidationError as exc:
        raise _not_a(model, exc, call) from None


def _not_a(model: type[BaseModel], exc: ValidationError, call: str) -> TransportError:
    return TransportError(
        f"{call} answered with a body that is not a {model.__name__}: "
        f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}",
        hint=NOT_AN_API_HINT,
    )


# --- Retry policy ------------------------------------------------------------------------


class _RetryPolicy:
    """Which failed attempts are worth another try, given the request's method.

    429 means the service refused the call without doing it: always retry. A 5xx or a
    connection lost mid-call leaves unknown whether the change happened, so only methods that
    are safe to repeat are retried. A connection that never opened is safe for any method.
    """

    def __init__(self, method: str, *, always: bool = False) -> None:
        self._idempotent = always or method.upper() in _IDEMPOTENT_METHODS

    def after_failure(self, exc: aiohttp.ClientError) -> bool:
        return isinstance(exc, _NOT_SENT_ERRORS) or self._idempotent

    def after_answer(self, answer: Answer) -> bool:
        if answer.status_code == 429:
            return True
        return self._idempotent and answer.status_code in _TRANSIENT_STATUSES


def _retry_after_seconds(response: Answer) -> float | None:
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
