"""A commit against a service that rate-limits: the client paces its sends on a 429 and says so
on its log (`-v`), every stack moves, and fewer calls are refused than a client keeping 16 in
flight whatever the answers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from click.testing import CliRunner

from toolkit.cli import cli

if TYPE_CHECKING:
    from conftest import EmulatorFactory

STACKS = [f"s{i:02}" for i in range(60)]
RATE_LIMIT = 10
FEWER_429_THAN_FIXED = 40
"""In this world a client keeping 16 calls in flight whatever the answers met 76 to 86 429s in
five runs, the pacing client 16 in two (most of them the 16 calls in flight when the
service's first burst ran out); the client that halved its calls in flight on a 429, 49."""


def world() -> dict[str, Any]:
    return {
        "service": {"rateLimit": RATE_LIMIT},
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", "agent-r": "admin"}}
        ],
        "orgs": {
            "acme": {},
            "agent-r": {"stacks": [{"project": "web", "stack": name} for name in STACKS]},
        },
    }


def test_a_rate_limited_commit_paces_its_sends_and_moves_every_stack(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world(), latency_ms=50)
    args = ["-v", "--api-url", server.url, "commit", "--from", "agent-r", "--to", "acme"]
    args += ["--strategy", "transfer", "--yes"]
    env = {"PULUMI_ACCESS_TOKEN": "tok-alice", "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs")}

    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)

    assert result.exit_code == 0, result.stderr
    assert server.state.stack_names("acme") == {("web", name) for name in STACKS}
    assert server.state.stack_names("agent-r") == set()
    paced = [
        line
        for line in result.stderr.splitlines()
        if re.fullmatch(
            r"INFO toolkit\.cloud: calls in flight at most 16 \(was 16\), at most [\d.]+ calls "
            r"a second \(was (sends not paced|at most [\d.]+ calls a second)\): "
            r"the service answered 429 Too Many Requests \(\d+ calls answered in the last "
            r"[\d.]+ s\)",
            line,
        )
    ]
    assert paced, result.stderr
    assert "sends not paced): the service answered 429" in paced[0]
    statuses = [entry.status for entry in server.requests.entries()]
    assert 0 < statuses.count(429) < FEWER_429_THAN_FIXED
