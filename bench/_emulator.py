"""The emulator as the benchmarks run it: `pulumi-claim emulator` in its own process, as the
service would be, so the times, calls and memory measured are the toolkit's alone; its request
log (`/_emulator/requests`) says which calls it served."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

import httpx

if TYPE_CHECKING:
    from toolkit.emulator.world import ResourceSearch

CONSOLE_SCRIPT = Path(sys.executable).parent / "pulumi-claim"
"""The installed `pulumi-claim`, next to the interpreter running the benchmark."""


def announce(title: str) -> None:
    """Print the benchmark's `title` with the machine's CPUs and load; refused outside the
    project's environment, where there is no `pulumi-claim` to serve the emulator."""
    if not CONSOLE_SCRIPT.exists():
        script = Path(sys.argv[0]).name
        raise SystemExit(f"no {CONSOLE_SCRIPT}: run this with `uv run python bench/{script}`")
    print(f"{title}; {os.cpu_count()} CPUs, load average {load_average()}")


def sign_off() -> None:
    """The load at the end: a busy machine slows every figure."""
    print(
        f"load average at the end: {load_average()} (other work on the machine slows every figure)"
    )


def load_average() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def children_cpu_seconds() -> float:
    """User and system CPU seconds of the processes this one has waited for (not the
    emulators, which run on until the end: `Emulator.cpu_seconds`)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def check(condition: bool, what: str) -> None:
    """Stop the benchmark when a run did not do what it must (figures would be meaningless)."""
    if not condition:
        raise SystemExit(f"benchmark check failed: {what}")


class Emulator:
    """`pulumi-claim emulator` serving a world file from its own process.

    With `db`, its state lives in that SQLite file, and a file that exists already is served
    as it is (the world file is not read again): a world seeded once, then copied, serves each
    measurement afresh. `port` 0 lets the system pick a free one.
    """

    def __init__(
        self, world_file: Path, *, latency_ms: float, db: Path | None = None, port: int = 0
    ) -> None:
        command = [str(CONSOLE_SCRIPT), "emulator", "--world", str(world_file)]
        command += ["--latency-ms", str(latency_ms), "--port", str(port)]
        if db is not None:
            command += ["--db", str(db)]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.url = ""

    def wait_until_listening(self) -> None:
        """Read the URL the emulator prints first, once it listens."""
        assert self._process.stdout is not None
        first_line = self._process.stdout.readline()
        if not first_line.startswith("Pulumi Cloud emulator listening on "):
            raise RuntimeError(f"the emulator did not start (it said {first_line!r})")
        self.url = first_line.split()[-1]

    def served(self) -> Served:
        """The service requests answered since the log was last cleared."""
        log = httpx.get(f"{self.url}/_emulator/requests").raise_for_status().json()
        requests = tuple(
            ServedRequest(
                method=entry["method"],
                path=entry["path"],
                query=entry["query"],
                started=entry["started"],
                finished=entry["finished"],
                status=entry["status"],
            )
            for entry in log["requests"]
        )
        return Served(requests=requests, peak_in_flight=log["peakInFlight"])

    def clear_requests(self) -> None:
        httpx.delete(f"{self.url}/_emulator/requests").raise_for_status()

    def set_latency(self, latency_ms: float) -> None:
        """Add `latency_ms` to every request from now on."""
        body = {"latencyMs": latency_ms}
        httpx.put(f"{self.url}/_emulator/latency", json=body).raise_for_status()

    def set_rate_limit(self, per_second: float | None) -> None:
        """Answer each token at most `per_second` requests a second from now on (None: no
        limit); beyond it, 429 with `Retry-After`."""
        body = {"perSecond": per_second}
        httpx.put(f"{self.url}/_emulator/rate-limit", json=body).raise_for_status()

    def set_resource_search(self, answer: ResourceSearch) -> None:
        """Have the resource search answer as `answer` says from now on."""
        body = {"answer": answer}
        httpx.put(f"{self.url}/_emulator/resource-search", json=body).raise_for_status()

    def peak_rss_mb(self) -> float | None:
        """The emulator process's peak resident memory, where /proc tells it."""
        try:
            status = Path(f"/proc/{self._process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def cpu_seconds(self) -> float | None:
        """User and system CPU time the emulator process has used, where /proc tells it."""
        try:
            stat = Path(f"/proc/{self._process.pid}/stat").read_text()
        except OSError:
            return None
        # The command name (field 2) is in parentheses and may hold any character.
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_seconds_since(self, before: float | None) -> float | None:
        """The CPU time the emulator process has used since `cpu_seconds` said `before`;
        None where /proc told either reading not."""
        after = self.cpu_seconds()
        return None if before is None or after is None else after - before

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()


@contextmanager
def emulators(*worlds: tuple[Path, float]) -> Iterator[list[Emulator]]:
    """One emulator per (world file, added latency in ms), all stopped at the end.

    They start side by side, since most of a start-up is importing the web stack, and an
    emulator no one calls yet costs nothing while another is measured.
    """
    with ExitStack() as running:
        started: list[Emulator] = []
        for world_file, latency_ms in worlds:
            service = Emulator(world_file, latency_ms=latency_ms)
            running.callback(service.stop)
            started.append(service)
        for service in started:
            service.wait_until_listening()
        yield started


@dataclass(frozen=True)
class ServedRequest:
    """One service request of the emulator's request log."""

    method: str
    path: str
    query: str
    """As sent, without the `?`."""
    started: float
    """When it arrived, on the emulator's monotonic clock."""
    finished: float
    """When its answer started to leave, on the same clock."""
    status: int | None
    """None when the connection was dropped."""

    @property
    def seconds(self) -> float:
        """From its arrival to its answer: the added latency and the emulator's own handling."""
        return self.finished - self.started

    @property
    def listing(self) -> str:
        """The listing this request is a page of: method, path and query without the
        continuation token (a request that lists nothing is a listing of one page)."""
        kept = [(key, value) for key, value in self._query() if key != "continuationToken"]
        query = urlencode(kept)
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")

    @property
    def continuation_token(self) -> str | None:
        """The token of the page before this one; None on a listing's first page."""
        return next((value for key, value in self._query() if key == "continuationToken"), None)

    def _query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)


@dataclass(frozen=True)
class Served:
    """What the emulator served since its request log was last cleared."""

    requests: tuple[ServedRequest, ...]
    peak_in_flight: int
    """The most requests it had in flight at once."""

    def slot_cycle(self, slots: int) -> SlotCycle:
        """Where the time of a call slot went, on average, with `slots` calls kept in flight
        from the first arrival to the last answer."""
        span = max(r.finished for r in self.requests) - min(r.started for r in self.requests)
        served = sum(r.seconds for r in self.requests) / len(self.requests)
        return SlotCycle(cycle=span * slots / len(self.requests), served=served)


@dataclass(frozen=True)
class SlotCycle:
    """One call slot's turn, on average: from sending a call to sending the next one."""

    cycle: float
    """Seconds a turn took: the span of the calls times the slots, divided by the calls."""
    served: float
    """Seconds of it between the call's arrival and its answer (the latency and the emulator's
    own handling); the rest went outside the emulator: the client's handling of the answer
    and of the next call, and each process waiting for its one thread."""

    def describe(self, latency_ms: float) -> str:
        cycle, served = self.cycle * 1000, self.served * 1000
        return (
            f"a call slot's turn: {cycle:.1f} ms = {latency_ms:g} ms latency + "
            f"{served - latency_ms:.1f} ms more in the emulator + {cycle - served:.1f} ms "
            "outside it (the client's handling, waits for each process's one thread)"
        )
