"""Job files for schedulers: `job run` and `job check` against the emulator, and the JSON log
lines `job run` and `commit` write with --log-format json."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result
from commit_process import StopAt, run_toolkit, toolkit_env

from toolkit.cli import cli
from toolkit.emulator.server import EmulatorServer
from toolkit.models import AgentClaimResponse
from toolkit.outcomes import worst_exit_code

if TYPE_CHECKING:
    from conftest import EmulatorFactory

ADMIN_TOKEN = "tok-alice"
ACCESS_TOKEN_LOOKALIKE = "pul-" + "0123456789abcdef" * 2 + "01234567"
AGENTS = ("agent-a", "agent-b", "agent-c")


def world() -> dict[str, Any]:
    """alice administers acme (web/dev, api/prod) and three agents' orgs: agent-a's web/dev and
    agent-c's web/dev collide with acme's, and so does agent-b's api/prod."""
    return {
        "users": [
            {
                "login": "alice",
                "token": ADMIN_TOKEN,
                "orgs": {"acme": "admin", **dict.fromkeys(AGENTS, "admin")},
            }
        ],
        "orgs": {
            "acme": {
                "stacks": [{"project": "web", "stack": "dev"}, {"project": "api", "stack": "prod"}]
            },
            "agent-a": {
                "stacks": [{"project": "web", "stack": "dev"}, {"project": "web", "stack": "qa"}]
            },
            "agent-b": {
                "stacks": [{"project": "api", "stack": "prod"}, {"project": "api", "stack": "dev"}]
            },
            "agent-c": {
                "stacks": [{"project": "web", "stack": "dev"}, {"project": "svc", "stack": "x"}]
            },
        },
    }


THREE_CLAIMS = """\
apiUrl: {url}
claims:
  - name: claim-a
    from: agent-a
    to: acme
    resolutions: maps/agent-a.yaml
    strategy: transfer
    concurrency: 2
    tokens: {{destination: ACME_ADMIN_TOKEN}}
  - name: claim-b
    from: agent-b
    to: acme
    tokens: {{destination: ACME_ADMIN_TOKEN}}
  - name: claim-c
    from: agent-c
    to: acme
    suffix: -c
"""
"""claim-a renames with a map file, claim-b has none (blocked by api/prod), claim-c renames with
a suffix; claim-c's token comes from PULUMI_ACCESS_TOKEN."""

MOVED_INTO_ACME = {
    ("web", "dev"),
    ("api", "prod"),
    ("web", "dev-a"),
    ("web", "qa"),
    ("web", "dev-c"),
    ("svc", "x"),
}


def write_job(folder: Path, text: str) -> Path:
    """The job file, beside the maps/ folder its claims' resolutions are relative to."""
    (folder / "maps").mkdir(exist_ok=True)
    (folder / "maps" / "agent-a.yaml").write_text("stacks:\n  web/dev: web/dev-a\n", "utf-8")
    job = folder / "job.yaml"
    job.write_text(text, encoding="utf-8")
    return job


def run_cli(tmp_path: Path, *args: str, **env: str | None) -> Result:
    """`pulumi-claim ARGS` in-process; tokens as the test sets them, nothing else."""
    variables = {"PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"), "ACME_ADMIN_TOKEN": ADMIN_TOKEN}
    variables.update({"PULUMI_ACCESS_TOKEN": ADMIN_TOKEN, **env})
    return CliRunner().invoke(cli, list(args), env=variables, catch_exceptions=False)


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """stdout as JSON lines: every line one object, nothing else."""
    records = [json.loads(line) for line in stdout.splitlines()]
    assert records and all(isinstance(record, dict) for record in records)
    return records


