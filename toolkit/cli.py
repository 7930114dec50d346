"""The `pulumi-claim` command line: parse, call the library, render, exit.

Heavy modules (httpx, pydantic, rich, the emulator) are imported inside the commands so that
`pulumi-claim --help` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from toolkit.display import printable
from toolkit.outcomes import exit_code, run_exit_code

if TYPE_CHECKING:
    from rich.console import Console

    from toolkit.credentials import Credentials
    from toolkit.errors import ClaimError
    from toolkit.journal import RunRecord
    from toolkit.landing_spec import LandingSpec
    from toolkit.models import AgentClaimResponse
    from toolkit.plan import ClaimPlan, ClaimTarget, EnvironmentChoice
    from toolkit.progress import ProgressCallback
    from toolkit.report import Format, Mode, ReportContext
    from toolkit.resolution_map import ResolutionMap
    from toolkit.run_log import JsonLog
    from toolkit.runs import ClaimRequest, RunOutcome
    from toolkit.strategies import StopSignal

T = TypeVar("T")

FORMATS = ("table", "json", "markdown", "html")
STRATEGIES = ("auto", "transfer", "migrate", "claim-api")
LOG_FORMATS = ("text", "json")
ENVIRONMENT_CHOICES = ("report", "copy")
SUFFIX_FORMATS = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".html": "html"}


@dataclass(frozen=True)
class Settings:
    """Global options, shared by every command."""

    api_url: str | None
    verbose: int
    quiet: bool
    insecure: bool = False
    secrets: set[str] = field(default_factory=set, repr=False)
    """The run's tokens and passphrases once loaded: masked in logs, errors and reports."""

    def credentials(self, target: ClaimTarget, claim_file: Path | None = None) -> Credentials:
        """The tokens of this run, for `target`. A claim token found at the pulumi CLI's default
        location (when neither --claim-file nor PULUMI_CLAIM_TOKEN gives one) is said on
        stderr, and so are the URLs that --insecure lets tokens travel to in cleartext."""
        from toolkit.credentials import is_cleartext_remote, load_credentials

        credentials = load_credentials(
            self.api_url,
            claim_file=claim_file,
            discover_claim_file=True,
            allow_insecure=self.insecure,
        )
        self.secrets.update(credentials.secrets)
        urls = (credentials.api_url, target.source_backend, target.destination_backend)
        cleartext = sorted({url for url in urls if url and is_cleartext_remote(url)})
        if cleartext:
            click.echo(
                f"warning: --insecure: tokens travel unencrypted to {', '.join(cleartext)}",
                err=True,
            )
        if credentials.claim_file and credentials.claim_file.discovered and not self.quiet:
            click.echo(f"using {credentials.claim_token_origin}", err=True)
        return credentials

    def progress_console(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, quiet=self.quiet)


pass_settings = click.make_pass_decorator(Settings)


class ClaimGroup(click.Group):
    """Turns the toolkit's errors into one line on stderr and exit code 1, for every command:
    masked, and printable (what the service said is part of it)."""

    def invoke(self, ctx: click.Context) -> Any:
        from toolkit.errors import ClaimError
        from toolkit.redaction import redact

        try:
            return super().invoke(ctx)
        except ClaimError as error:
            secrets = ctx.obj.secrets if isinstance(ctx.obj, Settings) else ()
            _say(f"error: {redact(str(error), secrets)}")
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=ClaimGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--api-url",
    metavar="URL",
    help="Pulumi Cloud API (default: $PULUMI_BACKEND_URL, else https://api.pulumi.com).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow http:// URLs to other machines than this one; tokens then travel unencrypted.",
)
@click.option("-v", "--verbose", count=True, help="Show each request (-vv: more detail).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the report and errors.")
@click.version_option(package_name="pulumi-claim", prog_name="pulumi-claim")
@click.pass_context
def cli(ctx: click.Context, api_url: str | None, insecure: bool, verbose: int, quiet: bool) -> None:
    """Move Pulumi stacks from one Pulumi Cloud organization into another.

    Typical claim of an agent's account: `preview`, then `resolve` to write a resolution map
    for the name conflicts, then `commit`. Credentials come from the environment:
    PULUMI_ACCESS_TOKEN (destination), PULUMI_CLAIM_SOURCE_TOKEN (source; defaults to the
    destination identity), PULUMI_CLAIM_TOKEN (the agent's claim token, optional; or
    --claim-file, else the pulumi CLI's /tmp/.pulumi/agent-claim.json when it exists).

    Exit codes: 0 done, 1 error, 2 usage, 3 blocked (nothing changed): by unresolved
    conflicts, or with claim-api by entities the service cannot move, 4 partial (failures
    reported).
    """
    settings = Settings(api_url=api_url, verbose=verbose, quiet=quiet, insecure=insecure)
    if verbose:
        from toolkit.redaction import RedactingFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            RedactingFormatter("%(levelname)s %(name)s: %(message)s", settings.secrets)
        )
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO, handlers=[handler]
        )
        if verbose < 2:
            # One line per request comes from the toolkit's own client; httpx's repeats it.
            logging.getLogger("httpx").setLevel(logging.WARNING)
    ctx.obj = settings


