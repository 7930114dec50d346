"""The migrate benchmark still runs end to end in its small `--quick` form: the three paths
move every stack intact (the script checks that itself) and each prints its figure, set
against the in-flight floor for REST; the figures themselves are not judged here (timings
belong to the benchmark, never to tests)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench_runs import quick_run

from toolkit.cloud import DEFAULT_MAX_CONCURRENCY

STACKS = 3

MEASURED = (
    r": (?P<seconds>[\d.]+) s, (?P<rate>[\d.]+) stacks/s, (?P<calls>\d+) calls, "
    r"at most (?P<peak>\d+) in flight, CPU (?P<cpu>[\d.]+) s \(this process and its pulumi "
    r"processes\)(?:, the emulator [\d.]+ s)?\n"
)
REST = re.compile(
    rf"migrate {STACKS} stacks, REST path, 20 ms{MEASURED}"
    r"  in flight at (?P<concurrency>\d+): floor (?P=calls) / (?P=concurrency) x 20 ms = "
    r"(?P<floor>[\d.]+) s, (?P<ratio>[\d.]+)x the floor\n"
    r"  CPU a call: this process (?P<toolkit_ms>[\d.]+) ms, the emulator "
    r"(?P<emulator_ms>[\d.]+) ms\n"
)
CLI = re.compile(rf"migrate {STACKS} stacks, CLI path \(\d+ stacks at once\), 20 ms{MEASURED}")
BY_HAND = re.compile(
    rf"migrate {STACKS} stacks by hand \(stack export --show-secrets, stack init, stack "
    rf"import; one stack after another\), 20 ms{MEASURED}"
)
TABLE_ROWS = {
    "REST path": r"(?P<seconds>[\d.]+) s +< 10 s",
    "CLI path / REST path": r"(?P<speedup>[\d.]+)x +>= 20x",
    "by hand / REST path": r"(?P<speedup>[\d.]+)x +reported",
    "CPU s: REST / CLI / by hand": (
        r"(?P<rest>[\d.]+) / (?P<cli>[\d.]+) / (?P<hand>[\d.]+) +reported"
    ),
}


def test_quick_migrate_benchmark_measures_every_path(pulumi_cli: Path) -> None:
    result = quick_run("migrate.py", timeout=240)
    output = result.stdout
    rest, cli, by_hand = REST.search(output), CLI.search(output), BY_HAND.search(output)
    assert rest and cli and by_hand, output
    for path in (rest, cli, by_hand):
        seconds = Printed(path["seconds"])
        assert_shows(path["rate"], STACKS / seconds.high, STACKS / seconds.low)
        # Every stack needs at least its export, its creation and its import.
        assert int(path["calls"]) >= 3 * STACKS, path[0]
        assert 1 <= int(path["peak"]) <= int(path["calls"]), path[0]
    calls = int(rest["calls"])
    floor = calls / DEFAULT_MAX_CONCURRENCY * 0.020
    assert int(rest["concurrency"]) == DEFAULT_MAX_CONCURRENCY
    assert float(rest["floor"]) == round(floor, 3)
    rest_seconds = Printed(rest["seconds"])
    assert_shows(rest["ratio"], rest_seconds.low / floor, rest_seconds.high / floor)
    assert_cpu_a_call_shown(rest)

    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("figure "))
    rows: dict[str, re.Match[str]] = {}
    for name, shown in TABLE_ROWS.items():
        pattern = re.compile(rf"migrate {STACKS} stacks, {re.escape(name)} +{shown} +n/a")
        found = next((m for row in lines[header + 1 :] if (m := pattern.fullmatch(row))), None)
        assert found, f"no row for {name!r} in\n{output}"
        rows[name] = found
    assert "(quick run: small worlds, so the targets do not apply)" in lines
    assert rows["REST path"]["seconds"] == rest["seconds"]
    for name, path in (("CLI path / REST path", cli), ("by hand / REST path", by_hand)):
        seconds = Printed(path["seconds"])
        speedup = rows[name]["speedup"]
        assert_shows(speedup, seconds.low / rest_seconds.high, seconds.high / rest_seconds.low)
    cpu = rows["CPU s: REST / CLI / by hand"]
    assert (cpu["rest"], cpu["cli"], cpu["hand"]) == (rest["cpu"], cli["cpu"], by_hand["cpu"])


def test_quick_migrate_benchmark_via_rest_measures_the_rest_path_alone(
    pulumi_cli: Path,
) -> None:
    result = quick_run("migrate.py", "--via", "rest", timeout=180)
    output = result.stdout
    rest = REST.search(output)
    assert rest, output
    assert not CLI.search(output) and not BY_HAND.search(output), output
    assert_cpu_a_call_shown(rest)
    assert "pulumi-claim migrate benchmark (quick, REST path only)" in output
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("figure "))
    rows = [line for line in lines[header + 1 :] if line.startswith(f"migrate {STACKS} stacks")]
    assert len(rows) == 2, output
    assert re.fullmatch(
        rf"migrate {STACKS} stacks, REST path +{re.escape(rest['seconds'])} s +< 10 s +n/a",
        rows[0],
    ), rows[0]
    assert re.fullmatch(
        rf"migrate {STACKS} stacks, REST path CPU s: toolkit / emulator +"
        rf"{re.escape(rest['cpu'])} / [\d.]+ +reported +n/a",
        rows[1],
    ), rows[1]


def assert_cpu_a_call_shown(rest: re.Match[str]) -> None:
    """The REST path's CPU a call is its CPU (printed to 0.1 s) over its calls."""
    calls, cpu = int(rest["calls"]), Printed(rest["cpu"])
    assert_shows(rest["toolkit_ms"], cpu.low * 1000 / calls, cpu.high * 1000 / calls)
    assert float(rest["toolkit_ms"]) > 0, rest[0]


@dataclass(frozen=True)
class Printed:
    """A number as printed, and the bounds of the value it was rounded from."""

    text: str

    @property
    def half_step(self) -> float:
        return 0.5 * 10 ** -len(self.text.partition(".")[2])

    @property
    def low(self) -> float:
        return float(self.text) - self.half_step

    @property
    def high(self) -> float:
        return float(self.text) + self.half_step


def assert_shows(shown: str, low: float, high: float) -> None:
    """`shown` is a value in [low, high], rounded as printed."""
    printed = Printed(shown)
    assert printed.low <= high and low <= printed.high, (shown, low, high)
