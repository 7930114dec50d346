"""The ESC provider the emulator opens: `pulumi-stacks`, which reads stacks' outputs.

As Pulumi's documentation has it, `fn::open::pulumi-stacks` takes
`{stacks: {<key>: {stack: <project>/<stack>}}}` and returns, under each key, the outputs of
that stack of the environment's own org (its latest state's root resource). The provider's
output schema is open (any outputs), so references into it are checked only when it is
opened. When a named stack does not exist the service answers the open with one error at the
`fn::open`, `no matching item` (its wording as the service gives it, pulumi/pulumi#20501);
the emulator answers a name that is not `project/stack` the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PULUMI_STACKS = "pulumi-stacks"
NO_MATCHING_ITEM = "no matching item"

ReadStack = Callable[[str, str], dict[str, Any] | None]
"""(project, stack) of the environment's org -> the stack's outputs, None if there is no
such stack; `ProviderError` for outputs the service cannot read."""


class ProviderError(ValueError):
    """An open the provider refuses; the message is the diagnostic's summary."""


def open_pulumi_stacks(inputs: Any, read_stack: ReadStack) -> dict[str, Any]:
    """Each named stack's outputs under its key; `ProviderError` for inputs of the wrong
    shape or a stack that does not exist."""
    stacks = inputs.get("stacks") if isinstance(inputs, dict) else None
    if not isinstance(stacks, dict):
        raise ProviderError('pulumi-stacks: "stacks" must be an object of {stack: project/stack}')
    opened: dict[str, Any] = {}
    for key, entry in stacks.items():
        name = entry.get("stack") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise ProviderError(f"pulumi-stacks: stacks.{key} must be {{stack: project/stack}}")
        project, _, stack = name.partition("/")
        outputs = read_stack(project, stack) if project and stack and "/" not in stack else None
        if outputs is None:
            raise ProviderError(NO_MATCHING_ITEM)
        opened[key] = outputs
    return opened
