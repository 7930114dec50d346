"""Fixtures shared by the whole suite: real emulators on free loopback ports, the real CLI."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import postgres_server
import pytest
from click.testing import CliRunner, Result

from toolkit.cli import cli
from toolkit.emulator.demo_world import demo_world
from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import World, parse_world

AGENT_DETECTION_VARIABLES = (
    "AI_AGENT",
    "CURSOR_TRACE_ID",
    "CURSOR_AGENT",
    "GEMINI_CLI",
    "CODEX_SANDBOX",
    "CODEX_CI",
    "CODEX_THREAD_ID",
    "ANTIGRAVITY_AGENT",
    "AUGMENT_AGENT",
    "OPENCODE",
    "OPENCODE_CALLER",
    "OPENCODE_CLIENT",
    "CLAUDE_CODE_IS_COWORK",
    "CLAUDECODE",
    "CLAUDE_CODE",
    "REPL_ID",
    "COPILOT_MODEL",
    "COPILOT_ALLOW_ALL",
    "COPILOT_GITHUB_TOKEN",
    "GOOSE_PROVIDER",
)
"""What the pulumi CLI reads to decide that an AI agent runs it (`sdk/go/common/util/agentdetect`
in pulumi v3.274.1); with one of them set and no token, it signs up an agent account by itself."""


@pytest.fixture(scope="session", autouse=True)
def no_agent_detected() -> Iterator[None]:
    """No test's pulumi CLI thinks an AI agent runs it, unless the test says so itself; and no
    login of the machine's user reaches a test."""
    with pytest.MonkeyPatch.context() as patch:
        for name in (
            *AGENT_DETECTION_VARIABLES,
            "PULUMI_ENABLE_AUTOMATIC_AGENT_SIGNUP",
            "PULUMI_ACCESS_TOKEN",
            "PULUMI_CLAIM_TOKEN",
            "PULUMI_CLAIM_SOURCE_TOKEN",
            "PULUMI_BACKEND_URL",
            "PULUMI_CLAIM_DATABASE_URL",
        ):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session", autouse=True)
def no_terminal_size_from_the_runner() -> Iterator[None]:
    """No test's reports take their width from the environment the tests run in: pytest-xdist
    sets `COLUMNS` and `LINES` in its workers (and a terminal may export them), which the
    reports' console reads; a test that wants a width sets it itself."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("COLUMNS", "LINES"):
            patch.delenv(name, raising=False)
        yield


class EmulatorFactory(Protocol):
    def __call__(
        self,
        world: Mapping[str, Any] | World,
        *,
        page_size: int = 100,
        max_page_size: int | None = None,
        latency_ms: float = 0.0,
    ) -> EmulatorServer: ...


@pytest.fixture(autouse=True)
def agent_pulumi_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Where the pulumi CLI and pulumi-claim look for an agent account's files
    (`PULUMI_TEST_AGENT_PULUMI_DIR`): a folder of each test's own, never the machine's
    /tmp/.pulumi, whose claim file would otherwise change which strategy `auto` picks."""
    folder = tmp_path_factory.mktemp("agent") / ".pulumi"
    monkeypatch.setenv("PULUMI_TEST_AGENT_PULUMI_DIR", str(folder))
    return folder


@pytest.fixture
def make_emulator() -> Iterator[EmulatorFactory]:
    """Start emulators serving given worlds (dicts in world-file shape, or `World`s); each is
    stopped when the test ends."""
    running: list[EmulatorServer] = []

    def start(
        world: Mapping[str, Any] | World,
        *,
        page_size: int = 100,
        max_page_size: int | None = None,
        latency_ms: float = 0.0,
    ) -> EmulatorServer:
        parsed = world if isinstance(world, World) else parse_world(dict(world))
        server = EmulatorServer(
            ServiceState.from_world(parsed),
            page_size=page_size,
            max_page_size=max_page_size,
            latency_ms=latency_ms,
        )
        running.append(server.start())
        return server

    yield start
    for server in running:
        server.stop()
        server.state.close()


