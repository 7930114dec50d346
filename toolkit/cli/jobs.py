"""`job run` and `job check`: the claims of a job file, for schedulers."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from toolkit.choices import LogFormat
from toolkit.cli.imports import heavy_imports
from toolkit.cli.options import options
from toolkit.cli.render import say, stdout_console
from toolkit.cli.settings import Settings, pass_settings
from toolkit.display import printable

if TYPE_CHECKING:
    from toolkit.jobs import JobResult


@click.group()
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
    with heavy_imports():
        from toolkit import commands
        from toolkit.run_log import JsonLog, TextLog

    loaded = commands.check_job(job_file, api_url=settings.api_url)
    log: JsonLog | TextLog
    if log_format == "json":
        log = JsonLog(click.echo, loaded.secrets)
    else:
        log = TextLog(settings.progress_console(), stdout_console(settings), loaded.secrets)

    # Ctrl-C and SIGTERM stop the job, up to the exit: its claims decide the outcome, once.
    with commands.stopping() as stop:
        result = commands.run_job(loaded, log, database=settings.database(), stop=stop)
        if not settings.quiet:
            _say_job_summary(result, log_format, loaded.secrets)
        sys.exit(result.exit_code)


def _say_job_summary(result: JobResult, log_format: LogFormat, secrets: Iterable[str]) -> None:
    """The job's end on stderr, whatever stdout holds: what its exit code means, after each
    claim's outcome when stdout holds JSON lines (as text, the log said them already)."""
    from toolkit.outcomes import job_exit_meaning
    from toolkit.redaction import redact
    from toolkit.run_log import outcome_line

    if log_format == "json":
        for claim in result.claims:
            say(f"claim {redact(outcome_line(claim), secrets)}")
    say(job_exit_meaning(result.exit_code))


@job.command("check")
@job_file_argument
@pass_settings
def job_check(settings: Settings, job_file: Path) -> None:
    """Check JOB and print what `job run` would do; calls no service.

    Every problem of the file is listed (exit 1): its shape, its resolution maps, and the
    environment variables it names for tokens.
    """
    with heavy_imports():
        from toolkit import commands

    text = commands.check_job(job_file, api_url=settings.api_url).describe()
    click.echo(printable(text, keep_newlines=True), nl=False)
