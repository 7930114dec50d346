"""Loading a world's environments, each definition sealed with its own key.

Apart from `_environments` because the schema's world loading needs it too, before any
`Store` exists.
"""

from __future__ import annotations

import sqlite3
import uuid

from toolkit.emulator.esc_definitions import seal_secrets
from toolkit.emulator.secrets import new_key, sealing
from toolkit.emulator.world import World


def insert_world_environments(db: sqlite3.Connection, world: World, loaded_at: str) -> None:
    """Each environment of the world with its own key, its definition (secrets sealed) as
    revision 1 and its tags, all made by the org's first admin (else the org itself)."""
    memberships = world.memberships()
    for org, content in world.orgs.items():
        admins = sorted(login for login, roles in memberships.items() if roles.get(org) == "admin")
        creator = admins[0] if admins else org
        for environment in content.environments:
            environment_id = uuid.uuid4().hex
            key = new_key()
            definition = seal_secrets(environment.definition or "", *sealing(key, environment_id))
            db.execute(
                "INSERT INTO environments VALUES (?, ?, ?, ?, ?, ?)",
                (environment_id, org, environment.project, environment.name, loaded_at, key),
            )
            db.execute(
                "INSERT INTO environment_revisions VALUES (?, 1, ?, ?, ?)",
                (environment_id, definition, loaded_at, creator),
            )
            db.executemany(
                "INSERT INTO environment_tags VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (environment_id, name, value, loaded_at, loaded_at, creator)
                    for name, value in environment.tags.items()
                ],
            )
