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

from toolkit.errors import InvalidInputError

DEFAULT_API_URL = "https://api.pulumi.com"


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
