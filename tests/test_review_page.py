"""The reviewer's reports at real scale: the HTML review page of a 1,000-entity claim in a real
browser (the system's Chromium, driven by Playwright), a commit's page with its failures told
apart, and a Markdown report that fits a pull request comment whatever the claim's size."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from built_once import built_once
from click.testing import CliRunner
from test_cli import AGENT, ORGS, claim_world, write_map

from toolkit.cli import cli
from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import parse_world
from toolkit.entities import display_name
from toolkit.models import (
    AgentAccountSummary,
    AgentClaimResponse,
    BaseEntity,
    RenameEntity,
    TransferEntityEnvironment,
    TransferEntityFailure,
    TransferEntityInsightsAccount,
    TransferEntityStack,
)
from toolkit.report import ReportContext, render
from toolkit.report.markdown import MARKDOWN_LIMIT

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="the system's Chromium (/usr/bin/chromium) is not installed; .ci/run installs it",
)

PROJECTS = 25
STACKS_PER_PROJECT = 40
"""1,000 stacks in the agent's org."""


def _stack_names() -> list[str]:
    return [
        f"p{project:02d}/s{stack:03d}"
        for project in range(PROJECTS)
        for stack in range(STACKS_PER_PROJECT)
    ]


def _taken(name: str) -> bool:
    """Every eighth stack of each project is taken in acme: 125 conflicts."""
    return int(name.rsplit("s", 1)[1]) % 8 == 0


def _big_world() -> dict[str, Any]:
    stacks = [
        {"project": name.split("/")[0], "stack": name.split("/")[1], "resourceCount": 3}
        for name in _stack_names()
    ]
    world = claim_world(stacks=stacks, insightsAccounts=[{"name": "gcp-sandbox"}])
    world["orgs"]["acme"]["stacks"] = [entry for entry in stacks if _taken(_name_of(entry))]
    return world


def _name_of(entry: dict[str, Any]) -> str:
    return f"{entry['project']}/{entry['stack']}"