def target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--from/--to and the optional backends, handed to the command as one `target`."""

    @functools.wraps(command)
    def with_target(
        *args: Any,
        source_org: str,
        destination_org: str,
        source_backend: str | None,
        destination_backend: str | None,
        **kwargs: Any,
    ) -> Any:
        from toolkit.plan import ClaimTarget

        settings = click.get_current_context().find_object(Settings)
        target = ClaimTarget(
            source_org,
            destination_org,
            source_backend,
            destination_backend,
            allow_insecure=settings is not None and settings.insecure,
        )
        return command(*args, target=target, **kwargs)

    options = [
        click.option(
            "--from", "source_org", required=True, metavar="ORG", help="Org to move from."
        ),
        click.option(
            "--to", "destination_org", required=True, metavar="ORG", help="Org to move into."
        ),
        click.option(
            "--source-backend",
            metavar="URL",
            help="Where the source org lives, if not at the API URL: another Pulumi Cloud or a "
            "self-managed backend such as file:///path (org `organization`). migrate only.",
        ),
        click.option(
            "--destination-backend",
            metavar="URL",
            help="Where the destination org lives, if not at the API URL. migrate only.",
        ),
    ]
    for option in reversed(options):
        with_target = option(with_target)
    return with_target


def output_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--output FILE, checked writable before the command does anything (a commit never runs
    to the end only to find it cannot write its report)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_checked_output(*args: Any, output: Path | None, **kwargs: Any) -> Any:
            from toolkit.private_files import check_output_path

            if output is not None:
                check_output_path(output)
            return command(*args, output=output, **kwargs)

        return click.option(
            "--output",
            "-o",
            type=click.Path(dir_okay=False, path_type=Path),
            help=help_text,
        )(with_checked_output)

    return decorate


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = output_option("Write the report to FILE instead of printing it.")(command)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        help="Report format (default: table on a terminal, json otherwise; "
        "with --output, from the file's suffix).",
    )(command)


def resolutions_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--resolutions",
        "-r",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Resolution map (YAML or JSON) renaming entities whose names collide.",
    )(command)


def strategy_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--strategy",
        type=click.Choice(STRATEGIES),
        default="auto",
        show_default=True,
        help="How stacks move: claim-api (the service's own claim, with the agent's claim "
        "token and a claimer with any role in the destination; all or nothing; keeps history), "
        "transfer (REST transfer; one identity admin of both orgs; keeps history), migrate "
        "(copy the state with two identities through the pulumi CLI; works across backends; "
        "keeps only the latest state); auto: claim-api when a claim token is at hand, else "
        "transfer when the credentials allow it, else migrate.",
    )(command)


def no_landing_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--no-landing",
        is_flag=True,
        help="Skip the landing program that the resolution map's landing: section asks for "
        "(tags and team permissions on what moved).",
    )(command)


def environments_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--environments",
        type=click.Choice(ENVIRONMENT_CHOICES),
        default="report",
        show_default=True,
        help="What becomes of the source's ESC environments with transfer and migrate: report "
        "them as failures, with what to do by hand; or copy each into the destination (its "
        "decrypted definition written there, imports pointed at the copies, tags copied, "
        "verified; the map's environment renames apply). With claim-api: those the service "
        "cannot claim are copied, then removed from the agent's org (as the agent: set "
        "PULUMI_CLAIM_SOURCE_TOKEN to its token) before the claim.",
    )(command)


def claim_file_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--claim-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The agent's agent-claim.json (the pulumi CLI writes it at sign-up) to read the "
        "claim token from (default: PULUMI_CLAIM_TOKEN, else /tmp/.pulumi/agent-claim.json "
        "when it exists).",
    )(command)


def migrate_via_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--migrate-via",
        type=click.Choice(["rest", "cli"]),
        help="migrate: how both sides are reached. rest (the default when both are Pulumi "
        "Cloud): every step is a REST call, no pulumi process. cli: through the pulumi CLI, "
        "as with a self-managed backend (which only cli reaches).",
    )(command)


def log_format_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        default="text",
        show_default=True,
        help="text: progress for people on stderr; json: one JSON object per line on stdout "
        "(every progress event, then the claim's outcome), for log collectors.",
    )(command)


@cli.command()
@target_options
@resolutions_option
@strategy_option
@environments_option
@claim_file_option
@migrate_via_option
@no_landing_option
@output_options
@pass_settings
def preview(
    settings: Settings,
    target: ClaimTarget,
    resolutions: Path | None,
    strategy: str,
    environments: str,
    claim_file: Path | None,
    migrate_via: str | None,
    no_landing: bool,
    fmt: str | None,
    output: Path | None,
) -> None:
    """Show what a commit would do, changing nothing.

    Exit 0 when a commit would fully succeed, 3 when it would be blocked (unresolved
    conflicts; with claim-api, anything the service cannot move), 4 when some entities would
    be reported as failures, or the landing would fail.
    """
    from toolkit.outcomes import EXIT_BLOCKED, EXIT_PARTIAL, worst_exit_code

    credentials = settings.credentials(target, claim_file)
    resolution_map, _ = _resolution_map(resolutions)
    plan = _plan(credentials, target, resolution_map, strategy, environments, migrate_via)
    document = plan.to_claim_response()
    _report(settings, document, plan, "preview", fmt, output)
    code = exit_code(document, plan.strategy)
    spec = None if no_landing else resolution_map.landing
    if (
        spec is not None
        and code != EXIT_BLOCKED
        and not _preview_landing(credentials, plan, document, spec)
    ):
        code = worst_exit_code([code, EXIT_PARTIAL])
    sys.exit(code)


@cli.command()
@target_options
@resolutions_option
@strategy_option
@environments_option
@claim_file_option
@click.option(
    "--delete-source",
    is_flag=True,
    help="migrate: remove each source stack once its copy is verified (the resources are "
    "not destroyed; the destination stack manages them). With --environments copy: remove "
    "the source environments once every copy is verified.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--break-lock",
    is_flag=True,
    help="Take the source org's lock from a run that is stale or left the org unfinished.",
)
@click.option(
    "--new-run",
    is_flag=True,
    help="Plan afresh, even when the same commit ran before (finished or not).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    help="Calls made at once, and with migrate stacks at once; default 16 (migrate through "
    "the pulumi CLI: 4).",
)
@migrate_via_option
@no_landing_option
@log_format_option
@output_options
@pass_settings
def commit(
    settings: Settings,
    target: ClaimTarget,
    resolutions: Path | None,
    strategy: str,
    environments: str,
    claim_file: Path | None,
    delete_source: bool,
    yes: bool,
    break_lock: bool,
    new_run: bool,
    concurrency: int | None,
    migrate_via: str | None,
    no_landing: bool,
    log_format: str,
    fmt: str | None,
    output: Path | None,
) -> None:
    """Move the stacks. A blocked claim (unresolved conflicts; with claim-api, anything the
    service cannot move) changes nothing (exit 3).

    Running the same commit again continues it: after a failure, a kill or Ctrl-C, it finds
    each stack where the last run left it and does only what is left; once finished, it does
    nothing and says so. One run per source org at a time.

    With a landing: section in the resolution map, the landing program then tags what moved
    and grants the teams it names access (--no-landing skips it); a landing that fails undoes
    no move (exit 4), and running the same command again retries it.

    With --log-format json, stdout holds only JSON lines: claim-started, run-started, one per
    progress event, and a last claim-finished (exit code, outcome, counts, run id); the report
    is written only with --output.
    """
    from toolkit.errors import ClaimError
    from toolkit.journal import default_runs_dir
    from toolkit.outcomes import summarize_error
    from toolkit.private_files import check_runs_dir
    from toolkit.run_log import JsonLog
    from toolkit.runs import ClaimRequest, map_identity, signals_ignored, stop_on_signals
    from toolkit.strategies import StopSignal

    if log_format == "json" and fmt and not output:
        raise click.UsageError(
            "--log-format json writes JSON lines to stdout; write the report with --output FILE."
        )
    log: JsonLog | None = None
    # Ctrl-C and SIGTERM stop the run, up to the exit: the run decides the outcome, once.
    with stop_on_signals(StopSignal(), on_stop=_say_stopping) as stop:
        try:
            runs_dir = default_runs_dir()
            check_runs_dir(runs_dir, writable=True)
            credentials = settings.credentials(target, claim_file)
            if log_format == "json":
                log = JsonLog(click.echo, credentials.secrets)
                log.claim_started(None, target, strategy)
            resolution_map, map_text = _resolution_map(resolutions)
            request = ClaimRequest(
                target=target,
                resolution_map=resolution_map,
                map_identity=map_identity(map_text),
                strategy=None if strategy == "auto" else strategy,  # type: ignore[arg-type]
                delete_source=delete_source,
                concurrency=concurrency,
                landing=None if no_landing else resolution_map.landing,
                environments="copy" if environments == "copy" else "report",
                migrate_via=migrate_via,  # type: ignore[arg-type]
            )
            outcome = _commit(
                settings, credentials, request, runs_dir, yes, break_lock, new_run, log, stop
            )
        except ClaimError as error:
            if log_format == "json":
                (log or JsonLog(click.echo)).claim_finished(summarize_error(None, error))
            raise
        with signals_ignored():
            _report_outcome(settings, outcome, log, fmt, output, stopped=stop.requested)


def _report_outcome(
    settings: Settings,
    outcome: RunOutcome,
    log: JsonLog | None,
    fmt: str | None,
    output: Path | None,
    *,
    stopped: bool,
) -> None:
    """Report what the run decided, and exit with its code (`stopped`: a stop was asked)."""
    from toolkit.outcomes import summarize_run

    if log is None or output:
        _report(settings, outcome.document, outcome.plan, "commit", fmt, output)
    if log is not None:
        log.claim_finished(summarize_run(None, outcome))
    else:
        _report_landing(outcome)
    if outcome.interrupted:
        click.echo(
            f"interrupted: run {outcome.run_id} stopped; calls in flight finished and are "
            "recorded. Run the same command again to continue it.",
            err=True,
        )
    elif stopped:
        click.echo(
            f"not interrupted: run {outcome.run_id} had made its last call before it could "
            "stop; the outcome above stands.",
            err=True,
        )
    sys.exit(run_exit_code(outcome))


def _say_stopping() -> None:
    """What a commit says on Ctrl-C or SIGTERM; from the signal handler, hence `os.write` to
    standard error's file descriptor."""
    os.write(2, b"stopping: no new call starts; the calls under way finish and are recorded\n")


