"""`pulumi-claim references`: a patch for the user's repository, against the emulator (a plan
from a world, and a finished commit's run), applied with git in a copy of the checkout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from agent_times import agent_entry
from conftest import run_id
from git_checkouts import applied, commit_all, git, write_files

from toolkit.name_changes import NameChanges
from toolkit.repository_patch import repository_patch

if TYPE_CHECKING:
    from click.testing import Result
    from conftest import EmulatorFactory, RunCli

    from toolkit.emulator.server import EmulatorServer

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
CLAIM = (*ORGS, "--strategy", "transfer", "--environments", "copy")
MAP = "stacks:\n  web/dev: web/dev-agent\nenvironments:\n  default/secrets: default/secrets-agent\n"
OLD_NAMES = re.compile(rf"(?<![\w.\-/]){AGENT}/(web/dev|web/qa|api/prod)(?![\w\-/])")
"""The old fully qualified names of the moved stacks, on name boundaries."""


def world() -> dict[str, Any]:
    """alice administers acme and the agent's org; acme holds web/dev and default/secrets
    already, which the map renames."""
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}
        ],
        "orgs": {
            AGENT: {
                "stacks": [
                    {"project": "web", "stack": "dev"},
                    {"project": "web", "stack": "qa"},
                    {"project": "api", "stack": "prod"},
                ],
                "environments": [
                    {"project": "default", "name": "secrets", "definition": "values: {x: 1}\n"},
                    {"project": "default", "name": "shared", "definition": "values: {y: 2}\n"},
                ],
            },
            "acme": {
                "stacks": [{"project": "web", "stack": "dev"}],
                "environments": [
                    {"project": "default", "name": "secrets", "definition": "values: {z: 3}\n"}
                ],
            },
        },
    }


REPOSITORY = {
    "README.md": (
        "# Services\n\nThe web stack is agent-abc123/web/dev.\n"
        "Its twin agent-abc123/web/dev2 is not ours, nor xagent-abc123/web/dev.\n"
    ),
    "web/Pulumi.yaml": "name: web\nruntime: python\n",
    "web/Pulumi.dev.yaml": (
        "environment:\n  - secrets\n  - default/shared\nconfig:\n  web:region: eu-west-1\n"
    ),
    "web/Pulumi.qa.yaml": (
        "environment:\n  imports:\n    - default/secrets\n  values:\n    secrets: kept\n"
    ),
    "web/__main__.py": (
        "import pulumi\n"
        "\n"
        'api = pulumi.StackReference("agent-abc123/api/prod")\n'
        'qa = pulumi.StackReference("agent-abc123/web/qa")\n'
        'twin = pulumi.StackReference("agent-abc123/web/dev2")\n'
        'other = pulumi.StackReference("xagent-abc123/web/dev")\n'
        'short = pulumi.StackReference("api/prod")\n'
        'pulumi.export("network", api.get_output("vpcId"))\n'
    ),
    "infra/index.ts": (
        'import * as pulumi from "@pulumi/pulumi";\n'
        "\n"
        'const web = new pulumi.StackReference("agent-abc123/web/dev");\n'
        'export const url = web.getOutput("url");'
    ),
    ".github/workflows/deploy.yml": (
        "name: deploy\n"
        "on: push\n"
        "jobs:\n"
        "  up:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: pulumi/actions@v6\n"
        "        with:\n"
        "          command: up\n"
        "          stack-name: agent-abc123/web/dev\n"
        "      - run: pulumi up --yes --stack agent-abc123/web/dev --cwd web\n"
        "      - run: pulumi stack select dev --cwd web\n"
    ),
}

EXPECTED_DIFF = """\
diff --git a/.github/workflows/deploy.yml b/.github/workflows/deploy.yml
--- a/.github/workflows/deploy.yml
+++ b/.github/workflows/deploy.yml
@@ -7,6 +7,6 @@
       - uses: pulumi/actions@v6
         with:
           command: up
-          stack-name: agent-abc123/web/dev
-      - run: pulumi up --yes --stack agent-abc123/web/dev --cwd web
+          stack-name: acme/web/dev-agent
+      - run: pulumi up --yes --stack acme/web/dev-agent --cwd web
       - run: pulumi stack select dev --cwd web
