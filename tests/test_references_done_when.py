"""What points at a moved stack follows it, end to end over the emulator and the command line.

The world: the agent's `web/dev` reads the agent's `api/dev` (a StackReference); `api/dev`
collides in acme and the map renames it `api/dev-agent`; acme's `app/prod` reads both agent
stacks; a partner org's `ops/prod` reads the agent's `web/dev`. The agent's environment
`default/app` reads the outputs of both agent stacks and imports `default/base`, which the map
renames too; both are copied. A small git repository names the old stacks (a Python
StackReference, a stack file importing the renamed environment, a CI file selecting the old
stack).

Shown here: the preview lists every reference that breaks (exact lines) and says how each org
was searched; the commit (transfer) copies the environment with its stack reads and import
rewritten (read back from the emulator); `references --run RUN --repo PATH` writes a diff that
`git apply` accepts, after which no old name remains. Then each way an org's StackReferences
are found, or not: the search without properties (names from IDs), the exports where the
search is missing, a stack whose state cannot be read, an org that cannot be searched, and an
unknown `--reference-orgs` org.

A migrated stack keeps its deployment settings, webhooks and schedules (the same world,
committed by migrate: the new stack is made, not moved).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import run_id
from esc_reads import decrypted
from git_checkouts import applied, commit_all, git, write_files

from toolkit.checks_first import CurrentUsers
from toolkit.cli.options import in_cli_words
from toolkit.credentials import Credentials
from toolkit.emulator.faults import FaultRule
from toolkit.emulator.server import EmulatorServer
from toolkit.errors import ChoiceError
from toolkit.plan import ClaimTarget
from toolkit.reference_finding import search_stack_references
from toolkit.sides import Sides

if TYPE_CHECKING:
    from click.testing import Result
    from conftest import EmulatorFactory, RunCli

AGENT = "agent-xyz789"
CLAIM = ("--from", AGENT, "--to", "acme", "--strategy", "transfer", "--environments", "copy")
MAP = """stacks:
  api/dev: api/dev-agent
environments:
  default/base: default/base-agent
"""
APP = """imports:
  - base
values:
  outputs:
    fn::open::pulumi-stacks:
      stacks:
        web: {stack: web/dev}
        api: {stack: api/dev}
"""


def world(resource_search: str = "available") -> dict[str, Any]:
    """alice administers acme and the agent's org, and is a member of partners."""
    return {
        "service": {"resourceSearch": resource_search},
        "users": [
            {
                "login": "alice",
                "token": "tok-alice",
                "orgs": {"acme": "admin", AGENT: "admin", "partners": "member"},
            }
        ],
        "orgs": {
            AGENT: {
                "stacks": [
                    {"project": "web", "stack": "dev", "stackReferences": [f"{AGENT}/api/dev"]},
                    {"project": "api", "stack": "dev"},
                ],
                "environments": [
                    {"project": "default", "name": "app", "definition": APP},
                    {"project": "default", "name": "base", "definition": "values: {x: 1}\n"},
                ],
            },
            "acme": {
                "stacks": [
                    {"project": "api", "stack": "dev"},
                    {
                        "project": "app",
                        "stack": "prod",
                        "stackReferences": [f"{AGENT}/api/dev", f"{AGENT}/web/dev"],
                    },
                ],
                "environments": [
                    {"project": "default", "name": "base", "definition": "values: {y: 2}\n"}
                ],
            },
            "partners": {
                "stacks": [
                    {"project": "ops", "stack": "prod", "stackReferences": [f"{AGENT}/web/dev"]}
                ]
            },
        },
    }


BROKEN = [
    f"environment {AGENT}/default/app imports environment {AGENT}/default/base → "
    "acme/default/base-agent; pulumi-claim rewrites its copy: imports: base → imports: base-agent",
    f"environment {AGENT}/default/app reads the outputs of stack {AGENT}/api/dev → "
    "acme/api/dev-agent; pulumi-claim rewrites its copy: stack: api/dev → stack: api/dev-agent",
    f"stack acme/app/prod references stack {AGENT}/api/dev → acme/api/dev-agent; you edit it: "
    f'StackReference name: "{AGENT}/api/dev" → "acme/api/dev-agent"',
    f"stack acme/app/prod references stack {AGENT}/web/dev → acme/web/dev; you edit it: "
    f'StackReference name: "{AGENT}/web/dev" → "acme/web/dev"',
    f"stack {AGENT}/web/dev references stack {AGENT}/api/dev → acme/api/dev-agent; you edit it: "
    f'StackReference name: "{AGENT}/api/dev" → "acme/api/dev-agent"',
]
"""The references that break, in report order, without the partner org."""

