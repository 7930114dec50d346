"""Organization access tokens: made by an org's admins, listed without their values, deleted;
each authenticates as its org with the role it was made with, until it is deleted or expires.

The rules, as the service has them: only an org's admins manage its tokens (members get 403);
a token's name is unique in its org, even among deleted tokens (409: the audit log names
tokens by name); its value is handed out once, at creation, and the
service keeps only a digest of it; an admin token acts as an admin of the org, any other as a
member, and in no other org; a deleted or expired token gets 401.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from toolkit.emulator.state._records import Caller, OrgTokenRecord, OrgTokenScope, ServiceFault
from toolkit.emulator.state._store import Store

TOKEN_PREFIX = "pul-"
"""How the service's access tokens begin."""


class OrgTokens(Store):
    def create_org_token(
        self,
        caller: Caller,
        org: str,
        *,
        name: str,
        description: str,
        admin: bool,
        expires: int,
    ) -> tuple[OrgTokenRecord, str]:
        """A new token of `org` and its value, which nothing hands out again."""
        if not name.strip():
            raise ServiceFault(400, "Bad Request: an organization token needs a name")
        if expires and expires <= self._clock():
            raise ServiceFault(400, f"Bad Request: expires {expires} is not in the future")
        with self._in_org(caller, org, write=True) as role:
            self._refuse_unless_admin(caller, org, role)
            taken = self._db.execute(
                "SELECT 1 FROM org_tokens WHERE org = ? AND name = ?", (org, name)
            ).fetchone()
            if taken is not None:
                raise ServiceFault(
                    409,
                    f"Conflict: organization {org!r} has or had a token named {name!r};"
                    " token names are never reused",
                )
            value = TOKEN_PREFIX + secrets.token_hex(20)
            record = OrgTokenRecord(
                id=uuid.uuid4().hex,
                org=org,
                name=name,
                description=description,
                admin=admin,
                created=self.now().isoformat(),
                created_by=caller.login,
                expires=expires,
                last_used=0,
            )
            self._db.execute(
                "INSERT INTO org_tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    record.id,
                    org,
                    name,
                    description,
                    int(admin),
                    _digest(value),
                    record.created,
                    record.created_by,
                    expires,
                    0,
                ),
            )
        return record, value

    def list_org_tokens(self, caller: Caller, org: str) -> list[OrgTokenRecord]:
        """The org's tokens by name, without their values."""
        with self._in_org(caller, org) as role:
            self._refuse_unless_admin(caller, org, role)
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM org_tokens WHERE org = ? AND deleted_at IS NULL"
                " ORDER BY name, id",
                (org,),
            ).fetchall()
        return [_record(row) for row in rows]

    def delete_org_token(self, caller: Caller, org: str, token_id: str) -> None:
        """Revoke a token: every call with it gets 401 from now on."""
        with self._in_org(caller, org, write=True) as role:
            self._refuse_unless_admin(caller, org, role)
            deleted = self._db.execute(
                "UPDATE org_tokens SET deleted_at = ?"
                " WHERE org = ? AND id = ? AND deleted_at IS NULL",
                (self.now().isoformat(), org, token_id),
            ).rowcount
            if not deleted:
                raise ServiceFault(
                    404, f"Not Found: organization {org!r} has no token {token_id!r}"
                )

    def _org_token_caller(self, token: str) -> Caller | None:
        """The org a token of it acts for, with the token's role there, noting its use; None
        for a value that is no live org token (unknown, deleted, expired, or of an org that
        is gone)."""
        now = int(self._clock())
        with self._session(write=True):
            row = self._db.execute(
                "SELECT t.id, t.org, t.name, t.admin FROM org_tokens t"
                " JOIN orgs o ON o.name = t.org AND o.deleted_at IS NULL"
                " WHERE t.token_digest = ? AND t.deleted_at IS NULL"
                " AND (t.expires = 0 OR t.expires > ?)",
                (_digest(token), now),
            ).fetchone()
            if row is None:
                return None
            token_id, org, name, admin = row
            self._db.execute("UPDATE org_tokens SET last_used = ? WHERE id = ?", (now, token_id))
        scope = OrgTokenScope(org=org, role="admin" if admin else "member", token_name=name)
        return Caller(login=org, is_agent=False, org_token=scope)

    @staticmethod
    def _refuse_unless_admin(caller: Caller, org: str, role: str) -> None:
        if role != "admin":
            raise ServiceFault(
                403,
                f"Forbidden: only admins of organization {org!r} manage its access tokens;"
                f" {caller.login!r} is a {role}",
            )


_COLUMNS = "id, org, name, description, admin, created, created_by, expires, last_used"


def _record(row: Any) -> OrgTokenRecord:
    token_id, org, name, description, admin, created, created_by, expires, last_used = row
    return OrgTokenRecord(
        id=token_id,
        org=org,
        name=name,
        description=description,
        admin=bool(admin),
        created=created,
        created_by=created_by,
        expires=expires,
        last_used=last_used,
    )


def _digest(value: str) -> str:
    """What the service keeps of a token's value: enough to recognise it, not to use it."""
    return hashlib.sha256(value.encode()).hexdigest()
