"""Resource search: an org's resources, found in its stacks' latest checkpoints by a query.

Pulumi Cloud answers `GET /api/orgs/{org}/search/resourcesv2` from an index of every stack's
latest state; the emulator reads the checkpoints themselves, in a stable order (project,
stack, the resource's place in its state), which is also what its cursor resumes after. The
query language is the part of Pulumi's documented one a search for a resource type needs:
terms all of which must match, `field:value` to match one field (`type` and `package`,
`module` exactly, the others as a case-insensitive substring), a bare term matching the
resource's name, type, stack or project.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from toolkit.emulator import checkpoints
from toolkit.emulator.checkpoints import UntypedDeployment
from toolkit.emulator.state._paging import Page, decode_token, page_of
from toolkit.emulator.state._records import Caller, ServiceFault
from toolkit.emulator.state._store import STACK_COLUMNS, Store, stack_record
from toolkit.emulator.world import ResourceSearch

PAGED_RESULTS = 10_000
"""Results `page` reaches (page times size); beyond them only the cursor goes on, as Pulumi's
API document says."""

_CURSOR_SCOPE = "resources"


@dataclass(frozen=True)
class FoundResource:
    """One resource of a stack's latest checkpoint, as the search index holds it."""

    org: str
    project: str
    stack: str
    position: int
    """Its place in the stack's state: with the stack, the order results come in."""
    resource: dict[str, Any]
    modified: str

    @property
    def type(self) -> str:
        return str(self.resource.get("type", ""))

    @property
    def urn(self) -> str:
        return str(self.resource.get("urn", ""))

    @property
    def name(self) -> str:
        return self.urn.rpartition("::")[2]

    @property
    def package(self) -> str:
        """Its type's first part (`aws` of `aws:s3/bucket:Bucket`)."""
        return self.type.partition(":")[0]

    @property
    def module(self) -> str:
        """Its type's second part, up to a `/` (`s3` of `aws:s3/bucket:Bucket`)."""
        return self.type.partition(":")[2].partition(":")[0].partition("/")[0]

    @property
    def id(self) -> str:
        return str(self.resource.get("id", ""))


_FIELDS: dict[str, Callable[[FoundResource], str]] = {
    "type": lambda found: found.type,
    "package": lambda found: found.package,
    "module": lambda found: found.module,
    "name": lambda found: found.name,
    "stack": lambda found: found.stack,
    "project": lambda found: found.project,
    "urn": lambda found: found.urn,
    "id": lambda found: found.id,
}
"""Each field a query may name, read from a resource only when a term asks for it."""
_EXACT_FIELDS = frozenset({"type", "package", "module"})
"""Fields a term matches whole; the others, as a case-insensitive substring."""
_BARE_TERM_FIELDS = (_FIELDS["name"], _FIELDS["type"], _FIELDS["stack"], _FIELDS["project"])
"""What a term that names no field matches."""


@dataclass(frozen=True)
class SearchAnswer:
    """A page of results, how many match in all, and the cursor to the page after it."""

    page: Page[FoundResource]
    total: int


@dataclass(frozen=True)
class _Term:
    field: str | None
    value: str

    def matches(self, found: FoundResource) -> bool:
        if self.field in _EXACT_FIELDS:
            return _FIELDS[self.field](found) == self.value
        wanted = self.value.lower()
        if self.field is not None:
            return wanted in _FIELDS[self.field](found).lower()
        return any(wanted in read(found).lower() for read in _BARE_TERM_FIELDS)


def parse_query(query: str) -> list[_Term]:
    """The terms of a query; 400 for a field the search does not know."""
    try:
        words = shlex.split(query)
    except ValueError:
        raise ServiceFault(400, "Bad Request: unbalanced quotes in the query") from None
    terms: list[_Term] = []
    for word in words:
        field, colon, value = word.partition(":")
        if not colon:
            terms.append(_Term(None, word))
        elif field in _FIELDS:
            terms.append(_Term(field, value))
        else:
            raise ServiceFault(400, f"Bad Request: unknown field {field!r} in the query")
    return terms