PARTNER = (
    f"stack partners/ops/prod references stack {AGENT}/web/dev → acme/web/dev; you edit it: "
    f'StackReference name: "{AGENT}/web/dev" → "acme/web/dev"'
)

REPOSITORY = {
    "web/Pulumi.yaml": "name: web\nruntime: python\n",
    "web/Pulumi.dev.yaml": "environment:\n  - base\nconfig:\n  web:region: eu-west-1\n",
    "web/__main__.py": (
        "import pulumi\n"
        "\n"
        f'api = pulumi.StackReference("{AGENT}/api/dev")\n'
        'pulumi.export("url", api.get_output("url"))\n'
    ),
    ".github/workflows/deploy.yml": (
        "name: deploy\n"
        "on: push\n"
        "jobs:\n"
        "  up:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        f"      - run: pulumi up --yes --stack {AGENT}/web/dev --cwd web\n"
        f"      - run: pulumi stack output --stack {AGENT}/api/dev\n"
    ),
}
OLD_NAMES = re.compile(rf"(?<![\w.\-/]){AGENT}/(web/dev|api/dev)(?![\w\-/])|^  - base$", re.M)
"""The old names of what moves: the stacks, fully qualified, and the renamed import."""


@pytest.fixture
def map_file(tmp_path: Path) -> str:
    path = tmp_path / "map.yaml"
    path.write_text(MAP, encoding="utf-8")
    return str(path)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    write_files(folder, REPOSITORY)
    return commit_all(folder)


def section(text: str, title: str, next_title: str) -> list[str]:
    """The list items between two headings of a Markdown report, one a line."""
    start = text.index(title) + len(title)
    body = text[start : text.index(next_title, start)]
    return [" ".join(item.split()) for item in body.split("\n- ")[1:]]


def preview(run_cli: RunCli, server: EmulatorServer, map_file: str, *extra: str) -> Result:
    return run_cli(
        server,
        "preview",
        *CLAIM,
        "-r",
        map_file,
        "--format",
        "markdown",
        *extra,
        source_token="tok-alice",
    )


def notices(result: Result) -> list[str]:
    return section(result.stdout + "\n## End", "## Notices", "\n## ")


def searched(result: Result) -> list[str]:
    """The notices that say how stack references were looked for."""
    return [
        notice
        for notice in notices(result)
        if notice.startswith("stack references in ") or " could not be read " in notice
    ]


# --- the done-when world ----------------------------------------------------------------------


def test_the_preview_lists_every_reference_that_breaks_and_how_each_org_was_searched(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: str
) -> None:
    server = make_emulator(world())

    result = preview(run_cli, server, map_file, "--reference-orgs", "partners")

    assert result.exit_code == 0, result.output
    assert section(result.stdout, "## References that break", "## Notices") == [
        *BROKEN,
        PARTNER,
    ]
    assert searched(result) == [
        f"stack references in {AGENT}: found by the service's search",
        "stack references in acme: found by the service's search",
        "stack references in partners: found by the service's search",
    ]
    assert server.requests.count(method="POST") == 0
    assert server.requests.count(method="GET", path=r".*/export") == 0


def test_without_reference_orgs_only_the_two_orgs_are_searched(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: str
) -> None:
    server = make_emulator(world())

    result = preview(run_cli, server, map_file)

    assert result.exit_code == 0, result.output
    assert section(result.stdout, "## References that break", "## Notices") == BROKEN
    assert [notice.split(":")[0] for notice in searched(result)] == [
        f"stack references in {AGENT}",
        "stack references in acme",
    ]


