"""A runs folder that cannot be written (the disk full, an I/O error), at the start of a commit
and in the middle of one: one clear error (exit 1) that says nothing was lost and how to go on,
and the same command, once there is room, finishes the job.

The disk is really full: the runs folder is a small tmpfs of the test's own (the commit runs
as root here and in CI). The I/O error is real too, and needs no privilege: the commit's
process gets a file size limit (`RLIMIT_FSIZE`, set from outside with `prlimit`), so its
writes fail with EFBIG, which SQLite reports as a disk I/O error (CPython ignores SIGXFSZ).
"""

from __future__ import annotations

import errno
import resource
import subprocess
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
from commit_process import (
    assert_transferred_once,
    is_state_changing,
    settle,
    toolkit_command,
    toolkit_env,
    transfer_world,
)

from toolkit.emulator.faults import RecordedRequest
from toolkit.emulator.server import EmulatorServer
from toolkit.journal import read_run

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
TOKEN = "tok-alice"
STACKS = [("web", f"s{i:02}") for i in range(12)]
COMMIT = ("commit", "--from", AGENT, "--to", "acme", "--strategy", "transfer", "--yes")

Fault = Literal["disk-full", "io-error"]


@dataclass
class Tmpfs:
    """A tmpfs mounted at `path`, `size` bytes, until the test ends."""

    path: Path

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def fill(self) -> None:
        """Take every free byte with a file of its own."""
        with open(self.path / "filler", "wb", buffering=0) as filler, suppress(OSError):
            while filler.write(b"\0" * 4096):
                pass

    def free(self) -> None:
        (self.path / "filler").unlink()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here (mount needs root): {mounted.stderr}")
    try:
        yield Tmpfs(mount_point)
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(transfer_world(AGENT, TOKEN, [], STACKS))


