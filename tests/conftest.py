"""Fixtures shared by the whole suite: real emulators on free loopback ports, the real CLI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from toolkit.emulator.demo_world import demo_world
from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import World, parse_world


class EmulatorFactory(Protocol):
    def __call__(
        self,
        world: Mapping[str, Any] | World,
        *,
        page_size: int = 100,
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
        world: Mapping[str, Any] | World, *, page_size: int = 100, latency_ms: float = 0.0
    ) -> EmulatorServer:
        parsed = world if isinstance(world, World) else parse_world(dict(world))
        server = EmulatorServer(
            ServiceState.from_world(parsed), page_size=page_size, latency_ms=latency_ms
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
