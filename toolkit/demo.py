"""`pulumi-claim demo`: the whole claim flow against a built-in world on a local emulator."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table

from toolkit.claim import commit_claim, org_inventory, plan_claim, suggest_resolutions
from toolkit.cli import exit_code
from toolkit.credentials import Credentials
from toolkit.emulator.demo_world import demo_world
from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.state import ServiceState
from toolkit.entities import stack_name
from toolkit.plan import ClaimTarget
from toolkit.progress_display import ProgressDisplay
from toolkit.report import print_report, report_context
from toolkit.resolution_map import ResolutionMap, format_resolution_map, load_resolution_map

DEMO_DESTINATION_ORG = "acme"


async def run_demo(out: Console, progress: Console) -> int:
    """Preview, resolve, commit and list, narrating each step; 0 when the flow ran as designed."""
    world = demo_world()
    agent = world.agents[0]
    claimer = next(user for user in world.users if user.orgs.get(DEMO_DESTINATION_ORG) == "admin")
    target = ClaimTarget(source_org=agent.login, destination_org=DEMO_DESTINATION_ORG)

    with (
        EmulatorServer(ServiceState.from_world(world)) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        credentials = Credentials(
            api_url=server.url,
            destination_token=claimer.token,
            source_token=agent.token,
            claim_token=agent.claim_token,
        )
        out.print(Rule("pulumi-claim demo"))
        out.print(
            f"A local Pulumi Cloud is serving a built-in world at {server.url}.\n"
            f"Agent [bold]{agent.login}[/] built stacks and ESC environments in its own org; "
            f"[bold]{claimer.login}[/] claims them into [bold]{DEMO_DESTINATION_ORG}[/].\n"
        )

        out.print(Rule(f"1. preview --from {target.source_org} --to {target.destination_org}"))
        plan = await plan_claim(credentials, target, ResolutionMap.empty(), "transfer")
        document = plan.to_claim_response()
        print_report(document, "table", report_context(plan, "preview", document), out)
        code = exit_code(document, plan.strategy)
        out.print(f"exit code would be {code} (blocked by conflicts)\n")

        map_path = Path(tmp) / "resolutions.yaml"
        out.print(Rule(f"2. resolve --suffix -agent --output {map_path.name}"))
        suggestion, _conflicts = await suggest_resolutions(credentials, target, suffix="-agent")
        map_path.write_text(format_resolution_map(suggestion.renames), encoding="utf-8")
        out.print(Syntax(map_path.read_text(encoding="utf-8"), "yaml", word_wrap=True))

        out.print(Rule(f"3. commit --strategy transfer --resolutions {map_path.name} --yes"))
        plan = await plan_claim(credentials, target, load_resolution_map(map_path), "transfer")
        with ProgressDisplay(progress, total=len(plan.moves)) as show_progress:
            result = await commit_claim(credentials, plan, on_progress=show_progress)
        print_report(result.document, "table", report_context(plan, "commit", result.document), out)
        code = exit_code(result.document, plan.strategy)
        out.print(f"exit code {code} (stacks moved, failures reported)\n")

        out.print(Rule(f"4. the stacks of {DEMO_DESTINATION_ORG} now"))
        inventory = await org_inventory(credentials, DEMO_DESTINATION_ORG)
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
    landed = len(plan.moves) - len(result.failed_moves)
    out.print(
        f"{landed} of {len(plan.moves)} stacks landed in {DEMO_DESTINATION_ORG}; "
        f"{len(result.document.failures)} entities reported as failures."
    )
    return 0 if not result.failed_moves else 1
