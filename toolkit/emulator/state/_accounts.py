"""Accounts: who an access token belongs to, and the orgs they have a role in."""

from __future__ import annotations

from datetime import datetime

from toolkit.emulator.state._records import Caller, ServiceFault, UserRecord
from toolkit.emulator.state._store import Store


class Accounts(Store):
    def authenticate(self, token: str | None) -> Caller:
        """The caller an access token belongs to; 401 for a missing or unknown token, for the
        token of an account a claim has soft-deleted, and for an agent's token once its
        `accessTokenValidUntil` has passed (the account itself waits to be claimed)."""
        if not token:
            raise ServiceFault(401, "Unauthorized: no access token was given")
        with self._session():
            row = self._db.execute(
                "SELECT login, is_agent, token_valid_until FROM accounts"
                " WHERE token = ? AND deleted_at IS NULL",
                (token,),
            ).fetchone()
            now = self.now()
        if row is None:
            raise ServiceFault(401, "Unauthorized: the access token is not valid")
        login, is_agent, valid_until = row
        if valid_until and now >= datetime.fromisoformat(valid_until):
            raise ServiceFault(401, f"Unauthorized: the access token expired at {valid_until}")
        return Caller(login=login, is_agent=bool(is_agent))

    def current_user(self, caller: Caller) -> UserRecord:
        """Who the caller is and its orgs with roles (`GET /api/user`)."""
        with self._session():
            rows = self._db.execute(
                "SELECT m.org, m.role FROM memberships m JOIN orgs o ON o.name = m.org"
                " WHERE m.login = ? AND o.deleted_at IS NULL ORDER BY m.org",
                (caller.login,),
            ).fetchall()
        return UserRecord(login=caller.login, is_agent=caller.is_agent, roles=dict(rows))

    def default_org(self, caller: Caller) -> str:
        """The org the CLI puts stacks named without one in: the caller's individual org
        (named after its login, as every agent has), else the first org it administers,
        else the first it belongs to; 404 when it belongs to none."""
        roles = self.current_user(caller).roles
        if caller.login in roles:
            return caller.login
        admin = [org for org, role in roles.items() if role == "admin"]
        if admin or roles:
            return (admin or list(roles))[0]
        raise ServiceFault(404, f"Not Found: {caller.login!r} belongs to no organization")
