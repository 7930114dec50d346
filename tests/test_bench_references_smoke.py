"""The stack references benchmark still runs end to end in its small `--quick` form: the
service's search and the exports each find every StackReference the world seeded (the
script checks that itself, and stops otherwise) and print their figures, consistent with the
world; the figures themselves are not judged here (timings belong to the benchmark, never to
tests)."""

from __future__ import annotations

import re

from bench_runs import quick_run

WAY = (
    r"  (?P<way>found by the service's search|by exporting (?P<exported>[\d,]+) states): "
    r"(?P<seconds>[\d.]+) s, (?P<calls>[\d,]+) calls?, at most (?P<peak>\d+) in flight; "
    r"the emulator's CPU (?:[\d.]+ s|n/a)"
)


def test_quick_references_benchmark_finds_the_same_references_both_ways() -> None:
    result = quick_run("references.py", timeout=240)
    output = result.stdout

    assert (
        "world: 200 stacks of acme in 20 projects, 20 of them holding 40 StackReferences;"
        " 20 ms a call"
    ) in output
    ways = [match.groupdict() for match in re.finditer(WAY, output)]
    assert [way["way"] for way in ways] == [
        "found by the service's search",
        "by exporting 200 states",
    ], output
    searched, exported = ways
    # The search: 40 results on one page. The exports: the listing, then a state a stack.
    assert searched["calls"] == "1"
    assert int(exported["calls"]) >= 200 + 1
    assert 1 <= int(exported["peak"]) <= 16
    assert "both found the same 40 StackReferences; exporting took " in output
