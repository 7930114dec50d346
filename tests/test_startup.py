"""A `pulumi-claim` process's start-up and exit, seen from inside a real process: what it has
imported when its first request leaves and when it exits, and what the garbage collector still
has to walk then (docs/performance.md, "Start-up and exit")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from test_cli import AGENT, ORGS, as_document, claim_world

if TYPE_CHECKING:
    from conftest import EmulatorFactory

PROBE = """
import atexit, gc, json, os, sys

out = sys.argv.pop(1)
seen = {}


def at_the_first_connection(event, args):
    if event == "socket.connect" and "modules at the first request" not in seen:
        seen["modules at the first request"] = sorted(sys.modules)
        seen["collector on at the first request"] = gc.isenabled()
        seen["frozen at the first request"] = gc.get_freeze_count()


def at_exit():
    seen["modules at exit"] = sorted(sys.modules)
    seen["SSL_CERT_FILE at exit"] = os.environ.get("SSL_CERT_FILE")
    if "aiohttp.connector" in sys.modules:
        connector = sys.modules["aiohttp.connector"]
        defaults = (connector._SSL_CONTEXT_VERIFIED, connector._SSL_CONTEXT_UNVERIFIED)
        seen["certificates in aiohttp's defaults"] = sum(
            context.cert_store_stats()["x509"] for context in defaults
        )
    seen["left to collect at exit"] = len(gc.get_objects())
    with open(out, "w") as file:
        json.dump(seen, file)


sys.addaudithook(at_the_first_connection)
atexit.register(at_exit)
from toolkit.cli import main

main()
"""
"""`pulumi-claim` as its console script runs it (`toolkit.cli.main`), writing to the file named
first what it had imported at its first connection and at exit, and the collector's state."""

NOT_IN_A_JSON_PREVIEW = (
    "rich",
    "yaml",
    "jinja2",
    "toolkit.report.table",
    "toolkit.report.markdown",
    "toolkit.report.templates",
    "toolkit.strategies.migrate",
    "toolkit.emulator",
    "fastapi",
    "uvicorn",
    "pulumi",
    "procrastinate",
    "psycopg",
)
"""What a preview that writes JSON never needs: the other formats' renderers (jinja2 for the
HTML page; the table and Markdown), rich for the spinner where stderr is no terminal, PyYAML
where no resolution map is given and the source has no environment, migrate's machinery where
the plan transfers, the emulator and its web stack, the Automation API, the runs database's
drivers."""

TERMINAL_VARIABLES = ("TTY_COMPATIBLE", "FORCE_COLOR")
"""What makes rich take a pipe for a terminal."""


def probed(
    tmp_path: Path, env: dict[str, str], *args: str, code: int = 0
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run `pulumi-claim ARGS` through `PROBE` with stdout and stderr on pipes (no variable
    making rich take them for terminals, and no `SSL_CERT_FILE`, but those in `env`), which
    must exit with `code`: the process and what the probe saw."""
    seen = tmp_path / "seen.json"
    unset = (*TERMINAL_VARIABLES, "SSL_CERT_FILE")
    inherited = {k: v for k, v in os.environ.items() if k not in unset}
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, str(seen), *args],
        env={**inherited, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == code, ran.stderr
    report: dict[str, Any] = json.loads(seen.read_text(encoding="utf-8"))
    return ran, report


def json_preview(
    make_emulator: EmulatorFactory,
    tmp_path: Path,
    world: dict[str, Any] | None = None,
    **variables: str,
) -> tuple[str, dict[str, Any]]:
    """A real preview as JSON on stdout, blocked by the world's two conflicts (`world`, else
    `claim_world`), with the environment's `variables`: its stderr and what the probe saw,
    once the document is checked."""
    server = make_emulator(world or claim_world())
    env = {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_CLAIM_SOURCE_TOKEN": "tok-agent",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
        **variables,
    }
    ran, seen = probed(tmp_path, env, "preview", *ORGS, "--format", "json", code=3)
    assert len(as_document(ran.stdout).conflicts) == 2
    return ran.stderr, seen


def test_a_json_preview_imports_no_other_format_s_renderer_nor_what_it_never_runs(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """The agent's org has no environment here: a preview reads each environment's YAML
    definition (what may name a moved stack), and only then needs PyYAML."""
    world = claim_world()
    del world["orgs"][AGENT]["environments"]
    _, seen = json_preview(make_emulator, tmp_path, world)

    loaded = {
        module
        for module in seen["modules at exit"]
        for unneeded in NOT_IN_A_JSON_PREVIEW
        if module == unneeded or module.startswith(f"{unneeded}.")
    }
    assert loaded == set()


def test_a_preview_draws_its_spinner_on_a_pipe_taken_for_a_terminal(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """rich is imported for the spinner whenever it might draw it (`may_be_terminal`): here,
    where the environment tells rich that stderr is a terminal, though it is a pipe."""
    for variable in TERMINAL_VARIABLES:
        stderr, seen = json_preview(make_emulator, tmp_path, **{variable: "1"})

        assert "planning… (reading the inventory)" in stderr, variable
        assert "rich.console" in seen["modules at exit"], variable


def test_the_collector_walks_no_start_up_object_once_the_first_request_leaves(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """The modules were imported with the collector off, then frozen out of its passes; it is
    back on for the preview's own objects."""
    _, seen = json_preview(make_emulator, tmp_path)

    assert "aiohttp" in seen["modules at the first request"]
    assert seen["collector on at the first request"] is True
    assert seen["frozen at the first request"] > 50_000


def test_aiohttp_reads_none_of_the_system_s_certificates_and_leaves_the_environment_as_it_was(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """Its default TLS contexts, which the toolkit never uses, are made empty
    (`toolkit.cloud.http_library`): no bundle read before the first request. A variable the
    user set is theirs again once aiohttp is imported."""
    for user_s in (None, "/etc/ssl/certs/ca-certificates.crt"):
        variables = {} if user_s is None else {"SSL_CERT_FILE": user_s}
        _, seen = json_preview(make_emulator, tmp_path, **variables)

        assert seen["certificates in aiohttp's defaults"] == 0
        assert seen["SSL_CERT_FILE at exit"] == user_s


def test_the_collector_has_nothing_left_to_walk_at_exit(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    _, seen = json_preview(make_emulator, tmp_path)

    assert seen["left to collect at exit"] < 1_000


def test_a_command_s_help_imports_none_of_the_commands(tmp_path: Path) -> None:
    ran, seen = probed(tmp_path, {}, "preview", "--help")

    assert ran.stdout.startswith("Usage: pulumi-claim preview [OPTIONS]")
    assert {"toolkit.commands", "aiohttp", "pydantic"}.isdisjoint(seen["modules at exit"])
