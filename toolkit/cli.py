"""The `pulumi-claim` command line, click only: parse the options, call a command
(`toolkit.commands`), render its result, exit with its code.

The options that several commands share are declared once, in `OPTIONS`. Heavy modules (httpx,
pydantic, rich, the emulator) are imported inside the commands so that `pulumi-claim --help`
stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from toolkit.choices import (
    ENVIRONMENT_CHOICES,
    FORMATS,
    LOG_FORMATS,
    MIGRATE_VIA,
    STRATEGY_NAMES,
    SUFFIX_FORMATS,
    EnvironmentChoice,
    Format,
    LogFormat,
    MigrateVia,
    StrategyName,
)
from toolkit.display import printable
from toolkit.outcomes import run_exit_code

if TYPE_CHECKING:
    from rich.console import Console

    from toolkit.commands import (
        ClaimPlan,
        ClaimRequest,
        ClaimTarget,
        Preview,
        RunOutcome,
        StopSignal,
    )
    from toolkit.credentials import Credentials
    from toolkit.models import AgentClaimResponse
    from toolkit.progress import ProgressCallback
    from toolkit.report import Mode, ReportContext
    from toolkit.run_log import JsonLog

Command = TypeVar("Command", bound=Callable[..., Any])


@dataclass(frozen=True)
class Settings:
    """Global options, shared by every command."""

    api_url: str | None
    verbose: int
    quiet: bool
    insecure: bool = False
    secrets: set[str] = field(default_factory=set, repr=False)
    """The run's tokens and passphrases once loaded: masked in logs, errors and reports."""

    def target(
        self,
        source_org: str,
        destination_org: str,
        source_backend: str | None,
        destination_backend: str | None,
    ) -> ClaimTarget:
        """--from/--to and the optional backends, as one target."""
        from toolkit.commands import ClaimTarget

        return ClaimTarget(
            source_org,
            destination_org,
            source_backend,
            destination_backend,
            allow_insecure=self.insecure,
        )

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


# --- The options several commands share -------------------------------------------------------


def _checked_output(ctx: click.Context, param: click.Parameter, output: Path | None) -> Path | None:
    """--output FILE, checked writable before the command does anything (a commit never runs
    to the end only to find it cannot write its report)."""
    from toolkit.private_files import check_output_path

    if output is not None:
        check_output_path(output)
    return output


def _output(help_text: str) -> Callable[[Command], Command]:
    return click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False, path_type=Path),
        callback=_checked_output,
        help=help_text,
    )


OPTIONS: dict[str, Callable[[Command], Command]] = {
    "from": click.option(
        "--from", "source_org", required=True, metavar="ORG", help="Org to move from."
    ),
    "to": click.option(
        "--to", "destination_org", required=True, metavar="ORG", help="Org to move into."
    ),
    "source-backend": click.option(
        "--source-backend",
        metavar="URL",
        help="Where the source org lives, if not at the API URL: another Pulumi Cloud or a "
        "self-managed backend such as file:///path (org `organization`). migrate only.",
    ),
    "destination-backend": click.option(
        "--destination-backend",
        metavar="URL",
        help="Where the destination org lives, if not at the API URL. migrate only.",
    ),
    "resolutions": click.option(
        "--resolutions",
        "-r",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Resolution map (YAML or JSON) renaming entities whose names collide.",
    ),
    "strategy": click.option(
        "--strategy",
        type=click.Choice(STRATEGY_NAMES),
        default="auto",
        show_default=True,
        help="How stacks move: claim-api (the service's own claim, with the agent's claim "
        "token and a claimer with any role in the destination; all or nothing; keeps "
        "history), transfer (REST transfer; one identity admin of both orgs; keeps history), "
        "migrate (copy the state with two identities through the pulumi CLI; works across "
        "backends; keeps only the latest state); auto: claim-api when a claim token is at "
        "hand, else transfer when the credentials allow it, else migrate.",
    ),
    "environments": click.option(
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
    ),
    "claim-file": click.option(
        "--claim-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The agent's agent-claim.json (the pulumi CLI writes it at sign-up) to read the "
        "claim token from (default: PULUMI_CLAIM_TOKEN, else /tmp/.pulumi/agent-claim.json "
        "when it exists).",
    ),
    "delete-source": click.option(
        "--delete-source",
        is_flag=True,
        help="migrate: remove each source stack once its copy is verified (the resources are "
        "not destroyed; the destination stack manages them). With --environments copy: remove "
        "the source environments once every copy is verified.",
    ),
    "yes": click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
    "break-lock": click.option(
        "--break-lock",
        is_flag=True,
        help="Take the source org's lock from a run that is stale or left the org unfinished.",
    ),
    "new-run": click.option(
        "--new-run",
        is_flag=True,
        help="Plan afresh, even when the same commit ran before (finished or not).",
    ),
    "concurrency": click.option(
        "--concurrency",
        type=click.IntRange(1, 64),
        help="Calls made at once, and with migrate stacks at once; default 16 (migrate "
        "through the pulumi CLI: 4).",
    ),
    "migrate-via": click.option(
        "--migrate-via",
        type=click.Choice(MIGRATE_VIA),
        help="migrate: how both sides are reached. rest (the default when both are Pulumi "
        "Cloud): every step is a REST call, no pulumi process. cli: through the pulumi CLI, "
        "as with a self-managed backend (which only cli reaches).",
    ),
    "no-landing": click.option(
        "--no-landing",
        is_flag=True,
        help="Skip the landing program that the resolution map's landing: section asks for "
        "(tags and team permissions on what moved).",
    ),
    "log-format": click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        default="text",
        show_default=True,
        help="text: progress for people on stderr; json: one JSON object per line on stdout "
        "(every progress event, then the claim's outcome), for log collectors.",
    ),
    "output": _output("Write the report to FILE instead of printing it."),
    "format": click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        help="Report format (default: table on a terminal, json otherwise; "
        "with --output, from the file's suffix).",
    ),
}
"""Every option more than one command takes (or that `preview` and `commit` share), by name."""