diff --git a/README.md b/README.md
--- a/README.md
+++ b/README.md
@@ -1,4 +1,4 @@
 # Services
\x20
-The web stack is agent-abc123/web/dev.
+The web stack is acme/web/dev-agent.
 Its twin agent-abc123/web/dev2 is not ours, nor xagent-abc123/web/dev.
diff --git a/infra/index.ts b/infra/index.ts
--- a/infra/index.ts
+++ b/infra/index.ts
@@ -1,4 +1,4 @@
 import * as pulumi from "@pulumi/pulumi";
\x20
-const web = new pulumi.StackReference("agent-abc123/web/dev");
+const web = new pulumi.StackReference("acme/web/dev-agent");
 export const url = web.getOutput("url");
\\ No newline at end of file
diff --git a/web/Pulumi.dev.yaml b/web/Pulumi.dev-agent.yaml
similarity index 80%
rename from web/Pulumi.dev.yaml
rename to web/Pulumi.dev-agent.yaml
--- a/web/Pulumi.dev.yaml
+++ b/web/Pulumi.dev-agent.yaml
@@ -1,5 +1,5 @@
 environment:
-  - secrets
+  - secrets-agent
   - default/shared
 config:
   web:region: eu-west-1
diff --git a/web/Pulumi.qa.yaml b/web/Pulumi.qa.yaml
--- a/web/Pulumi.qa.yaml
+++ b/web/Pulumi.qa.yaml
@@ -1,5 +1,5 @@
 environment:
   imports:
-    - default/secrets
+    - default/secrets-agent
   values:
     secrets: kept
diff --git a/web/__main__.py b/web/__main__.py
--- a/web/__main__.py
+++ b/web/__main__.py
@@ -1,7 +1,7 @@
 import pulumi
\x20
-api = pulumi.StackReference("agent-abc123/api/prod")
-qa = pulumi.StackReference("agent-abc123/web/qa")
+api = pulumi.StackReference("acme/api/prod")
+qa = pulumi.StackReference("acme/web/qa")
 twin = pulumi.StackReference("agent-abc123/web/dev2")
 other = pulumi.StackReference("xagent-abc123/web/dev")
 short = pulumi.StackReference("api/prod")
"""
"""The patch of `REPOSITORY`: the moved stacks' full names, the renamed stack's configuration
file and the renamed environment's imports (both forms)."""

EXPECTED_STDERR = [
    "skipped 1 file(s), a symbolic link: link.py",
    "skipped 1 file(s), binary (not UTF-8 text): logo.png",
    "check by hand: .github/workflows/deploy.yml:12: 'dev' may name agent-abc123/web/dev, now "
    "acme/web/dev-agent",
    "check by hand: web/__main__.py:7: 'api/prod' may name agent-abc123/api/prod, now "
    "acme/api/prod",
]