class ResourceSearches(Store):
    """The search over the resources of an org's stacks; any member of the org may search."""

    def resource_search(self) -> ResourceSearch:
        """How the service answers its search (the world's `service.resourceSearch`)."""
        return cast(ResourceSearch, self._setting("resource_search", "available"))

    def set_resource_search(self, answer: ResourceSearch) -> None:
        with self._session(write=True):
            self._set_setting("resource_search", answer)

    def search_resources(
        self,
        caller: Caller,
        org: str,
        *,
        query: str,
        properties: bool,
        size: int,
        page: int | None = None,
        cursor: str | None = None,
    ) -> SearchAnswer:
        """The `size` resources of `org` matching `query` after `cursor` (or on the 1-based
        `page`), and how many match in all; refused as the world's `resourceSearch` says."""
        answer = self.resource_search()
        if answer == "absent":
            raise ServiceFault(404, "Not Found")
        terms = parse_query(query)
        after: tuple[str, ...] = ()
        if cursor is not None:
            after = tuple(decode_token(cursor, _CURSOR_SCOPE, 3))
        elif page is not None and page * size > PAGED_RESULTS:
            raise ServiceFault(
                400,
                f"Bad Request: page reaches only the first {PAGED_RESULTS:,} results;"
                " use the cursor beyond them",
            )
        with self._in_org(caller, org):
            if answer == "unreachable":
                raise ServiceFault(422, "search cluster is unreachable")
            if answer == "withoutProperties" and properties:
                raise ServiceFault(
                    402, "Payment Required: resource properties need a supported subscription"
                )
            matching = [
                found
                for found in self._resources_of(org, _exact_type(terms))
                if all(term.matches(found) for term in terms)
            ]
        skipped = (
            [found for found in matching if _key(found) > after]
            if cursor is not None
            else matching[((page or 1) - 1) * size :]
        )
        return SearchAnswer(
            page=page_of(skipped[: size + 1], size, _CURSOR_SCOPE, key=_key),
            total=len(matching),
        )

    def _resources_of(self, org: str, type_token: str | None) -> Iterator[FoundResource]:
        """Every resource of every stack of `org`, in (project, stack, place) order; with a
        `type_token`, only the stacks whose latest state may hold one (the index the service
        keeps, as a text search of each stored checkpoint, so that the others are not read)."""
        rows = self._db.execute(
            f"SELECT {STACK_COLUMNS}, (SELECT deployment FROM checkpoints"
            " WHERE stack_id = stacks.id ORDER BY version DESC LIMIT 1)"
            " FROM stacks WHERE org = ? ORDER BY project, stack",
            (org,),
        ).fetchall()
        for row in rows:
            record, stored = stack_record(row[:-1]), row[-1]
            if type_token is not None and (
                type_token not in stored
                if stored is not None
                else type_token not in checkpoints.PLACEHOLDER_TYPES
            ):
                continue
            deployment = (
                cast(UntypedDeployment, json.loads(stored))
                if stored is not None
                else self._unsaved_checkpoint(record)
            )
            modified = datetime.fromtimestamp(record.last_update, UTC).isoformat()
            for position, resource in enumerate(_resources(deployment)):
                yield FoundResource(org, record.project, record.stack, position, resource, modified)


def _exact_type(terms: list[_Term]) -> str | None:
    """The type a query asks for exactly, if it does."""
    return next((term.value for term in terms if term.field == "type"), None)


def _resources(deployment: UntypedDeployment) -> list[dict[str, Any]]:
    resources = deployment["deployment"].get("resources") or []
    return [resource for resource in resources if isinstance(resource, dict)]


def _key(found: FoundResource) -> tuple[str, str, str]:
    """The order results come in, and what a cursor resumes after (its place zero-padded, so
    the strings sort as the numbers)."""
    return (found.project, found.stack, f"{found.position:09d}")
