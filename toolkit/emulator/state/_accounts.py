"""Accounts: who an access token belongs to, and the orgs they have a role in."""

from __future__ import annotations

from toolkit.emulator.state._records import Caller, ServiceFault, UserRecord
from toolkit.emulator.state._store import Store


class Accounts(Store):
    def authenticate(self, token: str | None) -> Caller:
        """The caller an access token belongs to; 401 for a missing or unknown token."""
        if not token:
            raise ServiceFault(401, "Unauthorized: no access token was given")
        with self._session():
            row = self._db.execute(
                "SELECT login, is_agent FROM accounts WHERE token = ?", (token,)
            ).fetchone()
        if row is None:
            raise ServiceFault(401, "Unauthorized: the access token is not valid")
        return Caller(login=row[0], is_agent=bool(row[1]))

    def current_user(self, caller: Caller) -> UserRecord:
        """Who the caller is and its orgs with roles (`GET /api/user`)."""
        with self._session():
            rows = self._db.execute(
                "SELECT org, role FROM memberships WHERE login = ? ORDER BY org",
                (caller.login,),
            ).fetchall()
        return UserRecord(login=caller.login, is_agent=caller.is_agent, roles=dict(rows))
