"""`pulumi-claim demo`: the whole claim flow against a built-in world on a local emulator."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table

from toolkit.agent_signup import sign_up_agent_account
from toolkit.choices import EnvironmentChoice, Strategy
from toolkit.claim import (
    CommitResult,
    commit_claim,
    org_inventory,
    plan_claim,
    suggest_resolutions,
)
from toolkit.cloud import CloudClient
from toolkit.credentials import BackendIdentity, Credentials
from toolkit.emulator.demo_world import demo_world
from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import World
from toolkit.entities import stack_name
from toolkit.errors import InvalidInputError, PulumiCliError
from toolkit.landing import apply_landing
from toolkit.landing_spec import LandingSpec, landed_entities, landing_of
from toolkit.outcomes import exit_code
from toolkit.plan import ClaimPlan, ClaimTarget
from toolkit.private_files import write_private_text
from toolkit.progress_display import ProgressDisplay
from toolkit.report import print_report, render, report_context
from toolkit.resolution_map import ResolutionMap, format_resolution_map, load_resolution_map
from toolkit.sides import Sides

DEMO_DESTINATION_ORG = "acme"

_EXIT_MEANINGS = {0: "done", 3: "blocked, nothing changed", 4: "stacks moved, failures reported"}

AGENT_STACKS = (("web", "dev"), ("web", "staging"), ("api", "prod"), ("api", "canary"))
"""What the agent of the claim story builds; web/dev and api/prod collide with acme's."""

AGENT_ENVIRONMENT = ("default", "secrets")
"""The ESC environment the agent of the claim story builds; it collides with acme's."""

AGENT_DEFINITION = "values:\n  region: eu-west-1\n  dbPassword:\n    fn::secret: {secret}\n"
"""Its definition: a setting and a secret, made up afresh each run and never shown."""


