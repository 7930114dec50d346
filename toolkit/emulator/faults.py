"""Injected faults, added latency and the request log: what tests use to make the emulator
misbehave and to count what clients did.

A `FaultRule` says: the next `times` requests whose method and path match answer with an
error (`respond`), lose their connection without any answer (`drop`), are carried out and
then answered with an error anyway (`after`), or are carried out and then lose their
connection (`dropAfterApply`), or wait unanswered until the test releases them, then are
carried out as usual (`hold`: a client caught in the middle of a call, for as long as the test
needs). `after` and `dropAfterApply` are what makes retrying a non-idempotent call dangerous:
the change happened but the client cannot know.

`FaultRates` makes the same faults happen at random, at given rates, for unattended runs;
seeded, so that a failing run can be repeated.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

FaultAction = Literal["respond", "drop", "after", "dropAfterApply", "hold"]

RateKind = Literal["500", "502", "503", "429", "drop", "dropAfterApply"]
"""What a random fault does: answer with that status without carrying the request out, lose
the connection before carrying it out (`drop`), or after (`dropAfterApply`)."""
RATE_KINDS: tuple[RateKind, ...] = get_args(RateKind)

NEVER_FAULTED_BY_RATES = re.compile(r"/api/agents/signup")
"""Agent sign-up (challenge and answer) is how a test's agent comes to exist, not what an
unattended run exercises, and the pulumi CLI does not retry it: random faults pass it by.
A `FaultRule` can still aim at it."""


class _Matching(BaseModel):
    """Which requests a fault applies to: method and path, each a regular expression."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    method: str = ".*"
    """Regular expression the HTTP method must match in full (case-insensitive)."""
    path: str = ".*"
    """Regular expression the URL path (without query) must match in full."""

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


class FaultRule(_Matching):
    """One armed misbehaviour; also the JSON body of `POST /_emulator/faults`."""

    action: FaultAction = "respond"
    status: int = Field(default=503, ge=400, le=599)
    times: int | None = Field(default=1, ge=1)
    """How many requests this rule hits before it disarms itself; None: until cleared."""
    retry_after: float | None = Field(default=None, ge=0)
    """Seconds to send in a `Retry-After` header (useful with 429 and 503)."""
    message: str = "injected fault"


Rate = Annotated[float, Field(ge=0, le=1)]


class FaultRates(_Matching):
    """Random faults; also the JSON body of `PUT /_emulator/fault-rates`.

    Each matching request meets at most one fault: kind `k` with probability `rates[k]`,
    drawn from a generator seeded with `seed`. The same requests in the same order meet the
    same faults (requests sent concurrently may arrive in another order).
    """

    seed: int | None = None
    """None: a different sequence on every run."""
    rates: dict[RateKind, Rate] = Field(default_factory=dict)
    retry_after: float = Field(default=1.0, ge=0)
    """Seconds sent in the `Retry-After` header of the 429 answers."""

    @model_validator(mode="after")
    def _rates_fit_in_one(self) -> FaultRates:
        total = math.fsum(self.rates.values())
        if total > 1:
            raise ValueError(f"the rates add up to {total:g}, more than 1")
        return self


RATE_SPELLINGS: dict[str, RateKind] = {
    "500": "500",
    "502": "502",
    "503": "503",
    "429": "429",
    "drop": "drop",
    "drop-after-apply": "dropAfterApply",
}
"""The kinds of `KIND=RATE` (`pulumi-claim emulator --fault-rate`), and how `FaultRates`
spells them."""