def _commit(
    settings: Settings,
    credentials: Credentials,
    request: ClaimRequest,
    runs_dir: Path,
    yes: bool,
    break_lock: bool,
    new_run: bool,
    log: JsonLog | None,
    stop: StopSignal,
) -> RunOutcome:
    """The commit itself, its progress on stderr, or with `log` as JSON lines."""
    from toolkit.progress_display import ProgressDisplay
    from toolkit.runs import commit_request

    console = settings.progress_console()

    def confirm(plan: ClaimPlan, resumed: bool) -> None:
        if (plan.moves or plan.environment_copies) and not yes:
            _confirm(plan, request.delete_source, resumed)

    def announce(run_id: str, resumed: bool) -> None:
        console.print(f"{'continuing' if resumed else 'run'} {run_id}")
        if log is not None:
            log.run_started(None, run_id, resumed)

    async def run() -> RunOutcome:
        with contextlib.ExitStack() as displayed:
            on_progress: ProgressCallback
            if log is None:
                on_progress = displayed.enter_context(ProgressDisplay(console))
            else:
                on_progress = functools.partial(log.progress, None)
            return await commit_request(
                credentials,
                request,
                runs_dir=runs_dir,
                on_progress=on_progress,
                break_lock=break_lock,
                new_run=new_run,
                stop=stop,
                confirm=confirm,
                on_run=announce,
            )

    outcome = _run(run())
    if outcome.already_finished:
        console.print(
            f"nothing to do: run {outcome.run_id} finished this commit already "
            "(pass --new-run to plan it afresh)"
        )
    return outcome


