"""Claim links as people hold them: the console address the pulumi CLI prints after an agent's
sign-up (`https://app.pulumi.com/claim/<claimToken>`), alone or in the machine-readable block it
writes on stderr (`PULUMI_EPHEMERAL_AGENT_ACCOUNT`, then `CLAIM_URL=<link>` and the validity
lines).

The token in a link is a secret of one service: a link is taken only from the console of the
run's API URL, and no message shows any part of a link past its host.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from toolkit.errors import InvalidInputError
from toolkit.service_urls import canonical_url

LINK_EXAMPLE = "https://app.pulumi.com/claim/<claimToken>"

BLOCK_MARKER = "PULUMI_EPHEMERAL_AGENT_ACCOUNT"
"""The first line of the block the pulumi CLI prints for an agent's account."""
CLAIM_URL_FIELD = "CLAIM_URL="

_API_PREFIX, _CONSOLE_PREFIX = "api.", "app."
_LOCAL_API, _LOCAL_CONSOLE = "localhost:8080", "localhost:3000"
"""The pulumi CLI's own pairs of API and console hosts (`client.CloudConsoleURL`)."""


def is_claim_link(text: str) -> bool:
    """Whether `text` is given as a link (http:// or https://) rather than as a bare token."""
    return text.strip().lower().startswith(("http://", "https://"))


def is_agent_block(text: str) -> bool:
    """Whether `text` holds the pulumi CLI's `PULUMI_EPHEMERAL_AGENT_ACCOUNT` block."""
    return BLOCK_MARKER in (line.strip() for line in text.splitlines())


def claim_url_in_block(text: str) -> str | None:
    """The link of the `CLAIM_URL=` line that follows the block's first line; None without
    one (the CLI's block asking to run `pulumi login` has none: no claim is possible)."""
    lines = [line.strip() for line in text.splitlines()]
    for line in lines[lines.index(BLOCK_MARKER) + 1 :]:
        if line.startswith(CLAIM_URL_FIELD):
            return line.removeprefix(CLAIM_URL_FIELD)
    return None


def claim_link_token(link: str, api_url: str, origin: str, env: Mapping[str, str]) -> str:
    """The claim token in `link`, a claim link (`<console>/claim/<token>`) of the service at
    `api_url`; `origin` names where the link came from. Refused when it is no claim link, or
    the link of another service's console, as the pulumi CLI derives consoles (`_consoles`):
    the token is then never sent."""
    malformed = InvalidInputError(
        f"{origin} is not a claim link (the console's address, then /claim/<claimToken>)",
        hint=f"Give the claim link as the pulumi CLI printed it, such as {LINK_EXAMPLE}.",
    )
    try:
        parts = urlsplit(link.strip())
        parts.port  # noqa: B018 - parsing the port is what checks it
    except ValueError:
        raise malformed from None
    segments = parts.path.split("/")
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or len(segments) != 3
        or segments[:2] != ["", "claim"]
        or not segments[2]
    ):
        raise malformed
    console = f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2]}"
    if canonical_url(console) not in _consoles(api_url, env):
        raise InvalidInputError(
            f"{origin} is a claim link of {console}, not of the service at {api_url}: its "
            "claim token is not sent there",
            hint=f"Run with the --api-url of the service whose console is {console}"
            f"{_api_of(console)}, or give the claim link of {api_url}.",
        )
    return unquote(segments[2])


def _consoles(api_url: str, env: Mapping[str, str]) -> set[str]:
    """Where the console of the service at `api_url` is, as the pulumi CLI builds claim links:
    the host in `PULUMI_CONSOLE_DOMAIN`, else `app.` for `api.`, else localhost:3000 for
    localhost:8080; and the API URL's own address, where a service that serves both (the
    emulator) has its console."""
    parts = urlsplit(api_url)
    scheme, host = parts.scheme.lower(), parts.netloc.lower()
    consoles = {canonical_url(f"{scheme}://{host}")}
    if domain := env.get("PULUMI_CONSOLE_DOMAIN"):
        consoles.add(canonical_url(f"{scheme}://{domain}"))
    elif host.startswith(_API_PREFIX):
        consoles.add(canonical_url(f"{scheme}://{_CONSOLE_PREFIX}{host.removeprefix(_API_PREFIX)}"))
    elif host == _LOCAL_API:
        consoles.add(canonical_url(f"{scheme}://{_LOCAL_CONSOLE}"))
    return consoles


def _api_of(console: str) -> str:
    """`(https://api.X)` for a console at `https://app.X`: the API URL the CLI pairs with it."""
    scheme, _, host = console.partition("://")
    if host.startswith(_CONSOLE_PREFIX):
        return f" ({scheme}://{_API_PREFIX}{host.removeprefix(_CONSOLE_PREFIX)})"
    return ""
