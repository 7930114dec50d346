"""Commits that are interrupted, killed, or half-failed, then run again as they were.

Each test runs `pulumi-claim commit` in its own process against the emulator, stops it at an
exact point (right after the service applied its k-th state-changing call), and runs the same
command again. Afterwards every planned stack is in the destination exactly once under its
planned name, none remains in the source, no temporary name survives, and the journal agrees.
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import shutil
import signal
import subprocess
import termios
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from commit_process import (
    Finished,
    StopAt,
    assert_transferred_once,
    is_state_changing,
    run_toolkit,
    toolkit_command,
    toolkit_env,
    transfer_world,
)
from conftest import STORAGES
from waiting import wait_until

from toolkit.emulator.server import EmulatorServer
from toolkit.journal import RunRecord, read_run
from toolkit.models import AgentClaimResponse
from toolkit.moves import TEMPORARY_SUFFIX

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
TOKEN = "tok-alice"
ORGS = ("--from", AGENT, "--to", "acme")

FREE = [("web", f"s{i:02}") for i in range(40)]
COLLIDING = [("web", f"c{i}") for i in range(8)]
SWAPPED = [("app", "a"), ("app", "b")]
RESOLUTIONS = (
    "stacks:\n"
    + "".join(f"  web/c{i}: web/c{i}-agent\n" for i in range(8))
    + "  app/a: app/b\n  app/b: app/a\n"
)
"""Renames the eight stacks that collide with acme's, and swaps app/a and app/b."""

PLANNED = {
    **{name: name for name in FREE},
    **{("web", f"c{i}"): ("web", f"c{i}-agent") for i in range(8)},
    ("app", "a"): ("app", "b"),
    ("app", "b"): ("app", "a"),
}
STATE_CHANGES = 8 + 3 + 50
"""Renames (a swap takes three) and transfers of the whole commit."""

KILL_POINTS = [1, 2, 3, 5, 7, 9, 10, 11, 12, 13, 14, 20, 26, 32, 38, 44, 50, 56, 60, 61]


def world() -> dict[str, Any]:
    """alice administers acme (which holds web/c0..c7) and the agent's org (50 stacks)."""
    return transfer_world(AGENT, TOKEN, COLLIDING, [*FREE, *COLLIDING, *SWAPPED])


@pytest.fixture
def setup(
    make_emulator: EmulatorFactory, tmp_path: Path, database_url: str | None
) -> tuple[EmulatorServer, dict[str, str]]:
    """The emulator, and the environment of a commit: its runs folder, and the runs database
    when the test is parametrized over `database_url`."""
    server = make_emulator(world())
    (tmp_path / "map.yaml").write_text(RESOLUTIONS, encoding="utf-8")
    return server, toolkit_env(tmp_path / "runs", PULUMI_ACCESS_TOKEN=TOKEN)


def commit(
    server: EmulatorServer, env: dict[str, str], *extra: str, stop: StopAt | None = None
) -> Finished:
    map_file = str(Path(env["PULUMI_CLAIM_RUNS_DIR"]).parent / "map.yaml")
    return run_toolkit(
        server,
        env,
        "commit",
        *ORGS,
        "--strategy",
        "transfer",
        "-r",
        map_file,
        "--yes",
        "--format",
        "json",
        *extra,
        stop=stop,
    )


def assert_completed(server: EmulatorServer, env: dict[str, str], finished: Finished) -> None:
    """The guarantees after a run that finished: every planned stack landed once, under its
    planned name; the source is empty; no temporary name anywhere; the journal agrees."""
    assert finished.returncode == 0, finished.stderr
    document = AgentClaimResponse.model_validate(json.loads(finished.stdout))
    assert document.failures == [] and document.conflicts == []
    assert server.state.stack_names(AGENT) == set()
    assert server.state.stack_names("acme") == set(COLLIDING) | set(PLANNED.values())
    every_name = server.state.stack_names("acme") | server.state.stack_names(AGENT)
    assert not [name for name in every_name if TEMPORARY_SUFFIX in name[1]]
    run = recorded_run(env)
    assert run.finished and run.result == document
    assert_transferred_once(run.steps, [f"{p}/{s}" for p, s in PLANNED])