@cli.command()
@target_options
@claim_file_option
@click.option(
    "--suffix",
    default="-agent",
    show_default=True,
    help="Appended to each conflicting name to make the new name.",
)
@output_option("Write the map to FILE (default: print it).")
@pass_settings
def resolve(
    settings: Settings,
    target: ClaimTarget,
    claim_file: Path | None,
    suffix: str,
    output: Path | None,
) -> None:
    """Write a resolution map that renames today's conflicts (edit it, then pass it back).

    With a claim token, the conflicts are those the service's dry run of the claim reports.
    """
    from toolkit.claim import suggest_resolutions
    from toolkit.resolution_map import format_resolution_map

    credentials = settings.credentials(target, claim_file)
    suggestion, conflicts = _run(suggest_resolutions(credentials, target, suffix=suffix))
    text = format_resolution_map(suggestion.renames)
    console = settings.progress_console()
    if output:
        _write_file(output, text)
        console.print(
            f"wrote {len(suggestion.renames)} rename(s) for {conflicts} conflict(s) to {output}"
        )
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("run", required=False)
@output_options
@pass_settings
def status(settings: Settings, run: str | None, fmt: str | None, output: Path | None) -> None:
    """Show what a commit did (or was doing when it stopped): the newest run, or RUN.

    With a landing, its latest outcome too (on stderr beside a JSON report, which is the
    service's document).

    Runs are kept in $PULUMI_CLAIM_RUNS_DIR (default: ~/.local/state/pulumi-claim/runs).
    """
    from toolkit.journal import default_runs_dir, read_run
    from toolkit.outcomes import EXIT_PARTIAL, worst_exit_code
    from toolkit.plan import ClaimPlan, ClaimTarget
    from toolkit.private_files import check_runs_dir
    from toolkit.report import ReportContext, copied_environments

    runs_dir = default_runs_dir()
    check_runs_dir(runs_dir, writable=False)
    record = read_run(runs_dir, run)
    document = record.result or record.plan
    recorded = ClaimPlan.from_record(
        target=ClaimTarget(source_org=record.source_org, destination_org=record.destination_org),
        strategy=record.strategy,
        document=record.plan,
        notices=record.notices,
        has_claim=record.has_claim,
    )
    context = ReportContext(
        mode="commit",
        source_org=record.source_org,
        destination_org=record.destination_org,
        strategy=record.strategy,
        outcome=f"run {record.run_id}, started {record.started_at}, {_run_state(record)}",
        notices=(*_calls(record), *(f"{at}  {message}" for at, message in record.events)),
        has_claim=record.has_claim,
        landing=_landing_status(record),
        copied=copied_environments(recorded),
    )
    _emit(settings, document, context, fmt, output)
    if context.landing is not None and _format(fmt, output) == "json":
        # The JSON report is the wire document: the landing goes beside it, as commit's does.
        _say(f"landing: {context.landing}")
    if not record.finished:
        sys.exit(1)
    landing_failed = record.landing is not None and record.landing.outcome == "failed"
    code = exit_code(document, record.strategy)
    sys.exit(worst_exit_code([code, EXIT_PARTIAL]) if landing_failed else code)