def test_the_commit_rewrites_its_copy_and_the_patch_renames_every_old_name(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    map_file: str,
    repo: Path,
    tmp_path: Path,
) -> None:
    server = make_emulator(world())

    commit = run_cli(
        server, "commit", *CLAIM, "-r", map_file, "--yes", "--json", source_token="tok-alice"
    )

    assert commit.exit_code == 0, commit.output
    copy = decrypted(server, "acme", ("default", "app"))
    assert copy["imports"] == ["base-agent"]
    assert copy["values"]["outputs"]["fn::open::pulumi-stacks"]["stacks"] == {
        "web": {"stack": "web/dev"},
        "api": {"stack": "api/dev-agent"},
    }
    run = run_id(commit)
    searches = server.requests.count(path=r".*/search/resourcesv2")

    patch = run_cli(server, "references", "--run", run, "--repo", str(repo))

    assert patch.exit_code == 0, patch.stderr
    assert server.requests.count(path=r".*/search/resourcesv2") == searches == 2
    copy = applied(repo, patch.stdout, tmp_path)
    texts = {path: (copy / path).read_text(encoding="utf-8") for path in REPOSITORY}
    assert [path for path, text in texts.items() if OLD_NAMES.search(text)] == []
    assert texts["web/__main__.py"].splitlines()[2] == (
        'api = pulumi.StackReference("acme/api/dev-agent")'
    )
    assert texts["web/Pulumi.dev.yaml"].splitlines()[1] == "  - base-agent"
    assert texts[".github/workflows/deploy.yml"].splitlines()[-2:] == [
        "      - run: pulumi up --yes --stack acme/web/dev --cwd web",
        "      - run: pulumi stack output --stack acme/api/dev-agent",
    ]
    assert git(repo, "status", "--porcelain").stdout == "", "the checkout is not written"


def test_the_patch_of_a_planned_claim_searches_no_stack_references(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: str, repo: Path
) -> None:
    """`references` needs only the names a claim changes: no org is searched, no state read."""
    server = make_emulator(world())

    patch = run_cli(
        server, "references", *CLAIM, "-r", map_file, "--repo", str(repo), source_token="tok-alice"
    )

    assert patch.exit_code == 0, patch.stderr
    assert '+api = pulumi.StackReference("acme/api/dev-agent")' in patch.stdout.splitlines()
    assert server.requests.count(path=r".*/search/resources.*|.*/export") == 0


# --- a migrated stack's settings ----------------------------------------------------------------

SETTINGS: dict[str, Any] = {
    "sourceContext": {"git": {"repoUrl": "https://git.invalid/web.git", "branch": "main"}},
    "operationContext": {"preRunCommands": ["make deps"]},
}
WEBHOOK = {"name": "deploys", "payloadUrl": "https://hooks.invalid/deploys", "format": "slack"}
SCHEDULE = {"scheduleCron": "0 6 * * 1", "request": {"operation": "refresh"}}


def test_a_migrated_stack_keeps_its_deployment_settings_webhooks_and_schedules(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: str
) -> None:
    seeded = world()
    web = seeded["orgs"][AGENT]["stacks"][0]
    web |= {"deploymentSettings": SETTINGS, "webhooks": [WEBHOOK], "schedules": [SCHEDULE]}
    server = make_emulator(seeded)
    claim = [word if word != "transfer" else "migrate" for word in CLAIM]

    commit = run_cli(
        server, "commit", *claim, "-r", map_file, "--yes", "--json", source_token="tok-alice"
    )

    assert commit.exit_code == 0, commit.output
    landed = "/api/stacks/acme/web/dev"
    with httpx.Client(base_url=server.url, headers={"Authorization": "token tok-alice"}) as http:
        settings = http.get(f"{landed}/deployments/settings").raise_for_status().json()
        hooks = http.get(f"{landed}/hooks").raise_for_status().json()
        schedules = http.get(f"{landed}/deployments/schedules").raise_for_status().json()
    assert {key: settings[key] for key in SETTINGS} == SETTINGS
    assert [(hook["name"], hook["payloadUrl"], hook["format"]) for hook in hooks] == [
        ("deploys", "https://hooks.invalid/deploys", "slack")
    ]
    assert [(s["scheduleCron"], s["definition"]) for s in schedules["schedules"]] == [
        ("0 6 * * 1", {"request": {"operation": "refresh"}})
    ]


# --- how each org's stack references are found -------------------------------------------------


def test_a_search_without_properties_reads_the_names_from_the_ids(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: str
) -> None:
    server = make_emulator(world("withoutProperties"))

    result = preview(run_cli, server, map_file)

    assert result.exit_code == 0, result.output
    assert section(result.stdout, "## References that break", "## Notices") == BROKEN
    assert searched(result) == [
        f"stack references in {AGENT}: found by the service's search, each name read from its "
        "resource's ID",
        "stack references in acme: found by the service's search, each name read from its "
        "resource's ID",
    ]
    assert server.requests.count(method="GET", path=r".*/export") == 0


