"""What a migrated stack's state must be: renamed for its move, with no pending operations,
tagged as a new stack needs, and verified in the destination as the same state sealed its own
way. The steps that apply these rules, and their order, are in `toolkit.strategies.migrate`.
"""

from __future__ import annotations

from typing import Any

from toolkit.moves import StackMove
from toolkit.stack_state import difference, integrity_problem
from toolkit.strategies import Revision
from toolkit.strategies._migration import Session, StackState, StepFailed
from toolkit.urns import rename_in_place

SYSTEM_TAG_PREFIX = "pulumi:"
"""Tags the CLI sets on a stack it creates and on every update (project, runtime, ...)."""
PROJECT_TAG = "pulumi:project"


def user_tags_of(state: StackState) -> dict[str, str]:
    """The source's tags that no CLI sets (outside `pulumi:`): all that is copied to a stack
    the CLI tags itself, and what the report counts."""
    return {k: v for k, v in state.tags.items() if not k.startswith(SYSTEM_TAG_PREFIX)}


def renamed_state(state: StackState, move: StackMove) -> dict[str, Any]:
    """The source's state (secrets open) under the move's new project and stack names.

    Renamed in place, with no copy of a state that may be large: once renamed, the state as
    read is needed no more (verification compares the copy with the renamed state).
    """
    try:
        rename_in_place(
            state.plaintext,
            old_project=move.source.project_name,
            old_stack=move.source.stack_name,
            new_project=move.target.project_name,
            new_stack=move.target.stack_name,
        )
    except ValueError as error:
        raise StepFailed("import", f"the source's state cannot be renamed: {error}") from error
    return state.plaintext


def refuse_pending_operations(name: str, state: StackState) -> None:
    """Refuse a state with operations an interrupted update left: an import would drop them."""
    pending = state.plaintext.get("pending_operations") or []
    if pending:
        raise StepFailed(
            "read",
            f"{name} has {len(pending)} pending operation(s) left by an interrupted update, "
            f"which an import would drop; run `pulumi refresh --stack {name}` and migrate again",
        )


def all_tags(state: StackState, move: StackMove) -> dict[str, str]:
    """Every tag of the source, `pulumi:project` naming the new project, for a new stack
    that no CLI tagged with its program's `pulumi:` tags."""
    tags = dict(state.tags)
    if PROJECT_TAG in tags:
        tags[PROJECT_TAG] = move.target.project_name
    return tags


async def verify_copy(
    target: Session, name: str, *, expected: dict[str, object], source: StackState
) -> Revision:
    """Check the destination holds `expected` (the renamed source state), sealed its own way;
    the revision it was verified at."""
    await target.check_loads(name)
    try:
        landed = await target.read(name, "verify", tags=False)
    except StepFailed as failure:
        raise StepFailed("verify", f"verification: {failure.reason}") from failure
    problem = integrity_problem(landed.plaintext)
    if problem is not None:
        raise StepFailed("verify", f"verification: the state of {name} is broken: {problem}")
    problem = difference(expected, landed.plaintext)
    if problem:
        raise StepFailed("verify", f"verification: {name} {problem}")
    if landed.stores_open_secrets:
        raise StepFailed("verify", f"verification: {name} stores secrets unencrypted")
    if landed.ciphertexts & source.ciphertexts:
        raise StepFailed(
            "verify", f"verification: {name} holds the source's ciphertext, not its own"
        )
    return landed.revision
