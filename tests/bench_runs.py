"""The benchmarks' `--quick` runs, as their smoke tests make them: the script run to its end by
the interpreter running the tests, its figures on its standard output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def quick_run(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`bench/SCRIPT --quick ARGS`, which must end with exit 0 within `timeout` seconds."""
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result
