"""`pulumi-claim sweep`: every agent account of a folder of claim files, claimed against the
emulator over HTTP, renamed by a naming policy, each account claimed once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from click.testing import CliRunner
from pytest import MonkeyPatch

from toolkit.cli import cli
from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

AGENTS = ("agent-aaa111", "agent-bbb222", "agent-ccc333")
EXPIRED = "agent-old999"
CLAIM_PATH = "/api/agents/acme/claim"


def sweep_world(*, expired: bool = False) -> dict[str, Any]:
    """acme holds web/dev and api/prod; every agent has a web/dev and a stack of its own, so
    the second and third agents' web/dev collide with the first's once it is claimed."""
    closes = (datetime.now(UTC) + timedelta(days=20)).isoformat()
    agents = [
        {
            "login": login,
            "token": f"tok-{login}",
            "claimToken": f"claim-{login}",
            "createdAt": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "claimExpiresAt": closes,
        }
        for login in AGENTS
    ]
    orgs: dict[str, Any] = {
        "acme": {
            "stacks": [{"project": "web", "stack": "dev"}, {"project": "api", "stack": "prod"}]
        }
    }
    for login in AGENTS:
        orgs[login] = {
            "stacks": [{"project": "web", "stack": "dev"}, {"project": "app", "stack": login}]
        }
    if expired:
        agents.append(
            {
                "login": EXPIRED,
                "token": f"tok-{EXPIRED}",
                "claimToken": f"claim-{EXPIRED}",
                "createdAt": "2026-01-01T09:00:00Z",
                "claimExpiresAt": "2026-01-31T09:00:00Z",
            }
        )
        orgs[EXPIRED] = {"stacks": [{"project": "web", "stack": "dev"}]}
    return {
        "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}}],
        "agents": agents,
        "orgs": orgs,
    }


def claim_files(
    folder: Path, server: EmulatorServer, logins: tuple[str, ...], *, valid_until: str | None = None
) -> Path:
    """One claim file per agent, as the pulumi CLI writes them, named after the agent."""
    folder.mkdir(exist_ok=True)
    for login in logins:
        token = f"claim-{login}"
        document = {
            "claimUrl": f"http://app.example.invalid/claim/{token}",
            "claimToken": token,
            "cloudUrl": server.url,
            "validUntil": valid_until or (datetime.now(UTC) + timedelta(days=20)).isoformat(),
        }
        (folder / f"{login}.json").write_text(json.dumps(document), encoding="utf-8")
    return folder


def stacks(server: EmulatorServer, org: str) -> set[str]:
    return {f"{project}/{stack}" for project, stack in server.state.stack_names(org)}


def rows(stdout: str) -> dict[str, dict[str, Any]]:
    """The JSON lines' account rows, by file, after checking the last line is the summary."""
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert lines[-1]["event"] == "sweep-finished"
    return {line["file"]: line for line in lines[:-1]}