@pytest.fixture(scope="module")
def big_preview(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML preview of claiming the 1,001-entity org into acme, written by the command
    line against the emulator: 125 conflicts, one Insights account that cannot move; written
    once for the whole run."""
    return built_once(tmp_path_factory, "review-page", _write_big_preview) / "preview.html"


def _write_big_preview(folder: Path) -> None:
    server = EmulatorServer(ServiceState.from_world(parse_world(_big_world()))).start()
    page = folder / "preview.html"
    try:
        result = CliRunner().invoke(
            cli,
            ["preview", *ORGS, "--strategy", "transfer", "-o", str(page)],
            env={
                "PULUMI_ACCESS_TOKEN": "tok-alice",
                "PULUMI_CLAIM_SOURCE_TOKEN": "tok-agent",
                "PULUMI_BACKEND_URL": server.url,
                "PULUMI_CLAIM_RUNS_DIR": str(folder / "runs"),
            },
            catch_exceptions=False,
        )
    finally:
        server.stop()
        server.state.close()
    assert result.exit_code == 3, result.stderr


@pytest.fixture
def browser(big_preview: Path) -> Iterator[Browser]:
    """Chromium, for one test: Playwright's own event loop runs while it is open, and the
    command line (`asyncio.run`) cannot run beside it, hence after `big_preview`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


class _Errors:
    """What the page reports as going wrong: console errors (a refused script among them)
    and uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.messages.append(f"pageerror: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text}")


def _open(browser: Browser, path: Path, *, javascript: bool = True) -> tuple[Page, _Errors]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, java_script_enabled=javascript
    )
    page = context.new_page()
    errors = _Errors(page)
    page.goto(path.as_uri())
    return page, errors


def _visible_names(page: Page) -> list[str]:
    """The names of the rows a person sees (in the layout, not hidden or collapsed)."""
    names: list[str] = page.evaluate(
        """() => Array.from(document.querySelectorAll("tr[data-name]"))
            .filter((row) => row.checkVisibility())
            .map((row) => row.getAttribute("data-name"))"""
    )
    return names


@needs_chromium
def test_the_conflicts_are_on_the_first_screen_of_a_1000_entity_preview(
    browser: Browser, big_preview: Path
) -> None:
    page, errors = _open(browser, big_preview)

    heading = page.locator("#conflicts")
    first_conflict = page.locator("#decisions tbody tr").first
    for element in (heading, first_conflict):
        box = element.bounding_box()
        assert box is not None
        assert box["y"] >= 0 and box["y"] + box["height"] <= 800, box
    assert heading.inner_text() == "Conflicts (125)"
    assert first_conflict.inner_text().split("\t") == [
        "stack",
        "p00/s000",
        "blocked: name taken in acme",
    ]
    # The plain moves are summarised per project, collapsed: none of their rows is on screen.
    visible = _visible_names(page)
    assert len(visible) == 125 + 1
    assert all(_taken(name) for name in visible if name != "gcp-sandbox")
    summaries = page.locator("#moves summary").all_inner_texts()
    assert summaries == [f"p{p:02d}: 35 stacks, 105 resources" for p in range(PROJECTS)]
    assert errors.messages == []


@needs_chromium
def test_identical_advice_is_given_once_with_its_names(browser: Browser, big_preview: Path) -> None:
    page, errors = _open(browser, big_preview)
    advice = page.locator("#advice > ul > li")
    assert advice.count() == 1
    assert advice.first.inner_text().splitlines()[0] == (
        "125 stacks: the name is taken in acme; rename it in the resolution map "
        "(pulumi-claim resolve writes one) and pass the map with --resolutions"
    )
    page.locator("#advice summary").click()
    names = page.locator("#advice ul.names li").all_inner_texts()
    assert names == [name for name in _stack_names() if _taken(name)]
    assert errors.messages == []


@needs_chromium
def test_the_filter_narrows_the_rows_to_the_names_typed(
    browser: Browser, big_preview: Path
) -> None:
    page, errors = _open(browser, big_preview)
    box = page.get_by_label("Filter by name")
    assert box.is_visible()

    box.fill("p07/s00")

    expected = [name for name in _stack_names() if "p07/s00" in name]
    assert len(expected) == 10
    assert sorted(_visible_names(page)) == expected
    assert page.locator("#filter-count").inner_text() == "10 of 1001 rows match"
    assert page.locator("details.project:visible").all_inner_texts()[0].startswith("p07: ")

    box.fill("")
    assert len(_visible_names(page)) == 125 + 1
    assert errors.messages == []


@needs_chromium
def test_without_javascript_every_row_is_there_and_a_project_opens(
    browser: Browser, big_preview: Path
) -> None:
    page, errors = _open(browser, big_preview, javascript=False)

    rows = page.locator("tr[data-name]").evaluate_all(
        "(rows) => rows.map((row) => row.getAttribute('data-name'))"
    )
    assert sorted(rows) == sorted([*_stack_names(), "gcp-sandbox"])
    assert not page.locator("#filter-bar").is_visible(), "no filter that cannot work"

    project = [name for name in _stack_names() if name.startswith("p00/")]
    assert [name for name in _visible_names(page) if name in project] == [
        name for name in project if _taken(name)
    ]
    page.locator("#moves summary").first.click()
    assert sorted(name for name in _visible_names(page) if name in project) == project
    assert errors.messages == []


def test_the_page_is_one_file_with_anchors_and_a_table_of_contents(big_preview: Path) -> None:
    html = big_preview.read_text(encoding="utf-8")
    assert re.findall(r'<nav class="toc".*?</nav>', html, re.DOTALL)
    for anchor in ("decisions", "conflicts", "failures-cannot-move", "advice", "moves"):
        assert f'href="#{anchor}"' in html
        assert f'id="{anchor}"' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "nothing to fetch"
    assert html.index('id="conflicts"') < html.index('id="moves"')


# --- a commit's page --------------------------------------------------------------------


def test_a_commits_page_has_its_run_and_its_failures_apart(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    """Moved, failed (run again), of unknown outcome, and cannot move: four groups."""
    world = claim_world()
    world["orgs"][AGENT]["stacks"].append({"project": "web", "stack": "s03", "resourceCount": 1})
    server = make_emulator(world)
    server.faults.fail(503, method="POST", path=r".*/web/dev-2/transfer$", times=None)
    server.faults.fail_after(500, method="POST", path=f"/api/stacks/{AGENT}/web/s03/transfer")
    for org in (AGENT, "acme"):
        server.faults.fail(503, method="GET", path=f"/api/stacks/{org}/web/s03", times=None)
    resolutions = write_map(tmp_path, "stacks:\n  web/dev: web/dev-2\n  api/prod: api/prod-2\n")
    page = tmp_path / "commit.html"

    result = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes", "-o", str(page))

    assert result.exit_code == 4, result.stderr
    run_id = re.search(r"^run (\S+)$", result.stderr, re.MULTILINE)
    assert run_id is not None, result.stderr
    html = page.read_text(encoding="utf-8")
    assert f"<dt>Run</dt><dd>{run_id[1]}</dd>" in html
    assert '<span class="label">Moved</span>' in html
    assert "To move" not in html
    groups = dict(re.findall(r'<h3 id="failures-([a-z-]+)">Failures: [^<]* \((\d+)\)</h3>', html))
    assert groups == {"retry": "1", "unknown": "1", "cannot-move": "2"}
    moved = re.findall(r'<details class="project".*?</details>', html, re.DOTALL)
    assert [re.findall(r'data-name="([^"]+)"', group) for group in moved] == [
        ["api/dev"],
        ["web/qa"],
    ]
    renames = html.split('id="renames"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'data-name="([^"]+)"', renames) == ["api/prod"]

    status = run_cli(server, "status", "--format", "markdown")
    assert f"- **Run:** {run_id[1]}" in status.stdout.splitlines()


def test_the_landing_changes_have_their_section() -> None:
    context = ReportContext(
        mode="preview",
        source_org=AGENT,
        destination_org="acme",
        strategy="transfer",
        outcome="would move 1 of 1 stack(s)",
        landing="acme/claim-landing/agent-abc123: 2 to create",
        landing_changes=("create pulumiservice:index:Team <platform>", "create x:y:Z z"),
    )
    html = render(
        _document([TransferEntityStack(project_name="web", stack_name="a")]), "html", context
    )
    landing = html.split('<section id="landing">', 1)[1].split("</section>", 1)[0]
    assert re.findall(r"<li>(.*?)</li>", landing) == [
        "create pulumiservice:index:Team &lt;platform&gt;",
        "create x:y:Z z",
    ]
    assert 'href="#landing"' in html


# --- Markdown for a pull request --------------------------------------------------------


def _document(
    entities: list[BaseEntity | RenameEntity],
    conflicts: list[BaseEntity | RenameEntity] | None = None,
    failures: list[TransferEntityFailure] | None = None,
) -> AgentClaimResponse:
    return AgentClaimResponse(
        agent=AgentAccountSummary(
            login=AGENT, org_name=AGENT, created_at=datetime(2026, 11, 1, 9, tzinfo=UTC)
        ),
        entities=entities,
        conflicts=conflicts or [],
        failures=failures or [],
        claim_expires_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
    )


def _many(stacks: int, conflicting: int) -> tuple[AgentClaimResponse, ReportContext]:
    """`stacks` stacks over 100 projects, the first `conflicting` taken in acme; 40
    environments and 3 Insights accounts that cannot move."""
    entities: list[BaseEntity | RenameEntity] = [
        TransferEntityStack(
            project_name=f"project-{index % 100:03d}",
            stack_name=f"stack-{index:05d}",
            resource_count=index % 17,
        )
        for index in range(stacks)
    ]
    failing: list[BaseEntity | RenameEntity] = [
        *(
            TransferEntityEnvironment(project_name="shared", environment_name=f"env-{i:02d}")
            for i in range(40)
        ),
        *(TransferEntityInsightsAccount(name=f"cloud-{i}") for i in range(3)),
    ]
    document = _document(
        [*entities, *failing],
        conflicts=entities[:conflicting],
        failures=[
            TransferEntityFailure(entity=entity, failure_details="cannot be transferred")
            for entity in failing
        ],
    )
    context = ReportContext(
        mode="preview",
        source_org=AGENT,
        destination_org="acme",
        strategy="transfer",
        outcome="blocked",
    )
    return document, context


def test_markdown_of_10000_entities_fits_a_comment_and_names_every_decision() -> None:
    document, context = _many(10_000 - 43, conflicting=150)

    markdown = render(document, "markdown", context)

    assert len(markdown) < MARKDOWN_LIMIT == 60_000
    for entity in document.conflicts:
        assert f"| stack | {display_name(entity)} | blocked: name taken in acme |" in markdown
    for failure in document.failures:
        assert f" | {display_name(failure.entity)} | cannot be transferred |" in markdown
    lines = markdown.splitlines()
    plain = [e for e in document.entities[150:] if display_name(e).startswith("project-000/")]
    assert f"| project-000 | stack | {len(plain)} | " in markdown
    assert "<details>" in lines and "</details>" in lines
    assert f"<summary>{10_000 - 43 - 150} plain move(s)</summary>" in lines
    left_out = [line for line in lines if "not listed here" in line]
    assert len(left_out) == 1
    assert re.fullmatch(
        r"\*\d+ more move\(s\) not listed here; the full report: `--format html` \(one page\) "
        r"or `--format json`\.\*",
        left_out[0],
    )


def test_markdown_says_how_many_decisions_it_cannot_list_and_where_they_are() -> None:
    document, context = _many(10_000 - 43, conflicting=3_000)

    markdown = render(document, "markdown", context)

    assert len(markdown) < MARKDOWN_LIMIT
    listed = len(re.findall(r"\| blocked: name taken in acme \|", markdown))
    assert 0 < listed < 3_000
    assert (
        f"*{3_000 - listed} more conflict(s) not listed here; the full report: "
        "`--format html` (one page) or `--format json`.*"
    ) in markdown.splitlines()
    assert "## Moves per project" in markdown


def test_a_small_claim_still_gets_every_row_in_markdown() -> None:
    document, context = _many(20, conflicting=2)
    markdown = render(document, "markdown", context)
    assert "## Inventory" in markdown
    assert "not listed here" not in markdown
    assert markdown.count("| stack | project-") == 20 + 2


def test_accepted_failures_are_a_group_of_their_own() -> None:
    sandbox = TransferEntityInsightsAccount(name="gcp-sandbox")
    other = TransferEntityInsightsAccount(name="aws-main")
    document = _document(
        [TransferEntityStack(project_name="web", stack_name="a"), sandbox, other],
        failures=[
            TransferEntityFailure(entity=sandbox, failure_details="cannot be transferred"),
            TransferEntityFailure(entity=other, failure_details="cannot be transferred"),
        ],
    )
    context = ReportContext(
        mode="commit",
        source_org=AGENT,
        destination_org="acme",
        strategy="transfer",
        outcome="moved 1 of 1 stack(s); 2 cannot move, 1 of them accepted",
        accepted=frozenset({("TransferEntityInsightsAccount", "gcp-sandbox")}),
    )
    html = render(document, "html", context)
    groups = re.findall(
        r'<h3 id="failures-([a-z-]+)">Failures: ([^<]*)</h3>(.*?)</table>', html, re.DOTALL
    )
    assert [
        (kind, title, re.findall(r'data-name="([^"]+)"', rows)) for kind, title, rows in groups
    ] == [
        ("cannot-move", "cannot move (1)", ["aws-main"]),
        ("accepted", "cannot move, accepted in the resolution map (1)", ["gcp-sandbox"]),
    ]
