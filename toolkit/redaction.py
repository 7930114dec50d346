"""The one rule for masking secrets, wherever text leaves the process.

Log lines, error messages and reports go through `redact` before anyone can read them. It masks
what it recognises without being told: Pulumi access tokens (`pul-` and 40 hex digits), the
emulator's claim tokens (48 hex digits), and whatever follows `/claim/` in a claim link or
`/api/agents/signup/validate/` in the claim-validation path (the real service's claim tokens
have no published shape, so they are recognised by where they stand), and the password of a
URL (`postgresql://user:password@host`, the runs database's). And it masks every secret
it is given (the run's tokens and passphrases), also in the URL-escaped form a path carries, the
escaped forms of a repr or a JSON string, and without the whitespace around it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import quote

from toolkit.display import printable

__all__ = [
    "CODE_FIELD",
    "MASK",
    "MIN_SECRET_LENGTH",
    "RedactingFormatter",
    "map_strings",
    "redact",
    "redact_strings",
]

T = TypeVar("T")

MASK = "***"

CODE_FIELD: Mapping[str, object] = MappingProxyType({"redact": False})
"""Metadata of a dataclass field that holds a code the program looks up (a style, a kind),
never text from outside: `map_strings` leaves it alone, so that a secret that happens to
spell a code cannot break the lookup."""

MIN_SECRET_LENGTH = 4
"""Given secrets shorter than this are not masked: they would be guessed sooner than read, and
masking every `abc` would garble names in reports and logs."""

_RECOGNISED = re.compile(
    # The API's own `/api/agents/{org}/claim/...` paths hold no secret: kept as they are, and
    # consumed so that the next alternative does not take `status` for a claim token.
    r"(?P<api_claim>/api/agents/[^/?#\s]+/claim/)"
    r"|(?P<prefix>/claim/|/api/agents/signup/validate/)(?P<token>[^/?#\s\"'<>&()\[\]]+)"
    r"|(?P<userinfo>://[^:/@\s]*:)(?P<password>[^@/\s]+)(?=@)"
    r"|pul-[0-9a-fA-F]{40}"
    r"|(?<![0-9a-fA-F])[0-9a-fA-F]{48}(?![0-9a-fA-F])"
)
_MARKS = ("/claim/", "/api/agents/signup/validate/", "://", "pul-")
_MAYBE_RECOGNISED = "|".join([*map(re.escape, _MARKS), r"[0-9a-fA-F]{48}"])
"""Text in which this finds nothing (none of `_MARKS`, no run of 48 hex digits) holds nothing
`_RECOGNISED` matches: most text (a journal's rows, a log line, a report's strings) is let
through after this one scan, rather than the pattern tried at each of its characters."""


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every token the toolkit recognises, and every one of `secrets`, masked."""
    return _masker(tuple(secrets))(text)


def redact_strings(value: T, secrets: Iterable[str] = ()) -> T:
    """`value` with `redact` applied to every string in it (`map_strings`), so that a report's
    rows are masked before any layout wraps a token across lines."""
    return map_strings(value, _masker(tuple(secrets)))


def map_strings(value: T, change: Callable[[str], str]) -> T:
    """`value` with `change` applied to every string in it: through dataclasses, tuples, lists
    and dicts (keys too). A field marked `CODE_FIELD` is left alone; anything else is kept as
    it is."""

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return change(item)
        if isinstance(item, tuple | list):
            return type(item)(walk(part) for part in item)
        if isinstance(item, dict):
            return {walk(key): walk(part) for key, part in item.items()}
        if item is None or isinstance(item, int | float):  # most of a document's other values
            return item
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            changes = {
                field.name: walk(getattr(item, field.name))
                for field in dataclasses.fields(item)
                if field.init and field.metadata.get("redact", True)
            }
            return dataclasses.replace(item, **changes)
        return item

    result: T = walk(value)
    return result


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line, traceback included, goes through `redact`, then
    `toolkit.display.printable` (a record can quote what the service said).

    `secrets` is read at each line, so a collection the caller adds to later (the tokens are
    known only once the credentials are loaded) masks those too.
    """

    def __init__(self, fmt: str, secrets: Collection[str]) -> None:
        super().__init__(fmt)
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return printable(redact(super().format(record), self._secrets), keep_newlines=True)


@functools.lru_cache(maxsize=16)
def _masker(secrets: tuple[str, ...]) -> Callable[[str], str]:
    """The function that masks `secrets` and the recognised tokens, compiled once for each
    set of secrets: a run masks the same few tokens in every log line and journal row."""
    forms = {
        form for secret in secrets for form in _forms(secret) if len(form) >= MIN_SECRET_LENGTH
    }
    # Longest first, so that a secret holding another one is masked whole.
    escaped = [re.escape(form) for form in sorted(forms, key=len, reverse=True)]
    given = re.compile("|".join(escaped)) if forms else None
    maybe_masked = re.compile("|".join([*escaped, _MAYBE_RECOGNISED])).search

    def mask(text: str) -> str:
        if maybe_masked(text) is None:  # most text: one scan finds nothing to mask
            return text
        if given is not None:
            text = given.sub(MASK, text)
        return _RECOGNISED.sub(_mask_recognised, text)

    return mask


def _forms(secret: str) -> tuple[str, ...]:
    """How `secret` can stand in text: as it is, URL-escaped, escaped as Python (a string or
    its UTF-8 bytes: an exception shows a header as `b'token tok\\n'`) and JSON write it, and
    without the whitespace around it: a token read with a stray space or line break is masked
    whatever shows it."""
    escaped = (
        quote(secret, safe=""),
        secret.encode("unicode_escape").decode("ascii"),
        repr(secret.encode())[2:-1],
        json.dumps(secret)[1:-1],
    )
    return (secret, *escaped, secret.strip())


def _mask_recognised(match: re.Match[str]) -> str:
    if match["api_claim"]:
        return match["api_claim"]
    if match["prefix"]:
        return match["prefix"] + MASK
    if match["userinfo"]:
        return match["userinfo"] + MASK
    return MASK
