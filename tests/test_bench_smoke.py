"""The benchmark still runs end to end in its small `--quick` form; its figures are not judged
here (timings belong to the benchmark, never to tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "preview_commit.py"

FIGURES = (
    "preview 0 ms, map",
    "preview 0 ms, no map",
    "preview 20 ms, map",
    "preview 20 ms, no map",
    "commit 60 stacks speed-up",
    "claim 60 stacks, claim API vs transfer",
    "memory at 2,000 entities",
    "pulumi-claim --help",
)


def test_quick_benchmark_runs_and_prints_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("figure "))
    rows = lines[header + 1 :]
    for figure in FIGURES:
        assert any(row.startswith(f"{figure} ") for row in rows), f"no row for {figure!r}"
    assert "(quick run: small worlds, so the targets do not apply)" in rows
