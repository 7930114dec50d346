"""`preview` and `commit` with a landing: section in the resolution map, end to end: the real
pulumi CLI runs the landing program with the real pulumiservice provider against the emulator,
after real moves. A preview changes nothing; a commit tags what moved and grants the teams;
the same commit again changes nothing; --no-landing skips it; an unknown team fails the landing
clearly (exit 4) with every move kept, and the same command finishes the landing once the team
exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from agent_times import agent_entry

from toolkit.emulator.server import EmulatorServer
from toolkit.journal import read_run
from toolkit.landing_spec import LANDING_PROJECT, RUN_TAG, SOURCE_TAG
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme", "--strategy", "transfer")
LANDING_STACK = f"acme/{LANDING_PROJECT}/{AGENT}"
MAP = (
    "stacks:\n  web/dev: web/dev-agent\n"
    "landing:\n  tags: {cost-center: cc-42}\n  teams: {platform: write}\n"
)


def world() -> dict[str, Any]:
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}},
        ],
        "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")],
        "orgs": {
            "acme": {
                "stacks": [{"project": "web", "stack": "dev"}],
                "teams": [{"name": "platform", "members": ["alice"]}],
            },
            AGENT: {
                "stacks": [
                    {"project": "web", "stack": "dev", "resourceCount": 2},
                    {"project": "api", "stack": "prod", "resourceCount": 3},
                ],
            },
        },
    }


@pytest.fixture
def server(
    make_emulator: EmulatorFactory, pulumi_cli: Path, pulumiservice_plugin: Path
) -> EmulatorServer:
    return make_emulator(world())


@pytest.fixture
def rest(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": "token tok-alice"}) as client:
        yield client


def write_map(tmp_path: Path, text: str = MAP) -> str:
    path = tmp_path / "map.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def tags(rest: httpx.Client, stack: str) -> dict[str, str]:
    answer = rest.get(f"/api/stacks/acme/{stack}")
    answer.raise_for_status()
    found: dict[str, str] = answer.json().get("tags") or {}
    return found


def granted(rest: httpx.Client, team: str = "platform") -> list[tuple[str, str, int]]:
    answer = rest.get(f"/api/orgs/acme/teams/{team}")
    answer.raise_for_status()
    return sorted(
        (s["projectName"], s["stackName"], s["permission"]) for s in answer.json()["stacks"]
    )


def test_preview_shows_the_landing_and_changes_nothing(
    server: EmulatorServer, run_cli: RunCli, rest: httpx.Client, tmp_path: Path
) -> None:
    result = run_cli(server, "preview", *ORGS, "-r", write_map(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert f"landing {LANDING_STACK} (a new stack, previewed locally)" in result.stderr
    assert "create   pulumiservice:index:StackTags tags:web/dev-agent" in result.stderr
    assert "create   pulumiservice:index:TeamStackPermission team:platform:stack:api/prod" in (
        result.stderr
    )
    assert server.state.stack_names(AGENT) == {("web", "dev"), ("api", "prod")}
    assert rest.get(f"/api/stacks/{LANDING_STACK}").status_code == 404
    assert granted(rest) == []

    skipped = run_cli(server, "preview", *ORGS, "-r", write_map(tmp_path), "--no-landing")
    assert skipped.exit_code == 0
    assert "landing" not in skipped.stderr


def test_the_review_page_lists_the_landings_changes_and_names_the_run(
    server: EmulatorServer, run_cli: RunCli, tmp_path: Path
) -> None:
    resolutions = write_map(tmp_path)
    preview = run_cli(server, "preview", *ORGS, "-r", resolutions, "--format", "html")
    assert preview.exit_code == 0, preview.stderr
    section = preview.stdout.split('<section id="landing">', 1)[1].split("</section>", 1)[0]
    changes = re.findall(r"<li>(.*?)</li>", section)
    assert "create pulumiservice:index:StackTags tags:web/dev-agent" in changes
    assert f"<dt>Landing</dt><dd>{LANDING_STACK} (a new stack, previewed locally): " in (
        preview.stdout
    )

    commit = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes", "--format", "html")
    assert commit.exit_code == 0, commit.stderr
    run_id = re.search(r"^run (\S+)$", commit.stderr, re.MULTILINE)
    assert run_id is not None, commit.stderr
    assert f"<dt>Run</dt><dd>{run_id[1]}</dd>" in commit.stdout
    said = [" ".join(line.split()) for line in commit.stderr.splitlines() if line.startswith("  ")]
    assert "create pulumiservice:index:StackTags tags:web/dev-agent" in said
    section = commit.stdout.split('<section id="landing">', 1)[1].split("</section>", 1)[0]
    assert re.findall(r"<li>(.*?)</li>", section) == said


def test_commit_lands_what_moved_and_the_same_commit_changes_nothing(
    server: EmulatorServer, run_cli: RunCli, rest: httpx.Client, tmp_path: Path, runs_dir: Path
) -> None:
    resolutions = write_map(tmp_path)
    result = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert f"landing {LANDING_STACK}:" in result.stderr and "created" in result.stderr
    # The landing is the commit's last phase, counted on its own: one line as it starts, one
    # when it is done.
    (summary,) = re.findall(rf"^landing {LANDING_STACK}: (.+)$", result.stderr, re.MULTILINE)
    assert [line for line in result.stderr.splitlines() if line.startswith("landing [")] == [
        f"landing [0/1] {LANDING_STACK}: running the landing program",
        f"landing [1/1] {LANDING_STACK}: {summary}",
    ]
    run_tag = tags(rest, "web/dev-agent")[RUN_TAG]
    assert tags(rest, "web/dev-agent") == {
        "cost-center": "cc-42",
        SOURCE_TAG: f"{AGENT}/web/dev",
        RUN_TAG: run_tag,
    }
    assert tags(rest, "api/prod")[SOURCE_TAG] == f"{AGENT}/api/prod"
    assert tags(rest, "web/dev") == {}
    assert granted(rest) == [("api", "prod", 102), ("web", "dev-agent", 102)]

    again = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes", "--format", "json")
    assert again.exit_code == 0, again.stderr
    assert "nothing to do" in again.stderr
    assert f"landing {LANDING_STACK}: no changes" in again.stderr
    assert tags(rest, "web/dev-agent")[RUN_TAG] == run_tag
    # Both landings are the one run's: the second found it finished and landed it again.
    record = read_run(runs_dir)
    assert [(landing.stack, landing.outcome) for landing in record.landings] == [
        (LANDING_STACK, "landed"),
        (LANDING_STACK, "landed"),
    ]
    assert "created" in record.landings[0].summary
    assert record.landings[1].summary == "no changes"
    status = run_cli(server, "status", "--format", "table")
    assert status.exit_code == 0, status.stderr
    assert f"landed in {LANDING_STACK}: no changes" in " ".join(status.stdout.split())


def test_no_landing_moves_without_landing(
    server: EmulatorServer, run_cli: RunCli, rest: httpx.Client, tmp_path: Path
) -> None:
    result = run_cli(
        server,
        "commit",
        *ORGS,
        "-r",
        write_map(tmp_path),
        "--yes",
        "--no-landing",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    assert "landing" not in result.stderr
    assert server.state.stack_names("acme") >= {("web", "dev-agent"), ("api", "prod")}
    assert tags(rest, "api/prod") == {}
    assert rest.get(f"/api/stacks/{LANDING_STACK}").status_code == 404


def test_an_unknown_team_fails_the_landing_keeps_the_moves_and_a_rerun_finishes_it(
    server: EmulatorServer, run_cli: RunCli, rest: httpx.Client, tmp_path: Path, runs_dir: Path
) -> None:
    resolutions = write_map(tmp_path, MAP.replace("platform: write", "platform: write, ops: read"))
    preview = run_cli(server, "preview", *ORGS, "-r", resolutions)
    assert preview.exit_code == 4
    assert "landing failed: organization acme has no team ops" in preview.stderr

    result = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes", "--format", "json")
    assert result.exit_code == 4, result.stderr
    assert "landing failed: organization acme has no team ops" in result.stderr
    assert "the moves stay as they are" in result.stderr
    assert (
        f"landing [1/1, 1 failed] {LANDING_STACK}: landing failed: organization acme has no "
        "team ops"
    ) in result.stderr.splitlines()
    assert server.state.stack_names(AGENT) == set()
    assert server.state.stack_names("acme") == {
        ("web", "dev"),
        ("web", "dev-agent"),
        ("api", "prod"),
    }
    assert tags(rest, "api/prod") == {}
    failed = f"failed in {LANDING_STACK}: landing failed: organization acme has no team ops"
    for fmt in ("table", "markdown", "html"):
        status = run_cli(server, "status", "--format", fmt)
        assert status.exit_code == 4, status.stderr
        assert failed in " ".join(status.stdout.split()), fmt
    status = run_cli(server, "status", "--format", "json")
    assert status.exit_code == 4
    assert AgentClaimResponse.model_validate_json(status.stdout).failures == []
    assert failed in status.stderr

    made = rest.post(
        "/api/orgs/acme/teams/pulumi", json={"name": "ops", "displayName": "Ops", "description": ""}
    )
    assert made.status_code == 201
    rerun = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes", "--format", "json")
    assert rerun.exit_code == 0, rerun.stderr
    assert tags(rest, "api/prod")[SOURCE_TAG] == f"{AGENT}/api/prod"
    assert granted(rest, "ops") == [("api", "prod", 101), ("web", "dev-agent", 101)]
    status = run_cli(server, "status", "--format", "markdown")
    assert status.exit_code == 0, status.stderr
    (summary,) = re.findall(rf"^landing {LANDING_STACK}: (.+)$", rerun.stderr, re.MULTILINE)
    assert "created" in summary
    landed = f"landed in {LANDING_STACK}: {summary} (after 1 earlier landing(s))"
    assert landed in status.stdout
    assert [landing.outcome for landing in read_run(runs_dir).landings] == ["failed", "landed"]


JOB = """\
claims:
  - name: land
    from: agent-abc123
    to: acme
    strategy: transfer
    resolutions: map.yaml
    landing: {LANDING}
