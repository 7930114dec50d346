"""Where a job file's claims and sweeps read their tokens: environment variables it names.

A job file names variables, never tokens (`TokenVariables`); `job_credentials` reads the
credentials as `commit` does, each named variable standing in for the usual one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from toolkit.credentials import Credentials, checked_token, load_credentials, variable_token_fix
from toolkit.errors import ClaimError

TokenRole = Literal["destination", "source", "claim"]

DEFAULT_TOKEN_VARIABLES: dict[TokenRole, str] = {
    "destination": "PULUMI_ACCESS_TOKEN",
    "source": "PULUMI_CLAIM_SOURCE_TOKEN",
    "claim": "PULUMI_CLAIM_TOKEN",
}
"""Where a claim's tokens come from when its `tokens` names no variable: as for `commit`."""

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TokenVariables(BaseModel):
    """The environment variables a claim's tokens are read from (names, never values)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    destination: str | None = None
    source: str | None = None
    claim: str | None = None

    @field_validator("destination", "source", "claim")
    @classmethod
    def _names_a_variable(cls, value: str | None) -> str | None:
        if value is not None and not _VARIABLE_NAME.fullmatch(value):
            raise PydanticCustomError(
                "not_a_variable",
                "must name an environment variable (letters, digits and _), never hold a token",
            )
        return value


def job_credentials(
    tokens: TokenVariables, api_url: str | None, environ: Mapping[str, str]
) -> tuple[Credentials | None, dict[TokenRole, str], list[str]]:
    """The claim's credentials, read as `commit` reads them except that each variable `tokens`
    names stands in for the usual one; where each token comes from; and what is missing or
    cannot be a token (`checked_token`, naming the variable it was read from)."""
    env = dict(environ)
    origins: dict[TokenRole, str] = {}
    problems: list[str] = []
    for role, usual in DEFAULT_TOKEN_VARIABLES.items():
        named = getattr(tokens, role)
        variable = named or usual
        if named is not None and not environ.get(named):
            problems.append(f"tokens.{role}: the environment variable {named} is not set")
            continue
        if not environ.get(variable):
            continue
        try:
            env[usual] = checked_token(
                environ[variable], variable, fix=variable_token_fix(variable)
            )
        except ClaimError as error:
            problems.append(f"tokens.{role}: {error.message}")
            continue
        origins[role] = f"${variable}"
    if problems:
        return None, origins, problems
    try:
        credentials = load_credentials(api_url, env, discover_claim_file=False)
    except ClaimError as error:
        # The destination token is missing (tokens names no variable), or the pulumi CLI's
        # login holds one that cannot be a token.
        return (
            None,
            origins,
            [
                f"{error.message}. {error.hint or ''} Or name the variable that holds the token "
                "as tokens.destination."
            ],
        )
    origins.setdefault("destination", f"the pulumi CLI's login for {credentials.api_url}")
    origins.setdefault("source", "the destination's token")
    origins.setdefault("claim", "none")
    return credentials, origins, []
