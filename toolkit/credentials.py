"""Where the toolkit finds its service URL and tokens (never on the command line).

The destination (claiming) identity comes from `PULUMI_ACCESS_TOKEN` or, like the Pulumi CLI,
from the login stored in `credentials.json`; the source identity defaults to the destination
one, which is enough when one person administers both orgs. The agent's claim token comes from
`--claim-url` (the claim link), `PULUMI_CLAIM_TOKEN` (the token, or the link) or a claim file:
the one the pulumi CLI writes when it signs an agent up, the block it prints then, or the link.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from toolkit.claim_links import (
    claim_link_token,
    claim_url_in_block,
    is_agent_block,
    is_claim_link,
)
from toolkit.errors import InvalidInputError
from toolkit.service_urls import (
    canonical_url,
    is_cloud_url,
    require_api_url,
    require_secure_url,
)

DEFAULT_API_URL = "https://api.pulumi.com"

CLAIM_FILE_NAME = "agent-claim.json"
DEFAULT_AGENT_DIR = Path("/tmp/.pulumi")
"""Where the pulumi CLI keeps an agent account's files on Linux and macOS."""


@dataclass(frozen=True)
class ClaimFile:
    """The claim file (`agent-claim.json`) a claim token was read from; holds no secret."""

    path: Path
    valid_until: datetime | None = None
    """When the pulumi CLI was told the claim token expires."""
    discovered: bool = False
    """Found at the pulumi CLI's default location rather than named by the caller."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """The service URL and the tokens of the identities a run acts as."""

    api_url: str
    destination_token: str
    source_token: str
    claim_token: str | None = None
    destination_passphrase: str | None = None
    """Secrets passphrase of a self-managed destination backend (`PULUMI_CONFIG_PASSPHRASE`)."""
    source_passphrase: str | None = None
    """Of a self-managed source backend (`PULUMI_CLAIM_SOURCE_PASSPHRASE`, else the above)."""
    claim_file: ClaimFile | None = None
    """Where `claim_token` came from when it was read from a claim file."""
    claim_origin: str = "PULUMI_CLAIM_TOKEN"
    """Where `claim_token` came from otherwise, in words for messages."""

    def __post_init__(self) -> None:
        for name in ("destination_token", "source_token", "claim_token"):
            if value := getattr(self, name):
                checked_token(value, f"Credentials.{name}", fix=_PASS_TOKEN_ALONE)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every token and passphrase of this run, for `toolkit.redaction.redact` to mask."""
        values = (
            self.destination_token,
            self.source_token,
            self.claim_token,
            self.destination_passphrase,
            self.source_passphrase,
        )
        return tuple(value for value in values if value)

    @property
    def claim_token_origin(self) -> str:
        """Where the claim token came from, in words for messages."""
        if self.claim_file is None:
            return self.claim_origin
        return f"the claim token of {self.claim_file.path}"

    def __repr__(self) -> str:
        claim = "***" if self.claim_token else None
        return (
            f"Credentials(api_url={self.api_url!r}, destination_token='***', "
            f"source_token='***', claim_token={claim!r})"
        )


@dataclass(frozen=True, repr=False)
class BackendIdentity:
    """Where stacks live and who acts there.

    `url` is a Pulumi Cloud (or emulator) API URL such as `https://api.pulumi.com`, or a
    self-managed backend such as `file:///abs/path`. `token` is the access token for a cloud
    backend; `secrets_passphrase` the passphrase of the passphrase secrets provider, which
    self-managed backends use by default. Without one, the CLI falls back to
    `PULUMI_CONFIG_PASSPHRASE(_FILE)` of the environment, as it always does.
    """

    url: str
    token: str | None = None
    secrets_passphrase: str | None = None

    def __post_init__(self) -> None:
        if self.token:
            checked_token(self.token, "BackendIdentity.token", fix=_PASS_TOKEN_ALONE)

    @property
    def is_cloud(self) -> bool:
        """A Pulumi Cloud (HTTP) backend rather than a self-managed one (file://, s3://, ...)."""
        return is_cloud_url(self.url)

    @property
    def service(self) -> str:
        """Which service this is (`canonical_url`): `url` is how to reach it."""
        return canonical_url(self.url)

    def __repr__(self) -> str:
        token = "***" if self.token else None
        passphrase = "***" if self.secrets_passphrase else None
        return (
            f"BackendIdentity(url={self.url!r}, token={token!r}, secrets_passphrase={passphrase!r})"
        )


