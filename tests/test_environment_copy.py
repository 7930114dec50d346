"""`--environments copy` against the emulator: ESC environments recreated in the destination.

The source org holds a chain of three environments (svc/top imports default/app, which imports
default/base and default/secrets, the latter in the map form `{secrets: {merge: false}}`),
secrets among their values, and tags; default/secrets collides with acme's and the map renames
it. Everything is read back over plain REST.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from agent_times import agent_entry
from click.testing import CliRunner
from commit_process import StopAt, run_toolkit, toolkit_env
from esc_reads import decrypted, esc
from test_report import markdown_rows

from toolkit.cli import cli
from toolkit.emulator.server import EmulatorServer
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
TRANSFER = ("--strategy", "transfer")
SECRET = "hunter2-9f8e7d"
"""A secret value: never to be seen outside the two services' decrypt answers."""

BASE = f"""values:
  region: eu-west-1
  password:
    fn::secret: {SECRET}
"""
SECRETS = """values:
  apiKey:
    fn::secret: key-0001
"""
APP = """imports:
  - base
  - secrets: {merge: false}
values:
  name: app
  key: ${imports.secrets.apiKey}
  token:
    fn::secret: tok-app-1
"""
TOP = """imports:
  - default/app
values:
  level: top
"""
ENVIRONMENTS: dict[tuple[str, str], tuple[str, dict[str, str]]] = {
    ("default", "base"): (BASE, {"team": "infra"}),
    ("default", "secrets"): (SECRETS, {"owner": "agent"}),
    ("default", "app"): (APP, {}),
    ("svc", "top"): (TOP, {"tier": "gold", "team": "web"}),
}
COPIED = {
    ("default", "base"): ("default", "base"),
    ("default", "secrets"): ("default", "secrets-agent"),
    ("default", "app"): ("default", "app"),
    ("svc", "top"): ("svc", "top"),
}
MAP = "environments:\n  default/secrets: default/secrets-agent\n"
APP_COPY_IMPORTS = ["base", {"secrets-agent": {"merge": False}}]
"""default/app's imports in its copy: the renamed one keeps its form and its options."""
APP_COPY_KEY = '${imports["secrets-agent"].apiKey}'
"""default/app's reference to its renamed import, in its copy."""


def world() -> dict[str, Any]:
    """alice administers acme (which has default/secrets) and the agent's org."""
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}
        ],
        "orgs": {
            AGENT: {
                "stacks": [{"project": "web", "stack": "dev"}],
                "environments": [
                    {"project": p, "name": n, "definition": definition, "tags": tags}
                    for (p, n), (definition, tags) in ENVIRONMENTS.items()
                ],
            },
            "acme": {
                "environments": [
                    {"project": "default", "name": "secrets", "definition": "values: {x: 1}\n"}
                ]
            },
        },
    }


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(world())


@pytest.fixture
def map_file(tmp_path: Path) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(MAP, encoding="utf-8")
    return path


# --- Reading the service over plain REST ---------------------------------------------------


def stored(server: EmulatorServer, org: str, name: tuple[str, str]) -> str:
    response = esc(server, org, name)
    response.raise_for_status()
    return response.text


def tags(server: EmulatorServer, org: str, name: tuple[str, str]) -> dict[str, str]:
    response = esc(server, org, name, "/tags")
    response.raise_for_status()
    return {tag["name"]: tag["value"] for tag in response.json()["tags"].values()}


def exists(server: EmulatorServer, org: str, name: tuple[str, str]) -> bool:
    return esc(server, org, name).status_code == 200


def ciphertexts(text: str) -> set[str]:
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            secret = value.get("fn::secret")
            if isinstance(secret, dict) and "ciphertext" in secret:
                found.add(secret["ciphertext"])
            for element in value.values():
                walk(element)
        elif isinstance(value, list):
            for element in value:
                walk(element)

    walk(yaml.safe_load(text))
    return found