def test_without_the_search_every_state_is_exported(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: str
) -> None:
    server = make_emulator(world("absent"))

    result = preview(run_cli, server, map_file)

    assert result.exit_code == 0, result.output
    assert section(result.stdout, "## References that break", "## Notices") == BROKEN
    assert searched(result) == [
        f"stack references in {AGENT}: by exporting 2 states (the search answered 404: Not Found)",
        "stack references in acme: by exporting 2 states (the search answered 404: Not Found)",
    ]


def test_a_stack_whose_state_cannot_be_read_is_a_notice(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: str
) -> None:
    server = make_emulator(world("unreachable"))
    server.faults.arm(
        FaultRule(
            method="GET",
            path="/api/stacks/acme/app/prod/export",
            status=403,
            message="no access",
            times=None,
        )
    )

    result = preview(run_cli, server, map_file)

    assert result.exit_code == 0, result.output
    assert section(result.stdout, "## References that break", "## Notices") == [
        BROKEN[0],
        BROKEN[1],
        BROKEN[4],
    ]
    assert searched(result)[1:] == [
        "stack references in acme: by exporting 1 state (the search answered 422: search "
        "cluster is unreachable)",
        "stack acme/app/prod could not be read (GET /api/stacks/acme/app/prod/export failed "
        "with 403: no access): its StackReferences are not checked",
    ]


def test_an_org_that_cannot_be_searched_is_a_notice_never_a_silent_none(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: str
) -> None:
    server = make_emulator(world())
    server.faults.arm(
        FaultRule(
            method="GET",
            path="/api/orgs/acme/search/resourcesv2",
            status=500,
            message="search broke",
            times=None,
        )
    )

    result = preview(run_cli, server, map_file)

    assert result.exit_code == 0, result.output
    assert section(result.stdout, "## References that break", "## Notices") == [
        BROKEN[0],
        BROKEN[1],
        BROKEN[4],
    ]
    (acme,) = (notice for notice in searched(result) if "acme" in notice)
    assert acme.startswith("stack references in acme were not searched (")
    assert acme.endswith("): the StackReferences its stacks hold to moved stacks are not checked")
    assert "search broke" in acme


def test_a_reference_org_the_identity_has_no_role_in_is_refused(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: str
) -> None:
    """The preview and the commit refuse it alike, and the commit changes nothing."""
    server = make_emulator(world())
    refusal = [
        "error: --reference-orgs partnrs: alice has no role in partnrs (did you mean partners?)",
        f"The orgs alice has a role in: acme, {AGENT}, partners. Name one of them, or use the "
        "token of a member of partnrs.",
    ]
    stacks = {org: server.state.stack_names(org) for org in (AGENT, "acme")}
    environments = {org: server.state.environment_names(org) for org in (AGENT, "acme")}

    result = preview(run_cli, server, map_file, "--reference-orgs", "partners,partnrs")
    commit = run_cli(
        server,
        "commit",
        *CLAIM,
        "-r",
        map_file,
        "--reference-orgs",
        "partners,partnrs",
        "--yes",
        source_token="tok-alice",
    )

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == refusal
    assert commit.exit_code == 1, commit.output
    assert commit.stderr.splitlines() == refusal
    assert [
        (entry.method, entry.path)
        for entry in server.requests.entries()
        if entry.method not in ("GET", "HEAD")
    ] == [], "nothing changes: only reads ran ahead"
    assert {org: server.state.stack_names(org) for org in stacks} == stacks
    assert {org: server.state.environment_names(org) for org in environments} == environments


def test_reference_orgs_need_the_destination_on_pulumi_cloud(tmp_path: Path) -> None:
    """Refused before any call: the orgs named are Pulumi Cloud's, and a self-managed
    destination's identity reads none of them."""
    target = ClaimTarget(
        source_org=AGENT, destination_org="organization", destination_backend=tmp_path.as_uri()
    )
    sides = Sides.of(target, Credentials("http://unreachable.invalid", "tok", "tok", None))

    async def search() -> None:
        async with CurrentUsers() as users:
            await search_stack_references(sides, users, ["partners"])

    with pytest.raises(ChoiceError) as refused:
        asyncio.run(search())
    assert str(in_cli_words(refused.value)) == (
        "--reference-orgs names orgs of Pulumi Cloud, but the destination is not there.\n"
        "Leave out --reference-orgs, or move into an org of Pulumi Cloud."
    )
