"""One run per source org at a time, and no new run over an unfinished one.

The lock is a file per source org in the runs directory, held with `flock` for as long as a
commit runs (the kernel lets go of it when the process dies, however it dies), and naming the
run that took it: owner, pid, host, start, the run's key and the command. The name stays in the
file until that run finishes, so:

- a second run while the first is running is refused, naming the holder;
- a run that died or was interrupted leaves its name behind. When that run made state-changing
  calls (`unfinished` says, from its journal), the same command (the same run key) takes the
  lock over and continues the run, and any other run is refused, because the dead run may have
  left stacks half-way (under a temporary name, say), unless `--break-lock`. A run that made
  none left nothing to finish: its name counts for nothing;
- a lock held longer than `STALE_AFTER` (a hung process, or one on another host that shares
  the runs directory) is reported as stale, and broken only with `--break-lock` too.

With a runs database (PostgreSQL), `toolkit.database_locks` keeps the same rules across
machines: a session advisory lock in place of `flock`, a row in place of the file.
`take_org_lock` chooses.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from toolkit.errors import RunLockedError
from toolkit.private_files import make_private_dir, runs_dir_unwritable

if TYPE_CHECKING:
    from toolkit.database_locks import DatabaseOrgLock

LOCKS_DIR = "locks"
STALE_AFTER = timedelta(hours=24)
"""A lock older than this is stale even when its holder still seems to run."""


@dataclass(frozen=True)
class LockHolder:
    """Who took a lock, as written in the lock file."""

    run_id: str
    run_key: str
    owner: str
    pid: int
    host: str
    started_at: str
    command: str

    @classmethod
    def this_process(cls, run_id: str, run_key: str, command: str) -> LockHolder:
        return cls(
            run_id=run_id,
            run_key=run_key,
            owner=getpass.getuser(),
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            command=command,
        )

    def to_text(self) -> str:
        """What the lock keeps of the holder (`read_holder_text` reads it back)."""
        return json.dumps(asdict(self))

    def age(self) -> timedelta:
        return datetime.now(UTC) - datetime.fromisoformat(self.started_at)

    def describe(self) -> str:
        minutes = int(self.age().total_seconds() // 60)
        return (
            f"run {self.run_id} by {self.owner} on {self.host} (pid {self.pid}), "
            f"started {self.started_at}, {minutes} min ago"
        )


class OrgLock:
    """The lock of one source org, held from `acquire` to `release`."""

    def __init__(self, path: Path, descriptor: int, taken_over: LockHolder | None) -> None:
        self.path = path
        self._descriptor = descriptor
        self.taken_over = taken_over
        """The unfinished run whose lock this one continues (same run key), if any."""

    @classmethod
    def acquire(
        cls,
        runs_dir: Path,
        source: str,
        holder: LockHolder,
        *,
        unfinished: Callable[[LockHolder], bool],
        break_lock: bool = False,
    ) -> OrgLock:
        """Take the lock of `source` (the org with its backend URL) for `holder`.

        Raises `RunLockedError` naming the holder when another run is running, or when one left
        the org unfinished (unless it is the same run, or `break_lock`); `RunsFolderError`
        when the lock cannot be written. `unfinished(previous)` says whether the run named in
        a free lock left work to finish.
        """
        try:
            return cls._acquire(
                runs_dir, source, holder, unfinished=unfinished, break_lock=break_lock
            )
        except OSError as error:
            raise runs_dir_unwritable(runs_dir, error) from None

    @classmethod
    def _acquire(
        cls,
        runs_dir: Path,
        source: str,
        holder: LockHolder,
        *,
        unfinished: Callable[[LockHolder], bool],
        break_lock: bool,
    ) -> OrgLock:
        path = lock_path(runs_dir, source)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            previous = _read_holder(descriptor)
            os.close(descriptor)
            if previous is None or previous.age() < STALE_AFTER or not break_lock:
                raise held(source, previous) from None
            # A stale holder keeps its lock on the old file; this run locks a new one.
            path.unlink(missing_ok=True)
            return cls._acquire(runs_dir, source, holder, unfinished=unfinished, break_lock=False)
        try:
            taken_over = continued_run(
                source, _read_holder(descriptor), holder, unfinished, break_lock=break_lock
            )
            _write_holder(descriptor, holder)
        except (OSError, RunLockedError):
            os.close(descriptor)
            raise
        return cls(path, descriptor, taken_over)

    def name_run(self, holder: LockHolder) -> None:
        """Write the holder again, now that its run has an id."""
        try:
            _write_holder(self._descriptor, holder)
        except OSError as error:
            raise runs_dir_unwritable(self.path.parent.parent, error) from None

    def release(self, *, finished: bool) -> None:
        """Let go; a run that did not finish leaves its name for the command that continues it."""
        if finished:
            os.ftruncate(self._descriptor, 0)
        os.close(self._descriptor)
        self._descriptor = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """On an error the run's name stays (it is unfinished if it made calls);
        `release(finished=True)` clears it first."""
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1


def take_org_lock(
    runs_dir: Path,
    source: str,
    holder: LockHolder,
    *,
    unfinished: Callable[[LockHolder], bool],
    break_lock: bool = False,
    database: str | None = None,
) -> OrgLock | DatabaseOrgLock:
    """The lock of `source` (`OrgLock.acquire`): in the runs folder, or in `database`."""
    if database is None:
        return OrgLock.acquire(
            runs_dir, source, holder, unfinished=unfinished, break_lock=break_lock
        )
    from toolkit.database_locks import DatabaseOrgLock

    return DatabaseOrgLock.acquire(
        database, source, holder, unfinished=unfinished, break_lock=break_lock
    )


def continued_run(
    source: str,
    previous: LockHolder | None,
    holder: LockHolder,
    unfinished: Callable[[LockHolder], bool],
    *,
    break_lock: bool,
) -> LockHolder | None:
    """Once the lock is free: the unfinished run of the same key that `holder` continues, if
    any. Raises `RunLockedError` when `previous` is another key's unfinished run (unless
    `break_lock`); a previous run that made no call counts for nothing."""
    if previous is None or not unfinished(previous):
        return None
    if previous.run_key != holder.run_key:
        if not break_lock:
            raise _unfinished(source, previous)
        return None
    return previous


def lock_path(runs_dir: Path, source: str) -> Path:
    folder = runs_dir / LOCKS_DIR
    make_private_dir(folder)
    return folder / f"{hashlib.sha256(source.encode()).hexdigest()[:32]}.lock"


def held(source: str, holder: LockHolder | None) -> RunLockedError:
    """The lock of `source` is held now (by `holder`, if it is known)."""
    if holder is None:
        return RunLockedError(f"another run is starting on {source}; nothing was changed.")
    stale = holder.age() >= STALE_AFTER
    return RunLockedError(
        f"{source} is locked by {holder.describe()}"
        f"{' and looks stale' if stale else ''}; nothing was changed.",
        hint=(
            "If that process is gone or hung, pass --break-lock to take the lock."
            if stale
            else "Wait for that run to finish (one run per source org at a time)."
        ),
    )


def _unfinished(source: str, holder: LockHolder) -> RunLockedError:
    alive = holder.host == socket.gethostname() and _running(holder.pid)
    state = "stopped" if not alive else "left"
    return RunLockedError(
        f"{source} has an unfinished run: {holder.describe()}, {state} before it finished "
        "(its stacks may be half-way, under temporary names); nothing was changed.",
        hint=f"Finish it by running its command again: {holder.command}\n"
        "Or pass --break-lock to start this run anyway.",
    )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_holder_text(text: str) -> LockHolder | None:
    """The holder a lock names (None: none, or not readable)."""
    if not text.strip():
        return None
    try:
        return LockHolder(**json.loads(text))
    except (ValueError, TypeError):
        return None


def _read_holder(descriptor: int) -> LockHolder | None:
    os.lseek(descriptor, 0, os.SEEK_SET)
    return read_holder_text(os.read(descriptor, 1 << 16).decode("utf-8", errors="replace"))


def _write_holder(descriptor: int, holder: LockHolder) -> None:
    os.ftruncate(descriptor, 0)
    os.lseek(descriptor, 0, os.SEEK_SET)
    os.write(descriptor, holder.to_text().encode())
