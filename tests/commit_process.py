"""The `pulumi-claim` command line run in its own process, as a scheduler runs it, and stopped
(SIGKILL, SIGINT) at an exact point: right after the service applied the k-th state-changing
call of the run, before that call's answer leaves the emulator."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_times import agent_entry

from toolkit.emulator.faults import RecordedRequest
from toolkit.emulator.server import EmulatorServer
from toolkit.journal import StepRecord

STATE_CHANGING = re.compile(r"/api/(stacks|esc|agents)/.*")
"""Paths of the service calls that may change state (with a method other than GET)."""

_NOT_A_CHANGE = re.compile(r".*(crypt|/claim/status|/signup/).*")
"""POSTs that change no state: the CLI's (batch) encrypt and decrypt calls and its log of
decryptions, the claim status, agent sign-up."""


def is_state_changing(entry: RecordedRequest) -> bool:
    """Whether the service applied a call that changes its state (it answered below 400)."""
    return (
        entry.method not in ("GET", "HEAD")
        and STATE_CHANGING.fullmatch(entry.path) is not None
        and _NOT_A_CHANGE.fullmatch(entry.path) is None
        and entry.status is not None
        and entry.status < 400
    )


@dataclass
class StopAt:
    """Sends `signal_number` to the watched process once the service has applied its
    `calls`-th state-changing call (SIGKILL: and waits until it is gone)."""

    calls: int
    signal_number: int = signal.SIGKILL
    process: subprocess.Popen[str] | None = None
    seen: int = 0
    fired: bool = False
    changes: list[str] = field(default_factory=list)

    def __call__(self, entry: RecordedRequest) -> None:
        if self.process is None or self.fired or not is_state_changing(entry):
            return
        self.seen += 1
        self.changes.append(f"{entry.method} {entry.path}")
        if self.seen == self.calls:
            self.fired = True
            self.process.send_signal(self.signal_number)
            if self.signal_number == signal.SIGKILL:
                self.process.wait()


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def toolkit_command(server: EmulatorServer, *args: str) -> list[str]:
    return [sys.executable, "-m", "toolkit", "--api-url", server.url, *args]


def run_toolkit(
    server: EmulatorServer, env: dict[str, str], *args: str, stop: StopAt | None = None
) -> Finished:
    """Run `pulumi-claim ARGS` to its end (or until `stop` stops it)."""
    if stop is not None:
        server.requests.watch(stop)
    process = subprocess.Popen(
        toolkit_command(server, *args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if stop is not None:
        stop.process = process
    stdout, stderr = process.communicate(timeout=600)
    settle(server)
    return Finished(process.returncode, stdout, stderr)


def settle(server: EmulatorServer, quiet_seconds: float = 0.3) -> None:
    """Wait until the emulator has answered every request it received and no new one came
    for `quiet_seconds`: a killed client's requests still on their way are carried out, as a
    real service carries them out."""
    deadline = time.monotonic() + 30
    seen = -1
    while time.monotonic() < deadline:
        count = len(server.requests.entries())
        if count == seen and not server.requests.in_flight:
            return
        seen = count
        time.sleep(quiet_seconds)


def toolkit_env(runs_dir: Path, **variables: str) -> dict[str, str]:
    """The test's environment (agent detection already cleared) with `variables` and the runs
    folder set."""
    env = {**os.environ, "PULUMI_CLAIM_RUNS_DIR": str(runs_dir), **variables}
    env.pop("PULUMI_CLAIM_TOKEN", None)
    env.pop("PULUMI_CLAIM_SOURCE_TOKEN", None)
    env.update(variables)
    return env


def transfer_world(
    agent: str, token: str, destination: list[tuple[str, str]], source: list[tuple[str, str]]
) -> dict[str, Any]:
    """alice (holding `token`) administers acme, with the stacks `destination`, and the agent's
    org, with the stacks `source`: a world for the transfer strategy."""
    return {
        "users": [{"login": "alice", "token": token, "orgs": {"acme": "admin", agent: "admin"}}],
        "agents": [agent_entry(agent, token="tok-agent", claim_token="claim-abc123")],
        "orgs": {
            "acme": {"stacks": [{"project": p, "stack": s} for p, s in destination]},
            agent: {"stacks": [{"project": p, "stack": s} for p, s in source]},
        },
    }


def assert_transferred_once(steps: list[StepRecord], moves: list[str]) -> None:
    """The journal agrees that each move was transferred once: at most one transfer of it
    answered done, and every move has one that was done, or was under way when its run was
    killed, or was of unknown outcome (such a call may or may not have been applied; the next
    run found the stack where it was and made the transfer only if it had not)."""
    for move in moves:
        outcomes = [s.outcome for s in steps if s.move == move and s.action == "transfer"]
        assert outcomes.count("done") <= 1, (move, outcomes)
        assert "done" in outcomes or outcomes[-1:] in ([None], ["unknown"]), (move, outcomes)