def _landing_status(record: RunRecord) -> str | None:
    """The run's latest landing (`at`, then what it did or why it failed), and how many
    landings came before it; None when the run was not landed."""
    latest = record.landing
    if latest is None:
        return None
    earlier = len(record.landings) - 1
    before = f" (after {earlier} earlier landing(s))" if earlier else ""
    return f"{latest.at}  {latest.describe()}{before}"


def _run_state(record: RunRecord) -> str:
    from toolkit.progress import unknown_outcomes

    attempts = f" in {record.attempts} attempts" if record.attempts > 1 else ""
    failures = record.result.failures if record.result else []
    if unknown := unknown_outcomes(f.failure_details for f in failures):
        attempts += (
            f"; {unknown} move of unknown outcome"
            if unknown == 1
            else (f"; {unknown} moves of unknown outcome")
        )
    if record.state == "finished":
        return f"finished {record.finished_at}{attempts}"
    if record.state == "interrupted":
        return f"interrupted {record.finished_at}; the same command continues it"
    return "did not finish (stopped or still running); the same command continues it"


def _calls(record: RunRecord) -> list[str]:
    """What the journal says of the run's state-changing calls: counts, then each call whose
    outcome is not recorded (it was under way when the run stopped) or is unknown."""
    outcomes = Counter(step.outcome or "under way" for step in record.steps)
    counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    open_calls = [
        f"{step.at}  {step.action} {step.move} ({step.detail}): "
        + ("no outcome recorded" if step.outcome is None else f"unknown: {step.message}")
        for step in record.steps
        if step.outcome in (None, "unknown")
    ]
    return [f"calls: {counts or 'none'}", *open_calls]


FAULT_KINDS = {
    "500": "500",
    "502": "502",
    "503": "503",
    "429": "429",
    "drop": "drop",
    "drop-after-apply": "dropAfterApply",
}
"""`--fault-rate` kinds, as the command line spells them, and as `FaultRates` does."""


