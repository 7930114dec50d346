"""A sweep: claim every agent account whose claim file is in a folder, one claim per file.

1. Every file of the folder is read as a claim file (`toolkit.credentials.read_claim_file`),
   the whole folder first: a file that is no claim file, or is for another service, or holds
   the token of another file, is a problem.
2. A token whose claim was recorded by an earlier sweep (`toolkit.journal.claims`) and whose
   run finished or changed something is not validated again: its run is found done (the
   account is claimed already, and the service is not asked) or continued.
3. Every other token is validated by the service's unauthenticated call; one the service does
   not know (used or expired) is skipped and reported, not an error.
4. The renames of every claim are planned together (`toolkit.sweep_plan`) against the
   destination as the claimer lists it: an invalid or taken new name is a problem.
5. With any problem, the sweep claims nothing and lists them all (`InvalidInputError`).
6. Each account is then claimed with the claim-api strategy through `toolkit.runs`, as
   `commit` does: its own run, journal and org lock, and the landing the policy's `landing:`
   asks for. A claim's error does not stop the others.

Accounts whose claim window closes soon, or whose write window has closed, are warned about
(`window_warnings`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from toolkit.cloud import CloudClient
from toolkit.collectors.service import collect_inventory
from toolkit.credentials import ClaimFile, Credentials, read_claim_file
from toolkit.display import utc_minute
from toolkit.entities import Inventory, describe, display_name, target_of
from toolkit.errors import ClaimError, InvalidInputError, NotFoundError
from toolkit.journal import RunRecord
from toolkit.journal.claims import ClaimedAccount, find_claim, record_claim, token_digest
from toolkit.landing_spec import LandingSpec
from toolkit.models import AgentClaimResponse
from toolkit.naming_policy import NamingPolicy
from toolkit.outcomes import EXIT_INTERRUPTED, summarize_run
from toolkit.plan import ClaimTarget
from toolkit.resolution_map import ResolutionMap
from toolkit.runs import ClaimRequest, RunOutcome, commit_request, started_run
from toolkit.strategies import StopSignal
from toolkit.sweep_plan import AgentAccount, PlannedClaim, plan_sweep
from toolkit.sweep_result import SweepOutcome, SweepResult, SweepRow

WRITE_WINDOW = timedelta(hours=72)
"""How long after its sign-up an agent account can write; read-only afterwards."""

DEFAULT_WARN_WITHIN = timedelta(hours=24)

VALIDATIONS_AT_ONCE = 8
"""Claim tokens validated at once."""


_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h` or `7d` as a time span; anything else is refused."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InvalidInputError(
            f"{text!r} is not a duration",
            hint="Write a whole number and a unit: 90s, 30m, 24h or 7d.",
        )
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


@dataclass(frozen=True)
class SweepRequest:
    """What a sweep is asked: the folder of claim files, the org to claim into, the policy."""

    claims_dir: Path
    destination_org: str
    policy: NamingPolicy
    warn_within: timedelta = DEFAULT_WARN_WITHIN
    """Warn about accounts whose claim window closes within this time."""
    claim_wait: float | None = None
    """Seconds to follow each claim (`ClaimRequest.claim_wait`)."""

    @property
    def map_identity(self) -> str:
        """What identifies the renames of the sweep's claims in their runs' keys."""
        return f"sweep:{self.policy.identity}"


@dataclass(frozen=True, repr=False)
class ClaimFileToken:
    """A claim file read: its token (a secret, never shown) and what the file says besides."""

    token: str
    file: ClaimFile

    @property
    def name(self) -> str:
        return self.file.path.name

    def __repr__(self) -> str:
        return f"ClaimFileToken(token='***', file={self.file!r})"


@dataclass(frozen=True)
class PreparedSweep:
    """A sweep checked and planned, nothing claimed yet: what is left to claim, and why the
    other files are not claimed (`skipped`)."""

    tokens: tuple[ClaimFileToken, ...]
    skipped: tuple[SweepRow, ...]
    recorded: tuple[tuple[ClaimFileToken, str, ClaimRequest, RunRecord], ...]
    """Accounts an earlier sweep recorded, with their runs: found done, or continued."""
    planned: tuple[tuple[ClaimFileToken, PlannedClaim, ClaimRequest], ...]
    warnings: tuple[str, ...]


async def prepare_sweep(
    credentials: Credentials,
    request: SweepRequest,
    *,
    runs_dir: Path,
    database: str | None = None,
    now: datetime | None = None,
) -> PreparedSweep:
    """Steps 1 to 5 of the module: every claim file read, validated and planned; refused with
    every problem listed."""
    now = now or datetime.now(UTC)
    tokens = read_claim_folder(request.claims_dir, credentials.api_url)
    recorded: list[tuple[ClaimFileToken, str, ClaimRequest, RunRecord]] = []
    fresh: list[ClaimFileToken] = []
    for claim in tokens:
        found = find_claim(runs_dir, token_digest(claim.token), database=database)
        if found is not None and found.destination_org == request.destination_org:
            asked = _recorded_request(request, found)
            run = started_run(_with_token(credentials, claim), asked, runs_dir, database=database)
            if run is not None:
                recorded.append((claim, found.agent, asked, run))
                continue
        fresh.append(claim)
    validated = await _validate(credentials.api_url, fresh)
    skipped: list[SweepRow] = []
    accounts: list[AgentAccount] = []
    for claim, document in zip(fresh, validated, strict=True):
        if document is None:
            skipped.append(SweepRow(claim.name, None, "skipped", _skip_reason(claim, now)))
        else:
            accounts.append(AgentAccount(claim.file.path, document))
    warnings = window_warnings(accounts, now=now, warn_within=request.warn_within)
    destination, claimer = await _destination(credentials, request)
    planned, problems = plan_sweep(
        request.policy, destination, accounts, claimed_before=[run.plan for *_, run in recorded]
    )
    if problems:
        raise _refusal(problems)
    if request.policy.landing is not None and (planned or recorded):
        from toolkit.landing import check_landing_tools

        check_landing_tools()
    by_file = {claim.name: claim for claim in tokens}
    claims = []
    for plan in planned:
        landing = request.policy.landing_for(agent=plan.account.agent, claimer=claimer)
        asked = _request(
            request, plan.account.org, plan.resolution_map, request.map_identity, landing
        )
        claims.append((by_file[plan.account.file.name], plan, asked))
    return PreparedSweep(
        tuple(tokens), tuple(skipped), tuple(recorded), tuple(claims), tuple(warnings)
    )


async def run_sweep(
    credentials: Credentials,
    request: SweepRequest,
    *,
    runs_dir: Path,
    database: str | None = None,
    stop: StopSignal | None = None,
    on_row: Callable[[SweepRow], None] = lambda row: None,
    now: datetime | None = None,
) -> SweepResult:
    """Claim every account of `request.claims_dir` into `request.destination_org` (see the
    module's steps); `on_row` hears each row as it is decided."""
    stop = stop or StopSignal()
    prepared = await prepare_sweep(
        credentials, request, runs_dir=runs_dir, database=database, now=now
    )
    rows = {row.file: row for row in prepared.skipped}
    for row in prepared.skipped:
        on_row(row)
    for claim, agent, asked, _ in prepared.recorded:
        rows[claim.name] = await claim_account(
            credentials, claim, agent, asked, runs_dir=runs_dir, database=database, stop=stop
        )
        on_row(rows[claim.name])
    for claim, plan, asked in prepared.planned:
        rows[claim.name] = await claim_planned(
            credentials,
            claim,
            plan.account.agent,
            asked,
            runs_dir=runs_dir,
            database=database,
            stop=stop,
        )
        on_row(rows[claim.name])
    ordered = tuple(rows[claim.name] for claim in prepared.tokens)
    return SweepResult(request.destination_org, ordered, prepared.warnings)


def read_claim_folder(folder: Path, api_url: str) -> list[ClaimFileToken]:
    """The claim token of every file of `folder` (hidden files and folders aside), in name
    order; refused with every file that is no claim file of this service listed."""
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as error:
        raise InvalidInputError(
            f"cannot read the folder of claim files {folder}: {error.strerror or error}",
            hint="Pass --claims a folder holding the agents' claim files.",
        ) from None
    if not files:
        raise InvalidInputError(
            f"{folder} holds no claim file",
            hint="Put each agent's agent-claim.json there (one file per agent, any name).",
        )
    tokens: list[ClaimFileToken] = []
    problems: list[str] = []
    first_file: dict[str, str] = {}
    for path in files:
        try:
            token, claim_file = read_claim_file(path, api_url)
        except InvalidInputError as error:
            problems.append(error.message)
            continue
        digest = token_digest(token)
        if digest in first_file:
            problems.append(f"{path.name} holds the same claim token as {first_file[digest]}")
            continue
        first_file[digest] = path.name
        tokens.append(ClaimFileToken(token, claim_file))
    if problems:
        raise _refusal(problems)
    return tokens


def window_warnings(
    accounts: Sequence[AgentAccount], *, now: datetime, warn_within: timedelta
) -> list[str]:
    """The accounts whose claim window closes within `warn_within`, and those whose write
    window has closed (read-only: what they hold can no longer change)."""
    warnings = []
    for account in accounts:
        where = f"{account.agent} ({account.file.name})"
        closes = account.claim.claim_expires_at
        if closes - now <= warn_within:
            hours = max(0, int((closes - now).total_seconds() // 3600))
            warnings.append(
                f"{where}: its claim window closes {utc_minute(closes)} (in {hours} h); "
                "unclaimed then, the account is lost"
            )
        read_only = account.claim.agent.created_at + WRITE_WINDOW
        if read_only <= now:
            warnings.append(
                f"{where}: its write window closed {utc_minute(read_only)}; it is read-only"
            )
    return warnings


def _skip_reason(claim: ClaimFileToken, now: datetime) -> str:
    """Why the service does not know a claim token, as far as its file tells."""
    valid_until = claim.file.valid_until
    if valid_until is not None and valid_until <= now:
        return f"skipped: the claim token expired {utc_minute(valid_until)}"
    return "skipped: the service does not know the claim token (used already, or expired)"


async def _validate(
    api_url: str, tokens: Sequence[ClaimFileToken]
) -> list[AgentClaimResponse | None]:
    """What each token would claim, by the service's unauthenticated validation; None for a
    token the service does not know."""
    limit = asyncio.Semaphore(VALIDATIONS_AT_ONCE)

    async with CloudClient(api_url, "") as client:

        async def one(claim: ClaimFileToken) -> AgentClaimResponse | None:
            async with limit:
                try:
                    return await client.validate_claim_token(claim.token)
                except NotFoundError:
                    return None

        return list(await asyncio.gather(*(one(claim) for claim in tokens)))


async def _destination(credentials: Credentials, request: SweepRequest) -> tuple[Inventory, str]:
    """The destination as the claimer lists it, and the claimer's login when the policy's
    landing may name it (else empty)."""
    async with CloudClient(credentials.api_url, credentials.destination_token) as client:
        inventory = await collect_inventory(client, request.destination_org)
        if request.policy.landing is None:
            return inventory, ""
        return inventory, (await client.get_current_user()).github_login


def _refusal(problems: Sequence[str]) -> InvalidInputError:
    listed = "\n".join(f"  - {problem}" for problem in problems)
    return InvalidInputError(
        f"the sweep claims nothing: {len(problems)} problem(s):\n{listed}",
        hint="Fix or remove those claim files, or change the naming policy (--policy), and "
        "run the sweep again.",
    )


def _request(
    request: SweepRequest,
    org: str,
    resolution_map: ResolutionMap,
    identity: str,
    landing: LandingSpec | None,
) -> ClaimRequest:
    return account_claim_request(
        org,
        request.destination_org,
        resolution_map,
        identity,
        landing,
        claim_wait=request.claim_wait,
    )


def account_claim_request(
    org: str,
    destination_org: str,
    resolution_map: ResolutionMap,
    identity: str,
    landing: LandingSpec | None,
    *,
    claim_wait: float | None,
) -> ClaimRequest:
    """The claim of one account of a sweep: the claim-api strategy, the sweep's renames."""
    return ClaimRequest(
        target=ClaimTarget(source_org=org, destination_org=destination_org),
        resolution_map=resolution_map,
        map_identity=identity,
        strategy="claim-api",
        claim_wait=claim_wait,
        landing=landing,
    )


def _recorded_request(request: SweepRequest, found: ClaimedAccount) -> ClaimRequest:
    """The claim an earlier sweep recorded, as it asked it: its run's key is the same, and its
    recorded plan holds the renames."""
    return _request(request, found.org, ResolutionMap.empty(), found.map_identity, found.landing)


def _with_token(credentials: Credentials, claim: ClaimFileToken) -> Credentials:
    return replace(credentials, claim_token=claim.token, claim_file=claim.file)


async def claim_planned(
    credentials: Credentials,
    claim: ClaimFileToken,
    agent: str,
    asked: ClaimRequest,
    *,
    runs_dir: Path,
    database: str | None = None,
    stop: StopSignal,
) -> SweepRow:
    """Record the claim of `agent`'s account (`asked`), then make it: a sweep run again from
    the same runs folder or database finds its run without the token, which the claim uses
    up."""
    if not stop.requested:
        record_claim(
            runs_dir,
            token_digest(claim.token),
            ClaimedAccount(
                agent,
                asked.target.source_org,
                asked.target.destination_org,
                asked.map_identity,
                asked.landing,
            ),
            database=database,
        )
    return await claim_account(
        credentials, claim, agent, asked, runs_dir=runs_dir, database=database, stop=stop
    )


async def claim_account(
    credentials: Credentials,
    claim: ClaimFileToken,
    agent: str,
    asked: ClaimRequest,
    *,
    runs_dir: Path,
    database: str | None = None,
    stop: StopSignal,
) -> SweepRow:
    """One account's claim through `commit_request`; its error is its row."""
    if stop.requested:
        return SweepRow(
            claim.name,
            agent,
            "not run",
            "not run: the sweep was interrupted first",
            exit_code=EXIT_INTERRUPTED,
        )
    try:
        outcome = await commit_request(
            _with_token(credentials, claim), asked, runs_dir=runs_dir, database=database, stop=stop
        )
    except ClaimError as error:
        return SweepRow(claim.name, agent, "error", str(error), exit_code=1)
    return _row(claim.name, agent, outcome)


def _row(file: str, agent: str, outcome: RunOutcome) -> SweepRow:
    summary = summarize_run(None, outcome)
    word: SweepOutcome
    if outcome.already_finished:
        word = "already claimed"
    elif summary.outcome == "done":
        word = "claimed"
    else:
        word = summary.outcome if summary.outcome != "not run" else "error"
    renames = tuple(
        f"{display_name(rename)} -> {display_name(target_of(rename))}"
        for rename in outcome.plan.conflicts_resolution()
    )
    failures = tuple(
        f"{describe(failure.entity)}: {failure.failure_details}"
        for failure in outcome.document.failures
    )
    return SweepRow(
        file=file,
        agent=agent,
        outcome=word,
        message=summary.message,
        moved=summary.moved,
        renames=renames,
        failures=failures,
        run_id=outcome.run_id,
        exit_code=summary.exit_code,
    )