def test_a_sweep_claims_every_account_renaming_by_the_policy_then_claims_nothing_new(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(sweep_world())
    folder = claim_files(tmp_path / "claims", server, AGENTS)
    policy = tmp_path / "policy.yaml"
    policy.write_text('stacks: "{stack}-{agent_id}"\n', encoding="utf-8")

    first = run_cli(
        server, "sweep", "--claims", str(folder), "--to", "acme", "--policy", str(policy), "--json"
    )

    assert first.exit_code == 0, first.stderr
    found = rows(first.stdout)
    assert {file: row["outcome"] for file, row in found.items()} == {
        f"{login}.json": "claimed" for login in AGENTS
    }
    assert found["agent-aaa111.json"]["renames"] == ["web/dev -> web/dev-aaa111"]
    assert found["agent-bbb222.json"]["renames"] == ["web/dev -> web/dev-bbb222"]
    assert found["agent-ccc333.json"]["moved"] == 2
    assert stacks(server, "acme") == {
        "web/dev",
        "api/prod",
        "web/dev-aaa111",
        "web/dev-bbb222",
        "web/dev-ccc333",
        *(f"app/{login}" for login in AGENTS),
    }
    claims = server.requests.count(method="POST", path=CLAIM_PATH)
    validations = server.requests.count(path="/api/agents/signup/validate/.*")
    assert "agent-aaa111.json: agent-aaa111: claimed" in first.stderr
    assert "sweep into acme: 3 claimed (3 claim file(s))" in first.stderr

    second = run_cli(
        server, "sweep", "--claims", str(folder), "--to", "acme", "--policy", str(policy), "--json"
    )

    assert second.exit_code == 0, second.stderr
    assert {row["outcome"] for row in rows(second.stdout).values()} == {"already claimed"}
    assert server.requests.count(method="POST", path=CLAIM_PATH) == claims
    assert server.requests.count(path="/api/agents/signup/validate/.*") == validations
    assert "sweep into acme: 3 already claimed (3 claim file(s))" in second.stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_sweep_on_another_machine_sharing_the_runs_database_claims_nothing_twice(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path, database_url: str
) -> None:
    """The claims a sweep made are recorded in the runs database, not in its runs folder: the
    same sweep with a runs folder of its own (another machine) finds every one claimed."""
    server = make_emulator(sweep_world())
    folder = claim_files(tmp_path / "claims", server, AGENTS)
    args = ["sweep", "--claims", str(folder), "--to", "acme", "--json"]
    first = run_cli(server, *args)
    assert first.exit_code == 0, first.stderr
    claims = server.requests.count(method="POST", path=CLAIM_PATH)
    validations = server.requests.count(path="/api/agents/signup/validate/.*")

    elsewhere = CliRunner().invoke(
        cli,
        args,
        env={
            "PULUMI_ACCESS_TOKEN": "tok-alice",
            "PULUMI_CLAIM_SOURCE_TOKEN": "tok-agent",
            "PULUMI_BACKEND_URL": server.url,
            "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "elsewhere" / "runs"),
        },
        catch_exceptions=False,
    )

    assert elsewhere.exit_code == 0, elsewhere.stderr
    assert {row["outcome"] for row in rows(elsewhere.stdout).values()} == {"already claimed"}
    assert server.requests.count(method="POST", path=CLAIM_PATH) == claims
    assert server.requests.count(path="/api/agents/signup/validate/.*") == validations
    assert not (tmp_path / "runs" / "claims").exists(), "recorded in the database only"


def test_a_new_claim_file_is_all_a_second_sweep_claims(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(sweep_world())
    folder = claim_files(tmp_path / "claims", server, AGENTS[:2])
    assert run_cli(server, "sweep", "--claims", str(folder), "--to", "acme").exit_code == 0
    claim_files(folder, server, AGENTS[2:])

    again = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme", "--json")

    assert again.exit_code == 0, again.stderr
    assert {file: row["outcome"] for file, row in rows(again.stdout).items()} == {
        "agent-aaa111.json": "already claimed",
        "agent-bbb222.json": "already claimed",
        "agent-ccc333.json": "claimed",
    }
    # The default policy: the agent's login after each taken name.
    assert rows(again.stdout)["agent-ccc333.json"]["renames"] == ["web/dev -> web/dev-agent-ccc333"]


def test_expired_and_used_tokens_are_skipped_and_reported_not_errors(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(sweep_world(expired=True))
    folder = claim_files(tmp_path / "claims", server, AGENTS[:1])
    claim_files(folder, server, (EXPIRED,), valid_until="2026-01-31T09:00:00Z")
    # agent-bbb222 is claimed by hand first: its token is used when the sweep comes.
    used = run_cli(
        server,
        "commit",
        "--from",
        "agent-bbb222",
        "--to",
        "acme",
        "--strategy",
        "claim-api",
        "--yes",
        "--json",
        "-r",
        str(_write(tmp_path / "map.yaml", "stacks:\n  web/dev: web/dev-by-hand\n")),
        claim_token="claim-agent-bbb222",
    )
    assert used.exit_code == 0, used.stderr
    claim_files(folder, server, ("agent-bbb222",))

    result = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme", "--json")

    assert result.exit_code == 0, result.stderr
    found = rows(result.stdout)
    assert {file: row["outcome"] for file, row in found.items()} == {
        "agent-aaa111.json": "claimed",
        "agent-bbb222.json": "skipped",
        f"{EXPIRED}.json": "skipped",
    }
    assert found[f"{EXPIRED}.json"]["message"] == (
        "skipped: the claim token expired 2026-01-31 09:00 UTC"
    )
    assert found["agent-bbb222.json"]["message"] == (
        "skipped: the service does not know the claim token (used already, or expired)"
    )
    assert "claim-agent" not in result.stdout + result.stderr


def test_a_policy_that_makes_colliding_names_is_refused_before_any_claim(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(sweep_world())
    folder = claim_files(tmp_path / "claims", server, AGENTS)
    policy = _write(tmp_path / "policy.yaml", 'stacks: "{stack}-claimed"\n')

    result = run_cli(
        server, "sweep", "--claims", str(folder), "--to", "acme", "--policy", str(policy)
    )

    assert result.exit_code == 1
    assert result.stderr.splitlines()[:4] == [
        "error: the sweep claims nothing: 2 problem(s):",
        "  - agent-bbb222.json (agent-bbb222): stack web/dev is taken in the destination and "
        "its new name stack web/dev-claimed is taken too",
        "  - agent-ccc333.json (agent-ccc333): stack web/dev is taken in the destination and "
        "its new name stack web/dev-claimed is taken too",
        "Fix or remove those claim files, or change the naming policy (--policy), and run the "
        "sweep again.",
    ]
    assert server.requests.count(method="POST") == 0
    assert stacks(server, "acme") == {"web/dev", "api/prod"}


def test_a_policy_that_makes_invalid_names_is_refused_before_any_claim(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(sweep_world())
    folder = claim_files(tmp_path / "claims", server, AGENTS[:1])
    policy = _write(tmp_path / "policy.yaml", 'stacks: "{stack} of {agent}"\n')

    result = run_cli(
        server, "sweep", "--claims", str(folder), "--to", "acme", "--policy", str(policy)
    )

    assert result.exit_code == 1
    assert (
        "  - agent-aaa111.json (agent-aaa111): stack web/dev: invalid new stack name "
        "'dev of agent-aaa111'" in result.stderr
    )
    assert server.requests.count(method="POST") == 0


def test_a_policy_with_an_unknown_placeholder_is_refused_with_every_problem(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(sweep_world())
    folder = claim_files(tmp_path / "claims", server, AGENTS[:1])
    policy = _write(
        tmp_path / "policy.yaml",
        'stacks: "{stak}-{agent}"\nstack: x\n'
        'landing: {stack: shared, tags: {claimed-by: "{claimr}"}}\n',
    )

    result = run_cli(
        server, "sweep", "--claims", str(folder), "--to", "acme", "--policy", str(policy)
    )

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {policy} is not a naming policy:"
    assert lines[1:6] == [
        "  - landing.stack: a sweep lands each account in a landing stack of its own, named "
        "after the agent's org; remove it",
        "  - landing.tags.claimed-by: unknown placeholder {claimr} (did you mean claimer?); "
        "known: agent, agent_id, claimer",
        "  - stacks: unknown placeholder {stak} (did you mean stack?); known: agent, agent_id, "
        "name, project, stack",
        "  - unknown key 'stack' (did you mean stacks?)",
        'Write the policy as `stacks: "{stack}-{agent}"` and `environments: '
        '"{environment}-{agent}"` (placeholders: agent, agent_id, project, and stack or '
        'environment, or name), or as `suffix: "-agent"`; see the Sweeps page of the docs.',
    ]
    assert "Traceback" not in result.stderr
    assert len(server.requests.entries()) == 0


def test_files_that_are_no_claim_files_are_all_listed_and_nothing_is_claimed(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(sweep_world())
    folder = claim_files(tmp_path / "claims", server, AGENTS)
    (folder / "notes.txt").write_text("hello\n", encoding="utf-8")
    elsewhere = {"claimToken": "claim-x", "cloudUrl": "https://api.elsewhere.invalid"}
    (folder / "other.json").write_text(json.dumps(elsewhere), encoding="utf-8")
    (folder / "copy.json").write_text(
        (folder / "agent-aaa111.json").read_text(encoding="utf-8"), encoding="utf-8"
    )

    result = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[:4] == [
        "error: the sweep claims nothing: 3 problem(s):",
        "  - copy.json holds the same claim token as agent-aaa111.json",
        f"  - the claim file {folder / 'notes.txt'} is no agent-claim.json, "
        "PULUMI_EPHEMERAL_AGENT_ACCOUNT block or claim link",
        f"  - the claim file {folder / 'other.json'} is for https://api.elsewhere.invalid, "
        f"not {server.url}",
    ]
    assert len(server.requests.entries()) == 0


def test_the_report_warns_of_closing_claim_windows_and_closed_write_windows(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    world = sweep_world()
    world["agents"][0]["claimExpiresAt"] = (datetime.now(UTC) + timedelta(hours=30)).isoformat()
    world["agents"][0]["createdAt"] = (datetime.now(UTC) - timedelta(days=4)).isoformat()
    server = make_emulator(world)
    folder = claim_files(tmp_path / "claims", server, AGENTS[:1])

    result = run_cli(
        server,
        "sweep",
        "--claims",
        str(folder),
        "--to",
        "acme",
        "--warn-within",
        "2d",
        "--format",
        "markdown",
    )

    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert warnings[0].startswith(
        "warning: agent-aaa111 (agent-aaa111.json): its claim window closes "
    )
    assert warnings[0].endswith("(in 29 h); unclaimed then, the account is lost")
    assert warnings[1].startswith(
        "warning: agent-aaa111 (agent-aaa111.json): its write window closed "
    )
    assert result.stdout.splitlines()[:3] == [
        "# Sweep into acme",
        "",
        "1 claimed (1 claim file(s))",
    ]
    assert (
        "| agent-aaa111 | agent-aaa111.json | claimed | 2 | web/dev -&gt; web/dev-agent-aaa111 |"
        in result.stdout
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_job_file_sweeps_a_folder_after_its_claims_and_again_claims_nothing_new(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    server = make_emulator(sweep_world())
    claim_files(tmp_path / "claims", server, AGENTS[:2])
    _write(tmp_path / "naming.yaml", 'stacks: "{stack}-{agent_id}"\n')
    job = _write(
        tmp_path / "job.yaml",
        "sweeps:\n"
        "  - name: sandboxes\n"
        "    claims: claims\n"
        "    to: acme\n"
        "    policy: naming.yaml\n"
        "    tokens: {destination: ACME_TOKEN}\n",
    )
    monkeypatch.setenv("ACME_TOKEN", "tok-alice")

    check = run_cli(server, "job", "check", str(job))

    assert check.exit_code == 0, check.stderr
    assert check.stdout.splitlines()[1:] == [
        f"1. sweep sandboxes: 2 claim file(s) in {tmp_path / 'claims'} -> acme",
        "   naming policy: stacks: {stack}-{agent_id}, environments: {environment}-{agent}",
        "   tokens: destination $ACME_TOKEN, each claim token from its file",
    ]
    assert len(server.requests.entries()) == 0

    first = run_cli(server, "job", "run", str(job), "--log-format", "json")

    assert first.exit_code == 0, first.stderr
    summary = {
        claim["claim"]: claim for claim in json.loads(first.stdout.splitlines()[-1])["claims"]
    }
    assert {name: claim["outcome"] for name, claim in summary.items()} == {
        "sandboxes: agent-aaa111.json": "done",
        "sandboxes: agent-bbb222.json": "done",
    }
    assert summary["sandboxes: agent-bbb222.json"]["moved"] == 2
    assert stacks(server, "acme") >= {"web/dev-aaa111", "web/dev-bbb222"}

    again = run_cli(server, "job", "run", str(job), "--log-format", "json")

    assert again.exit_code == 0, again.stderr
    claims = json.loads(again.stdout.splitlines()[-1])["claims"]
    assert [claim["alreadyFinished"] for claim in claims] == [True, True]


def test_a_job_files_sweep_with_a_bad_policy_is_refused_before_anything_runs(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(sweep_world())
    claim_files(tmp_path / "claims", server, AGENTS[:1])
    _write(tmp_path / "naming.yaml", 'stacks: "{stak}"\n')
    job = _write(
        tmp_path / "job.yaml",
        "sweeps:\n  - {name: sandboxes, claims: claims, to: acme, policy: naming.yaml, "
        "warnWithin: soon}\n",
    )

    result = run_cli(server, "job", "run", str(job))

    assert result.exit_code == 1
    assert "sweep 'sandboxes' (sweeps[0]): policy: " in result.stderr
    assert "unknown placeholder {stak} (did you mean stack?)" in result.stderr
    assert "sweep 'sandboxes' (sweeps[0]): warnWithin: 'soon' is not a duration" in result.stderr
    assert len(server.requests.entries()) == 0


def test_the_policys_landing_tags_each_claimed_stack_with_who_claimed_it_and_from_where(
    make_emulator: EmulatorFactory,
    pulumi_cli: Path,
    pulumiservice_plugin: Path,
    run_cli: RunCli,
    tmp_path: Path,
) -> None:
    from toolkit.landing_spec import SOURCE_TAG

    server = make_emulator(sweep_world())
    folder = claim_files(tmp_path / "claims", server, AGENTS[:1])
    policy = _write(
        tmp_path / "policy.yaml",
        'stacks: "{stack}-{agent_id}"\n'
        'landing:\n  tags: {claimed-by: "{claimer}", claimed-from: "{agent}"}\n',
    )
    sweep = ("sweep", "--claims", str(folder), "--to", "acme", "--policy", str(policy), "--json")

    result = run_cli(server, *sweep)

    assert result.exit_code == 0, result.stderr
    assert rows(result.stdout)["agent-aaa111.json"]["outcome"] == "claimed"
    for stack, came_from in (
        ("web/dev-aaa111", "web/dev"),
        ("app/agent-aaa111", "app/agent-aaa111"),
    ):
        answer = httpx.get(
            f"{server.url}/api/stacks/acme/{stack}", headers={"Authorization": "token tok-alice"}
        )
        tags = answer.raise_for_status().json()["tags"]
        assert tags["claimed-by"] == "alice"
        assert tags["claimed-from"] == "agent-aaa111"
        assert tags[SOURCE_TAG] == f"agent-aaa111/{came_from}"

    again = run_cli(server, *sweep)

    assert again.exit_code == 0, again.stderr
    assert rows(again.stdout)["agent-aaa111.json"]["outcome"] == "already claimed"


def test_the_table_shows_one_row_per_account_and_stderr_each_outcome_then_the_sum(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(sweep_world(expired=True))
    folder = claim_files(tmp_path / "claims", server, AGENTS[:2])
    claim_files(folder, server, (EXPIRED,), valid_until="2026-01-31T09:00:00Z")

    result = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme", "--format", "table")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[4:12] == [
        "│ agent-aaa111 │ agent-aaa111.json │ claimed │ 2     │ web/dev ->                │"
        "          │ moved 2 of 2 stack(s)    │",
        "│              │                   │         │       │ web/dev-agent-aaa111      │"
        "          │                          │",
        "│ agent-bbb222 │ agent-bbb222.json │ claimed │ 2     │ web/dev ->                │"
        "          │ moved 2 of 2 stack(s)    │",
        "│              │                   │         │       │ web/dev-agent-bbb222      │"
        "          │                          │",
        "│              │ agent-old999.json │ skipped │ 0     │                           │"
        "          │ skipped: the claim token │",
        "│              │                   │         │       │                           │"
        "          │ expired 2026-01-31 09:00 │",
        "│              │                   │         │       │                           │"
        "          │ UTC                      │",
        "└──────────────┴───────────────────┴─────────┴───────┴───────────────────────────┴"
        "──────────┴──────────────────────────┘",
    ]
    assert result.stdout.splitlines()[-1].strip() == "2 claimed, 1 skipped (3 claim file(s))"
    assert result.stderr.splitlines() == [
        "agent-old999.json: skipped: the claim token expired 2026-01-31 09:00 UTC",
        "agent-aaa111.json: agent-aaa111: claimed",
        "agent-bbb222.json: agent-bbb222: claimed",
        "sweep into acme: 2 claimed, 1 skipped (3 claim file(s))",
    ]


def test_the_html_report_escapes_every_name_and_has_a_row_per_account(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(sweep_world())
    folder = claim_files(tmp_path / "claims", server, AGENTS[:1])
    (folder / "agent-aaa111.json").rename(folder / "<b>a&b.json")
    report = tmp_path / "sweep.html"

    result = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme", "-o", str(report))

    assert result.exit_code == 0, result.stderr
    page = report.read_text(encoding="utf-8")
    assert "<td>&lt;b&gt;a&amp;b.json</td>" in page
    assert "<b>a&b" not in page
    assert "<li>web/dev -&gt; web/dev-agent-aaa111</li>" in page
    assert page.count("<tr>") == 2


def sign_up_agents(server: EmulatorServer, folder: Path, count: int) -> list[str]:
    """`count` agent accounts signed up through the service's proof of work, each with a
    web/dev stack and one of its own, and its claim file in `folder`; their logins."""
    import asyncio

    from toolkit.agent_signup import sign_up_agent_account

    folder.mkdir(exist_ok=True)
    logins = []
    for _ in range(count):
        account = asyncio.run(sign_up_agent_account(server.url))
        login = account.user_info.github_login
        headers = {"Authorization": f"token {account.access_token}"}
        for project, stack in (("web", "dev"), ("app", login)):
            httpx.post(
                f"{server.url}/api/stacks/{login}/{project}",
                json={"stackName": stack},
                headers=headers,
            ).raise_for_status()
        document = {
            "claimToken": account.claim_token,
            "cloudUrl": server.url,
            "validUntil": account.claim_token_valid_until.isoformat(),
        }
        (folder / f"{login}.json").write_text(json.dumps(document), encoding="utf-8")
        logins.append(login)
    return sorted(logins)


def test_a_sweep_stopped_while_the_service_claims_is_finished_by_the_same_sweep(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    world = sweep_world()
    world["service"] = {"claimSecondsPerStack": 2}
    server = make_emulator(world)
    logins = sign_up_agents(server, tmp_path / "claims", 2)
    sweep = ("sweep", "--claims", str(tmp_path / "claims"), "--to", "acme", "--json")

    # Not following the claims the service runs: their stacks' outcome is unknown yet.
    first = run_cli(server, *sweep, "--claim-wait", "0")

    assert first.exit_code == 4, first.stderr
    assert {row["outcome"] for row in rows(first.stdout).values()} == {"partial"}
    claims = server.requests.count(method="POST", path=CLAIM_PATH)
    validations = server.requests.count(path="/api/agents/signup/validate/.*")

    second = run_cli(server, *sweep)

    assert second.exit_code == 0, second.stderr
    found = rows(second.stdout)
    assert {file: row["outcome"] for file, row in found.items()} == {
        f"{login}.json": "claimed" for login in logins
    }
    assert server.requests.count(method="POST", path=CLAIM_PATH) == claims
    assert server.requests.count(path="/api/agents/signup/validate/.*") == validations
    assert stacks(server, "acme") == {
        "web/dev",
        "api/prod",
        *(f"web/dev-{login}" for login in logins),
        *(f"app/{login}" for login in logins),
    }
    third = run_cli(server, *sweep)
    assert {row["outcome"] for row in rows(third.stdout).values()} == {"already claimed"}


def test_names_a_claim_under_way_will_land_at_are_taken_for_the_next_sweeps_plan(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    world = sweep_world()
    world["service"] = {"claimSecondsPerStack": 2}
    server = make_emulator(world)
    folder = claim_files(tmp_path / "claims", server, AGENTS[:1])
    policy = _write(tmp_path / "policy.yaml", 'stacks: "{stack}-claimed"\n')
    sweep = ("sweep", "--claims", str(folder), "--to", "acme", "--policy", str(policy))
    # agent-aaa111's web/dev is to land as web/dev-claimed; its claim is left under way.
    assert run_cli(server, *sweep, "--claim-wait", "0").exit_code == 4
    claim_files(folder, server, AGENTS[1:2])
    claims = server.requests.count(method="POST", path=CLAIM_PATH)

    result = run_cli(server, *sweep)

    assert result.exit_code == 1
    assert result.stderr.splitlines()[:2] == [
        "error: the sweep claims nothing: 1 problem(s):",
        "  - agent-bbb222.json (agent-bbb222): stack web/dev is taken in the destination and "
        "its new name stack web/dev-claimed is taken too",
    ]
    assert server.requests.count(method="POST", path=CLAIM_PATH) == claims


def test_a_policy_names_by_its_templates_or_by_the_suffix_rule() -> None:
    from toolkit.naming_policy import parse_naming_policy

    templates = parse_naming_policy(
        'stacks: "{project}-{stack}-{agent_id}"\nenvironments: "{name}.{agent}"\n'
    )
    suffix = parse_naming_policy('suffix: "-agent"\n')
    braces = parse_naming_policy('suffix: "-{x}"\n')

    agent = {"agent": "agent-7f3k2q", "project": "web"}
    assert templates.new_name("stacks", name="dev", **agent) == "web-dev-7f3k2q"
    assert templates.new_name("environments", name="secrets", **agent) == "secrets.agent-7f3k2q"
    assert suffix.new_name("stacks", name="dev", **agent) == "dev-agent"
    assert suffix.new_name("environments", name="secrets", **agent) == "secrets-agent"
    assert braces.new_name("stacks", name="dev", **agent) == "dev-{x}"
    assert templates.identity != suffix.identity