def summary_of(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last line's summary, claim by claim."""
    assert records[-1]["event"] == "summary"
    return {claim["claim"]: claim for claim in records[-1]["claims"]}


def snapshot(server: EmulatorServer) -> dict[str, set[tuple[str, str]]]:
    return {org: server.state.stack_names(org) for org in ("acme", *AGENTS)}


# --- job run ---------------------------------------------------------------------------------


def test_a_blocked_claim_does_not_stop_the_others_and_the_job_exits_3(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    job = write_job(tmp_path, THREE_CLAIMS.format(url=server.url))

    result = run_cli(tmp_path, "job", "run", str(job), "--log-format", "json")

    assert result.exit_code == 3, result.stdout + result.stderr
    # stdout holds only JSON lines; stderr says each claim's outcome and the exit code's.
    assert result.stderr.splitlines() == [
        "claim claim-a: moved 2 of 2 stack(s)",
        "claim claim-b: blocked: 1 unresolved conflict(s); nothing was changed. Rename them in a "
        "resolution map (pulumi-claim resolve writes one).",
        "claim claim-c: moved 2 of 2 stack(s)",
        "exit 3: the worst claim is blocked",
    ]
    records = json_lines(result.stdout)
    assert [r["event"] for r in records if r["event"].startswith("claim-")] == [
        "claim-started",
        "claim-finished",
    ] * 3
    claims = summary_of(records)
    assert records[-1]["exitCode"] == 3
    assert {name: claim["outcome"] for name, claim in claims.items()} == {
        "claim-a": "done",
        "claim-b": "blocked",
        "claim-c": "done",
    }
    assert claims["claim-b"]["exitCode"] == 3
    assert claims["claim-b"]["conflicts"] == ["stack api/prod"]
    assert claims["claim-b"]["blocked"] == 1 and claims["claim-b"]["moved"] == 0
    assert (claims["claim-a"]["moved"], claims["claim-c"]["moved"]) == (2, 2)
    assert claims["claim-a"]["runId"] and claims["claim-c"]["runId"]
    landed = [r for r in records if r["event"] == "move-finished"]
    assert {(r["claim"], r["target"]) for r in landed} == {
        ("claim-a", "acme/web/dev-a"),
        ("claim-a", "acme/web/qa"),
        ("claim-c", "acme/web/dev-c"),
        ("claim-c", "acme/svc/x"),
    }
    assert all(r["time"].endswith("Z") and r["total"] == 2 for r in landed)
    after = snapshot(server)
    assert after["acme"] == MOVED_INTO_ACME
    assert after["agent-a"] == after["agent-c"] == set()
    assert after["agent-b"] == {("api", "prod"), ("api", "dev")}


def test_text_log_shows_progress_on_stderr_and_a_summary_table_on_stdout(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    job = write_job(tmp_path, THREE_CLAIMS.format(url=server.url))

    result = run_cli(tmp_path, "job", "run", str(job))

    assert result.exit_code == 3
    assert "stacks [0/2] moving agent-a/web/dev -> acme/web/dev-a" in result.stderr
    assert "claim claim-b: blocked: 1 unresolved conflict(s)" in result.stderr
    assert result.stderr.splitlines()[-1] == "exit 3: the worst claim is blocked"
    table = result.stdout
    for row in ("claim-a   done", "claim-b   blocked", "claim-c   done"):
        assert row in table
    assert "conflicts: stack api/prod" in table
    assert table.rstrip().endswith("exit code 3")


def test_running_a_finished_job_again_changes_nothing(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    job = write_job(tmp_path, THREE_CLAIMS.format(url=server.url))
    assert run_cli(tmp_path, "job", "run", str(job)).exit_code == 3
    before = snapshot(server)
    changes_before = server.requests.count(method="POST")

    again = run_cli(tmp_path, "job", "run", str(job), "--log-format", "json")

    assert again.exit_code == 3
    claims = summary_of(json_lines(again.stdout))
    assert claims["claim-a"]["alreadyFinished"] and claims["claim-c"]["alreadyFinished"]
    assert claims["claim-b"]["outcome"] == "blocked"
    assert server.requests.count(method="POST") == changes_before
    assert snapshot(server) == before


def test_an_erroring_claim_is_reported_and_the_job_exits_with_the_worst_code(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    job = write_job(
        tmp_path,
        THREE_CLAIMS.format(url=server.url).replace(
            "  - name: claim-b\n    from: agent-b\n",
            "  - name: ghost\n    from: ghost-org\n    to: acme\n    strategy: transfer\n"
            "  - name: claim-b\n    from: agent-b\n",
        ),
    )

    result = run_cli(tmp_path, "job", "run", str(job), "--log-format", "json")

    assert result.exit_code == 1
    claims = summary_of(json_lines(result.stdout))
    assert [claims[name]["exitCode"] for name in ("claim-a", "ghost", "claim-b", "claim-c")] == [
        0,
        1,
        3,
        0,
    ]
    assert claims["ghost"]["outcome"] == "error"
    assert "ghost-org" in claims["ghost"]["error"]
    assert snapshot(server)["acme"] == MOVED_INTO_ACME


def test_worst_exit_code_orders_blocked_partial_error() -> None:
    assert worst_exit_code([]) == 0
    assert worst_exit_code([0, 3, 0]) == 3
    assert worst_exit_code([3, 4, 0]) == 4
    assert worst_exit_code([4, 1, 3]) == 1
    assert worst_exit_code([1, 130]) == 130


def test_a_job_stopped_by_sigterm_skips_the_claims_not_started_and_a_rerun_finishes_it(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """As a Kubernetes CronJob past its deadline: SIGTERM, then the next scheduled run."""
    server = make_emulator(world())
    job = write_job(
        tmp_path,
        THREE_CLAIMS.format(url=server.url).replace(
            "suffix: -c", "suffix: -c\n    strategy: transfer"
        ),
    )
    env = toolkit_env(
        tmp_path / "runs", PULUMI_ACCESS_TOKEN=ADMIN_TOKEN, ACME_ADMIN_TOKEN=ADMIN_TOKEN
    )

    stopped = run_toolkit(
        server, env, "job", "run", str(job), "--log-format", "json", stop=StopAt(1, signal.SIGTERM)
    )

    assert stopped.returncode == 130, stopped.stderr
    claims = summary_of(json_lines(stopped.stdout))
    assert claims["claim-a"]["outcome"] == "interrupted"
    assert claims["claim-b"]["outcome"] == claims["claim-c"]["outcome"] == "not run"
    assert snapshot(server)["agent-c"] == {("web", "dev"), ("svc", "x")}

    rerun = run_toolkit(server, env, "job", "run", str(job), "--log-format", "json")

    assert rerun.returncode == 3, rerun.stderr
    claims = summary_of(json_lines(rerun.stdout))
    assert claims["claim-a"]["resumed"] and claims["claim-a"]["outcome"] == "done"
    assert snapshot(server)["acme"] == MOVED_INTO_ACME


# --- the job file is checked before anything runs ----------------------------------------------


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            (
                "tokens: {destination: ACME_ADMIN_TOKEN}",
                f"tokens: {{destination: {ACCESS_TOKEN_LOOKALIKE}}}",
            ),
            "claim 'claim-a' (claims[0]): tokens.destination: the value looks like a "
            "Pulumi access token",
        ),
        (
            ("    suffix: -c\n", "    suffix: -c\n    token: tok-secret-value\n"),
            "claim 'claim-c' (claims[2]): token: a key named 'token' would hold a token",
        ),
        (
            ("apiUrl:", f"accessToken: {ACCESS_TOKEN_LOOKALIKE}\napiUrl:"),
            "accessToken: a key named 'accessToken' would hold a token",
        ),
        (
            ("    concurrency: 2\n", "    concurrency: 2\n    delete-source: true\n"),
            "claim 'claim-a' (claims[0]): delete-source: unknown key (did you mean deleteSource?",
        ),
        (
            (
                "tokens: {destination: ACME_ADMIN_TOKEN}\n  - name: claim-b",
                "tokens: {destination: ACME_ADMIN_TOKEN, source: AGENT_B_TOKEN}\n  - name: claim-b",
            ),
            "claim 'claim-a' (claims[0]): tokens.source: the environment variable AGENT_B_TOKEN "
            "is not set",
        ),
        (
            ("tokens: {destination: ACME_ADMIN_TOKEN}", "tokens: {destination: tok-alice}"),
            "tokens.destination: must name an environment variable",
        ),
        (
            ("    suffix: -c\n", "    suffix: -c\n    resolutions: maps/agent-a.yaml\n"),
            "claim 'claim-c' (claims[2]): give resolutions or suffix, not both",
        ),
        (
            ("maps/agent-a.yaml", "maps/absent.yaml"),
            "claim 'claim-a' (claims[0]): resolutions: cannot read the resolution map",
        ),
        (("strategy: transfer", "strategy: teleport"), "strategy: Input should be 'auto'"),
        (
            ("claims:\n", "claims:\n  - {name: claim-a, from: agent-b, to: acme}\n"),
            "the name is given to claims[0] too",
        ),
        (("claims:", "claims: [\n"), "not valid YAML: line"),
        (
            ("    concurrency: 2\n", "    concurrency: 2\n    migrateVia: cli\n"),
            "claim 'claim-a' (claims[0]): migrateVia applies to strategy migrate only",
        ),
        (
            (
                "    to: acme\n    tokens",
                "    to: acme\n    migrateVia: rest\n"
                "    sourceBackend: file:///tmp/state\n    tokens",
            ),
            "claim 'claim-b' (claims[1]): migrateVia rest needs both sides on Pulumi Cloud",
        ),
    ],
    ids=[
        "token-value",
        "token-key",
        "access-token-key",
        "unknown-key",
        "unset-variable",
        "not-a-variable",
        "map-and-suffix",
        "missing-map",
        "bad-strategy",
        "duplicate-name",
        "syntax",
        "migrate-via-without-migrate",
        "migrate-via-rest-with-a-file-backend",
    ],
)
def test_a_bad_job_file_is_refused_before_any_call_naming_the_problem(
    make_emulator: EmulatorFactory, tmp_path: Path, change: tuple[str, str], said: str
) -> None:
    server = make_emulator(world())
    text = THREE_CLAIMS.format(url=server.url)
    assert change[0] in text
    job = write_job(tmp_path, text.replace(change[0], change[1], 1))

    for command in ("run", "check"):
        result = run_cli(tmp_path, "job", command, str(job))
        assert result.exit_code == 1, (command, result.stdout, result.stderr)
        assert "was refused" in result.stderr and said in result.stderr, result.stderr
        assert "nothing was run" in result.stderr
        assert result.stdout == ""
        assert ACCESS_TOKEN_LOOKALIKE not in result.stderr
        assert "tok-secret-value" not in result.stderr
    assert server.requests.count() == 0


def test_every_problem_of_a_job_file_is_listed_at_once(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    job = write_job(
        tmp_path,
        THREE_CLAIMS.format(url=server.url)
        .replace("strategy: transfer", "strategy: teleport")
        .replace("    from: agent-b\n", "    from: agent-b\n    colour: blue\n")
        .replace("suffix: -c", "suffix: -c\n    tokens: {claim: CLAIM_C_TOKEN}"),
    )

    result = run_cli(tmp_path, "job", "run", str(job))

    assert result.exit_code == 1
    assert "(3 problem(s))" in result.stderr
    for said in (
        "claim 'claim-a' (claims[0]): strategy:",
        "claim 'claim-b' (claims[1]): colour: unknown key",
        "claim 'claim-c' (claims[2]): tokens.claim: the environment variable CLAIM_C_TOKEN",
    ):
        assert said in result.stderr
    assert server.requests.count() == 0


def test_a_job_without_any_destination_token_is_refused(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    job = write_job(tmp_path, THREE_CLAIMS.format(url=server.url))

    result = run_cli(
        tmp_path, "job", "run", str(job), PULUMI_ACCESS_TOKEN=None, PULUMI_HOME=str(tmp_path)
    )

    assert result.exit_code == 1
    assert "claim 'claim-c' (claims[2]): no access token for" in result.stderr
    assert "tokens.destination" in result.stderr
    assert server.requests.count() == 0


def test_job_check_says_what_would_run_and_calls_nothing(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    job = write_job(tmp_path, THREE_CLAIMS.format(url=server.url))

    result = run_cli(tmp_path, "job", "check", str(job))

    assert result.exit_code == 0, result.stderr
    assert f"3 claim(s) at {server.url}" in result.stdout
    assert "1. claim-a: agent-a -> acme" in result.stdout
    assert f"resolutions: {tmp_path / 'maps' / 'agent-a.yaml'} (1 rename(s))" in result.stdout
    assert "concurrency: 2" in result.stdout
    assert "tokens: destination $ACME_ADMIN_TOKEN, source the destination's token" in result.stdout
    assert "3. claim-c: agent-c -> acme" in result.stdout
    assert "tokens: destination $PULUMI_ACCESS_TOKEN" in result.stdout
    assert ADMIN_TOKEN not in result.stdout
    assert server.requests.count() == 0


def test_a_missing_job_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "job", "run", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 2


# --- commit --log-format json ------------------------------------------------------------------


def test_commit_log_format_json_writes_lines_and_the_report_only_to_output(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    report = tmp_path / "report.json"
    orgs = ("--from", "agent-c", "--to", "acme", "--strategy", "transfer")
    map_file = tmp_path / "map.yaml"
    map_file.write_text("stacks: {web/dev: web/dev-c}\n", encoding="utf-8")

    result = run_cli(
        tmp_path,
        "--api-url",
        server.url,
        "commit",
        *orgs,
        "-r",
        str(map_file),
        "--yes",
        "--log-format",
        "json",
        "-o",
        str(report),
    )

    assert result.exit_code == 0, result.stderr
    records = json_lines(result.stdout)
    assert records[0]["event"] == "claim-started" and records[0]["claim"] is None
    assert {r["event"] for r in records[1:-1]} >= {"run-started", "move-started", "move-finished"}
    finished = records[-1]
    assert finished["event"] == "claim-finished"
    assert (finished["exitCode"], finished["outcome"], finished["moved"]) == (0, "done", 2)
    document = AgentClaimResponse.model_validate_json(report.read_text(encoding="utf-8"))
    assert document.transfer_token == finished["runId"]


def test_commit_log_format_json_with_a_format_but_no_output_is_a_usage_error(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    result = run_cli(
        tmp_path,
        "--api-url",
        server.url,
        "commit",
        *("--from", "agent-c", "--to", "acme", "--yes", "--log-format", "json"),
        *("--format", "json"),
    )
    assert result.exit_code == 2
    assert server.requests.count() == 0


def test_commit_log_format_json_ends_with_the_error_of_a_claim_that_errs(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    result = run_cli(
        tmp_path,
        "--api-url",
        server.url,
        "commit",
        *("--from", "ghost-org", "--to", "acme", "--strategy", "transfer", "--yes"),
        *("--log-format", "json"),
    )
    assert result.exit_code == 1
    finished = json_lines(result.stdout)[-1]
    assert (finished["event"], finished["outcome"], finished["exitCode"]) == (
        "claim-finished",
        "error",
        1,
    )
    assert "ghost-org" in finished["error"] and "error: " in result.stderr


def test_commit_log_format_json_without_output_prints_only_lines(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    result = run_cli(
        tmp_path,
        "--api-url",
        server.url,
        "commit",
        *("--from", "agent-b", "--to", "acme", "--yes", "--log-format", "json"),
    )
    assert result.exit_code == 3
    records = json_lines(result.stdout)
    assert [r["event"] for r in records] == ["claim-started", "run-started", "claim-finished"]
    assert records[-1]["conflicts"] == ["stack api/prod"]


@pytest.mark.parametrize("command", [["job"], ["job", "run"], ["job", "check"]])
def test_job_commands_have_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.stdout


def test_a_claims_refused_choices_are_named_as_the_job_file_names_them(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """deleteSource with strategy auto is refused once auto has chosen transfer, when the
    claim runs: the summary says deleteSource and strategy, never the command line's flags."""
    server = make_emulator(world())
    job = write_job(
        tmp_path,
        f"apiUrl: {server.url}\nclaims:\n  - name: claim-b\n    from: agent-b\n    to: acme\n"
        "    suffix: -b\n    deleteSource: true\n",
    )

    result = run_cli(tmp_path, "job", "run", str(job), "--log-format", "json")

    assert result.exit_code == 1, result.output
    message = summary_of(json_lines(result.stdout))["claim-b"]["message"]
    assert message.startswith(
        "deleteSource applies to strategy migrate only (transfer moves the stack itself), "
        "and to environments copied with environments copy."
    ), message
    assert "--" not in message
    assert server.state.stack_names("agent-b") == {("api", "prod"), ("api", "dev")}


def test_a_claims_reference_orgs_reach_its_plan_and_an_unknown_one_is_named_as_the_file_does(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """referenceOrgs are searched as --reference-orgs are: one alice has no role in refuses
    the claim before anything moves, named as the job file names it."""
    server = make_emulator(world())
    job = write_job(
        tmp_path,
        f"apiUrl: {server.url}\nclaims:\n  - name: claim-c\n    from: agent-c\n    to: acme\n"
        "    suffix: -c\n    referenceOrgs: [agent-a, agent-x]\n",
    )

    result = run_cli(tmp_path, "job", "run", str(job), "--log-format", "json")

    assert result.exit_code == 1, result.output
    message = summary_of(json_lines(result.stdout))["claim-c"]["message"]
    assert message == (
        "referenceOrgs agent-x: alice has no role in agent-x (did you mean agent-c?)\n"
        "The orgs alice has a role in: acme, agent-a, agent-b, agent-c. Name one of them, or "
        "use the token of a member of agent-x."
    )
    assert server.state.stack_names("agent-c") == {("web", "dev"), ("svc", "x")}
    assert server.requests.count(method="POST") == 0
