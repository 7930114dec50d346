"""Accounts: who an access token belongs to (an account, or an org for one of its org tokens:
`_org_tokens`), and the orgs they have a role in."""

from __future__ import annotations

from datetime import datetime

from toolkit.emulator.state._org_tokens import OrgTokens
from toolkit.emulator.state._records import Caller, ServiceFault, UserRecord


class Accounts(OrgTokens):
    def authenticate(self, token: str | None) -> Caller:
        """The caller an access token belongs to (an account, or an org for a live token of
        it); 401 for a missing or unknown token, a deleted or expired org token, the token of
        an account a claim has soft-deleted, and an agent's token once its
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
        if row is not None:
            login, is_agent, valid_until = row
            if valid_until and now >= datetime.fromisoformat(valid_until):
                raise ServiceFault(401, f"Unauthorized: the access token expired at {valid_until}")
            return Caller(login=login, is_agent=bool(is_agent))
        org_token = self._org_token_caller(token)
        if org_token is None:
            raise ServiceFault(401, "Unauthorized: the access token is not valid")
        return org_token

    def current_user(self, caller: Caller) -> UserRecord:
        """Who the caller is and its orgs with roles (`GET /api/user`); for an org token, the
        org itself with the token's role there."""
        if caller.org_token is not None:
            with self._session():
                roles = {org: caller.org_token.role for org in self._orgs_of(caller)}
            return UserRecord(caller.login, False, roles, org_token=caller.org_token)
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