def parse_fault_rate(spec: str) -> tuple[RateKind, float]:
    """The kind and rate of `KIND=RATE`; a ValueError says what is wrong with it."""
    kind, equals, rate_text = spec.partition("=")
    if kind not in RATE_SPELLINGS or not equals:
        raise ValueError(
            f"{spec!r}: expected KIND=RATE with KIND one of {', '.join(RATE_SPELLINGS)}"
        )
    try:
        rate = float(rate_text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise ValueError(f"{spec!r}: the rate must be a number from 0 to 1")
    return RATE_SPELLINGS[kind], rate


@dataclass(frozen=True)
class RateCounts:
    """What the random faults did since their rates were set."""

    considered: int
    """Requests that matched the rates' method and path, faulted or not."""
    fired: dict[RateKind, int]
    """Faults of each kind that happened (every kind present, 0 when none)."""


@dataclass
class ArmedFault:
    rule: FaultRule
    remaining: int | None


class _ArmedRates:
    """Rates in force: their generator, the rule each kind plays, and the counts."""

    def __init__(self, rates: FaultRates) -> None:
        self.rates = rates
        self.draws = random.Random(rates.seed)
        self.considered = 0
        self.fired: Counter[RateKind] = Counter()
        self.rules: dict[RateKind, FaultRule] = {
            "500": FaultRule(status=500, times=None),
            "502": FaultRule(status=502, times=None),
            "503": FaultRule(status=503, times=None),
            "429": FaultRule(status=429, times=None, retry_after=rates.retry_after),
            "drop": FaultRule(action="drop", times=None),
            "dropAfterApply": FaultRule(action="dropAfterApply", times=None),
        }

    def draw(self) -> FaultRule | None:
        """One draw, walked through the kinds in a fixed order so that the order in which
        the rates were written does not change which fault a draw picks."""
        self.considered += 1
        point = self.draws.random()
        for kind in RATE_KINDS:
            point -= self.rates.rates.get(kind, 0.0)
            if point < 0:
                self.fired[kind] += 1
                return self.rules[kind]
        return None


class FaultInjector:
    """The rules armed, the rates in force and the latency added; thread-safe (tests arm,
    the server consumes)."""

    def __init__(self, *, latency_ms: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._armed: list[ArmedFault] = []
        self._rates: _ArmedRates | None = None
        self._holding = 0
        self._releases = 0
        self.latency_ms = latency_ms

    @property
    def latency_ms(self) -> float:
        """Milliseconds added before every service request is looked at."""
        return self._latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"latency must not be negative, got {value:g} ms")
        self._latency_ms = value

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

    def drop_after_apply(
        self, *, method: str = ".*", path: str = ".*", times: int | None = 1
    ) -> FaultRule:
        """The next `times` matching requests are carried out, then lose their connection
        unanswered."""
        return self.arm(FaultRule(action="dropAfterApply", method=method, path=path, times=times))

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
        """Disarm every rule and release every held request (rates and latency stay)."""
        with self._lock:
            self._armed.clear()
            self._releases += 1

    def set_rates(self, rates: FaultRates) -> None:
        """Put `rates` in force, replacing any before them, with fresh counts."""
        with self._lock:
            self._rates = _ArmedRates(rates)

    def clear_rates(self) -> None:
        with self._lock:
            self._rates = None

    def rates(self) -> FaultRates | None:
        with self._lock:
            return None if self._rates is None else self._rates.rates

    def rate_counts(self) -> RateCounts:
        with self._lock:
            armed = self._rates
            considered = 0 if armed is None else armed.considered
            fired = Counter[RateKind]() if armed is None else armed.fired
            return RateCounts(considered, {kind: fired[kind] for kind in RATE_KINDS})

    def armed(self) -> list[ArmedFault]:
        with self._lock:
            return [ArmedFault(a.rule, a.remaining) for a in self._armed]

    def take(self, method: str, path: str) -> FaultRule | None:
        """The fault this request meets: the first armed rule matching it (using up one of
        its hits), else what a draw of the rates in force gives, else None."""
        with self._lock:
            for armed in self._armed:
                if armed.rule.matches(method, path):
                    if armed.remaining is not None:
                        armed.remaining -= 1
                        if armed.remaining == 0:
                            self._armed.remove(armed)
                    return armed.rule
            rates = self._rates
            if (
                rates is None
                or NEVER_FAULTED_BY_RATES.fullmatch(path)
                or not rates.rates.matches(method, path)
            ):
                return None
            return rates.draw()


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
        """Requests arrived and not yet answered (nor dropped)."""
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