def source_as_it_was(server: EmulatorServer) -> dict[tuple[str, str], dict[str, Any]]:
    return {name: decrypted(server, AGENT, name) for name in ENVIRONMENTS}


def commit(run_cli: RunCli, server: EmulatorServer, map_file: Path, *extra: str) -> Any:
    return run_cli(
        server,
        "commit",
        *ORGS,
        *TRANSFER,
        "--environments",
        "copy",
        "-r",
        str(map_file),
        "--yes",
        "--format",
        "json",
        *extra,
        source_token="tok-alice",
    )


def assert_copied(server: EmulatorServer, names: dict[tuple[str, str], tuple[str, str]]) -> None:
    """Each copy is its source's (`assert_like_the_source`) and holds none of the source's
    ciphertext."""
    assert_like_the_source(server, names)
    for source, target in names.items():
        assert ciphertexts(stored(server, "acme", target)).isdisjoint(
            ciphertexts(stored(server, AGENT, source))
        )


def assert_like_the_source(
    server: EmulatorServer, names: dict[tuple[str, str], tuple[str, str]]
) -> None:
    """Each copy decrypts as its source was defined, but for imports pointed at the copies,
    carries the source's tags, and stores its secrets encrypted."""
    for source, target in names.items():
        expected = yaml.safe_load(ENVIRONMENTS[source][0])
        if source == ("default", "app"):
            expected["imports"] = APP_COPY_IMPORTS
            expected["values"]["key"] = APP_COPY_KEY
        assert decrypted(server, "acme", target) == expected, target
        assert tags(server, "acme", target) == ENVIRONMENTS[source][1]
        held = stored(server, "acme", target)
        assert SECRET not in held and "key-0001" not in held and "tok-app-1" not in held


# --- Tests ----------------------------------------------------------------------------------


