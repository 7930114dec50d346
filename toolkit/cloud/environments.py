"""ESC environment calls: list, read (stored or decrypted), create, write, remove, and their
tags; the conditional writes are safe to repeat."""

from __future__ import annotations

from toolkit.cloud.paging import PageSize, PageTokens
from toolkit.cloud.transport import Answer, Transport, segment
from toolkit.errors import (
    NOT_AN_API_HINT,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ServiceError,
    TransportError,
)
from toolkit.models import (
    CreateEnvironmentRequest,
    CreateEnvironmentTagRequest,
    EnvironmentDefinition,
    ListEnvironmentsResponse,
    ListEnvironmentTagsResponse,
    OrgEnvironment,
    UpdateEnvironmentTagRequest,
    UpdateEnvironmentTagRequestCurrentTag,
    UpdateEnvironmentTagRequestNewTag,
)

ENVIRONMENT_PAGES = PageSize("ESC environments", "maxResults", 1000)
"""`GET /api/esc/environments/{org}`: `maxResults`, no documented bound (as for stacks)."""


class EnvironmentCalls(Transport):
    """The calls on ESC environments and their tags."""

    # --- ESC environments ------------------------------------------------------------------

    async def list_environments(self, org: str) -> list[OrgEnvironment]:
        path = f"/api/esc/environments/{segment(org)}"
        pages = self._pages(
            ListEnvironmentsResponse,
            path,
            "nextToken",
            page_size=ENVIRONMENT_PAGES,
        )
        return [env async for page in pages for env in page.environments]

    async def get_environment(self, org: str, project: str, name: str) -> EnvironmentDefinition:
        """The environment's definition (static secrets as its ciphertext), with the ETag an
        update can name and the revision it is."""
        response = await self._request("GET", _environment_path(org, project, name))
        return _definition(response, f"GET {_environment_path(org, project, name)}")

    async def get_environment_decrypted(self, org: str, project: str, name: str) -> str:
        """The environment's definition with its static secrets in plaintext: keep it in
        memory only."""
        path = f"{_environment_path(org, project, name)}/decrypt"
        response = await self._request("GET", path)
        return response.text

    async def create_environment(self, org: str, project: str, name: str) -> None:
        """Create an empty environment; `ConflictError` if the org has one of that name."""
        body = CreateEnvironmentRequest(project=project, name=name)
        await self._request("POST", f"/api/esc/environments/{segment(org)}", body=body)

    async def update_environment(
        self, org: str, project: str, name: str, yaml_text: str, *, etag: str | None = None
    ) -> int:
        """Write a new definition and return the revision it became; a definition the
        service refuses is an `InvalidInputError` listing its diagnostics.

        With the `etag` of a read, the write is conditional: `ConflictError` if the
        environment changed since, so a write whose answer was lost is sent again (a repeat
        of one that was applied is refused with 409, never written twice). Without it, never
        repeated blindly: a lost answer may have made the revision."""
        path = _environment_path(org, project, name)
        headers = {"Content-Type": "application/x-yaml"}
        if etag is not None:
            headers["If-Match"] = etag
        try:
            response = await self._request(
                "PATCH", path, text=yaml_text, headers=headers, always_retry=etag is not None
            )
        except ServiceError as exc:
            if exc.status == 400 and exc.diagnostics:
                raise InvalidInputError(
                    f"the service refused the definition of environment {org}/{project}/{name}:"
                    + "".join(f"\n  - {summary}" for summary in exc.diagnostics),
                    hint="Fix the definition and write it again; nothing was changed.",
                ) from None
            raise
        return _revision_of(response, f"PATCH {path}")

    async def delete_environment(self, org: str, project: str, name: str) -> None:
        await self._request("DELETE", _environment_path(org, project, name))

    async def environment_exists(self, org: str, project: str, name: str) -> bool:
        try:
            await self._request("HEAD", _environment_path(org, project, name))
        except NotFoundError:
            return False
        return True

    async def list_environment_tags(self, org: str, project: str, name: str) -> dict[str, str]:
        """The environment's tags, name -> value."""
        path = f"{_environment_path(org, project, name)}/tags"
        tags: dict[str, str] = {}
        tokens = PageTokens(f"GET {path}", self.max_pages_per_listing)
        after = ""
        while True:
            params = {"after": after} if after else None
            page = await self._get(ListEnvironmentTagsResponse, path, params=params)
            tags.update((tag.name, tag.value) for tag in page.tags.values())
            # The service's last page says "0"; an empty token or an empty page ends it too.
            if page.next_token in ("", "0") or not page.tags:
                return tags
            tokens.follow(page.next_token)
            after = page.next_token

    async def set_environment_tag(
        self, org: str, project: str, name: str, key: str, value: str
    ) -> None:
        """Give the environment tag `key` the value `value`, creating it if it is missing.

        Safe to repeat: both writes are conditional (a create is refused with 409 when the
        tag exists, a change when its value is no longer the one read), so a write whose
        answer was lost is sent again, and a refusal counts as done when the tag holds
        `value` after all (the write that was lost had been applied)."""
        path = f"{_environment_path(org, project, name)}/tags"
        current = await self.list_environment_tags(org, project, name)
        if current.get(key) == value:
            return
        try:
            if key not in current:
                create = CreateEnvironmentTagRequest(name=key, value=value)
                await self._request("POST", path, body=create, always_retry=True)
            else:
                update = UpdateEnvironmentTagRequest(
                    current_tag=UpdateEnvironmentTagRequestCurrentTag(value=current[key]),
                    new_tag=UpdateEnvironmentTagRequestNewTag(name=key, value=value),
                )
                await self._request(
                    "PATCH", f"{path}/{segment(key)}", body=update, always_retry=True
                )
        except ConflictError:
            if (await self.list_environment_tags(org, project, name)).get(key) != value:
                raise


def _environment_path(org: str, project: str, name: str) -> str:
    return f"/api/esc/environments/{segment(org)}/{segment(project)}/{segment(name)}"


def _revision_of(response: Answer, call: str) -> int:
    """The revision an ESC answer names in its `Pulumi-ESC-Revision` header."""
    try:
        return int(response.headers["Pulumi-ESC-Revision"])
    except (KeyError, ValueError):
        raise TransportError(
            f"{call} answered without a revision number (Pulumi-ESC-Revision)",
            hint=NOT_AN_API_HINT,
        ) from None


def _definition(response: Answer, call: str) -> EnvironmentDefinition:
    return EnvironmentDefinition(
        yaml=response.text,
        etag=response.headers.get("ETag"),
        revision=_revision_of(response, call),
    )