def load_credentials(
    api_url: str | None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    *,
    claim_file: Path | None = None,
    claim_url: str | None = None,
    discover_claim_file: bool = False,
    allow_insecure: bool = False,
) -> Credentials:
    """Resolve URL and tokens from the explicit value, the environment, then the CLI's login.

    The API URL is `api_url`, else `PULUMI_BACKEND_URL`, else the backend `pulumi login` made
    current, else https://api.pulumi.com. `env` defaults to the process environment and `home`
    to the user's home directory. The claim token is read from the claim link `claim_url` or
    from `claim_file` (`read_claim_file`) when one is given, else from `PULUMI_CLAIM_TOKEN`
    (the token or the claim link), else (with `discover_claim_file`, as the command line does)
    from the pulumi CLI's claim file at its default location (`default_claim_file`) when there
    is one. A claim link is taken only for the service at the API URL. An `http://` URL to
    another machine is refused unless `allow_insecure` (`require_secure_url`).
    """
    env = os.environ if env is None else env
    logins = read_pulumi_logins(env, home)
    url, origin = _api_url(api_url, env, logins)
    require_api_url(url, origin)
    url = url.rstrip("/")
    require_secure_url(url, origin, allow_insecure=allow_insecure)
    claim_token, claim_origin = _variable_claim_token(env, url)
    found: ClaimFile | None = None
    if claim_url is not None and claim_file is not None:
        raise InvalidInputError(
            "--claim-url and --claim-file both give the claim token",
            hint="Pass one of them.",
        )
    if claim_url is not None:
        claim_origin = "the claim link of --claim-url"
        claim_token = link_token(claim_url, url, "--claim-url", env)
    elif claim_file is not None:
        claim_token, found = read_claim_file(claim_file, url, env=env)
    elif claim_token is None and discover_claim_file:
        default = default_claim_file(env)
        if default.is_file():
            claim_token, found = read_claim_file(default, url, discovered=True, env=env)
    destination = _variable_token(env, "PULUMI_ACCESS_TOKEN") or logins.token_for(url)
    if not destination:
        raise InvalidInputError(
            f"no access token for {url}",
            hint=f"Set PULUMI_ACCESS_TOKEN to a token of the destination identity, "
            f"or run `pulumi login {url}`.",
        )
    passphrase = env.get("PULUMI_CONFIG_PASSPHRASE") or None
    return Credentials(
        api_url=url,
        destination_token=destination,
        source_token=_variable_token(env, "PULUMI_CLAIM_SOURCE_TOKEN") or destination,
        claim_token=claim_token,
        destination_passphrase=passphrase,
        source_passphrase=env.get("PULUMI_CLAIM_SOURCE_PASSPHRASE") or passphrase,
        claim_file=found,
        claim_origin=claim_origin,
    )


def _variable_claim_token(env: Mapping[str, str], api_url: str) -> tuple[str | None, str]:
    """The claim token `PULUMI_CLAIM_TOKEN` gives, itself or as a claim link of the service at
    `api_url`, and where it came from in words for messages."""
    name = "PULUMI_CLAIM_TOKEN"
    value = env.get(name)
    if value and is_claim_link(value):
        origin = f"the claim link in {name}"
        return link_token(value, api_url, origin, env), origin
    return _variable_token(env, name), name


def link_token(link: str, api_url: str, origin: str, env: Mapping[str, str]) -> str:
    """The claim token in a claim link of the service at `api_url` (`claim_link_token`),
    checked as every token is; `origin` names where the link came from."""
    return checked_token(
        claim_link_token(link, api_url, origin, env),
        f"the claim token in {origin}",
        fix="Give the claim link alone, as the pulumi CLI printed it.",
    )


def checked_token(value: str, origin: str, *, fix: str) -> str:
    """`value`, when it can be a token: visible ASCII characters and nothing else.

    The one rule for every token the toolkit reads. A token kept with a line break or a space
    (a file written with `echo`, a secret store's trailing newline) cannot go in an HTTP header
    and is no token of the service: refused where it is read, before anything is sent, naming
    where it came from (`origin`) and never its value. `fix` says what to do.
    """
    for position, char in enumerate(value, start=1):
        if not _TOKEN_FIRST <= char <= _TOKEN_LAST:
            raise InvalidInputError(
                f"{origin} holds {_character_kind(char)} (character {position} of "
                f"{len(value)}): a token is visible ASCII characters only; nothing was sent",
                hint=fix,
            )
    return value


_TOKEN_FIRST, _TOKEN_LAST = "!", "~"
"""The visible ASCII characters, the only ones a token holds."""

