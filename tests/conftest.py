"""Fixtures shared by the whole suite: real emulators on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
