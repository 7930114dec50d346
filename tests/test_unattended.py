"""A scheduled job on a bad day: 15 % of the service's answers are faults (5xx, 429, and
connections dropped after the change was applied), and the same commit is simply run again
until it exits 0. Afterwards every planned stack is in the destination exactly once under its
planned name, none remains in the source, no temporary name survives, and the journal agrees
with the service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commit_process import (
    Finished,
    assert_transferred_once,
    run_toolkit,
    toolkit_env,
    transfer_world,
)

from toolkit.emulator.faults import FaultRates
from toolkit.journal import read_run
from toolkit.models import AgentClaimResponse
from toolkit.moves import TEMPORARY_SUFFIX

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
TOKEN = "tok-alice"
FREE = [("web", f"s{i:03}") for i in range(180)]
COLLIDING = [("api", f"c{i:02}") for i in range(18)]
SWAPPED = [("app", "a"), ("app", "b")]
PLANNED = {
    **{name: name for name in FREE},
    **{(p, s): (p, f"{s}-agent") for p, s in COLLIDING},
    ("app", "a"): ("app", "b"),
    ("app", "b"): ("app", "a"),
}
RESOLUTIONS = (
    "stacks:\n"
    + "".join(f"  {p}/{s}: {p}/{s}-agent\n" for p, s in COLLIDING)
    + "  app/a: app/b\n  app/b: app/a\n"
)
FIFTEEN_PERCENT = FaultRates(
    seed=20261201,
    rates={
        **{"500": 0.03, "502": 0.03, "503": 0.03, "429": 0.02},
        **{"dropAfterApply": 0.03, "drop": 0.01},
    },
    retry_after=0.05,
)
MOST_RUNS = 25


def world() -> dict[str, Any]:
    return transfer_world(AGENT, TOKEN, COLLIDING, [*FREE, *COLLIDING, *SWAPPED])


def test_a_200_stack_commit_under_15_percent_faults_completes_through_plain_reruns(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    (tmp_path / "map.yaml").write_text(RESOLUTIONS, encoding="utf-8")
    env = toolkit_env(tmp_path / "runs", PULUMI_ACCESS_TOKEN=TOKEN)
    server.faults.set_rates(FIFTEEN_PERCENT)

    runs: list[Finished] = []
    while not runs or runs[-1].returncode != 0:
        assert len(runs) < MOST_RUNS, [run.stderr[-800:] for run in runs[-3:]]
        runs.append(
            run_toolkit(
                server,
                env,
                *("commit", "--from", AGENT, "--to", "acme", "--strategy", "transfer"),
                *("-r", str(tmp_path / "map.yaml"), "--yes", "--format", "json"),
            )
        )
        assert runs[-1].returncode in (0, 1, 4), runs[-1].stderr
        assert "Traceback" not in runs[-1].stderr

    counts = server.faults.rate_counts()
    assert sum(counts.fired.values()) > 0.1 * counts.considered, "the faults really fired"
    assert counts.fired["dropAfterApply"] > 0
    server.faults.clear_rates()
    document = AgentClaimResponse.model_validate(json.loads(runs[-1].stdout))
    assert document.failures == []
    assert server.state.stack_names(AGENT) == set()
    assert server.state.stack_names("acme") == set(COLLIDING) | set(PLANNED.values())
    names = server.state.stack_names("acme")
    assert not [name for name in names if TEMPORARY_SUFFIX in name[1]]
    run = read_run(tmp_path / "runs")
    assert run.finished and run.result == document and run.attempts == len(runs)
    assert_transferred_once(run.steps, [f"{p}/{s}" for p, s in PLANNED])
    print(
        f"\n{len(runs)} run(s) to finish; exit codes {[r.returncode for r in runs]}; "
        f"{counts.considered} requests, faults fired: {dict(counts.fired)}"
    )