_PASS_TOKEN_ALONE = "Pass the token alone: no space, line break or other invisible character."

_CHARACTER_KINDS = {" ": "a space", "\n": "a line break", "\r": "a carriage return", "\t": "a tab"}


def _character_kind(char: str) -> str:
    """What `char` is, in words that do not show it (it may be part of a secret)."""
    if char in _CHARACTER_KINDS:
        return _CHARACTER_KINDS[char]
    code = f"U+{ord(char):04X}"
    if unicodedata.category(char) == "Cc":
        return f"a control character ({code})"
    if char.isspace():
        return f"a space character ({code})"
    return f"a character outside ASCII ({code})"


def _variable_token(env: Mapping[str, str], name: str) -> str | None:
    """The token in the environment variable `name`, checked; None when it is unset or empty."""
    value = env.get(name)
    if not value:
        return None
    return checked_token(value, name, fix=variable_token_fix(name))


def variable_token_fix(name: str) -> str:
    """What to do about a token refused in the environment variable `name`."""
    return (
        f"Set {name} to the token alone, with no space, line break or other invisible "
        "character (a file written with `echo` ends with a line break)."
    )


def default_claim_file(env: Mapping[str, str] | None = None) -> Path:
    """Where the pulumi CLI writes an agent's claim file: `/tmp/.pulumi/agent-claim.json`, or
    under `$PULUMI_TEST_AGENT_PULUMI_DIR`, the CLI's own switch for that folder."""
    env = os.environ if env is None else env
    folder = env.get("PULUMI_TEST_AGENT_PULUMI_DIR")
    return (Path(folder) if folder else DEFAULT_AGENT_DIR) / CLAIM_FILE_NAME


def read_claim_file(
    path: Path,
    api_url: str,
    *,
    discovered: bool = False,
    env: Mapping[str, str] | None = None,
) -> tuple[str, ClaimFile]:
    """The claim token in the claim file at `path`, and what else it says; the one reader of
    every form people keep it in: the pulumi CLI's `agent-claim.json`, the
    `PULUMI_EPHEMERAL_AGENT_ACCOUNT` block the CLI prints after sign-up (saved from its stderr),
    or a file holding just the claim link.

    Refused when it cannot be read, holds no claim token, or is for another service than
    `api_url` (the token is a secret of that service and is never sent anywhere else). `env`
    (default: the process environment) gives `PULUMI_CONSOLE_DOMAIN`, as the CLI reads it.
    """
    env = os.environ if env is None else env
    fix = (
        "Pass the agent-claim.json the pulumi CLI wrote, the block it printed after sign-up, "
        "or a file holding the claim link; or set PULUMI_CLAIM_TOKEN instead."
    )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _unreadable(path, error, fix) from None
    if text.lstrip().startswith("{"):
        return _read_claim_document(text, path, api_url, discovered, fix)
    origin = f"the claim link of the claim file {path}"
    if is_agent_block(text):
        link = claim_url_in_block(text)
        if link is None:
            raise InvalidInputError(
                f"the claim file {path} holds the pulumi CLI's PULUMI_EPHEMERAL_AGENT_ACCOUNT "
                "block, but no CLAIM_URL= line",
                hint="Save the block the pulumi CLI printed after the agent's sign-up, with its "
                "CLAIM_URL= line; a block that only asks to run `pulumi login` has no claim link.",
            )
    elif is_claim_link(text) and len(text.split()) == 1:
        link = text.strip()
    else:
        raise InvalidInputError(
            f"the claim file {path} is no agent-claim.json, PULUMI_EPHEMERAL_AGENT_ACCOUNT "
            "block or claim link",
            hint=fix,
        )
    return link_token(link, api_url, origin, env), ClaimFile(path, None, discovered)


def _read_claim_document(
    text: str, path: Path, api_url: str, discovered: bool, fix: str
) -> tuple[str, ClaimFile]:
    """The claim token in the pulumi CLI's `agent-claim.json` (`{claimUrl, claimToken,
    validUntil, cloudUrl, claimUnavailableAt}`), for the service at `api_url` only."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise _unreadable(path, error, fix) from None
    token = document.get("claimToken") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token:
        raise InvalidInputError(f"the claim file {path} holds no claimToken", hint=fix)
    checked_token(token, f"the claimToken of the claim file {path}", fix=fix)
    cloud_url = document.get("cloudUrl")
    if (
        isinstance(cloud_url, str)
        and cloud_url
        and canonical_url(cloud_url) != canonical_url(api_url)
    ):
        raise InvalidInputError(
            f"the claim file {path} is for {cloud_url}, not {api_url}",
            hint=f"Run with --api-url {cloud_url}, or pass the claim file of this service.",
        )
    return token, ClaimFile(path, _timestamp(document.get("validUntil")), discovered)


def _unreadable(path: Path, error: Exception, fix: str) -> InvalidInputError:
    """The error for a claim file that cannot be read, saying why without its content."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return InvalidInputError(f"cannot read the claim file {path}: {reason}", hint=fix)


