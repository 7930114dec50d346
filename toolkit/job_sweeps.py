"""A job file's `sweeps:` section: folders of claim files, each swept into one org.

Checked with the rest of the job file before anything runs, calling no service: the folder's
claim files read (`toolkit.sweep.read_claim_folder`), the naming policy read, the duration
parsed, the destination token's variable set. `toolkit.jobs.run_job` runs each sweep after
the job's claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from toolkit.credentials import Credentials
from toolkit.errors import ClaimError
from toolkit.job_tokens import TokenVariables, job_credentials
from toolkit.naming_policy import NamingPolicy, read_naming_policy
from toolkit.sweep import SweepRequest, parse_duration, read_claim_folder


class SweepEntry(BaseModel):
    """One sweep of a job file, as written."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(min_length=1)
    claims: str = Field(min_length=1)
    """The folder of claim files, relative to the job file."""
    destination_org: str = Field(alias="to", min_length=1)
    policy: str | None = Field(default=None, min_length=1)
    """The naming policy file, relative to the job file; none: `NamingPolicy.default`."""
    warn_within: str = Field(default="24h", alias="warnWithin")
    tokens: TokenVariables = TokenVariables()


@dataclass(frozen=True)
class JobSweep:
    """One sweep of a checked job, ready to run."""

    name: str
    request: SweepRequest
    credentials: Credentials
    files: int
    """Claim files in its folder when the job was checked."""
    token_origin: str
    """Where the destination token comes from, in words (`$ACME_TOKEN`); never a value."""

    def describe(self) -> list[str]:
        """What `job run` would do of this sweep, as `job check` prints it."""
        request = self.request
        return [
            f"sweep {self.name}: {self.files} claim file(s) in {request.claims_dir} -> "
            f"{request.destination_org}",
            f"   naming policy: {request.policy.describe()}",
            f"   tokens: destination {self.token_origin}, each claim token from its file",
        ]


def check_sweep(
    entry: SweepEntry, folder: Path, api_url: str | None, environ: Mapping[str, str]
) -> tuple[JobSweep | None, list[str]]:
    """The sweep ready to run, or None; and what is wrong with it."""
    problems: list[str] = []
    if entry.tokens.source or entry.tokens.claim:
        problems.append(
            "tokens: a sweep takes only tokens.destination; each claim token is read from its "
            "claim file"
        )
    policy = NamingPolicy.default()
    if entry.policy is not None:
        try:
            policy = read_naming_policy(folder / Path(entry.policy).expanduser())
        except ClaimError as error:
            problems.append(f"policy: {error.message}")
    try:
        warn_within = parse_duration(entry.warn_within)
    except ClaimError as error:
        problems.append(f"warnWithin: {error.message}")
    credentials, origins, token_problems = job_credentials(entry.tokens, api_url, environ)
    problems += token_problems
    claims_dir = folder / Path(entry.claims).expanduser()
    files = 0
    if credentials is not None:
        try:
            files = len(read_claim_folder(claims_dir, credentials.api_url))
        except ClaimError as error:
            problems.append(f"claims: {error.message}")
    if problems or credentials is None:
        return None, problems
    request = SweepRequest(claims_dir, entry.destination_org, policy, warn_within)
    return JobSweep(entry.name, request, credentials, files, origins["destination"]), []
