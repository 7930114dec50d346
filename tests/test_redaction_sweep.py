"""No token ever leaves the process: every output, report, log line, journal row, lock file and
temporary folder of a full run, a killed run and a failed run is searched for the tokens, and
for the plaintext of an ESC environment's secret that `--environments copy` reads decrypted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from agent_times import agent_entry
from commit_process import Finished, StopAt, run_toolkit, toolkit_env

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
ALICE = "pul-" + "a1" * 20
BOB = "pul-" + "b2" * 20
AGENT_TOKEN = "pul-" + "c3" * 20
CLAIM_TOKEN = "d4" * 24
TOKENS = (ALICE, BOB, AGENT_TOKEN, CLAIM_TOKEN)
ENVIRONMENT_SECRET = "esc-plain-" + "e5" * 16
SEARCHED = (*TOKENS, ENVIRONMENT_SECRET)

WORLD: dict[str, Any] = {
    "users": [
        {"login": "alice", "token": ALICE, "orgs": {"acme": "admin", AGENT: "admin"}},
        {"login": "bob", "token": BOB, "orgs": {"acme": "member"}},
    ],
    "agents": [agent_entry(AGENT, token=AGENT_TOKEN, claim_token=CLAIM_TOKEN)],
    "orgs": {
        "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
        AGENT: {
            "stacks": [
                {"project": "web", "stack": "dev"},
                {"project": "web", "stack": "qa"},
                {"project": "api", "stack": "prod"},
            ]
        },
    },
}

COPY_WORLD: dict[str, Any] = {
    **WORLD,
    "orgs": {
        **WORLD["orgs"],
        AGENT: {
            **WORLD["orgs"][AGENT],
            "environments": [
                {
                    "project": "default",
                    "name": "base",
                    "definition": f"values:\n  key:\n    fn::secret: {ENVIRONMENT_SECRET}\n",
                },
                {
                    "project": "default",
                    "name": "app",
                    "definition": "imports: [base]\nvalues:\n  plain: 1\n",
                },
            ],
        },
    },
}
"""WORLD, with two environments in the agent's org, one of them holding a secret."""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "map.yaml").write_text("stacks: {web/dev: web/dev-agent}\n", encoding="utf-8")
    return tmp_path


def env_of(folder: Path, **tokens: str) -> dict[str, str]:
    """The toolkit's environment, its temporary files kept inside `folder` to be searched."""
    return toolkit_env(folder / "runs", TMPDIR=str(folder / "tmp"), **tokens)


def assert_no_token_in(folder: Path, *finished: Finished) -> None:
    texts = [part for run in finished for part in (run.stdout, run.stderr)]
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert files, "nothing was written"
    found = [
        (token, f"output {index}")
        for index, text in enumerate(texts)
        for token in SEARCHED
        if token in text
    ] + [
        (token, str(path))
        for path in files
        for token in SEARCHED
        if token.encode() in path.read_bytes()
    ]
    assert found == []


def test_a_full_run_with_every_report_and_log_shows_no_token(
    make_emulator: EmulatorFactory, folder: Path
) -> None:
    server = make_emulator(WORLD)
    env = env_of(folder, PULUMI_ACCESS_TOKEN=ALICE, PULUMI_CLAIM_SOURCE_TOKEN=AGENT_TOKEN)
    map_args = ("--from", AGENT, "--to", "acme", "-r", str(folder / "map.yaml"))
    runs = [
        run_toolkit(server, env, "-vv", "preview", *map_args, "-o", str(folder / "p.html")),
        run_toolkit(server, env, "-vv", "commit", *map_args, "--strategy", "transfer", "--yes"),
        run_toolkit(server, env, "-vv", "status", "--format", "markdown"),
        run_toolkit(server, env, "status", "-o", str(folder / "status.json")),
    ]

    assert [run.returncode for run in runs] == [0, 0, 0, 0], runs[1].stderr
    assert "GET /api/user/stacks" in runs[1].stderr, "-vv shows the requests"
    assert_no_token_in(folder, *runs)


def test_a_killed_migration_leaves_no_token_behind(
    pulumi_cli: Path, make_emulator: EmulatorFactory, folder: Path
) -> None:
    server = make_emulator(WORLD)
    env = env_of(folder, PULUMI_ACCESS_TOKEN=ALICE, PULUMI_CLAIM_SOURCE_TOKEN=AGENT_TOKEN)

    killed = run_toolkit(
        server,
        env,
        *("-vv", "commit", "--from", AGENT, "--to", "acme", "-r", str(folder / "map.yaml")),
        *("--strategy", "migrate", "--yes"),
        stop=StopAt(2),
    )

    assert killed.returncode < 0
    assert_no_token_in(folder, killed)


def test_a_failed_claim_says_why_without_the_claim_token(
    make_emulator: EmulatorFactory, folder: Path
) -> None:
    server = make_emulator(WORLD)
    server.faults.fail(503, method="GET", path="/api/agents/signup/validate/.*", times=None)
    env = env_of(folder, PULUMI_ACCESS_TOKEN=BOB, PULUMI_CLAIM_TOKEN=CLAIM_TOKEN)

    failed = run_toolkit(
        server,
        env,
        *("-vv", "commit", "--from", AGENT, "--to", "acme", "--strategy", "claim-api", "--yes"),
    )

    assert failed.returncode == 1
    assert "failed with 503" in failed.stderr
    assert_no_token_in(folder, failed)


def test_copied_environments_leave_no_secret_value_behind_even_when_a_copy_fails(
    make_emulator: EmulatorFactory, folder: Path
) -> None:
    server = make_emulator(COPY_WORLD)
    server.faults.fail(400, method="PATCH", path="/api/esc/environments/acme/default/app")
    env = env_of(folder, PULUMI_ACCESS_TOKEN=ALICE, PULUMI_CLAIM_SOURCE_TOKEN=ALICE)
    args = ("--from", AGENT, "--to", "acme", "-r", str(folder / "map.yaml"))
    copy = ("--strategy", "transfer", "--environments", "copy")
    runs = [
        run_toolkit(server, env, "-vv", "preview", *args, *copy, "-o", str(folder / "p.md")),
        run_toolkit(server, env, "-vv", "commit", *args, *copy, "--yes", "--delete-source"),
        run_toolkit(server, env, "-vv", "commit", *args, *copy, "--yes", "--delete-source"),
        run_toolkit(server, env, "-vv", "status", "--format", "json"),
    ]

    assert [run.returncode for run in runs] == [0, 4, 0, 0], runs[1].stderr
    assert "/decrypt" in runs[1].stderr, "-vv shows the requests, the decrypted read among them"
    assert_no_token_in(folder, *runs)


def test_the_sweep_finds_a_token_where_there_is_one(folder: Path) -> None:
    (folder / "tmp" / "leak.txt").write_text(f"token {ALICE}", encoding="utf-8")
    with pytest.raises(AssertionError):
        assert_no_token_in(folder)
