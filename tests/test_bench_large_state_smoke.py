"""The large-state benchmark still runs end to end in its small `--quick` form: both paths
move the stack intact (the script checks that itself: resources, renamed URNs, references,
secrets) and print their figures; the figures themselves are not judged here (timings belong
to the benchmark, never to tests)."""

from __future__ import annotations

import re
from pathlib import Path

from bench_runs import quick_run

from tests.test_bench_migrate_smoke import Printed, assert_shows

RESOURCES = 400

MEASURED = (
    r": (?P<seconds>[\d.]+) s, (?P<calls>\d+) calls, at most (?P<peak>\d+) in flight, "
    r"CPU [\d.]+ s, peak RSS (?P<mb>\d+) MB; the emulator: CPU [\d.]+ s, peak RSS \d+ MB\n"
)
REST = re.compile(rf"migrate {RESOURCES} resources, REST path \(toolkit process\), 20 ms{MEASURED}")
BY_HAND = re.compile(
    rf"migrate {RESOURCES} resources by hand \(stack export --show-secrets, stack init, stack "
    rf"import, stack rename\), 20 ms{MEASURED}"
)


def test_quick_large_state_benchmark_measures_both_paths(pulumi_cli: Path) -> None:
    result = quick_run("large_state.py", timeout=240)
    output = result.stdout
    assert (
        f"world: one stack of {RESOURCES} resources (30 secrets, 4 providers, components "
        "nested 12 deep) in agent-bench, moving to acme as platform/prod;"
    ) in output
    rest, by_hand = REST.search(output), BY_HAND.search(output)
    assert rest and by_hand, output
    # Over REST: the source's record, export and batch-decrypt; create, batch-encrypt,
    # import and its status; the copy's record, export and batch-decrypt; tags.
    assert int(rest["calls"]) >= 11, rest[0]
    # By hand: at least an export, a creation, an import and a rename.
    assert int(by_hand["calls"]) >= 4, by_hand[0]
    for path in (rest, by_hand):
        assert 1 <= int(path["peak"]) <= int(path["calls"]), path[0]
        assert int(path["mb"]) > 0, path[0]
    rows = {
        "by hand / REST path": r"(?P<shown>[\d.]+)x +>= 3x",
        "REST path peak RSS": rf"{rest['mb']} MB +< 500 MB",
    }
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("figure "))
    found: dict[str, re.Match[str]] = {}
    for name, shown in rows.items():
        pattern = re.compile(rf"migrate {RESOURCES} resources, {re.escape(name)} +{shown} +n/a")
        match = next((m for row in lines[header + 1 :] if (m := pattern.fullmatch(row))), None)
        assert match, f"no row for {name!r} in\n{output}"
        found[name] = match
    rest_seconds, hand_seconds = Printed(rest["seconds"]), Printed(by_hand["seconds"])
    assert_shows(
        found["by hand / REST path"]["shown"],
        hand_seconds.low / rest_seconds.high,
        hand_seconds.high / rest_seconds.low,
    )
    assert "(quick run: small worlds, so the targets do not apply)" in lines