async def run_demo(
    out: Console, progress: Console, *, transfer: bool = False, review_page: Path | None = None
) -> int:
    """The headline story (an agent signs up, builds stacks, a person claims its account with
    the claim link), or with `transfer` the org-to-org move as an admin of both orgs;
    0 when the flow ran as designed. `review_page`: where to write the first preview as the
    HTML review page too."""
    world = demo_world()
    with (
        EmulatorServer(ServiceState.from_world(world)) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        out.print(Rule("pulumi-claim demo"))
        story = _transfer_story if transfer else _claim_story
        return await story(world, server, Path(tmp), out, progress, review_page)


async def _claim_story(
    world: World,
    server: EmulatorServer,
    tmp: Path,
    out: Console,
    progress: Console,
    review_page: Path | None,
) -> int:
    claimer = next(user for user in world.users if user.orgs.get(DEMO_DESTINATION_ORG) == "member")
    out.print(
        f"A local Pulumi Cloud is serving a built-in world at {server.url}.\n"
        "An AI agent runs pulumi with no credentials, so its CLI signs up an agent account "
        f"(here through the same sign-up API). [bold]{claimer.login}[/], a member of "
        f"[bold]{DEMO_DESTINATION_ORG}[/], then claims that account with the claim link.\n"
    )
    out.print(Rule("0. the agent signs up and builds stacks and an ESC environment"))
    signup = await sign_up_agent_account(server.url)
    agent_org = signup.user_info.github_login
    async with CloudClient(server.url, signup.access_token) as agent:
        for project, stack in AGENT_STACKS:
            await agent.create_stack(agent_org, project, stack)
        # As `pulumi env init` and `pulumi env set --secret` do, with the agent's own token.
        await agent.create_environment(agent_org, *AGENT_ENVIRONMENT)
        definition = AGENT_DEFINITION.format(secret=secrets.token_urlsafe(12))
        await agent.update_environment(agent_org, *AGENT_ENVIRONMENT, definition)
    out.print(
        f"agent account [bold]{agent_org}[/]: {len(AGENT_STACKS)} stacks "
        f"({', '.join('/'.join(name) for name in AGENT_STACKS)}) and the ESC environment "
        f"{'/'.join(AGENT_ENVIRONMENT)} (with a secret); claim link valid until "
        f"{signup.claim_token_valid_until:%Y-%m-%d %H:%M} UTC\n"
        "The service's claim cannot move ESC environments, so the claim copies it first, "
        "reading it as the agent (PULUMI_CLAIM_SOURCE_TOKEN: the agent's token).\n"
    )
    credentials = Credentials(
        api_url=server.url,
        destination_token=claimer.token,
        source_token=signup.access_token,
        claim_token=signup.claim_token,
    )
    target = ClaimTarget(source_org=agent_org, destination_org=DEMO_DESTINATION_ORG)
    # A member of acme may tag stacks but not manage teams: this landing grants none.
    landing = LandingSpec(tags={"claimed-by": claimer.login})
    landed, result = await _preview_resolve_commit(
        Sides.of(target, credentials), "claim-api", landing, tmp, out, progress, "copy", review_page
    )
    copied = len(result.plan.environment_copies) - result.plan.not_landed(result.document)[1]
    out.print(
        f"{landed} through the claim; {copied} ESC environment(s) copied first; the agent's "
        "account is gone."
    )
    return 0 if not result.failed_moves and not result.document.failures else 1


async def _transfer_story(
    world: World,
    server: EmulatorServer,
    tmp: Path,
    out: Console,
    progress: Console,
    review_page: Path | None,
) -> int:
    agent = world.agents[0]
    claimer = next(user for user in world.users if user.orgs.get(DEMO_DESTINATION_ORG) == "admin")
    out.print(
        f"A local Pulumi Cloud is serving a built-in world at {server.url}.\n"
        f"Agent [bold]{agent.login}[/] built stacks and ESC environments in its own org; "
        f"[bold]{claimer.login}[/], admin of both orgs, moves them into "
        f"[bold]{DEMO_DESTINATION_ORG}[/].\n"
    )
    # The world's agent signed up long ago: its 72-hour token no longer authenticates, and
    # alice, admin of its org, reads it as herself.
    credentials = Credentials(
        api_url=server.url, destination_token=claimer.token, source_token=claimer.token
    )
    target = ClaimTarget(source_org=agent.login, destination_org=DEMO_DESTINATION_ORG)
    landing = LandingSpec(tags={"claimed-by": claimer.login}, teams={"platform": "write"})
    landed, result = await _preview_resolve_commit(
        Sides.of(target, credentials), "transfer", landing, tmp, out, progress, "copy", review_page
    )
    copied = len(result.plan.environment_copies) - result.plan.not_landed(result.document)[1]
    out.print(
        f"{landed}; {copied} ESC environment(s) copied; "
        f"{len(result.document.failures)} entities reported as failures."
    )
    return 0 if not result.failed_moves else 1


async def _preview_resolve_commit(
    sides: Sides,
    strategy: Strategy,
    landing: LandingSpec,
    tmp: Path,
    out: Console,
    progress: Console,
    environments: EnvironmentChoice,
    review_page: Path | None,
) -> tuple[str, CommitResult]:
    """Steps 1-6 of both stories: a blocked preview, a written map, the commit, the
    destination's stacks (and its environments, when they are copied), the landing; returns
    how many stacks landed, in words, and the commit."""
    target = sides.target
    copying = " --environments copy" if environments == "copy" else ""
    out.print(Rule(f"1. preview --from {target.source_org} --to {target.destination_org}{copying}"))
    plan = await plan_claim(sides, ResolutionMap.empty(), strategy, environments)
    document = plan.to_claim_response()
    context = report_context(plan, "preview", document)
    print_report(document, "table", context, out)
    out.print(f"exit code would be {exit_code(document, plan.strategy)} (blocked by conflicts)\n")
    if review_page is not None:
        write_private_text(review_page, render(document, "html", context))
        out.print(f"the review page of this preview: {review_page}\n", markup=False, soft_wrap=True)

    map_path = tmp / "resolutions.yaml"
    out.print(Rule(f"2. resolve --suffix -agent --output {map_path.name}"))
    suggestion, _conflicts = await suggest_resolutions(sides, suffix="-agent")
    map_path.write_text(format_resolution_map(suggestion.renames), encoding="utf-8")
    out.print(Syntax(map_path.read_text(encoding="utf-8"), "yaml", word_wrap=True))

    out.print(Rule(f"3. commit --strategy {strategy}{copying} --resolutions {map_path.name} --yes"))
    plan = await plan_claim(sides, load_resolution_map(map_path), strategy, environments)
    with ProgressDisplay(progress) as show_progress:
        result = await commit_claim(sides, plan, on_progress=show_progress)
    print_report(result.document, "table", report_context(plan, "commit", result.document), out)
    code = exit_code(result.document, plan.strategy)
    out.print(f"exit code {code} ({_EXIT_MEANINGS.get(code, 'error')})\n")
    await _list_destination(sides.destination, plan, out)
    if plan.environment_copies:
        await _list_environments(sides.destination, plan, out)
    await _land(sides, landing, result, tmp, out, step=6 if plan.environment_copies else 5)
    landed = len(plan.moves) - len(result.failed_moves)
    return f"{landed} of {len(plan.moves)} stacks landed in {target.destination_org}", result


async def _list_destination(destination: BackendIdentity, plan: ClaimPlan, out: Console) -> None:
    out.print(Rule(f"4. the stacks of {DEMO_DESTINATION_ORG} now"))
    inventory = await org_inventory(destination, DEMO_DESTINATION_ORG)
    table = Table("project", "stack", "resources", "moved here")
    moved = {stack_name(move.target) for move in plan.moves}
    for stack in inventory.stacks:
        table.add_row(
            stack.project_name,
            stack.stack_name,
            str(stack.resource_count),
            "yes" if stack_name(stack) in moved else "",
        )
    out.print(table)


async def _list_environments(destination: BackendIdentity, plan: ClaimPlan, out: Console) -> None:
    out.print(Rule(f"5. the ESC environments of {DEMO_DESTINATION_ORG} now"))
    async with CloudClient.for_identity(destination) as client:
        listed = await client.list_environments(DEMO_DESTINATION_ORG)
    table = Table("project", "environment", "tags", "copied here")
    copied = {
        (copy.target.project_name, copy.target.environment_name) for copy in plan.environment_copies
    }
    for environment in listed:
        project = environment.project or "default"
        tags = ", ".join(f"{key}={value}" for key, value in sorted(environment.tags.items()))
        table.add_row(
            project,
            environment.name,
            tags,
            "yes" if (project, environment.name) in copied else "",
        )
    out.print(table)


async def _land(
    sides: Sides,
    spec: LandingSpec,
    result: CommitResult,
    tmp: Path,
    out: Console,
    *,
    step: int,
) -> None:
    """The last step: the landing program tags what moved (and grants the spec's teams), as
    `commit` does with a landing: section; skipped, saying why, without the pulumi CLI or the
    provider plugin."""
    teams = ", ".join(f"{team}: {level}" for team, level in spec.teams.items()) or "none"
    out.print(Rule(f"{step}. landing: tags {dict(spec.tags)}, teams {teams}"))
    target, moved = sides.target, landed_entities(result.document)
    try:
        landing = await apply_landing(
            sides.destination,
            destination_org=target.destination_org,
            stack=spec.stack_name(target.source_org),
            build=landing_of(
                spec,
                result.document,
                source_org=target.source_org,
                destination_org=target.destination_org,
                run_id=result.document.transfer_token or "demo",
            ),
            workspace_root=tmp,
        )
    except (PulumiCliError, InvalidInputError) as error:
        out.print(f"landing skipped: {error}\n")
        return
    out.print(f"landing {landing.stack}: {landing.summary()}")
    async with CloudClient.for_identity(sides.destination) as client:
        first = moved.stacks[0].destination.split("/")
        stack = await client.get_stack(target.destination_org, first[0], first[1])
    tags = ", ".join(f"{name}={value}" for name, value in sorted((stack.tags or {}).items()))
    out.print(f"tags of {'/'.join(first)}: {tags}\n")
