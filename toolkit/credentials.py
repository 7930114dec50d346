"""Where the toolkit finds its service URL and tokens (never on the command line).

The destination (claiming) identity comes from `PULUMI_ACCESS_TOKEN` or, like the Pulumi CLI,
from the login stored in `credentials.json`; the source identity defaults to the destination
one, which is enough when one person administers both orgs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from toolkit.errors import InvalidInputError

DEFAULT_API_URL = "https://api.pulumi.com"

_CLOUD_SCHEMES = frozenset({"http", "https"})


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

    @property
    def is_cloud(self) -> bool:
        """A Pulumi Cloud (HTTP) backend rather than a self-managed one (file://, s3://, ...)."""
        return urlsplit(self.url).scheme in _CLOUD_SCHEMES

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
) -> Credentials:
    """Resolve URL and tokens from the explicit value, the environment, then the CLI's login.

    `env` defaults to the process environment and `home` to the user's home directory.
    """
    env = os.environ if env is None else env
    url = (api_url or env.get("PULUMI_BACKEND_URL") or DEFAULT_API_URL).rstrip("/")
    destination = env.get("PULUMI_ACCESS_TOKEN") or _stored_token(url, env, home)
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
        source_token=env.get("PULUMI_CLAIM_SOURCE_TOKEN") or destination,
        claim_token=env.get("PULUMI_CLAIM_TOKEN") or None,
        destination_passphrase=passphrase,
        source_passphrase=env.get("PULUMI_CLAIM_SOURCE_PASSPHRASE") or passphrase,
    )


def _stored_token(url: str, env: Mapping[str, str], home: Path | None) -> str | None:
    """The token the Pulumi CLI stored for `url` at `pulumi login`, if any."""
    pulumi_home = env.get("PULUMI_HOME")
    folder = Path(pulumi_home) if pulumi_home else (home or Path.home()) / ".pulumi"
    path = folder / "credentials.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"cannot read the Pulumi CLI credentials in {path}: {exc}",
            hint="Fix or remove that file, or set PULUMI_ACCESS_TOKEN.",
        ) from None
    tokens = stored.get("accessTokens") if isinstance(stored, dict) else None
    if not isinstance(tokens, dict):
        return None
    for stored_url, token in tokens.items():
        if isinstance(stored_url, str) and stored_url.rstrip("/") == url and token:
            return str(token)
    return None