def checkout(folder: Path, files: dict[str, str]) -> Path:
    """A git checkout of `files`, committed, with a binary file and a symbolic link beside."""
    write_files(folder, files)
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (folder / "link.py").symlink_to("web/__main__.py")
    return commit_all(folder)


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (.git included), byte for byte; links as their targets."""
    return {
        str(path.relative_to(folder)): (
            str(path.readlink()).encode() if path.is_symlink() else path.read_bytes()
        )
        for path in sorted(folder.rglob("*"))
        if path.is_symlink() or path.is_file()
    }


def old_names_left(folder: Path) -> list[str]:
    return [
        f"{path}: {found.group()}"
        for path in sorted(folder.rglob("*"))
        if ".git" not in path.parts
        and path.is_file()
        and not path.is_symlink()
        and path.suffix != ".png"
        for found in OLD_NAMES.finditer(path.read_text(encoding="utf-8"))
    ]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "repo").mkdir()
    return checkout(tmp_path / "repo", REPOSITORY)


@pytest.fixture
def map_file(tmp_path: Path) -> str:
    path = tmp_path / "map.yaml"
    path.write_text(MAP, encoding="utf-8")
    return str(path)


def references(run_cli: RunCli, server: EmulatorServer, *args: str) -> Result:
    return run_cli(server, "references", *args, source_token="tok-alice")


def assert_applies_with_no_old_name_left(repo: Path, patch: str, tmp_path: Path) -> None:
    copy = applied(repo, patch, tmp_path)
    assert old_names_left(copy) == []
    assert not (copy / "web" / "Pulumi.dev.yaml").exists()
    assert (copy / "web" / "Pulumi.dev-agent.yaml").read_text(encoding="utf-8") == (
        "environment:\n  - secrets-agent\n  - default/shared\nconfig:\n  web:region: eu-west-1\n"
    )


# --- the patch of a claim -------------------------------------------------------------------


def test_the_patch_of_a_planned_claim_renames_every_old_name_and_git_applies_it(
    make_emulator: EmulatorFactory, run_cli: RunCli, repo: Path, map_file: str, tmp_path: Path
) -> None:
    server = make_emulator(world())
    before = contents(repo)

    result = references(run_cli, server, *CLAIM, "-r", map_file, "--repo", str(repo))

    assert result.exit_code == 0, result.stderr
    assert result.stdout == EXPECTED_DIFF
    assert result.stderr.splitlines() == [
        *EXPECTED_STDERR,
        f"patch on stdout: 6 file(s) to change; review it, then apply it in {repo} with "
        "`git apply`",
    ]
    assert contents(repo) == before
    assert server.requests.count(method="POST") == 0
    assert server.requests.count(path=r"/api/esc/environments/[^/]+/[^/]+/[^/]+") == 0, (
        "the names a claim changes need no environment's definition"
    )
    assert server.requests.count(path=r"/api/orgs/[^/]+/search/.*") == 0, (
        "nor any StackReference search"
    )
    assert_applies_with_no_old_name_left(repo, result.stdout, tmp_path)


def test_the_patch_goes_to_a_private_output_file(
    make_emulator: EmulatorFactory, run_cli: RunCli, repo: Path, map_file: str, tmp_path: Path
) -> None:
    server = make_emulator(world())
    output = tmp_path / "out" / "references.patch"
    output.parent.mkdir()

    result = references(
        run_cli, server, *CLAIM, "-r", map_file, "--repo", str(repo), "-o", str(output)
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert output.read_text(encoding="utf-8") == EXPECTED_DIFF
    assert output.stat().st_mode & 0o777 == 0o600
    assert result.stderr.splitlines()[-1] == (
        f"patch written to {output}: 6 file(s) to change; review it, then apply it in {repo} "
        "with `git apply`"
    )


def test_the_patch_of_a_finished_commit_is_that_of_its_moves(
    make_emulator: EmulatorFactory, run_cli: RunCli, repo: Path, map_file: str, tmp_path: Path
) -> None:
    server = make_emulator(world())
    commit = run_cli(
        server,
        "commit",
        *CLAIM,
        "-r",
        map_file,
        "--yes",
        "--format",
        "json",
        source_token="tok-alice",
    )
    assert commit.exit_code == 0, commit.stderr
    run = run_id(commit)
    before = contents(repo)

    result = references(run_cli, server, "--run", run, "--repo", str(repo))

    assert result.exit_code == 0, result.stderr
    assert result.stdout == EXPECTED_DIFF
    assert result.stderr.splitlines()[:-1] == EXPECTED_STDERR
    assert contents(repo) == before
    assert_applies_with_no_old_name_left(repo, result.stdout, tmp_path)


def test_with_the_services_claim_the_environments_it_moves_are_renamed_too(
    make_emulator: EmulatorFactory, run_cli: RunCli, repo: Path, map_file: str
) -> None:
    claimable = world()
    claimable["agents"] = [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")]
    server = make_emulator(claimable)

    result = run_cli(
        server,
        "references",
        *ORGS,
        "--strategy",
        "claim-api",
        "-r",
        map_file,
        "--repo",
        str(repo),
        claim_token="claim-abc123",
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout == EXPECTED_DIFF


# --- what is a name, and what is not --------------------------------------------------------

CHANGES = NameChanges(
    source_org="agent",
    destination_org="acme",
    stacks={("web", "dev"): ("web", "dev-2"), ("web", "prod"): ("web", "prod")},
    environments={("app", "keys"): ("app", "keys-2")},
)


def patch_of(tmp_path: Path, files: dict[str, str]) -> Any:
    write_files(tmp_path, files)
    return repository_patch(tmp_path, CHANGES)


def test_a_full_name_is_rewritten_on_its_boundaries_only(tmp_path: Path) -> None:
    text = (
        "agent/web/dev agent/web/dev2 xagent/web/dev agent/web/dev.x go/agent/web/dev\n"
        "(agent/web/dev), 'agent/web/prod'; agent/app/keys. agent/web/dev/updates\n"
    )
    patch = patch_of(tmp_path, {"notes.txt": text})
    assert patch.diff.splitlines()[-2:] == [
        "+acme/web/dev-2 agent/web/dev2 xagent/web/dev agent/web/dev.x go/agent/web/dev",
        "+(acme/web/dev-2), 'acme/web/prod'; acme/app/keys-2. agent/web/dev/updates",
    ]
    assert patch.check_by_hand == []


def test_short_names_are_left_and_listed_only_beside_a_stack_word(tmp_path: Path) -> None:
    text = (
        "pulumi stack select dev\n"  # 1: listed
        "the dev server\n"  # 2: not a stack's line
        "web/dev\n"  # 3: not a stack's line
        "web: dev\n"  # 4: names the project
        "ref = StackReference('web/prod')\n"  # 5: listed
        "agent/dev\n"  # 6: the source org's: always listed
        "pulumi up --stack agent/web/dev  # dev\n"  # 7: named in full already
    )
    patch = patch_of(tmp_path, {"deploy.sh": text})
    assert [found.describe() for found in patch.check_by_hand] == [
        "deploy.sh:1: 'dev' may name agent/web/dev, now acme/web/dev-2",
        "deploy.sh:4: 'dev' may name agent/web/dev, now acme/web/dev-2",
        "deploy.sh:5: 'web/prod' may name agent/web/prod, now acme/web/prod",
        "deploy.sh:6: 'agent/dev' may name agent/web/dev, now acme/web/dev-2",
    ]
    assert patch.changed == ["deploy.sh"]


def test_environment_imports_are_rewritten_in_stack_files_only(tmp_path: Path) -> None:
    stack_file = "environment: [app/keys, default/other]\nconfig:\n  app/keys: kept\n"
    patch = patch_of(tmp_path, {"Pulumi.prod.yaml": stack_file, "notes.txt": "app/keys\n"})
    assert patch.changed == ["Pulumi.prod.yaml"]
    assert "+environment: [app/keys-2, default/other]\n config:\n   app/keys: kept\n" in (
        patch.diff
    )


def test_a_stack_file_whose_new_name_is_taken_is_left_to_rename_by_hand(tmp_path: Path) -> None:
    patch = patch_of(
        tmp_path,
        {
            "Pulumi.yaml": "name: web\n",
            "Pulumi.dev.yaml": "config: {}\n",
            "Pulumi.dev-2.yaml": "config: {}\n",
        },
    )
    assert patch.diff == ""
    assert [found.describe() for found in patch.check_by_hand] == [
        "Pulumi.dev.yaml:1: 'Pulumi.dev.yaml' may name agent/web/dev, now acme/web/dev-2"
    ]


def test_a_stack_file_of_another_project_keeps_its_name(tmp_path: Path) -> None:
    patch = patch_of(tmp_path, {"Pulumi.yaml": "name: api\n", "Pulumi.dev.yaml": "config: {}\n"})
    assert patch.diff == ""


# --- nothing to rename, and bad input -------------------------------------------------------


def test_nothing_to_rename_is_an_empty_patch_that_says_so(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: str, tmp_path: Path
) -> None:
    server = make_emulator(world())
    repo = tmp_path / "plain"
    (repo / "big").mkdir(parents=True)
    (repo / "main.py").write_text("print('no stack here')\n", encoding="utf-8")
    (repo / "big" / "data.json").write_text("agent-abc123/web/dev " * 60_000, encoding="utf-8")

    result = references(run_cli, server, *CLAIM, "-r", map_file, "--repo", str(repo))

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "skipped 1 file(s), over 1 MiB: big/data.json",
        f"nothing to rename: no old name of a moved stack or environment in {repo}",
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("--repo", "{tmp}/missing"),
            "error: the repository {tmp}/missing does not exist.\n"
            "Pass --repo the folder of a checkout of your code.\n",
        ),
        (
            ("--repo", "{tmp}/map.yaml"),
            "error: the repository {tmp}/map.yaml is not a folder.\n"
            "Pass --repo the folder of a checkout of your code.\n",
        ),
    ],
)
def test_a_repository_that_is_not_a_folder_is_refused_before_any_call(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    map_file: str,
    tmp_path: Path,
    args: tuple[str, ...],
    error: str,
) -> None:
    server = make_emulator(world())
    filled = [arg.format(tmp=tmp_path) for arg in args]
    result = references(run_cli, server, *CLAIM, "-r", map_file, *filled)
    assert result.exit_code == 1
    assert result.stderr == error.format(tmp=tmp_path)
    assert server.requests.count() == 0


def test_a_blocked_claim_is_refused(
    make_emulator: EmulatorFactory, run_cli: RunCli, repo: Path
) -> None:
    server = make_emulator(world())
    result = references(run_cli, server, *CLAIM, "--repo", str(repo))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: the claim of {AGENT} into acme is blocked: nothing would move, so no name "
        "would change.\nRun `pulumi-claim preview` with the same options to see why.\n"
    )
    assert result.stdout == ""


def test_an_unknown_run_is_refused(
    make_emulator: EmulatorFactory, run_cli: RunCli, repo: Path, runs_dir: Path
) -> None:
    server = make_emulator(world())
    runs_dir.mkdir()
    result = references(run_cli, server, "--run", "no-such-run", "--repo", str(repo))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: no run 'no-such-run' in {runs_dir}.\n")


def test_a_run_that_moved_nothing_is_refused(
    make_emulator: EmulatorFactory, run_cli: RunCli, repo: Path
) -> None:
    empty = world()
    empty["orgs"][AGENT] = {"stacks": []}
    server = make_emulator(empty)
    commit = run_cli(server, "commit", *ORGS, "--yes", "--format", "json", source_token="tok-alice")
    assert commit.exit_code == 0, commit.stderr
    run = run_id(commit)

    result = references(run_cli, server, "--run", run, "--repo", str(repo))

    assert result.exit_code == 1
    assert result.stderr == (
        f"error: run {run} moved no stack and no environment from {AGENT} to acme: no name "
        "changes.\nName a claim or run that moves something.\n"
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--run", "r1", "--from", AGENT), "--run reads the names a finished commit changed"),
        (("--from", AGENT), "name the claim with --from ORG --to ORG"),
    ],
)
def test_a_claim_named_twice_or_not_at_all_is_a_usage_error(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    repo: Path,
    args: tuple[str, ...],
    says: str,
) -> None:
    server = make_emulator(world())
    result = references(run_cli, server, *args, "--repo", str(repo))
    assert result.exit_code == 2
    assert says in result.stderr


def test_odd_file_names_and_line_ends_are_patched_as_git_applies_them(tmp_path: Path) -> None:
    repo = tmp_path / "odd"
    files = {
        "a file.txt": "x agent/web/dev\r\ny\r\n",
        'quo"te.txt': "agent/web/dev\n",
        "é.txt": "agent/web/dev",
        "Pulumi.yaml": "name: web\n",
        "Pulumi.dev.yaml": "config: {}\n",
    }
    write_files(repo, files)
    git(repo, "init", "-q")

    patch = repository_patch(repo, CHANGES)
    copy = applied(repo, patch.diff, tmp_path)

    assert 'diff --git "a/quo\\"te.txt" "b/quo\\"te.txt"\n' in patch.diff
    assert (copy / "a file.txt").read_bytes() == b"x acme/web/dev-2\r\ny\r\n"
    assert (copy / 'quo"te.txt').read_bytes() == b"acme/web/dev-2\n"
    assert (copy / "é.txt").read_bytes() == b"acme/web/dev-2"
    assert (copy / "Pulumi.dev-2.yaml").read_bytes() == b"config: {}\n"
    assert not (copy / "Pulumi.dev.yaml").exists()