TARGET = ("from", "to", "source-backend", "destination-backend")
CLAIM = (*TARGET, "resolutions", "strategy", "environments", "claim-file")
"""What `preview` and `commit` both take."""
REPORT = ("format", "output")


def options(*names: str) -> Callable[[Command], Command]:
    """The options of `OPTIONS` named `names`, in that order."""

    def decorate(command: Command) -> Command:
        for name in reversed(names):
            command = OPTIONS[name](command)
        return command

    return decorate


# --- The commands ---------------------------------------------------------------------------


@cli.command()
@options(*CLAIM, "migrate-via", "no-landing", *REPORT)
@pass_settings
def preview(
    settings: Settings,
    source_org: str,
    destination_org: str,
    source_backend: str | None,
    destination_backend: str | None,
    resolutions: Path | None,
    strategy: StrategyName,
    environments: EnvironmentChoice,
    claim_file: Path | None,
    migrate_via: MigrateVia | None,
    no_landing: bool,
    output: Path | None,
    fmt: Format | None,
) -> None:
    """Show what a commit would do, changing nothing.

    Exit 0 when a commit would fully succeed, 3 when it would be blocked (unresolved
    conflicts; with claim-api, anything the service cannot move), 4 when some entities would
    be reported as failures, or the landing would fail.
    """
    from toolkit import commands

    target = settings.target(source_org, destination_org, source_backend, destination_backend)
    credentials = settings.credentials(target, claim_file)
    request = commands.claim_request(
        target,
        resolutions,
        strategy=strategy,
        environments=environments,
        migrate_via=migrate_via,
        landing=not no_landing,
    )
    result = commands.preview(credentials, request)
    _report(settings, result.document, result.plan, "preview", fmt, output)
    _say_preview_landing(result)
    sys.exit(result.exit_code)


def _say_preview_landing(result: Preview) -> None:
    """What landing would change after the moves (on stderr, beside the report), or why it
    would fail."""
    from toolkit.commands import landing_failure

    if result.landing_error is not None:
        _say(landing_failure(result.landing_error))
    if result.landing is None:
        return
    where = " (a new stack, previewed locally)" if result.landing.local_preview else ""
    _say(f"landing {result.landing.stack}{where}: {result.landing.summary()}")
    for step in result.landing.steps:
        _say(f"  {step.op:<8} {step.type} {step.name}")


