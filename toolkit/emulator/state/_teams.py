"""Teams: their members, the stacks and ESC environments they grant access to, and the org's
members as the team pages show them.

The service's rules, as Pulumi's API document states them and the pulumiservice provider meets
them: any member of an org reads its teams; only an org admin changes them (403 otherwise); a
team, a stack or an environment that does not exist is 404; a permission the service does not
know is 400. A stack grant follows its stack (a rename keeps it, a deletion drops it); a grant
on a stack moved to another org is no longer shown, as the team cannot reach it there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from toolkit.emulator.state._environments import Environments
from toolkit.emulator.state._records import (
    Caller,
    OrgMemberRecord,
    ServiceFault,
    TeamEnvironmentGrant,
    TeamMemberRecord,
    TeamRecord,
    TeamStackGrant,
)

STACK_PERMISSIONS = {101: "read", 102: "write", 103: "admin"}
"""The StackPermission values a team may grant (0 none and 104 creator are not team grants)."""

ENVIRONMENT_PERMISSIONS = ("none", "read", "open", "write", "admin")

_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$")
"""A duration as Go's `time.Duration.String` writes it, e.g. `1h30m0s`."""

MemberAction = Literal["add", "remove", "promote", "demote"]


class Teams(Environments):
    """Teams, their members and their grants on stacks and on environments (which is why
    they build on `Environments`), and the org members they are made of."""

    def list_teams(self, caller: Caller, org: str) -> list[TeamRecord]:
        """Every team of `org`, in name order; for any member of the org."""
        with self._in_org(caller, org):
            names = self._db.execute(
                "SELECT name FROM teams WHERE org = ? ORDER BY name", (org,)
            ).fetchall()
            return [self._team(org, name) for (name,) in names]

    def get_team(self, caller: Caller, org: str, team: str) -> TeamRecord:
        with self._in_org(caller, org):
            return self._team(org, team)

    def create_team(
        self, caller: Caller, org: str, name: str, *, display_name: str, description: str
    ) -> TeamRecord:
        """A new Pulumi team, with no members; 409 if the org has one of that name."""
        with self._managing_teams(caller, org):
            if self._team_exists(org, name):
                raise ServiceFault(409, f"Conflict: team {name!r} already exists in {org!r}")
            self._db.execute(
                "INSERT INTO teams VALUES (?, ?, ?, ?)",
                (org, name, display_name or name, description),
            )
            return self._team(org, name)

    def delete_team(self, caller: Caller, org: str, team: str) -> None:
        with self._managing_teams(caller, org):
            self._existing_team(org, team)
            self._db.execute("DELETE FROM teams WHERE org = ? AND name = ?", (org, team))

    def describe_team(
        self,
        caller: Caller,
        org: str,
        team: str,
        *,
        display_name: str | None,
        description: str | None,
    ) -> None:
        """Set the team's display name and/or description (None: left as it is)."""
        with self._managing_teams(caller, org):
            self._existing_team(org, team)
            if display_name is not None:
                self._db.execute(
                    "UPDATE teams SET display_name = ? WHERE org = ? AND name = ?",
                    (display_name, org, team),
                )
            if description is not None:
                self._db.execute(
                    "UPDATE teams SET description = ? WHERE org = ? AND name = ?",
                    (description, org, team),
                )

    def change_team_member(
        self, caller: Caller, org: str, team: str, login: str, action: MemberAction
    ) -> None:
        """Add (409 if already in), remove, promote to team admin or demote a member (404 if
        not in the team); only members of the org can join."""
        with self._managing_teams(caller, org):
            self._existing_team(org, team)
            row = self._db.execute(
                "SELECT role FROM team_members WHERE org = ? AND team = ? AND login = ?",
                (org, team, login),
            ).fetchone()
            if action == "add":
                if row is not None:
                    raise ServiceFault(409, f"Conflict: {login!r} is already in team {team!r}")
                if (
                    self._db.execute(
                        "SELECT 1 FROM memberships WHERE login = ? AND org = ?", (login, org)
                    ).fetchone()
                    is None
                ):
                    raise ServiceFault(
                        400, f"Bad Request: {login!r} is not a member of organization {org!r}"
                    )
                self._db.execute(
                    "INSERT INTO team_members VALUES (?, ?, ?, 'member')", (org, team, login)
                )
                return
            if row is None:
                raise ServiceFault(404, f"Not Found: {login!r} is not in team {team!r}")
            if action == "remove":
                self._db.execute(
                    "DELETE FROM team_members WHERE org = ? AND team = ? AND login = ?",
                    (org, team, login),
                )
            else:
                self._db.execute(
                    "UPDATE team_members SET role = ? WHERE org = ? AND team = ? AND login = ?",
                    ("admin" if action == "promote" else "member", org, team, login),
                )

    def grant_stack(
        self,
        caller: Caller,
        org: str,
        team: str,
        project: str,
        stack: str,
        permission: int,
        *,
        edit: bool = False,
    ) -> None:
        """Grant the team `permission` on a stack of the org, replacing a grant it has; with
        `edit`, only a grant it has (404 otherwise)."""
        if permission not in STACK_PERMISSIONS:
            known = ", ".join(f"{value} ({name})" for value, name in STACK_PERMISSIONS.items())
            raise ServiceFault(
                400, f"Bad Request: stack permission {permission} is not one of {known}"
            )
        with self._managing_teams(caller, org):
            self._existing_team(org, team)
            record = self._existing_stack(org, project, stack)
            if edit and not self._has_stack_grant(org, team, record.id):
                raise ServiceFault(
                    404, f"Not Found: team {team!r} has no permission on {project}/{stack}"
                )
            self._db.execute(
                "INSERT OR REPLACE INTO team_stack_permissions VALUES (?, ?, ?, ?)",
                (org, team, record.id, permission),
            )

    def revoke_stack(self, caller: Caller, org: str, team: str, project: str, stack: str) -> None:
        """Remove the team's grant on a stack; a stack it has no grant on is left as it is."""
        with self._managing_teams(caller, org):
            self._existing_team(org, team)
            record = self._existing_stack(org, project, stack)
            self._db.execute(
                "DELETE FROM team_stack_permissions WHERE org = ? AND team = ? AND stack_id = ?",
                (org, team, record.id),
            )

    def grant_environment(
        self,
        caller: Caller,
        org: str,
        team: str,
        project: str,
        environment: str,
        permission: str,
        max_open_duration: str | None,
        *,
        edit: bool = False,
    ) -> None:
        """Grant the team `permission` on an ESC environment of the org, replacing a grant
        it has; with `edit`, only a grant it has (404 otherwise)."""
        if permission not in ENVIRONMENT_PERMISSIONS:
            raise ServiceFault(
                400,
                f"Bad Request: environment permission {permission!r} is not one of"
                f" {', '.join(ENVIRONMENT_PERMISSIONS)}",
            )
        if max_open_duration is not None and not _GO_DURATION.match(max_open_duration):
            raise ServiceFault(
                400, f"Bad Request: maxOpenDuration {max_open_duration!r} is not a duration"
            )
        with self._managing_teams(caller, org):
            self._existing_team(org, team)
            self._existing_environment(org, project, environment)
            if edit and not self._has_environment_grant(org, team, project, environment):
                raise ServiceFault(
                    404,
                    f"Not Found: team {team!r} has no permission on {project}/{environment}",
                )
            self._db.execute(
                "INSERT OR REPLACE INTO team_environment_permissions VALUES (?, ?, ?, ?, ?, ?)",
                (org, team, project, environment, permission, max_open_duration),
            )

    def revoke_environment(
        self, caller: Caller, org: str, team: str, project: str, environment: str
    ) -> None:
        """Remove the team's grant on an environment; one it has no grant on is left alone."""
        with self._managing_teams(caller, org):
            self._existing_team(org, team)
            self._db.execute(
                "DELETE FROM team_environment_permissions"
                " WHERE org = ? AND team = ? AND project = ? AND environment = ?",
                (org, team, project, environment),
            )

    def list_org_members(self, caller: Caller, org: str) -> list[OrgMemberRecord]:
        """The org's members with their roles, in login order; for any member of the org."""
        with self._in_org(caller, org):
            rows = self._db.execute(
                "SELECT m.login, m.role FROM memberships m JOIN accounts a ON a.login = m.login"
                " WHERE m.org = ? AND a.deleted_at IS NULL ORDER BY m.login",
                (org,),
            ).fetchall()
        return [OrgMemberRecord(login=login, role=role) for login, role in rows]

    # --- Inside a session -------------------------------------------------------------------

    @contextmanager
    def _managing_teams(self, caller: Caller, org: str) -> Iterator[None]:
        """A write session in `org` for a caller who may manage its teams: an org admin."""
        with self._in_org(caller, org, write=True) as role:
            if role != "admin":
                raise ServiceFault(
                    403,
                    f"Forbidden: {caller.login!r} is a member of {org!r}, not an admin;"
                    " only an organization admin can manage its teams",
                )
            yield

    def _team_exists(self, org: str, team: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM teams WHERE org = ? AND name = ?", (org, team)
        ).fetchone()
        return row is not None

    def _existing_team(self, org: str, team: str) -> None:
        if not self._team_exists(org, team):
            raise ServiceFault(404, f"Not Found: team {team!r} does not exist in {org!r}")

    def _has_stack_grant(self, org: str, team: str, stack_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM team_stack_permissions WHERE org = ? AND team = ? AND stack_id = ?",
            (org, team, stack_id),
        ).fetchone()
        return row is not None

    def _has_environment_grant(self, org: str, team: str, project: str, environment: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM team_environment_permissions"
            " WHERE org = ? AND team = ? AND project = ? AND environment = ?",
            (org, team, project, environment),
        ).fetchone()
        return row is not None

    def _team(self, org: str, team: str) -> TeamRecord:
        row = self._db.execute(
            "SELECT display_name, description FROM teams WHERE org = ? AND name = ?", (org, team)
        ).fetchone()
        if row is None:
            raise ServiceFault(404, f"Not Found: team {team!r} does not exist in {org!r}")
        members = self._db.execute(
            "SELECT login, role FROM team_members WHERE org = ? AND team = ? ORDER BY login",
            (org, team),
        ).fetchall()
        stacks = self._db.execute(
            "SELECT s.project, s.stack, p.permission FROM team_stack_permissions p"
            " JOIN stacks s ON s.id = p.stack_id"
            " WHERE p.org = ? AND p.team = ? AND s.org = p.org ORDER BY s.project, s.stack",
            (org, team),
        ).fetchall()
        environments = self._db.execute(
            "SELECT project, environment, permission, max_open_duration"
            " FROM team_environment_permissions WHERE org = ? AND team = ?"
            " ORDER BY project, environment",
            (org, team),
        ).fetchall()
        return TeamRecord(
            org=org,
            name=team,
            display_name=row[0],
            description=row[1],
            members=[TeamMemberRecord(login=login, role=role) for login, role in members],
            stacks=[TeamStackGrant(project=p, stack=s, permission=perm) for p, s, perm in stacks],
            environments=[
                TeamEnvironmentGrant(
                    project=p, environment=e, permission=perm, max_open_duration=duration
                )
                for p, e, perm, duration in environments
            ],
        )