def commit(
    server: EmulatorServer,
    runs_dir: Path,
    *extra: str,
    file_size_limit: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """`pulumi-claim commit` in its own process, to its end; with `file_size_limit`, no file it
    writes may grow past that many bytes."""
    command = toolkit_command(server, *COMMIT, *extra)
    if file_size_limit is not None:
        # Set from outside (util-linux's `prlimit`), never by a `preexec_fn`: that makes
        # Python fork this test process, where gRPC runs threads of its own (the Automation
        # API's tests), and the forked child, before it runs the command, dies now and then of
        # gRPC's abort ("epoll_wait error: Bad file descriptor").
        command = ["prlimit", f"--fsize={file_size_limit}:unlimited", "--", *command]
    finished = subprocess.run(
        command,
        env=cut_short_env(runs_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    settle(server)
    return finished


def state_changes(server: EmulatorServer) -> list[str]:
    return [f"{e.method} {e.path}" for e in server.requests.entries() if is_state_changing(e)]


def assert_all_moved_once(server: EmulatorServer, runs_dir: Path) -> None:
    """Every stack in acme once under its name, none left in the agent's org, and the
    journal finished and agreeing."""
    assert server.state.stack_names("acme") == set(STACKS)
    assert server.state.stack_names(AGENT) == set()
    run = read_run(runs_dir)
    assert run.finished
    assert_transferred_once(run.steps, [f"{p}/{s}" for p, s in STACKS])


def cut_short_env(runs_dir: Path) -> dict[str, str]:
    """The environment of a commit whose writes may be cut short: it writes no bytecode.
    CPython renames a `.pyc` into place without checking that all of it was written, so a
    commit limited to 8 KiB files left truncated ones in the project's bytecode cache (24 of
    them, when it was the first to import those modules), and each broke every later import
    of its module, in whichever test came next."""
    return toolkit_env(runs_dir, PULUMI_ACCESS_TOKEN=TOKEN, PYTHONDONTWRITEBYTECODE="1")


def assert_one_clear_error(finished: subprocess.CompletedProcess[str], *said: str) -> None:
    stderr = finished.stderr
    assert finished.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.count("error: ") == 1, stderr
    for words in ("could not be written", "Nothing was lost", "run the same command again", *said):
        assert words in " ".join(stderr.split()), stderr


@pytest.mark.parametrize("fault", ["disk-full", "io-error"])
def test_runs_folder_unwritable_at_the_start_changes_nothing(
    fault: Fault, server: EmulatorServer, tmpfs: Tmpfs, tmp_path: Path
) -> None:
    """The issue's case: a 40 KiB tmpfs holds the lock but not the run's journal (disk
    full); or a file size limit of 8 KiB (I/O error). Nothing is called, no run is left
    half-recorded, and with room the same command moves everything."""
    runs_dir = (tmpfs.path if fault == "disk-full" else tmp_path) / "runs"
    limit = 8192 if fault == "io-error" else None

    refused = commit(server, runs_dir, file_size_limit=limit)

    assert_one_clear_error(refused, "stopped before its first call", "nothing was changed")
    assert state_changes(server) == []
    assert not list(runs_dir.glob("*/journal.sqlite"))
    tmpfs.resize("4m")
    assert commit(server, runs_dir).returncode == 0
    assert_all_moved_once(server, runs_dir)


def test_runs_folder_without_room_for_the_lock(server: EmulatorServer, tmpfs: Tmpfs) -> None:
    """A disk so full that the lock file cannot be written either: the same clear error."""
    tmpfs.fill()

    refused = commit(server, tmpfs.path / "runs")

    assert_one_clear_error(refused, "No space left on device", "nothing was changed")
    assert state_changes(server) == []
    tmpfs.free()
    tmpfs.resize("4m")
    assert commit(server, tmpfs.path / "runs").returncode == 0
    assert_all_moved_once(server, tmpfs.path / "runs")


@pytest.mark.parametrize("fault", ["disk-full", "io-error"])
def test_runs_folder_unwritable_mid_run_stops_there_and_the_same_command_finishes(
    fault: Fault, server: EmulatorServer, tmpfs: Tmpfs, tmp_path: Path
) -> None:
    """Right after the service applied the 5th transfer, before its answer leaves, the disk
    fills up (or the process may write no more): the outcome of that transfer cannot be
    written. The run stops there: no call begins after it (one call at a time, so exactly 5
    were made), and the error names the call whose outcome is not recorded. With room again,
    the same command finds that stack landed and moves the rest, each once."""
    tmpfs.resize("4m")
    runs_dir = (tmpfs.path if fault == "disk-full" else tmp_path) / "runs"
    process: list[int] = []

    def cut_off_at_the_fifth_transfer(entry: RecordedRequest) -> None:
        if is_state_changing(entry) and len(state_changes(server)) == 5:
            if fault == "disk-full":
                tmpfs.fill()
            else:
                resource.prlimit(process[0], resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))

    server.requests.watch(cut_off_at_the_fifth_transfer)
    env = cut_short_env(runs_dir)
    child = subprocess.Popen(
        toolkit_command(server, *COMMIT, "--concurrency", "1"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.append(child.pid)
    stdout, stderr = child.communicate(timeout=600)
    settle(server)
    stopped = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)

    assert_one_clear_error(
        stopped,
        "so the run stopped there: no call began after it",
        "apart from what became of 1 call(s) made just then (transfer web/s04)",
        "it continues run",
    )
    assert len(state_changes(server)) == 5
    if fault == "disk-full":
        tmpfs.free()
    steps = read_run(runs_dir).steps
    assert [s.outcome for s in steps if s.action == "transfer"] == ["done"] * 4 + [None]
    again = commit(server, runs_dir)
    assert again.returncode == 0, again.stderr
    assert len(state_changes(server)) == len(STACKS)
    assert_all_moved_once(server, runs_dir)


def test_filler_really_fills_the_disk(tmpfs: Tmpfs) -> None:
    """The tests' disk is full once filled: not even one more byte can be written."""
    tmpfs.fill()
    with pytest.raises(OSError) as refused, open(tmpfs.path / "one-more", "wb") as more:
        more.write(b"\0" * 4096)
        more.flush()
    assert refused.value.errno == errno.ENOSPC