@cli.command()
@options(
    *CLAIM,
    "delete-source",
    "yes",
    "break-lock",
    "new-run",
    "concurrency",
    "migrate-via",
    "no-landing",
    "log-format",
    *REPORT,
)
@pass_settings
def commit(
    settings: Settings,
    source_org: str,
    destination_org: str,
    source_backend: str | None,
    destination_backend: str | None,
    resolutions: Path | None,
    strategy: StrategyName,
    environments: EnvironmentChoice,
    claim_file: Path | None,
    delete_source: bool,
    yes: bool,
    break_lock: bool,
    new_run: bool,
    concurrency: int | None,
    migrate_via: MigrateVia | None,
    no_landing: bool,
    log_format: LogFormat,
    output: Path | None,
    fmt: Format | None,
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
    from toolkit import commands
    from toolkit.errors import ClaimError
    from toolkit.outcomes import summarize_error
    from toolkit.run_log import JsonLog

    target = settings.target(source_org, destination_org, source_backend, destination_backend)
    if log_format == "json" and fmt and not output:
        raise click.UsageError(
            "--log-format json writes JSON lines to stdout; write the report with --output FILE."
        )
    log: JsonLog | None = None
    # Ctrl-C and SIGTERM stop the run, up to the exit: the run decides the outcome, once.
    with commands.stopping(on_stop=_say_stopping) as stop:
        try:
            runs_dir = commands.runs_folder(writable=True)
            credentials = settings.credentials(target, claim_file)
            if log_format == "json":
                log = JsonLog(click.echo, credentials.secrets)
                log.claim_started(None, target, strategy)
            request = commands.claim_request(
                target,
                resolutions,
                strategy=strategy,
                environments=environments,
                migrate_via=migrate_via,
                landing=not no_landing,
                delete_source=delete_source,
                concurrency=concurrency,
            )
            outcome = _commit(
                settings, credentials, request, runs_dir, yes, break_lock, new_run, log, stop
            )
        except ClaimError as error:
            if log_format == "json":
                (log or JsonLog(click.echo)).claim_finished(summarize_error(None, error))
            raise
        with commands.signals_ignored():
            _report_outcome(settings, outcome, log, fmt, output, stopped=stop.requested)


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
    from toolkit import commands
    from toolkit.progress_display import ProgressDisplay

    console = settings.progress_console()

    def confirm(plan: ClaimPlan, resumed: bool) -> None:
        if (plan.moves or plan.environment_copies) and not yes:
            if not sys.stdin.isatty():
                raise click.UsageError("refusing to commit without --yes when not on a terminal.")
            question = commands.confirmation(
                plan, delete_source=request.delete_source, resumed=resumed
            )
            click.confirm(question, abort=True, err=True)

    def announce(run_id: str, resumed: bool) -> None:
        console.print(f"{'continuing' if resumed else 'run'} {run_id}")
        if log is not None:
            log.run_started(None, run_id, resumed)

    with contextlib.ExitStack() as displayed:
        on_progress: ProgressCallback
        if log is None:
            on_progress = displayed.enter_context(ProgressDisplay(console))
        else:
            on_progress = functools.partial(log.progress, None)
        outcome = commands.commit(
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
    if outcome.already_finished:
        console.print(
            f"nothing to do: run {outcome.run_id} finished this commit already "
            "(pass --new-run to plan it afresh)"
        )
    return outcome


def _report_outcome(
    settings: Settings,
    outcome: RunOutcome,
    log: JsonLog | None,
    fmt: Format | None,
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
        _say_landing(outcome)
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


def _say_landing(outcome: RunOutcome) -> None:
    """The commit's landing on stderr, beside the report: what changed, or why it failed."""
    from toolkit.commands import landing_failure
    from toolkit.outcomes import landing_line

    line = landing_line(outcome)
    if line is None:
        return
    if outcome.landing_error is not None:
        _say(landing_failure(outcome.landing_error))
        return
    _say(line)
    for step in outcome.landing.steps if outcome.landing else []:
        _say(f"  {step.op:<8} {step.type} {step.name}")


@cli.command()
@options(*TARGET, "claim-file")
@click.option(
    "--suffix",
    default="-agent",
    show_default=True,
    help="Appended to each conflicting name to make the new name.",
)
@_output("Write the map to FILE (default: print it).")
@pass_settings
def resolve(
    settings: Settings,
    source_org: str,
    destination_org: str,
    source_backend: str | None,
    destination_backend: str | None,
    claim_file: Path | None,
    suffix: str,
    output: Path | None,
) -> None:
    """Write a resolution map that renames today's conflicts (edit it, then pass it back).

    With a claim token, the conflicts are those the service's dry run of the claim reports.
    """
    from toolkit import commands

    target = settings.target(source_org, destination_org, source_backend, destination_backend)
    credentials = settings.credentials(target, claim_file)
    result = commands.resolve(credentials, target, suffix=suffix)
    if output:
        _write_file(output, result.text)
        settings.progress_console().print(
            f"wrote {len(result.resolution_map.renames)} rename(s) for {result.conflicts} "
            f"conflict(s) to {output}"
        )
    else:
        click.echo(result.text, nl=False)


@cli.command()
@click.argument("run", required=False)
@options(*REPORT)
@pass_settings
def status(settings: Settings, run: str | None, output: Path | None, fmt: Format | None) -> None:
    """Show what a commit did (or was doing when it stopped): the newest run, or RUN.

    With a landing, its latest outcome too (on stderr beside a JSON report, which is the
    service's document).

    Runs are kept in $PULUMI_CLAIM_RUNS_DIR (default: ~/.local/state/pulumi-claim/runs).
    """
    from toolkit import commands

    result = commands.status(run)
    _emit(settings, result.document, result.context, fmt, output)
    if result.context.landing is not None and _format(fmt, output) == "json":
        # The JSON report is the wire document: the landing goes beside it, as commit's does.
        _say(f"landing: {result.context.landing}")
    sys.exit(result.exit_code)


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
@options("log-format")
@pass_settings
def job_run(settings: Settings, job_file: Path, log_format: LogFormat) -> None:
    """Run every claim of JOB (YAML or JSON) in file order, asking nothing.

    The whole file is checked first; nothing runs when any of it is wrong (exit 1). A claim
    that fails with an error does not stop the others. Running the job again continues each
    unfinished claim and does nothing for a finished one. Exit code: the worst of the claims'
    (0 done < 3 blocked < 4 partial < 1 error; 130 interrupted, when the claims not yet
    started are not run). With --log-format json, stdout holds one JSON object per line,
    ending with a summary of every claim.
    """
    from toolkit import commands
    from toolkit.run_log import JsonLog, TextLog

    loaded = commands.check_job(job_file, api_url=settings.api_url)
    log: JsonLog | TextLog
    if log_format == "json":
        log = JsonLog(click.echo, loaded.secrets)
    else:
        log = TextLog(settings.progress_console(), _stdout_console(), loaded.secrets)

    # Ctrl-C and SIGTERM stop the job, up to the exit: its claims decide the outcome, once.
    with commands.stopping() as stop:
        result = commands.run_job(loaded, log, stop=stop)
        sys.exit(result.exit_code)


@job.command("check")
@job_file_argument
@pass_settings
def job_check(settings: Settings, job_file: Path) -> None:
    """Check JOB and print what `job run` would do; calls no service.

    Every problem of the file is listed (exit 1): its shape, its resolution maps, and the
    environment variables it names for tokens.
    """
    from toolkit import commands

    text = commands.check_job(job_file, api_url=settings.api_url).describe()
    click.echo(printable(text, keep_newlines=True), nl=False)


def _fault_rates(
    ctx: click.Context, param: click.Parameter, specs: tuple[str, ...]
) -> dict[str, float]:
    """`--fault-rate KIND=RATE` options, as `FaultRates.rates`."""
    from toolkit.emulator.faults import parse_fault_rate

    rates: dict[str, float] = {}
    for spec in specs:
        try:
            kind, rate = parse_fault_rate(spec)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
        rates[kind] = rate
    return rates


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
    callback=_fault_rates,
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
    from toolkit import commands

    sys.exit(commands.demo(_stdout_console(), settings.progress_console(), transfer=transfer))


# --- Rendering ------------------------------------------------------------------------------


def _report(
    settings: Settings,
    document: AgentClaimResponse,
    plan: ClaimPlan,
    mode: Mode,
    fmt: Format | None,
    output: Path | None,
) -> None:
    from toolkit.report import report_context

    _emit(settings, document, report_context(plan, mode, document), fmt, output)


def _emit(
    settings: Settings,
    document: AgentClaimResponse,
    context: ReportContext,
    fmt: Format | None,
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


def _format(fmt: Format | None, output: Path | None) -> Format:
    if fmt:
        return fmt
    if output:
        return SUFFIX_FORMATS.get(output.suffix.lower(), "table")
    return "table" if sys.stdout.isatty() else "json"


def _say(line: str) -> None:
    """`line` on stderr, printable (`toolkit.display`): it holds names or messages from the
    service, a map or the pulumi CLI."""
    click.echo(printable(line, keep_newlines=True), err=True)


def _stdout_console() -> Console:
    """A terminal's own width; 100 columns when the output goes to a pipe or a file."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=100)


def main() -> None:
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
