"""The catalog of what else an org owns: Insights accounts and registry packages, each listed
in a stable order and keyset-paged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from toolkit.emulator.state._paging import Page, decode_token, page_of
from toolkit.emulator.state._records import (
    Caller,
    InsightsAccountRecord,
    PackageRecord,
)
from toolkit.emulator.state._store import Store


class Catalog(Store):
    def list_insights_accounts(
        self, caller: Caller, org: str, *, limit: int, continuation_token: str | None = None
    ) -> Page[InsightsAccountRecord]:
        """Insights accounts of an org, ordered by name, keyset-paged."""
        where = "org = ?"
        params: list[Any] = [org]
        if continuation_token is not None:
            where += " AND name > ?"
            params.extend(decode_token(continuation_token, "insights", 1))
        with self._in_org(caller, org):
            owner = self._owner_of(org)
            rows = self._db.execute(
                "SELECT id, name, provider FROM insights_accounts"
                f" WHERE {where} ORDER BY name LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        accounts = [
            InsightsAccountRecord(id=row_id, name=name, provider=provider, owner=owner)
            for row_id, name, provider in rows
        ]
        return page_of(accounts, limit, "insights", key=lambda account: (account.name,))

    def list_registry_packages(
        self,
        caller: Caller,
        *,
        limit: int,
        org_login: str | None = None,
        continuation_token: str | None = None,
    ) -> Page[PackageRecord]:
        """Registry packages of the caller's orgs (only those `org_login` owns, if given: the
        document's "filter by owning organization", which keeps a package a claim moved in,
        published under the agent's name)."""
        where = ["p.org IN (SELECT org FROM memberships WHERE login = ?)"]
        params: list[Any] = [caller.login]
        with self._session():
            if org_login is not None:
                self._role_in(caller, org_login)
                where.append("p.org = ?")
                params.append(org_login)
            if continuation_token is not None:
                where.append("(p.source, p.publisher, p.name, p.org) > (?, ?, ?, ?)")
                params.extend(decode_token(continuation_token, "packages", 4))
            rows = self._db.execute(
                "SELECT p.source, p.publisher, p.name, p.org, p.created_at"
                f" FROM registry_packages p WHERE {' AND '.join(where)}"
                " ORDER BY p.source, p.publisher, p.name, p.org LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        packages = [
            PackageRecord(
                source=source,
                publisher=publisher,
                name=name,
                org=package_org,
                created_at=datetime.fromisoformat(created_at),
            )
            for source, publisher, name, package_org, created_at in rows
        ]
        return page_of(
            packages, limit, "packages", key=lambda p: (p.source, p.publisher, p.name, p.org)
        )
