"""The preview chain benchmark still runs end to end in its small `--quick` form and takes
each preview apart; the figures themselves are not judged here (timings belong to the
benchmark, never to tests)."""

from __future__ import annotations

import re

from bench_runs import quick_run


def test_quick_benchmark_takes_each_preview_apart() -> None:
    result = quick_run("preview_chain.py", timeout=120)
    for label in ("map", "no map"):
        head = re.search(
            rf"^preview 20 ms, {label}: [\d.]+ s \(median of [\d., ]+\) = [\d.]+x its longest "
            r"chain \((?P<pages>\d+) pages x 20 ms",
            result.stdout,
            re.M,
        )
        assert head, (label, result.stdout)
        assert int(head["pages"]) > 1
    for detail in (r"before the chain's first page [\d.]+ s;", r"CPU: toolkit [\d.]+ s, "):
        assert len(re.findall(rf"^  {detail}", result.stdout, re.M)) == 2, result.stdout