def recorded_run(env: dict[str, str]) -> RunRecord:
    """The newest run, where the commits of `env` record their runs."""
    return read_run(
        Path(env["PULUMI_CLAIM_RUNS_DIR"]), database=env.get("PULUMI_CLAIM_DATABASE_URL")
    )


@pytest.mark.parametrize("calls", KILL_POINTS)
def test_a_commit_killed_after_any_call_is_finished_by_running_it_again(
    setup: tuple[EmulatorServer, dict[str, str]], calls: int
) -> None:
    server, env = setup
    stop = StopAt(calls)

    killed = commit(server, env, stop=stop)

    assert stop.fired and killed.returncode == -signal.SIGKILL
    assert len(server.state.stack_names(AGENT)) + len(server.state.stack_names("acme")) == 58
    server.requests.clear()
    again = commit(server, env)
    assert_completed(server, env, again)
    moves_made = [e for e in server.requests.entries() if is_state_changing(e)]
    assert len(moves_made) <= STATE_CHANGES - calls


def on_another_machine(env: dict[str, str], name: str) -> dict[str, str]:
    """`env` with a runs folder of its own, as on another machine (the map file beside it)."""
    runs = Path(env["PULUMI_CLAIM_RUNS_DIR"])
    folder = runs.parent / name
    folder.mkdir()
    shutil.copy(runs.parent / "map.yaml", folder / "map.yaml")
    return {**env, "PULUMI_CLAIM_RUNS_DIR": str(folder / "runs")}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("calls", [1, 12, 38])
def test_a_commit_killed_on_one_machine_is_finished_by_the_same_command_on_another(
    setup: tuple[EmulatorServer, dict[str, str]], calls: int
) -> None:
    """With a runs database, the run is found by its key in the database, not in a folder:
    another command is refused on a third machine, and the same one continues the run."""
    server, env = setup
    killed = commit(server, env, stop=StopAt(calls))
    assert killed.returncode == -signal.SIGKILL
    run_id = recorded_run(env).run_id
    before = server.state.stack_names(AGENT) | server.state.stack_names("acme")

    other = run_toolkit(
        server, on_another_machine(env, "third"), "commit", *ORGS, "--strategy", "transfer", "--yes"
    )

    assert other.returncode == 1
    assert f"{AGENT} has an unfinished run: run {run_id} by " in other.stderr
    assert server.state.stack_names(AGENT) | server.state.stack_names("acme") == before
    server.requests.clear()
    elsewhere = on_another_machine(env, "second")
    again = commit(server, elsewhere)
    assert f"continuing {run_id}" in again.stderr
    assert_completed(server, elsewhere, again)
    assert recorded_run(elsewhere).run_id == run_id and recorded_run(elsewhere).attempts == 2
    moves_made = [e for e in server.requests.entries() if is_state_changing(e)]
    assert len(moves_made) <= STATE_CHANGES - calls
    assert not Path(elsewhere["PULUMI_CLAIM_RUNS_DIR"], "keys").exists()


def test_a_finished_commit_run_again_does_nothing_and_says_so(
    setup: tuple[EmulatorServer, dict[str, str]],
) -> None:
    server, env = setup
    assert_completed(server, env, commit(server, env))
    server.requests.clear()

    again = commit(server, env)

    assert again.returncode == 0
    assert "nothing to do: run " in again.stderr
    assert [e for e in server.requests.entries() if is_state_changing(e)] == []
    assert AgentClaimResponse.model_validate(json.loads(again.stdout)).failures == []