def _same_service(stored_url: str, service: str) -> bool:
    """Whether a URL stored by the pulumi CLI names `service`; one that is no URL does not."""
    try:
        return canonical_url(stored_url) == service
    except InvalidInputError:
        return False


def _timestamp(value: object) -> datetime | None:
    """An RFC 3339 time as the pulumi CLI writes it, or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True, repr=False)
class PulumiLogins:
    """What `pulumi login` stored in `credentials.json`: the backend it made current and the
    token of each backend it logged in to (the pulumi CLI's `workspace.Credentials`)."""

    path: Path
    current: str | None = None
    tokens: tuple[tuple[str, str], ...] = ()
    """(URL the login was made with, token): every `accounts[url].accessToken`, then every
    `accessTokens[url]`, the order in which the pulumi CLI prefers them."""

    def token_for(self, url: str) -> str | None:
        """The token stored for `url`, under whatever spelling of its URL the login was made."""
        service = canonical_url(url)
        for stored_url, token in self.tokens:
            if _same_service(stored_url, service):
                return checked_token(
                    token,
                    f"the pulumi CLI's login for {url} in {self.path}",
                    fix=f"Run `pulumi login {url}` again, or set PULUMI_ACCESS_TOKEN.",
                )
        return None


def read_pulumi_logins(env: Mapping[str, str], home: Path | None = None) -> PulumiLogins:
    """The logins in the pulumi CLI's `credentials.json`: in `$PULUMI_CREDENTIALS_PATH`, else
    `$PULUMI_HOME`, else `~/.pulumi` (`home` stands for the user's home directory). None
    stored when there is no such file."""
    folder_name = env.get("PULUMI_CREDENTIALS_PATH") or env.get("PULUMI_HOME")
    folder = Path(folder_name) if folder_name else (home or Path.home()) / ".pulumi"
    path = folder / "credentials.json"
    try:
        text = path.read_text(encoding="utf-8")
        stored = json.loads(text) if text else {}
    except FileNotFoundError:
        return PulumiLogins(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(
            f"cannot read the Pulumi CLI credentials in {path}: {exc}",
            hint="Fix or remove that file, or set PULUMI_ACCESS_TOKEN.",
        ) from None
    if not isinstance(stored, dict):
        return PulumiLogins(path)
    tokens: list[tuple[str, str]] = []
    accounts = stored.get("accounts")
    if isinstance(accounts, dict):
        for url, account in accounts.items():
            token = account.get("accessToken") if isinstance(account, dict) else None
            if token:
                tokens.append((url, str(token)))
    access_tokens = stored.get("accessTokens")
    if isinstance(access_tokens, dict):
        tokens += [(url, str(token)) for url, token in access_tokens.items() if token]
    current = stored.get("current")
    current_url = current if isinstance(current, str) and current else None
    return PulumiLogins(path, current_url, tuple(tokens))


def _api_url(api_url: str | None, env: Mapping[str, str], logins: PulumiLogins) -> tuple[str, str]:
    """The API URL of this run and where it came from, in words for messages: `--api-url`,
    else `PULUMI_BACKEND_URL`, else the current backend of `pulumi login` (when it is a
    Pulumi Cloud), else https://api.pulumi.com."""
    if api_url:
        return api_url, "--api-url"
    if variable := env.get("PULUMI_BACKEND_URL"):
        return variable, "PULUMI_BACKEND_URL"
    if logins.current is None:
        return DEFAULT_API_URL, "the default API URL"
    origin = f"the current backend of `pulumi login` (in {logins.path})"
    if not is_cloud_url(logins.current):
        raise InvalidInputError(
            f"{origin} is {logins.current}, a self-managed backend, not a Pulumi Cloud: "
            "pulumi-claim moves stacks between Pulumi Cloud orgs.",
            hint="Pass --api-url (or set PULUMI_BACKEND_URL) to the Pulumi Cloud to claim "
            "into, or run `pulumi login` to it; a self-managed backend goes in "
            "--source-backend or --destination-backend.",
        )
    return logins.current, origin
