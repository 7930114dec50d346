"""Injected faults and the request log: what tests use to make the emulator misbehave and to
count what clients did.

A `FaultRule` says: the next `times` requests whose method and path match answer with an
error (`respond`), lose their connection without any answer (`drop`), are carried out
and then answered with an error anyway (`after`: the change happened but the client cannot
know, which is what makes retrying a non-idempotent call dangerous), or wait unanswered until
the test releases them, then are carried out as usual (`hold`: a client caught in the middle
of a call, for as long as the test needs).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

FaultAction = Literal["respond", "drop", "after", "hold"]


class FaultRule(BaseModel):
    """One armed misbehaviour; also the JSON body of `POST /_emulator/faults`."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    action: FaultAction = "respond"
    status: int = Field(default=503, ge=400, le=599)
    method: str = ".*"
    """Regular expression the HTTP method must match in full (case-insensitive)."""
    path: str = ".*"
    """Regular expression the URL path (without query) must match in full."""
    times: int | None = Field(default=1, ge=1)
    """How many requests this rule hits before it disarms itself; None: until cleared."""
    retry_after: float | None = Field(default=None, ge=0)
    """Seconds to send in a `Retry-After` header (useful with 429 and 503)."""
    message: str = "injected fault"

    @field_validator("method", "path")
    @classmethod
    def _is_regex(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return pattern

    def matches(self, method: str, path: str) -> bool:
        return bool(
            re.fullmatch(self.method, method, re.IGNORECASE) and re.fullmatch(self.path, path)
        )


@dataclass
class ArmedFault:
    rule: FaultRule
    remaining: int | None


class FaultInjector:
    """The rules currently armed; thread-safe (tests arm, the server consumes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[ArmedFault] = []
        self._holding = 0
        self._releases = 0

    def arm(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._armed.append(ArmedFault(rule, rule.times))
        return rule

    def fail(
        self,
        status: int,
        *,
        method: str = ".*",
        path: str = ".*",
        times: int | None = 1,
        retry_after: float | None = None,
    ) -> FaultRule:
        """The next `times` matching requests are answered with `status` and not carried out."""
        return self.arm(
            FaultRule(
                action="respond",
                status=status,
                method=method,
                path=path,
                times=times,
                retry_after=retry_after,
            )
        )

    def drop(self, *, method: str = ".*", path: str = ".*", times: int | None = 1) -> FaultRule:
        """The next `times` matching requests lose their connection, unanswered, not carried out."""
        return self.arm(FaultRule(action="drop", method=method, path=path, times=times))

    def fail_after(
        self, status: int = 500, *, method: str = ".*", path: str = ".*", times: int | None = 1
    ) -> FaultRule:
        """The next `times` matching requests are carried out, then answered with `status`."""
        return self.arm(
            FaultRule(action="after", status=status, method=method, path=path, times=times)
        )

    def hold(self, *, method: str = ".*", path: str = ".*", times: int | None = 1) -> FaultRule:
        """The next `times` matching requests wait unanswered until `release()` (or `clear()`),
        then are carried out and answered as usual."""
        return self.arm(FaultRule(action="hold", method=method, path=path, times=times))

    @property
    def holding(self) -> int:
        """How many requests a `hold` rule keeps waiting now."""
        with self._lock:
            return self._holding

    def release(self) -> None:
        """Let every request held now go on to its answer."""
        with self._lock:
            self._releases += 1

    async def held(self) -> None:
        """Wait, in the server's event loop, until the next `release()`."""
        with self._lock:
            self._holding += 1
            releases = self._releases
        try:
            while True:
                with self._lock:
                    if self._releases != releases:
                        return
                await asyncio.sleep(0.01)
        finally:
            with self._lock:
                self._holding -= 1

    def clear(self) -> None:
        """Disarm every rule and release every held request."""
        with self._lock:
            self._armed.clear()
            self._releases += 1

    def armed(self) -> list[ArmedFault]:
        with self._lock:
            return [ArmedFault(a.rule, a.remaining) for a in self._armed]

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first armed rule matching this request, using up one of its hits."""
        with self._lock:
            for armed in self._armed:
                if armed.rule.matches(method, path):
                    if armed.remaining is not None:
                        armed.remaining -= 1
                        if armed.remaining == 0:
                            self._armed.remove(armed)
                    return armed.rule
        return None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    status: int | None
    """None when the connection was dropped."""
    started: float
    """`time.monotonic()` when the request arrived (comparable with the test's own clock)."""
    finished: float
    injected: bool
    """True when an armed fault decided the answer."""


class RequestLog:
    """Every service request the emulator answered, in order of completion, and how many
    were in flight at once (for checking a client's concurrency bound)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[RecordedRequest] = []
        self._in_flight = 0
        self._peak_in_flight = 0
        self._watchers: list[Callable[[RecordedRequest], None]] = []

    def watch(self, watcher: Callable[[RecordedRequest], None]) -> None:
        """Call `watcher` with each request as it is recorded: after the service has acted on
        it, before its answer leaves (so a test can stop a client at an exact point)."""
        with self._lock:
            self._watchers.append(watcher)

    def entries(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._entries)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests whose method equals `method` and whose path matches the regex `path`."""
        return sum(
            1
            for entry in self.entries()
            if (method is None or entry.method == method.upper())
            and (path is None or re.fullmatch(path, entry.path))
        )

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        with self._lock:
            return self._peak_in_flight

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._peak_in_flight = self._in_flight

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def finished(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._in_flight -= 1
            self._entries.append(entry)
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher(entry)
