"""ESC environment tags: listing, reading, adding, renaming and removing them.

Any member of an org may tag its environments. Adding a tag the environment has, renaming one
onto another, or changing one whose value is no longer the value the writer read is refused
with 409.
"""

from __future__ import annotations

from toolkit.emulator.state._environments import Environments
from toolkit.emulator.state._paging import Page
from toolkit.emulator.state._records import (
    Caller,
    EnvironmentRecord,
    EnvironmentTagRecord,
    ServiceFault,
)

_TAG_COLUMNS = "name, value, created, modified, editor"


class EnvironmentTags(Environments):
    """An environment's tags (name and value), beside its definition and revisions."""

    def list_environment_tags(
        self,
        caller: Caller,
        org: str,
        project: str,
        name: str,
        *,
        after: str | None = None,
        count: int | None = None,
    ) -> Page[EnvironmentTagRecord]:
        """The environment's tags by name, those after `after` if given, at most `count` a
        page; the page's token is the name to resume after."""
        with self._in_org(caller, org):
            environment = self._existing_environment(org, project, name)
            rows = self._db.execute(
                f"SELECT {_TAG_COLUMNS} FROM environment_tags"
                " WHERE environment_id = ? AND name > ? ORDER BY name LIMIT ?",
                (environment.id, after or "", count + 1 if count else -1),
            ).fetchall()
        tags = [EnvironmentTagRecord(*row) for row in rows]
        if count and len(tags) > count:
            return Page(items=tags[:count], next_token=tags[count - 1].name)
        return Page(items=tags, next_token=None)

    def environment_tag(
        self, caller: Caller, org: str, project: str, name: str, tag: str
    ) -> EnvironmentTagRecord:
        with self._in_org(caller, org):
            return self._existing_tag(self._existing_environment(org, project, name), tag)

    def create_environment_tag(
        self, caller: Caller, org: str, project: str, name: str, tag: str, value: str
    ) -> EnvironmentTagRecord:
        """Add a tag; 409 if the environment has one of that name already."""
        if not tag:
            raise ServiceFault(400, "Bad Request: a tag needs a name")
        with self._in_org(caller, org, write=True):
            environment = self._existing_environment(org, project, name)
            if self._find_tag(environment, tag) is not None:
                raise ServiceFault(
                    409, f"Conflict: environment {org}/{project}/{name} already has tag {tag!r}"
                )
            now = self.now().isoformat()
            self._db.execute(
                "INSERT INTO environment_tags VALUES (?, ?, ?, ?, ?, ?)",
                (environment.id, tag, value, now, now, caller.login),
            )
            return self._existing_tag(environment, tag)

    def update_environment_tag(
        self,
        caller: Caller,
        org: str,
        project: str,
        name: str,
        tag: str,
        *,
        current_value: str,
        new_name: str,
        new_value: str,
    ) -> EnvironmentTagRecord:
        """Rename a tag and/or change its value (an empty new name or value keeps the old);
        409 when its value is no longer `current_value`, or the new name is taken."""
        with self._in_org(caller, org, write=True):
            environment = self._existing_environment(org, project, name)
            existing = self._existing_tag(environment, tag)
            if existing.value != current_value:
                raise ServiceFault(
                    409,
                    f"Conflict: tag {tag!r} of {org}/{project}/{name} no longer has the value"
                    f" {current_value!r}; read it again",
                )
            renamed = new_name or tag
            if renamed != tag and self._find_tag(environment, renamed) is not None:
                raise ServiceFault(
                    409, f"Conflict: environment {org}/{project}/{name} already has tag {renamed!r}"
                )
            self._db.execute(
                "UPDATE environment_tags SET name = ?, value = ?, modified = ?, editor = ?"
                " WHERE environment_id = ? AND name = ?",
                (
                    renamed,
                    new_value or existing.value,
                    self.now().isoformat(),
                    caller.login,
                    environment.id,
                    tag,
                ),
            )
            return self._existing_tag(environment, renamed)

    def delete_environment_tag(
        self, caller: Caller, org: str, project: str, name: str, tag: str
    ) -> None:
        with self._in_org(caller, org, write=True):
            environment = self._existing_environment(org, project, name)
            self._existing_tag(environment, tag)
            self._db.execute(
                "DELETE FROM environment_tags WHERE environment_id = ? AND name = ?",
                (environment.id, tag),
            )

    def _find_tag(self, environment: EnvironmentRecord, tag: str) -> EnvironmentTagRecord | None:
        row = self._db.execute(
            f"SELECT {_TAG_COLUMNS} FROM environment_tags WHERE environment_id = ? AND name = ?",
            (environment.id, tag),
        ).fetchone()
        return None if row is None else EnvironmentTagRecord(*row)

    def _existing_tag(self, environment: EnvironmentRecord, tag: str) -> EnvironmentTagRecord:
        record = self._find_tag(environment, tag)
        if record is None:
            raise ServiceFault(
                404,
                f"Not Found: environment {environment.org}/{environment.project}/"
                f"{environment.name} has no tag {tag!r}",
            )
        return record
