"""Reading ESC environments back from the emulator over plain REST, as alice (a member of every
org the tests make), to see what a run left behind."""

from __future__ import annotations

from typing import Any

import httpx
import yaml

from toolkit.emulator.server import EmulatorServer


def esc(
    server: EmulatorServer, org: str, environment: tuple[str, str], tail: str = ""
) -> httpx.Response:
    """`GET` an environment (`tail` reaches its sub-resources: `/decrypt`, `/tags`, ...)."""
    project, name = environment
    return httpx.get(
        f"{server.url}/api/esc/environments/{org}/{project}/{name}{tail}",
        headers={"Authorization": "token tok-alice"},
    )


def decrypted(server: EmulatorServer, org: str, environment: tuple[str, str]) -> Any:
    """The environment's definition with its secrets in plaintext, parsed from YAML."""
    response = esc(server, org, environment, "/decrypt")
    response.raise_for_status()
    return yaml.safe_load(response.text)