def _parse_fault_rates(
    ctx: click.Context, param: click.Parameter, specs: tuple[str, ...]
) -> dict[str, float]:
    """`--fault-rate KIND=RATE` options, as `FaultRates.rates`."""
    rates: dict[str, float] = {}
    for spec in specs:
        kind, equals, rate_text = spec.partition("=")
        if kind not in FAULT_KINDS or not equals:
            raise click.BadParameter(
                f"{spec!r}: expected KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}"
            )
        try:
            rate = float(rate_text)
        except ValueError:
            rate = -1.0
        if not 0 <= rate <= 1:
            raise click.BadParameter(f"{spec!r}: the rate must be a number from 0 to 1")
        rates[FAULT_KINDS[kind]] = rate
    return rates


@cli.group()
def job() -> None:
    """Run the claims of a job file one after another, for schedulers (cron, CI, Kubernetes).

    The file format is on the documentation's Scheduled jobs page (docs/jobs.md).
    """


job_file_argument = click.argument(
    "job_file", metavar="JOB", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)


@job.command("run")
@job_file_argument
@log_format_option
@pass_settings
def job_run(settings: Settings, job_file: Path, log_format: str) -> None:
    """Run every claim of JOB (YAML or JSON) in file order, asking nothing.

    The whole file is checked first; nothing runs when any of it is wrong (exit 1). A claim
    that fails with an error does not stop the others. Running the job again continues each
    unfinished claim and does nothing for a finished one. Exit code: the worst of the claims'
    (0 done < 3 blocked < 4 partial < 1 error; 130 interrupted, when the claims not yet
    started are not run). With --log-format json, stdout holds one JSON object per line,
    ending with a summary of every claim.
    """
    from toolkit.jobs import load_job, run_job
    from toolkit.journal import default_runs_dir
    from toolkit.run_log import JsonLog, TextLog
    from toolkit.runs import stop_on_signals
    from toolkit.strategies import StopSignal

    loaded = load_job(job_file, api_url=settings.api_url)
    log: JsonLog | TextLog
    if log_format == "json":
        log = JsonLog(click.echo, loaded.secrets)
    else:
        log = TextLog(settings.progress_console(), _stdout_console(), loaded.secrets)

    # Ctrl-C and SIGTERM stop the job, up to the exit: its claims decide the outcome, once.
    with stop_on_signals(StopSignal()) as stop:
        result = _run(run_job(loaded, log, runs_dir=default_runs_dir(), stop=stop))
        sys.exit(result.exit_code)


@job.command("check")
@job_file_argument
@pass_settings
def job_check(settings: Settings, job_file: Path) -> None:
    """Check JOB and print what `job run` would do; calls no service.

    Every problem of the file is listed (exit 1): its shape, its resolution maps, and the
    environment variables it names for tokens.
    """
    from toolkit.jobs import describe_job, load_job

    text = describe_job(load_job(job_file, api_url=settings.api_url))
    click.echo(printable(text, keep_newlines=True), nl=False)


@cli.command()
@click.option(
    "--world",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="World file (YAML or JSON) describing users, agents and orgs.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port; 0 picks a free one.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file for the state; reused if it exists (default: in memory).",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Items per page of lists that name no page size.",
)
@click.option(
    "--max-page-size",
    type=click.IntRange(min=1),
    help="The most items per page a list call may ask for (default: --page-size).",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Added to every request.",
)
@click.option(
    "--fault-rate",
    "fault_rates",
    multiple=True,
    metavar="KIND=RATE",
    callback=_parse_fault_rates,
    help="Fail this fraction (0-1) of requests at random; KIND: 500, 502, 503, 429, drop "
    "(the connection, before the change), drop-after-apply (after it). Repeatable.",
)
@click.option("--fault-seed", type=int, help="Seed of the random faults, to repeat a run.")
@click.option(
    "--retry-after",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds in the Retry-After header of random 429 answers.",
)
@click.option(
    "--fault-method",
    default=".*",
    show_default=True,
    help="Regex: the methods random faults may hit.",
)
@click.option(
    "--fault-path", default=".*", show_default=True, help="Regex: the paths random faults may hit."
)
@click.option(
    "--signup-difficulty",
    type=click.IntRange(1, 256),
    help="Zero bits of agent sign-up's proof of work (default: the world's, else 12).",
)
def emulator(
    world: Path,
    host: str,
    port: int,
    db: Path | None,
    page_size: int,
    max_page_size: int | None,
    latency_ms: float,
    fault_rates: dict[str, float],
    fault_seed: int | None,
    retry_after: float,
    fault_method: str,
    fault_path: str,
    signup_difficulty: int | None,
) -> None:
    """Serve a local Pulumi Cloud for rehearsals and tests; the first line says its URL.

    Random faults (--fault-rate) hit service calls only: never agent sign-up nor the
    control API under /_emulator/, which sets them too and restarts the server
    (docs/emulator.md).
    """
    from pydantic import ValidationError

    from toolkit.emulator.faults import FaultRates
    from toolkit.emulator.server import serve_forever

    if max_page_size is not None and max_page_size < page_size:
        raise click.UsageError(
            f"--max-page-size ({max_page_size}) must be at least --page-size ({page_size})."
        )
    rates = None
    if fault_rates:
        try:
            rates = FaultRates.model_validate(
                {
                    "seed": fault_seed,
                    "rates": fault_rates,
                    "retryAfter": retry_after,
                    "method": fault_method,
                    "path": fault_path,
                }
            )
        except ValidationError as exc:
            options = {"method": "--fault-method", "path": "--fault-path"}
            problems = "; ".join(
                f"{options.get(str(error['loc'][0]) if error['loc'] else '', '--fault-rate')}: "
                f"{error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors()
            )
            raise click.UsageError(f"the fault options do not fit together: {problems}") from None
    serve_forever(
        world,
        host=host,
        port=port,
        db_path=str(db) if db else ":memory:",
        page_size=page_size,
        max_page_size=max_page_size,
        latency_ms=latency_ms,
        fault_rates=rates,
        signup_difficulty=signup_difficulty,
    )


