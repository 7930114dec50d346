"""Agent accounts: what a claim token would bring over to whoever claims the agent."""

from __future__ import annotations

from datetime import UTC, datetime

from toolkit.emulator.state._records import ClaimRecord, ServiceFault
from toolkit.emulator.state._store import Store
from toolkit.entities import Inventory
from toolkit.models import (
    TransferEntityEnvironment,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
)


class Agents(Store):
    def validate_claim(self, claim_token: str) -> ClaimRecord:
        """What claiming the agent account behind `claim_token` would bring over."""
        with self._session():
            row = self._db.execute(
                "SELECT login, created_at, claim_expires_at FROM accounts WHERE claim_token = ?",
                (claim_token,),
            ).fetchone()
            if row is None:
                raise ServiceFault(404, "Not Found: the claim token is not valid")
            login, created_at, claim_expires_at = row
            inventory = self._inventory(login)
        return ClaimRecord(
            login=login,
            created_at=datetime.fromisoformat(created_at),
            claim_expires_at=datetime.fromisoformat(claim_expires_at),
            inventory=inventory,
        )

    def _inventory(self, org: str) -> Inventory:
        db = self._db
        stacks = db.execute(
            "SELECT project, stack, resource_count, last_update FROM stacks WHERE org = ?"
            " ORDER BY project, stack",
            (org,),
        ).fetchall()
        environments = db.execute(
            "SELECT project, name FROM environments WHERE org = ? ORDER BY project, name", (org,)
        ).fetchall()
        accounts = db.execute(
            "SELECT name FROM insights_accounts WHERE org = ? ORDER BY name", (org,)
        ).fetchall()
        packages = db.execute(
            "SELECT source, publisher, name FROM registry_packages WHERE org = ?"
            " ORDER BY source, publisher, name",
            (org,),
        ).fetchall()
        return Inventory(
            org=org,
            stacks=[
                TransferEntityStack(
                    project_name=project,
                    stack_name=stack,
                    resource_count=count,
                    last_update=datetime.fromtimestamp(updated, UTC) if updated else None,
                )
                for project, stack, count, updated in stacks
            ],
            environments=[
                TransferEntityEnvironment(project_name=project, environment_name=name)
                for project, name in environments
            ],
            insights_accounts=[TransferEntityInsightsAccount(name=name) for (name,) in accounts],
            registry_packages=[
                TransferEntityRegistryPackage(source=source, publisher=publisher, name=name)
                for source, publisher, name in packages
            ],
        )
