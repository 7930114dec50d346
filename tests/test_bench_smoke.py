"""The benchmark still runs end to end in its small `--quick` form and sets its figures against
floors counted from what the emulator served; the figures themselves are not judged here
(timings belong to the benchmark, never to tests)."""

from __future__ import annotations

import re

from bench_runs import quick_run

from toolkit.cloud import DEFAULT_MAX_CONCURRENCY

FIGURES = (
    "preview 0 ms, map",
    "preview 0 ms, no map",
    "preview 20 ms, map vs longest chain",
    "preview 20 ms, no map vs longest chain",
    "preview 200 ms (154 vs 150 stacks) vs plain walk of the chain",
    "the whole `pulumi-claim preview` process at 200 ms vs that walk",
    "commit 60 stacks speed-up",
    "commit 60 stacks vs in-flight floor",
    "claim 60 stacks, claim API vs transfer",
    "memory at 2,000 entities",
    "pulumi-claim --help",
)

PREVIEW_AT_20_MS = re.compile(
    r"preview 20 ms, (?:no )?map: (?P<seconds>[\d.]+) s, (?P<pages>\d+) pages, "
    r"longest chain (?P<chain>\d+) pages \(GET /api/\S+\) x 20 ms = (?P<floor>[\d.]+) s: "
    r"(?P<ratio>[\d.]+)x the chain, target <= 1.2x"
)
PREVIEW_AT_200_MS = re.compile(
    r"preview 200 ms \(154 vs 150 stacks\): plan_claim (?P<seconds>[\d.]+) s, (?P<calls>\d+) "
    r"calls, longest chain (?P<chain>\d+) pages \(GET /api/user/stacks\?\S+\); a plain walk "
    r"of that chain (?P<walk>[\d.]+) s: (?P<ratio>[\d.]+)x the walk, target <= 1.1x\n"
    r"  calls answered before the first stack page was asked: \d+; the whole "
    r"`pulumi-claim preview` process \(start-up, rendering\): (?P<process>[\d.]+) s = "
    r"(?P<process_ratio>[\d.]+)x the walk, target <= 1.1x; its CPU (?P<cpu>[\d.]+) s"
)
COMMIT = re.compile(
    r"commit 60 stacks \(10 renamed\), 20 ms, (?P<calls>\d+) calls, "
    r".*: commit_claim (?P<seconds>[\d.]+) s"
)
ONE_AT_A_TIME = re.compile(
    r"one call at a time: measured [\d.]+ s \([\d.]+x the commit's time\), "
    r"floor (?P<calls>\d+) x 20 ms = (?P<floor>[\d.]+) s"
)
IN_FLIGHT = re.compile(
    r"in flight at (?P<concurrency>\d+): floor (?P<calls>\d+) / (?P=concurrency) x 20 ms = "
    r"(?P<floor>[\d.]+) s, (?P<ratio>[\d.]+)x the floor, target <= 1.2x\n"
    r"  CPU a call: this process (?P<toolkit_ms>[\d.]+) ms, the emulator "
    r"(?P<emulator_ms>[\d.]+) ms \(the median commit\)\n"
)


def test_quick_benchmark_runs_and_prints_every_figure_against_its_floor() -> None:
    result = quick_run("preview_commit.py", timeout=240)
    output = result.stdout
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("figure "))
    rows = lines[header + 1 :]
    for figure in FIGURES:
        assert any(row.startswith(f"{figure} ") for row in rows), f"no row for {figure!r}"
    assert "(quick run: small worlds, so the targets do not apply)" in rows

    previews = list(PREVIEW_AT_20_MS.finditer(output))
    assert len(previews) == 2, output
    for preview in previews:
        chain, pages = int(preview["chain"]), int(preview["pages"])
        # Two orgs are listed side by side, so the longest chain is shorter than all pages.
        assert 1 <= chain < pages, preview[0]
        assert float(preview["floor"]) == round(chain * 0.020, 3), preview[0]
        assert_ratio(preview["ratio"], preview["seconds"], preview["floor"])

    far_away = PREVIEW_AT_200_MS.search(output)
    assert far_away, output
    # 154 agent stacks at the emulator's 100 a page; each org's other lists are one page.
    assert int(far_away["chain"]) == 2, far_away[0]
    assert int(far_away["calls"]) > int(far_away["chain"])
    assert_ratio(far_away["ratio"], far_away["seconds"], far_away["walk"])
    assert_ratio(far_away["process_ratio"], far_away["process"], far_away["walk"])
    assert float(far_away["cpu"]) > 0, far_away[0]

    commit = COMMIT.search(output)
    one_at_a_time = ONE_AT_A_TIME.search(output)
    in_flight = IN_FLIGHT.search(output)
    assert commit and one_at_a_time and in_flight, output
    calls = int(commit["calls"])
    # 60 transfers and 10 renames at least, besides the listings.
    assert calls > 70
    assert int(one_at_a_time["calls"]) == int(in_flight["calls"]) == calls
    assert float(one_at_a_time["floor"]) == round(calls * 0.020, 3)
    assert int(in_flight["concurrency"]) == DEFAULT_MAX_CONCURRENCY
    assert float(in_flight["floor"]) == round(calls / DEFAULT_MAX_CONCURRENCY * 0.020, 3)
    assert_ratio(in_flight["ratio"], commit["seconds"], in_flight["floor"])
    # Every call costs this process some CPU (the emulator's is counted in clock ticks, which
    # a quick run's few calls may not fill).
    assert float(in_flight["toolkit_ms"]) > 0, in_flight[0]


def assert_ratio(shown: str, seconds: str, floor: str) -> None:
    """`shown` is seconds / floor, as far as the printed roundings (2 and 3 decimals) allow."""
    low = (float(seconds) - 0.005) / (float(floor) + 0.0005) - 0.005
    high = (float(seconds) + 0.005) / (float(floor) - 0.0005) + 0.005
    assert low <= float(shown) <= high, (shown, seconds, floor)
