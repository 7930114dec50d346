"""The tests' own PostgreSQL server (`tests/postgres_server.py`) starts even when the port it
probed is taken before the server binds it, as another test worker may do."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import postgres_server
import psycopg
import pytest


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other process listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_port_taken_after_the_probe_is_left_for_another(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    binaries = postgres_server.server_binaries()
    assert binaries is not None, "apt-get install postgresql (.ci/run does)"
    probed = [taken_port]
    free_port = postgres_server._free_port
    monkeypatch.setattr(
        postgres_server, "_free_port", lambda: probed.pop() if probed else free_port()
    )

    server = postgres_server.start(binaries)
    try:
        assert server.port != taken_port
        with psycopg.connect(server.create_database("answers")) as connection:
            assert connection.execute("SELECT 6 * 7").fetchone() == (42,)
    finally:
        postgres_server.stop(binaries, server)