@pytest.fixture
def demo_emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    """An emulator serving the built-in demo world (alice, acme, agent-7f3k2q)."""
    return make_emulator(demo_world())


@pytest.fixture(scope="session")
def pulumi_cli() -> Iterator[Path]:
    """The folder of the real `pulumi` CLI, first on PATH for the rest of the session.

    `scripts/install-pulumi-cli` picks a recent enough `pulumi` on PATH or the cached build, and
    builds it from the Go module proxy when there is neither, so tests that need the CLI never
    skip. With the folder first on PATH, `toolkit.workspaces.pulumi_command()` and any `pulumi`
    a test runs find exactly this CLI (and the language hosts beside it).
    """
    script = Path(__file__).resolve().parents[1] / "scripts" / "install-pulumi-cli"
    installed = subprocess.run([script], check=True, stdout=subprocess.PIPE, text=True)
    bin_dir = Path(installed.stdout.strip().splitlines()[-1])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        yield bin_dir


@pytest.fixture(scope="session")
def pulumiservice_plugin(pulumi_cli: Path) -> Path:
    """The landing program's provider plugin, installed as a user installs it
    (`scripts/install-pulumiservice-plugin`, at once when it is installed already)."""
    from toolkit.landing import PULUMISERVICE_PLUGIN
    from toolkit.workspaces import user_plugins_dir

    script = Path(__file__).resolve().parents[1] / "scripts" / "install-pulumiservice-plugin"
    subprocess.run([script], check=True, capture_output=True)
    return user_plugins_dir() / PULUMISERVICE_PLUGIN


RunCli = Callable[..., Result]

STORAGES = ("sqlite", "postgresql")
"""Where a test parametrized over `database_url` (`indirect=True`) keeps its runs: the runs
folder (SQLite), or a PostgreSQL database of its own."""


@pytest.fixture(scope="session")
def postgres() -> Iterator[postgres_server.PostgresServer]:
    """One PostgreSQL server for the session, from the system's packages."""
    binaries = postgres_server.server_binaries()
    if binaries is None:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    server = postgres_server.start(binaries)
    yield server
    postgres_server.stop(binaries, server)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The test's runs database: None (the runs folder, SQLite), or when parametrized with
    "postgresql" (`STORAGES`) a new PostgreSQL database of its own, also set in the
    environment every command of the test reads (`PULUMI_CLAIM_DATABASE_URL`)."""
    storage = getattr(request, "param", "sqlite")
    if storage == "sqlite":
        return None
    server: postgres_server.PostgresServer = request.getfixturevalue("postgres")
    name = "t_" + re.sub(r"[^0-9a-z]+", "_", request.node.name.lower())[-50:]
    url = server.create_database(name)
    monkeypatch.setenv("PULUMI_CLAIM_DATABASE_URL", url)
    return url


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def run_cli(runs_dir: Path) -> RunCli:
    """Run `pulumi-claim` in-process against `server` with the given tokens from the environment."""

    def run(
        server: EmulatorServer,
        *args: str,
        token: str = "tok-alice",
        source_token: str | None = "tok-agent",
        claim_token: str | None = None,
    ) -> Result:
        env = {
            "PULUMI_ACCESS_TOKEN": token,
            "PULUMI_CLAIM_SOURCE_TOKEN": source_token,
            "PULUMI_CLAIM_TOKEN": claim_token,
            "PULUMI_BACKEND_URL": server.url,
            "PULUMI_CLAIM_RUNS_DIR": str(runs_dir),
        }
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return run


def run_id(result: Result) -> str:
    """The id of the run a command made, from the one `run <id>` line it writes to stderr."""
    (run,) = (line.split()[1] for line in result.stderr.splitlines() if line.startswith("run "))
    return run