def test_preview_plans_the_copies_as_moves_under_the_maps_names(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    result = run_cli(
        server,
        "preview",
        *ORGS,
        *TRANSFER,
        "--environments",
        "copy",
        "-r",
        str(map_file),
        "--format",
        "json",
        source_token="tok-alice",
    )

    assert result.exit_code == 0, result.output
    document = AgentClaimResponse.model_validate(json.loads(result.stdout))
    assert document.failures == []
    assert exists(server, "acme", ("default", "app")) is False
    renamed = [e for e in document.entities if e.kind == "TransferEntityEnvironmentRename"]
    assert [(e.environment_name, e.rename_as.environment_name) for e in renamed] == [  # type: ignore[union-attr]
        ("secrets", "secrets-agent")
    ]


def test_without_the_map_the_collision_blocks_and_nothing_is_made(
    server: EmulatorServer, run_cli: RunCli, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("stacks: {}\n", encoding="utf-8")

    result = commit(run_cli, server, empty)

    assert result.exit_code == 3, result.output
    assert not exists(server, "acme", ("default", "base"))


def test_environments_are_copied_verified_and_the_source_stays(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    before = source_as_it_was(server)

    result = commit(run_cli, server, map_file)

    assert result.exit_code == 0, result.output
    assert AgentClaimResponse.model_validate(json.loads(result.stdout)).failures == []
    assert_copied(server, COPIED)
    assert decrypted(server, "acme", ("default", "secrets")) == {"values": {"x": 1}}
    assert source_as_it_was(server) == before
    assert SECRET not in result.stdout + result.stderr


def test_status_shows_the_copies_as_copies(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    assert commit(run_cli, server, map_file).exit_code == 0

    status = run_cli(server, "status", "--format", "markdown")

    assert status.exit_code == 0, status.stderr
    actions = {row[1]: row[4] for row in markdown_rows(status.stdout, "Inventory")}
    assert actions == {
        "web/dev": "move",
        "default/base": "copy",
        "default/secrets": "copy as default/secrets-agent",
        "default/app": "copy",
        "svc/top": "copy",
    }


def test_a_failure_half_way_removes_what_it_made_and_a_rerun_finishes(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    before = source_as_it_was(server)
    # Refused, not lost: a write whose answer is lost (5xx) is sent again, and lands.
    server.faults.fail(400, method="PATCH", path="/api/esc/environments/acme/default/app")

    partial = commit(run_cli, server, map_file)

    assert partial.exit_code == 4, partial.output
    failures = AgentClaimResponse.model_validate(json.loads(partial.stdout)).failures
    failed = {f.entity.environment_name: f.failure_details for f in failures}  # type: ignore[union-attr]
    assert sorted(failed) == ["app", "top"]
    assert "write the definition of acme/default/app" in failed["app"]
    assert "imports agent-abc123/default/app, whose copy failed" in failed["top"]
    assert not exists(server, "acme", ("default", "app"))
    assert not exists(server, "acme", ("svc", "top"))
    assert_copied(server, {k: v for k, v in COPIED.items() if k[1] in ("base", "secrets")})
    assert source_as_it_was(server) == before
    server.requests.clear()

    again = commit(run_cli, server, map_file)

    assert again.exit_code == 0, again.output
    assert_copied(server, COPIED)
    created = server.requests.count("POST", "/api/esc/environments/acme")
    assert created == 2, "only app and top are made again"
    assert source_as_it_was(server) == before


def test_lost_answers_to_creates_writes_and_tags_are_settled_in_the_same_run(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    """A create, a definition write or a tag whose answer was lost (503, a dropped
    connection, before or after the service carried it out) is looked up or sent again:
    one run copies everything, each copy created once and written once."""
    acme = "/api/esc/environments/acme"
    server.faults.drop_after_apply(method="POST", path=acme)
    server.faults.fail(503, method="POST", path=acme)
    server.faults.fail_after(503, method="POST", path=acme)
    server.faults.fail_after(503, method="PATCH", path=f"{acme}/default/base")
    server.faults.drop_after_apply(method="PATCH", path=f"{acme}/default/app")
    server.faults.fail(503, method="PATCH", path=f"{acme}/svc/top")
    server.faults.drop_after_apply(method="POST", path=f"{acme}/svc/top/tags")
    server.faults.fail_after(503, method="POST", path=f"{acme}/default/base/tags")

    result = commit(run_cli, server, map_file)

    assert result.exit_code == 0, result.output
    assert AgentClaimResponse.model_validate(json.loads(result.stdout)).failures == []
    assert server.faults.armed() == [], "every fault met its call"
    assert_copied(server, COPIED)
    revisions = {
        target: esc(server, "acme", target).headers["Pulumi-ESC-Revision"]
        for target in COPIED.values()
    }
    assert revisions == dict.fromkeys(COPIED.values(), "2"), "created, then written once"
    assert server.requests.count("DELETE", f"{acme}/.*") == 0, "nothing was undone"


def test_an_undo_whose_answer_is_lost_counts_once_the_copy_is_gone(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    server.faults.fail(400, method="PATCH", path="/api/esc/environments/acme/default/app")
    server.faults.drop_after_apply(method="DELETE", path="/api/esc/environments/acme/default/app")

    partial = commit(run_cli, server, map_file)

    assert partial.exit_code == 4, partial.output
    failures = AgentClaimResponse.model_validate(json.loads(partial.stdout)).failures
    failed = {f.entity.environment_name: f.failure_details for f in failures}  # type: ignore[union-attr]
    assert sorted(failed) == ["app", "top"]
    assert "write the definition of acme/default/app" in failed["app"]
    assert "also failed" not in failed["app"]
    assert not exists(server, "acme", ("default", "app"))


def test_a_half_made_copy_of_an_earlier_attempt_is_removed_and_made_again(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    # The tags of svc/top are refused after its environment was created and written.
    server.faults.fail(400, method="POST", path="/api/esc/environments/acme/svc/top/tags")
    server.faults.fail(503, method="DELETE", path="/api/esc/environments/acme/svc/top", times=None)

    partial = commit(run_cli, server, map_file)

    assert partial.exit_code == 4, partial.output
    (failure,) = AgentClaimResponse.model_validate(json.loads(partial.stdout)).failures
    assert "removing the half-made acme/svc/top also failed" in failure.failure_details
    assert exists(server, "acme", ("svc", "top")), "the undo failed: the half-made copy stays"
    server.faults.clear()
    server.faults.clear()

    again = commit(run_cli, server, map_file)

    assert again.exit_code == 0, again.output
    assert_copied(server, COPIED)


def test_delete_source_removes_the_sources_once_all_are_verified_dependents_first(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    server.faults.fail(400, method="PATCH", path="/api/esc/environments/acme/svc/top")

    partial = commit(run_cli, server, map_file, "--delete-source")

    assert partial.exit_code == 4, partial.output
    assert all(exists(server, AGENT, name) for name in ENVIRONMENTS), "no source removed"
    server.requests.clear()

    again = commit(run_cli, server, map_file, "--delete-source")

    assert again.exit_code == 0, again.output
    assert_like_the_source(server, COPIED)
    assert not any(exists(server, AGENT, name) for name in ENVIRONMENTS)
    deleted = [
        e.path.removeprefix(f"/api/esc/environments/{AGENT}/")
        for e in server.requests.entries()
        if e.method == "DELETE" and e.path.startswith(f"/api/esc/environments/{AGENT}/")
    ]
    assert deleted.index("svc/top") < deleted.index("default/app")
    assert deleted.index("default/app") < min(
        deleted.index("default/base"), deleted.index("default/secrets")
    )


def test_secret_values_never_reach_the_disk_or_any_output(
    server: EmulatorServer, run_cli: RunCli, map_file: Path, runs_dir: Path, tmp_path: Path
) -> None:
    server.faults.fail(400, method="PATCH", path="/api/esc/environments/acme/default/app")
    report = tmp_path / "report.html"
    outputs = [commit(run_cli, server, map_file, "--output", str(report)) for _ in range(2)]

    for result in outputs:
        assert SECRET not in result.stdout + result.stderr
    for path in [*runs_dir.rglob("*"), report]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_dynamic_provider_is_named_in_a_notice(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    opened = (
        "values:\n  aws:\n    fn::open::aws-login:\n      oidc: {roleArn: arn:aws:iam::1:role/x}\n"
    )
    spec = world()
    spec["orgs"][AGENT]["environments"] = [
        {"project": "default", "name": "aws", "definition": opened}
    ]
    server = make_emulator(spec)

    result = run_cli(
        server,
        "preview",
        *ORGS,
        *TRANSFER,
        "--environments",
        "copy",
        "--format",
        "markdown",
        source_token="tok-alice",
    )

    assert result.exit_code == 0, result.output
    assert "uses fn::open::aws-login" in " ".join(result.stdout.split())
    assert "would copy 1 of 1 environment(s)" in result.stdout


def test_with_claim_api_the_service_moves_environments_itself(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    spec = world()
    spec["users"] = [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}}]
    spec["agents"] = [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")]
    spec["service"] = {"claimMoves": "current"}
    spec["orgs"]["acme"]["environments"] = []
    server = make_emulator(spec)

    result = run_cli(
        server,
        "commit",
        *ORGS,
        "--strategy",
        "claim-api",
        "--environments",
        "copy",
        "--yes",
        "--format",
        "json",
        claim_token="claim-abc123",
    )

    assert result.exit_code == 0, result.output
    assert not [
        e
        for e in server.requests.entries()
        if e.method == "POST" and e.path.startswith("/api/esc/")
    ], "the toolkit made no environment: the claim moved them"
    assert all(exists(server, "acme", name) for name in ENVIRONMENTS)


def test_a_job_file_copies_the_environments_of_its_claim(
    server: EmulatorServer, tmp_path: Path
) -> None:
    (tmp_path / "map.yaml").write_text(MAP, encoding="utf-8")
    job = tmp_path / "job.yaml"
    job.write_text(
        f"apiUrl: {server.url}\nclaims:\n  - name: envs\n    from: {AGENT}\n    to: acme\n"
        "    strategy: transfer\n    environments: copy\n    resolutions: map.yaml\n"
        "    tokens: {destination: ACME_TOKEN}\n",
        encoding="utf-8",
    )
    env = {"PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"), "ACME_TOKEN": "tok-alice"}

    checked = CliRunner().invoke(cli, ["job", "check", str(job)], env=env)
    ran = CliRunner().invoke(cli, ["job", "run", str(job)], env=env)

    assert checked.exit_code == 0, checked.output
    assert "environments: each is copied into the destination and verified" in checked.stdout
    assert ran.exit_code == 0, ran.output
    assert_copied(server, COPIED)


@pytest.mark.parametrize("calls", [1, 2, 4, 6, 9, 12])
def test_a_commit_killed_after_any_call_is_finished_by_running_it_again(
    server: EmulatorServer, map_file: Path, tmp_path: Path, calls: int
) -> None:
    before = source_as_it_was(server)
    env = toolkit_env(tmp_path / "runs", PULUMI_ACCESS_TOKEN="tok-alice")
    args = ("commit", *ORGS, *TRANSFER, "--environments", "copy", "-r", str(map_file), "--yes")

    killed = run_toolkit(server, env, *args, stop=StopAt(calls))
    again = run_toolkit(server, env, *args, "--format", "json")

    assert killed.returncode < 0
    assert again.returncode == 0, again.stderr
    assert AgentClaimResponse.model_validate(json.loads(again.stdout)).failures == []
    assert_copied(server, COPIED)
    listed = httpx.get(
        f"{server.url}/api/esc/environments/acme", headers={"Authorization": "token tok-alice"}
    ).json()["environments"]
    assert sorted((e["project"], e["name"]) for e in listed) == sorted(
        [("default", "secrets"), *COPIED.values()]
    )
    assert source_as_it_was(server) == before


def test_migrate_copies_with_two_identities_the_agent_reading_and_the_claimer_writing(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: Path
) -> None:
    spec = world()
    spec["users"] = [{"login": "carol", "token": "tok-carol", "orgs": {"acme": "admin"}}]
    spec["agents"] = [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")]
    spec["orgs"][AGENT]["stacks"] = []
    server = make_emulator(spec)
    sources = {
        name: yaml.safe_load(
            httpx.get(
                f"{server.url}/api/esc/environments/{AGENT}/{name[0]}/{name[1]}/decrypt",
                headers={"Authorization": "token tok-agent"},
            ).text
        )
        for name in ENVIRONMENTS
    }
    assert sources[("default", "base")]["values"]["password"]["fn::secret"] == SECRET

    result = run_cli(
        server,
        "commit",
        *ORGS,
        "--strategy",
        "migrate",
        "--environments",
        "copy",
        "-r",
        str(map_file),
        "--delete-source",
        "--yes",
        "--format",
        "json",
        token="tok-carol",
        source_token="tok-agent",
    )

    assert result.exit_code == 0, result.output
    for source, target in COPIED.items():
        response = httpx.get(
            f"{server.url}/api/esc/environments/acme/{target[0]}/{target[1]}/decrypt",
            headers={"Authorization": "token tok-carol"},
        )
        expected = sources[source]
        if source == ("default", "app"):
            values = {**expected["values"], "key": APP_COPY_KEY}
            expected = {**expected, "imports": APP_COPY_IMPORTS, "values": values}
        assert yaml.safe_load(response.text) == expected
    gone = httpx.get(
        f"{server.url}/api/esc/environments/{AGENT}", headers={"Authorization": "token tok-agent"}
    )
    assert gone.json()["environments"] == []


def test_environments_whose_imports_form_a_cycle_are_failures_and_nothing_is_made(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    map_file = tmp_path / "empty.yaml"
    map_file.write_text("stacks: {}\n", encoding="utf-8")
    spec = world()
    spec["orgs"][AGENT]["environments"] = [
        {"project": "default", "name": "a", "definition": "imports: [b]\n"},
        {"project": "default", "name": "b", "definition": "imports: [a]\n"},
        {"project": "default", "name": "c", "definition": "imports: [default/a]\n"},
        {"project": "default", "name": "d", "definition": "values: {x: 1}\n"},
    ]
    server = make_emulator(spec)

    preview = run_cli(
        server,
        "preview",
        *ORGS,
        *TRANSFER,
        "--environments",
        "copy",
        "--format",
        "markdown",
        source_token="tok-alice",
    )
    result = commit(run_cli, server, map_file)

    assert "their imports form a cycle" in " ".join(preview.stdout.split())
    assert result.exit_code == 4, result.output
    failures = AgentClaimResponse.model_validate(json.loads(result.stdout)).failures
    assert sorted(f.entity.environment_name for f in failures) == ["a", "b", "c"]  # type: ignore[union-attr]
    assert all("imports form a cycle" in f.failure_details for f in failures)
    assert [name for name in "abcd" if exists(server, "acme", ("default", name))] == ["d"]


def test_copying_is_part_of_the_run_key_and_the_default_keeps_the_key_it_had() -> None:
    from toolkit.credentials import Credentials
    from toolkit.plan import ClaimTarget
    from toolkit.resolution_map import ResolutionMap
    from toolkit.runs import ClaimRequest, run_key
    from toolkit.sides import Sides

    credentials = Credentials("https://api.example.com", "tok-a", "tok-a")
    request = ClaimRequest(ClaimTarget(AGENT, "acme"), ResolutionMap.empty(), "none", "transfer")
    sides = Sides.of(request.target, credentials)
    asked = {
        "source": ["https://api.example.com", AGENT],
        "destination": ["https://api.example.com", "acme"],
        "strategy": "transfer",
        "map": "none",
        "deleteSource": False,
    }
    key_before = hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:40]

    assert run_key(sides, request) == key_before
    copying = dataclasses.replace(request, environments="copy")
    assert run_key(sides, copying) != key_before


def test_ctrl_c_during_the_copies_stops_them_and_the_same_command_finishes_them(
    server: EmulatorServer, map_file: Path, tmp_path: Path
) -> None:
    env = toolkit_env(tmp_path / "runs", PULUMI_ACCESS_TOKEN="tok-alice")
    args = ("commit", *ORGS, *TRANSFER, "--environments", "copy", "-r", str(map_file), "--yes")

    stopped = run_toolkit(server, env, *args, stop=StopAt(4, signal.SIGINT))
    again = run_toolkit(server, env, *args)

    assert stopped.returncode == 130, stopped.stderr
    assert "Run the same command again to continue it" in stopped.stderr
    assert again.returncode == 0, again.stderr
    assert "continuing" in again.stdout + again.stderr
    assert_copied(server, COPIED)


def test_copying_to_a_self_managed_backend_is_refused_saying_why(
    pulumi_cli: Path, server: EmulatorServer, run_cli: RunCli, map_file: Path, tmp_path: Path
) -> None:
    backend = tmp_path / "state"
    backend.mkdir()

    result = run_cli(
        server,
        "preview",
        *ORGS,
        "--strategy",
        "migrate",
        "--destination-backend",
        backend.as_uri(),
        "--environments",
        "copy",
        "-r",
        str(map_file),
        source_token="tok-alice",
    )

    assert result.exit_code == 1, result.output
    assert "--environments copy needs both orgs on Pulumi Cloud" in result.stderr
