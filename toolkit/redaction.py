"""The one place tokens are masked before text leaves the process."""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN_PATTERNS = (re.compile(r"pul-[0-9a-f]{40}"), re.compile(r"\b[0-9a-f]{48}\b"))
MASK = "****"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every access token, claim token and given secret replaced by a mask."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(MASK, text)
    return text