def test_ctrl_c_lets_calls_in_flight_finish_and_says_how_to_continue(
    setup: tuple[EmulatorServer, dict[str, str]],
) -> None:
    server, env = setup

    interrupted = commit(server, env, stop=StopAt(20, signal.SIGINT))

    assert interrupted.returncode == 130, interrupted.stderr
    assert "Run the same command again to continue it" in interrupted.stderr
    assert "Traceback" not in interrupted.stderr
    run = read_run(Path(env["PULUMI_CLAIM_RUNS_DIR"]))
    assert run.state == "interrupted"
    assert all(step.outcome is not None for step in run.steps), "a call in flight went unrecorded"
    assert 0 < len(server.state.stack_names(AGENT)) < 50
    assert_completed(server, env, commit(server, env))


def test_ctrl_c_after_the_run_has_ended_leaves_its_outcome_as_recorded(
    setup: tuple[EmulatorServer, dict[str, str]], tmp_path: Path
) -> None:
    """The SIGINT comes once every move has landed and the journal says so, while the report
    is being written: a pipe of one page that nobody reads yet holds the toolkit there."""
    server, env = setup
    report, writer = os.pipe()
    page = fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)
    said = tmp_path / "stderr.txt"
    map_file = str(tmp_path / "map.yaml")
    args = ("commit", *ORGS, "--strategy", "transfer", "-r", map_file, "--yes", "--format", "json")
    with said.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            toolkit_command(server, *args), env=env, stdout=writer, stderr=stderr
        )
    os.close(writer)
    wait_until(lambda: _unread(report) >= page, "the report filled the pipe")
    run = read_run(Path(env["PULUMI_CLAIM_RUNS_DIR"]))
    assert run.finished and run.result is not None, "the run has ended before the SIGINT"

    process.send_signal(signal.SIGINT)

    with os.fdopen(report, "rb") as reader:
        printed = reader.read()
    assert process.wait(timeout=300) == 0, said.read_text(encoding="utf-8")
    assert AgentClaimResponse.model_validate(json.loads(printed)) == run.result
    assert read_run(Path(env["PULUMI_CLAIM_RUNS_DIR"])) == run, "the journal is as it was"
    status = run_toolkit(server, env, "status", "--format", "json")
    assert status.returncode == process.returncode
    assert "interrupted" not in said.read_text(encoding="utf-8")


def _unread(pipe: int) -> int:
    """How many bytes wait in `pipe` to be read."""
    count = array.array("i", [0])
    fcntl.ioctl(pipe, termios.FIONREAD, count)
    return count[0]


@pytest.mark.parametrize("database_url", STORAGES, indirect=True)
def test_another_command_over_an_unfinished_run_is_refused_until_the_lock_is_broken(
    setup: tuple[EmulatorServer, dict[str, str]],
) -> None:
    server, env = setup
    commit(server, env, stop=StopAt(5))
    before = server.state.stack_names(AGENT) | server.state.stack_names("acme")

    other = run_toolkit(server, env, "commit", *ORGS, "--strategy", "transfer", "--yes")

    assert other.returncode == 1
    assert f"{AGENT} has an unfinished run" in other.stderr
    assert "Finish it by running its command again: pulumi-claim --api-url" in other.stderr
    assert "--break-lock" in other.stderr
    assert server.state.stack_names(AGENT) | server.state.stack_names("acme") == before
    assert_completed(server, env, commit(server, env))


@pytest.mark.parametrize("database_url", STORAGES, indirect=True)
def test_a_second_run_at_the_same_time_exits_1_naming_the_holder_and_changes_nothing(
    setup: tuple[EmulatorServer, dict[str, str]],
) -> None:
    server, env = setup
    seen: list[tuple[Finished, set[tuple[str, str]], set[tuple[str, str]]]] = []

    def second_run_while_the_first_holds_the_lock(entry: Any) -> None:
        if is_state_changing(entry) and not seen:
            before = server.state.stack_names(AGENT)
            seen.append((commit(server, env), before, server.state.stack_names(AGENT)))

    server.requests.watch(second_run_while_the_first_holds_the_lock)
    first = commit(server, env)

    (second, before, after) = seen[0]
    assert second.returncode == 1
    assert f"{AGENT} is locked by run " in second.stderr
    assert " (pid " in second.stderr and "Wait for that run to finish" in second.stderr
    assert before == after
    assert_completed(server, env, first)