@cli.command()
@click.option(
    "--transfer",
    is_flag=True,
    help="Show the org-to-org move by an admin of both orgs instead of an agent's claim.",
)
@pass_settings
def demo(settings: Settings, transfer: bool) -> None:
    """Run the whole flow against a built-in world on a local emulator; no account needed.

    An AI agent signs up an account and builds stacks; a member of the company's org claims the
    account with its claim link, renaming what collides.
    """
    from toolkit.demo import run_demo

    sys.exit(_run(run_demo(_stdout_console(), settings.progress_console(), transfer=transfer)))


def _plan(
    credentials: Credentials,
    target: ClaimTarget,
    resolutions: Path | ResolutionMap | None,
    strategy: str,
    environments: str = "report",
    migrate_via: str | None = None,
) -> ClaimPlan:
    from toolkit.claim import plan_claim
    from toolkit.resolution_map import ResolutionMap

    resolution_map = (
        resolutions if isinstance(resolutions, ResolutionMap) else _resolution_map(resolutions)[0]
    )
    chosen = None if strategy == "auto" else strategy
    copy: EnvironmentChoice = "copy" if environments == "copy" else "report"
    return _run(
        plan_claim(
            credentials,
            target,
            resolution_map,
            chosen,  # type: ignore[arg-type]
            copy,
            migrate_via,  # type: ignore[arg-type]
        )
    )


# --- Landing --------------------------------------------------------------------------------


def _preview_landing(
    credentials: Credentials, plan: ClaimPlan, document: AgentClaimResponse, spec: LandingSpec
) -> bool:
    """Print what landing would change after this plan's moves (on stderr, beside the
    report); False when it would fail (the reason printed)."""
    from toolkit.errors import ClaimError
    from toolkit.landing import preview_landing
    from toolkit.landing_spec import landing_of

    target = plan.target
    try:
        result = _run(
            preview_landing(
                target.destination_identity(credentials),
                destination_org=target.destination_org,
                stack=spec.stack_name(target.source_org),
                build=landing_of(
                    spec,
                    document,
                    source_org=target.source_org,
                    destination_org=target.destination_org,
                    run_id=PREVIEW_RUN_ID,
                ),
            )
        )
    except ClaimError as error:
        _say(_landing_failure(error))
        return False
    where = " (a new stack, previewed locally)" if result.local_preview else ""
    _say(f"landing {result.stack}{where}: {result.summary()}")
    for step in result.steps:
        _say(f"  {step.op:<8} {step.type} {step.name}")
    return True


PREVIEW_RUN_ID = "(the commit's run id)"
"""What a preview shows as the run tag's value, which only the commit knows."""


def _landing_failure(error: ClaimError) -> str:
    """Why landing failed, with its hint; a LandingError says it is the landing's already."""
    from toolkit.errors import LandingError

    return str(error) if isinstance(error, LandingError) else f"landing failed: {error}"


def _report_landing(outcome: RunOutcome) -> None:
    """The commit's landing on stderr, beside the report: what changed, or why it failed."""
    from toolkit.outcomes import landing_line

    line = landing_line(outcome)
    if line is None:
        return
    if outcome.landing_error is not None:
        _say(_landing_failure(outcome.landing_error))
        return
    _say(line)
    for step in outcome.landing.steps if outcome.landing else []:
        _say(f"  {step.op:<8} {step.type} {step.name}")