"""


def test_a_job_claim_lands_what_it_moved(
    server: EmulatorServer, run_cli: RunCli, rest: httpx.Client, tmp_path: Path
) -> None:
    write_map(tmp_path, "stacks:\n  web/dev: web/dev-agent\n")
    job = tmp_path / "job.yaml"
    job.write_text(JOB.replace("{LANDING}", "{tags: {owner: ops}, teams: {platform: admin}}"))

    checked = run_cli(server, "job", "check", str(job))
    assert checked.exit_code == 0, checked.stderr
    assert f"landing: stack {AGENT}, 1 tag(s), teams: platform admin" in checked.stdout

    result = run_cli(server, "job", "run", str(job), "--log-format", "json")
    assert result.exit_code == 0, result.stderr
    assert f'"landing": "landing {LANDING_STACK}: ' in result.stdout
    assert tags(rest, "api/prod")["owner"] == "ops"
    assert granted(rest) == [("api", "prod", 103), ("web", "dev-agent", 103)]


@pytest.mark.parametrize(
    ("landing", "map_text", "said"),
    [
        (
            "{teams: {platform: owner}, colour: blue}",
            "stacks: {}\n",
            "landing: unknown key 'colour'",
        ),
        (
            "{teams: {platform: owner}}",
            "stacks: {}\n",
            "landing.teams: 'platform': 'owner' is not one of read, write, admin",
        ),
        (
            "{tags: {a: b}}",
            "landing: {tags: {c: d}}\n",
            "give a landing: section in the claim or in its resolution map, not both",
        ),
    ],
)
def test_a_job_claims_landing_problems_are_listed_before_anything_runs(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    tmp_path: Path,
    landing: str,
    map_text: str,
    said: str,
) -> None:
    server = make_emulator(world())
    write_map(tmp_path, map_text)
    job = tmp_path / "job.yaml"
    job.write_text(JOB.replace("{LANDING}", landing))
    result = run_cli(server, "job", "run", str(job))
    assert result.exit_code == 1
    assert said in result.stderr
    assert server.requests.count() == 0


def test_a_commit_whose_landing_cannot_run_is_refused_before_it_moves_anything(
    server: EmulatorServer,
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "no-plugins"))
    result = run_cli(server, "commit", *ORGS, "-r", write_map(tmp_path), "--yes")
    assert result.exit_code == 1
    assert "the pulumi plugin resource-pulumiservice-v1.3.0 is not installed" in result.stderr
    assert "scripts/install-pulumiservice-plugin" in result.stderr
    assert server.state.stack_names(AGENT) == {("web", "dev"), ("api", "prod")}
    assert server.requests.count(method="POST") == 0


def test_claim_api_lands_on_the_stacks_and_environments_the_service_moved(
    make_emulator: EmulatorFactory,
    pulumi_cli: Path,
    pulumiservice_plugin: Path,
    run_cli: RunCli,
    tmp_path: Path,
) -> None:
    claimed = world()
    claimed["service"] = {"claimMoves": "current"}
    claimed["orgs"][AGENT] = {
        "stacks": [{"project": "web", "stack": "qa"}],
        "environments": [{"project": "default", "name": "secrets"}],
    }
    server = make_emulator(claimed)
    resolutions = write_map(tmp_path, "landing: {teams: {platform: read}}\n")
    result = run_cli(
        server,
        "commit",
        "--from",
        AGENT,
        "--to",
        "acme",
        "--strategy",
        "claim-api",
        "-r",
        resolutions,
        "--yes",
        "--format",
        "json",
        source_token=None,
        claim_token="claim-abc123",
    )
    assert result.exit_code == 0, result.stderr
    with httpx.Client(base_url=server.url, headers={"Authorization": "token tok-alice"}) as rest:
        assert tags(rest, "web/qa")[SOURCE_TAG] == f"{AGENT}/web/qa"
        assert granted(rest) == [("web", "qa", 101)]
        team = rest.get("/api/orgs/acme/teams/platform").json()
    assert [(e["projectName"], e["envName"], e["permission"]) for e in team["environments"]] == [
        ("default", "secrets", "read")
    ]