def test_a_stack_renamed_by_someone_else_meanwhile_stops_the_rerun_naming_it(
    setup: tuple[EmulatorServer, dict[str, str]],
) -> None:
    server, env = setup
    commit(server, env, stop=StopAt(3))
    httpx.post(
        f"{server.url}/api/stacks/{AGENT}/web/s07/rename",
        json={"newName": "s07-mine", "newProject": ""},
        headers={"Authorization": f"token {TOKEN}", "Accept": "application/vnd.pulumi+8"},
    ).raise_for_status()
    before = server.state.stack_names(AGENT) | server.state.stack_names("acme")

    again = commit(server, env)

    assert again.returncode == 1
    assert "the plan no longer matches the service" in again.stderr
    assert f"web/s07 was renamed to web/s07-mine in {AGENT} by someone else" in again.stderr
    assert server.state.stack_names(AGENT) | server.state.stack_names("acme") == before


def test_a_move_whose_outcome_cannot_be_established_is_reported_unknown_then_settled(
    setup: tuple[EmulatorServer, dict[str, str]],
) -> None:
    server, env = setup
    server.faults.fail_after(500, method="POST", path=f"/api/stacks/{AGENT}/web/s03/transfer")
    for org in (AGENT, "acme"):
        server.faults.fail(503, method="GET", path=f"/api/stacks/{org}/web/s03", times=None)

    first = commit(server, env)

    assert first.returncode == 4, first.stderr
    failures = AgentClaimResponse.model_validate(json.loads(first.stdout)).failures
    assert [f.entity.stack_name for f in failures] == ["s03"]
    details = failures[0].failure_details
    assert details.startswith(
        f"outcome unknown: transfer to acme: POST /api/stacks/{AGENT}/web/s03/transfer failed "
        "with 500: injected fault, and looking whether it was applied failed: GET /api/stacks/"
    )
    assert details.endswith(
        "/web/s03 failed with 503: injected fault; re-run the same command: it looks where "
        "each stack is now and finishes the move"
    )
    assert ("web", "s03") in server.state.stack_names("acme"), "it did land"
    status = run_toolkit(server, env, "status", "--format", "markdown")
    assert "1 move of unknown outcome" in status.stdout
    assert "transfer web/s03 (transfer web/s03 to acme): unknown: " in status.stdout

    server.faults.clear()
    server.requests.clear()
    assert_completed(server, env, commit(server, env))
    transfers = [e.path for e in server.requests.entries() if e.path.endswith("/transfer")]
    assert transfers == [], "nothing was transferred twice"


def test_a_partial_commit_is_finished_by_running_it_again(
    setup: tuple[EmulatorServer, dict[str, str]],
) -> None:
    server, env = setup
    for name in ("s01", "s02", "c3-agent"):
        server.faults.fail(503, method="POST", path=f"/api/stacks/{AGENT}/web/{name}/transfer")

    partial = commit(server, env)

    assert partial.returncode == 4
    failures = AgentClaimResponse.model_validate(json.loads(partial.stdout)).failures
    assert sorted(f.entity.stack_name for f in failures) == ["c3", "s01", "s02"]
    assert server.state.stack_names(AGENT) == {("web", "s01"), ("web", "s02"), ("web", "c3")}
    server.requests.clear()

    again = commit(server, env)

    assert_completed(server, env, again)
    changes = sorted(e.path for e in server.requests.entries() if is_state_changing(e))
    assert changes == [
        f"/api/stacks/{AGENT}/web/c3-agent/transfer",
        f"/api/stacks/{AGENT}/web/c3/rename",
        f"/api/stacks/{AGENT}/web/s01/transfer",
        f"/api/stacks/{AGENT}/web/s02/transfer",
    ]