def _resolution_map(path: Path | None) -> tuple[ResolutionMap, str | None]:
    """The map at `path` (none: the empty map), and the text it was read from."""
    from toolkit.resolution_map import ResolutionMap, read_resolution_map

    if path is None:
        return ResolutionMap.empty(), None
    return read_resolution_map(path)


def _confirm(plan: ClaimPlan, delete_source: bool, resumed: bool = False) -> None:
    if not sys.stdin.isatty():
        raise click.UsageError("refusing to commit without --yes when not on a terminal.")
    if resumed:
        click.confirm(
            f"Continue the unfinished run of {plan.source_org} -> {plan.destination_org} "
            f"({len(plan.moves)} stack(s) planned, strategy {plan.strategy})?",
            abort=True,
            err=True,
        )
        return
    renamed = sum(1 for move in plan.moves if move.renamed)
    copies = plan.environment_copies
    if plan.strategy == "claim-api":
        first = f", {len(copies)} environment(s) copied and removed from it first" if copies else ""
        click.confirm(
            f"Claim {plan.source_org} into {plan.destination_org}: {len(plan.moves)} stack(s) "
            f"({renamed} renamed) move{first}, and the agent's org and token are retired?",
            abort=True,
            err=True,
        )
        return
    click.confirm(
        f"Move {len(plan.moves)} stack(s) ({renamed} renamed) from {plan.source_org} to "
        f"{plan.destination_org} with strategy {plan.strategy}"
        f"{f', and copy {len(plan.environment_copies)} environment(s)' if copies else ''}"
        f"{', deleting each source once copied' if delete_source else ''}?",
        abort=True,
        err=True,
    )


def _report(
    settings: Settings,
    document: AgentClaimResponse,
    plan: ClaimPlan,
    mode: Mode,
    fmt: str | None,
    output: Path | None,
) -> None:
    from toolkit.report import report_context

    _emit(settings, document, report_context(plan, mode, document), fmt, output)


def _emit(
    settings: Settings,
    document: AgentClaimResponse,
    context: ReportContext,
    fmt: str | None,
    output: Path | None,
) -> None:
    """The report, its tokens masked, to `output` (readable by the user only) or stdout."""
    from toolkit.report import print_report, render

    chosen = _format(fmt, output)
    secrets = settings.secrets
    if output:
        _write_file(output, render(document, chosen, context, secrets=secrets))
    elif chosen == "table":
        print_report(document, chosen, context, _stdout_console(), secrets=secrets)
    else:
        click.echo(render(document, chosen, context, secrets=secrets), nl=False)


def _write_file(path: Path, text: str) -> None:
    """`text` into `path`, 0600 (`write_private_text`); a failure is an error, not a traceback."""
    from toolkit.errors import InvalidInputError
    from toolkit.private_files import write_private_text

    try:
        write_private_text(path, text)
    except OSError as error:
        raise InvalidInputError(
            f"cannot write {path}: {error.strerror or error}",
            hint="Name a file in an existing folder you can write to.",
        ) from None


def _format(fmt: str | None, output: Path | None) -> Format:
    if fmt:
        return fmt  # type: ignore[return-value]
    if output:
        return SUFFIX_FORMATS.get(output.suffix.lower(), "table")  # type: ignore[return-value]
    return "table" if sys.stdout.isatty() else "json"


def _say(line: str) -> None:
    """`line` on stderr, printable (`toolkit.display`): it holds names or messages from the
    service, a map or the pulumi CLI."""
    click.echo(printable(line, keep_newlines=True), err=True)


def _stdout_console() -> Console:
    """A terminal's own width; 100 columns when the output goes to a pipe or a file."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=100)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coroutine)


def main() -> None:
    # gRPC's C core (loaded with the Automation API) writes its own diagnostics to stderr, such
    # as a poller's complaint while the interpreter exits: none of them is the command's output.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    signal.signal(signal.SIGTERM, _stop_as_interrupted)
    cli(prog_name="pulumi-claim")


def _stop_as_interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (`kill`, a service manager stopping the run) stops a run the way Ctrl-C does:
    no new stack starts, those under way finish or are undone, their workspaces are removed,
    exit 130. Python's own default would end the process on the spot, leaving them behind.

    As SIGINT, so that asyncio's own handler stops a running event loop in order; but where
    SIGINT is ignored (a background job of a script), by raising KeyboardInterrupt here."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        raise KeyboardInterrupt
    signal.raise_signal(signal.SIGINT)
