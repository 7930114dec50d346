"""The service's rate limit: a token bucket per caller, as Pulumi Cloud answers a client that
calls too often with 429 and a `Retry-After` header.

Each caller (the token a request carries, or the client's address when it carries none) has a
bucket of `per_second` tokens (at least 1), refilled at `per_second` a second; a request takes
one token or, when the bucket is empty, is refused with the whole seconds until the next token
(the pulumi CLI reads `Retry-After` as whole seconds).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    filled_at: float


class RateLimiter:
    """Buckets of tokens per caller; thread-safe (the server takes, tests and the control API
    set the rate). `per_second` None: no limit."""

    def __init__(
        self, per_second: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._per_second: float | None = None
        self.per_second = per_second

    @property
    def per_second(self) -> float | None:
        """Requests a second each caller may make (the size of its bucket too)."""
        return self._per_second

    @per_second.setter
    def per_second(self, value: float | None) -> None:
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"the rate limit must be a positive number, got {value:g}")
        with self._lock:
            self._per_second = value
            self._buckets.clear()

    def take(self, caller: str) -> int | None:
        """Take a token from `caller`'s bucket: None when there was one, else the whole
        seconds (at least 1) until there is one again, for `Retry-After`."""
        with self._lock:
            rate = self._per_second
            if rate is None:
                return None
            now = self._clock()
            size = max(rate, 1.0)
            bucket = self._buckets.setdefault(caller, _Bucket(tokens=size, filled_at=now))
            bucket.tokens = min(size, bucket.tokens + (now - bucket.filled_at) * rate)
            bucket.filled_at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return None
            return max(1, math.ceil((1 - bucket.tokens) / rate))
