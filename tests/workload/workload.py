"""A workload of the kind an agent deploys: real stack state without any cloud account.

`components` (config, default 3) services, each a component resource with two worker
components as its children, deleted with it; so the state has a parent/child tree and
`deletedWith` references, URN-bearing fields a move under a new name must rewrite. Outputs:
plain values plus `apiKey`, the secret config value exported as a secret output. Component
resources need no provider plugin, so the program runs offline.

Nothing here depends on the stack or project name: the same program previews with no changes
in a stack that was moved under another name.
"""

from __future__ import annotations

import pulumi

WORKERS_PER_SERVICE = 2


class Worker(pulumi.ComponentResource):
    """A unit of work inside a service."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__("workload:index:Worker", name, None, opts)
        self.queue = f"{name}-queue"
        self.register_outputs({"queue": self.queue})


class Service(pulumi.ComponentResource):
    """A service and its workers (children of it, deleted with it)."""

    def __init__(self, name: str) -> None:
        super().__init__("workload:index:Service", name, {"workers": WORKERS_PER_SERVICE})
        self.endpoint = f"https://{name}.workload.internal"
        self.workers = [
            Worker(
                f"{name}-worker-{index}",
                pulumi.ResourceOptions(parent=self, deleted_with=self),
            )
            for index in range(WORKERS_PER_SERVICE)
        ]
        self.register_outputs({"endpoint": self.endpoint})


def pulumi_program() -> None:
    """The program body, for `create_or_select_stack(..., program=pulumi_program)`."""
    config = pulumi.Config()
    count = config.get_int("components") or 3
    services = [Service(f"service-{index}") for index in range(count)]
    pulumi.export("endpoints", {f"service-{i}": s.endpoint for i, s in enumerate(services)})
    pulumi.export("componentCount", count * (1 + WORKERS_PER_SERVICE))
    pulumi.export("region", config.get("region") or "local")
    pulumi.export("apiKey", config.require_secret("apiKey"))
