"""Stack calls: list, look up, create, rename, transfer, delete; and a stack's state, what
`pulumi stack export` and `import` do over REST (its secrets opened and sealed in batches)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence

from pydantic import BaseModel

from toolkit.cloud.paging import PageSize
from toolkit.cloud.transport import ModelT, Transport, parse_answer, segment
from toolkit.errors import NotFoundError, TransportError
from toolkit.models import (
    AppBatchDecryptRequest,
    AppBatchDecryptResponse,
    AppBatchEncryptRequest,
    AppBatchEncryptResponse,
    AppCreateStackRequest,
    AppImportStackResponse,
    AppListStacksResponse,
    AppStack,
    AppStackRenameRequest,
    AppStackSummary,
    AppUntypedDeployment,
    AppUpdateResults,
    TransferStackRequest,
)

STACK_PAGES = PageSize("stacks", "maxResults", 1000)
"""`GET /api/user/stacks`: Pulumi's OpenAPI document names `maxResults` but gives no bound, so
the same 1000 as Insights' documented maximum, with the fallback if a service refuses it."""

SECRETS_BATCH_SIZE = 1000
"""Secrets sealed or opened per call at most, as the CLI batches them."""
FINISHED_UPDATE_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
IMPORT_POLL_INTERVAL = 0.1
"""Seconds before asking again whether an import has ended; doubled each time, up to
`IMPORT_POLL_MAX_INTERVAL`."""
IMPORT_POLL_MAX_INTERVAL = 2.0
IMPORT_TIMEOUT = 600.0
"""Seconds an import may run before the client stops waiting for it (and says so)."""


class StackCalls(Transport):
    """The calls on stacks and their state."""

    # --- Stacks ----------------------------------------------------------------------------

    async def list_stacks(self, org: str, project: str | None = None) -> list[AppStackSummary]:
        """Every stack of `org` this identity can see (optionally of one project)."""
        return [stack async for stack in self.iter_stacks(org, project)]

    async def iter_stacks(
        self, org: str | None, project: str | None = None
    ) -> AsyncIterator[AppStackSummary]:
        """`list_stacks`, one page at a time: a caller that keeps only what it needs never
        holds every summary at once (100,000 of them take over 100 MB). `org` None: the
        stacks of every org the caller belongs to."""
        params = {} if org is None else {"organization": org}
        if project is not None:
            params["project"] = project
        pages = self._pages(
            AppListStacksResponse,
            "/api/user/stacks",
            "continuationToken",
            params=params,
            page_size=STACK_PAGES,
        )
        async for page in pages:
            for stack in page.stacks:
                yield stack

    async def get_stack(self, org: str, project: str, stack: str) -> AppStack:
        return await self._get(AppStack, stack_path(org, project, stack))

    async def stack_exists(self, org: str, project: str, stack: str) -> bool:
        try:
            await self.get_stack(org, project, stack)
        except NotFoundError:
            return False
        return True

    async def create_stack(
        self, org: str, project: str, stack: str, *, tags: Mapping[str, str] | None = None
    ) -> None:
        """Create an empty stack, as `pulumi stack init` does."""
        body = AppCreateStackRequest(stack_name=stack, tags=dict(tags) if tags else None)
        await self._request("POST", f"/api/stacks/{segment(org)}/{segment(project)}", body=body)

    async def rename_stack(
        self, org: str, project: str, stack: str, *, new_project: str, new_name: str
    ) -> None:
        """Rename a stack inside its org; the project may change too."""
        body = AppStackRenameRequest(new_project=new_project, new_name=new_name)
        await self._request("POST", f"{stack_path(org, project, stack)}/rename", body=body)

    async def transfer_stack(self, org: str, project: str, stack: str, *, to_org: str) -> None:
        """Move a stack, name unchanged, to another org (the identity must admin both)."""
        body = TransferStackRequest(
            project_name=project, stack_name=stack, from_org=org, to_org=to_org
        )
        await self._request("POST", f"{stack_path(org, project, stack)}/transfer", body=body)

    async def delete_stack(
        self, org: str, project: str, stack: str, *, force: bool = False
    ) -> None:
        """Delete a stack; `force` deletes it even while it still has resources."""
        params = {"force": "true"} if force else None
        await self._request("DELETE", stack_path(org, project, stack), params=params)

    # --- Stack state: what `pulumi stack export` and `import` do over REST ----------------

    async def export_stack(self, org: str, project: str, stack: str) -> AppUntypedDeployment:
        """The stack's latest deployment, its secrets sealed with the stack's own key."""
        path = f"{stack_path(org, project, stack)}/export"
        response = await self._request("GET", path, largest_answer=self.max_state_bytes)
        return parse_answer(AppUntypedDeployment, response, f"GET {path}")

    async def decrypt_values(
        self, org: str, project: str, stack: str, ciphertexts: Sequence[str]
    ) -> dict[str, str]:
        """Each ciphertext (base64, as a deployment holds it) opened with the stack's key, as
        text; keyed by the ciphertext. Sent in batches, and retried, as the CLI sends them."""
        path = f"{stack_path(org, project, stack)}/batch-decrypt"

        async def batch(texts: list[str]) -> dict[str, str]:
            request = AppBatchDecryptRequest(ciphertexts=texts)
            opened = (await self._secrets_batch(path, request, AppBatchDecryptResponse)).plaintexts
            missing = set(texts) - opened.keys()
            if missing:
                raise TransportError(f"POST {path} left {len(missing)} value(s) unopened")
            return {sent: _from_base64(opened[sent], path) for sent in texts}

        opened: dict[str, str] = {}
        for part in await asyncio.gather(*map(batch, _batches(sorted(set(ciphertexts))))):
            opened.update(part)
        return opened

    async def encrypt_values(
        self, org: str, project: str, stack: str, plaintexts: Sequence[str]
    ) -> list[str]:
        """Each plaintext sealed with the stack's key, in order, as base64 (as a deployment
        holds it); each gets a ciphertext of its own, equal plaintexts too."""
        path = f"{stack_path(org, project, stack)}/batch-encrypt"

        async def batch(texts: list[str]) -> list[str]:
            encoded = [base64.b64encode(text.encode()).decode() for text in texts]
            request = AppBatchEncryptRequest(plaintexts=encoded)
            sealed = (await self._secrets_batch(path, request, AppBatchEncryptResponse)).ciphertexts
            if len(sealed) != len(texts):
                raise TransportError(f"POST {path} sealed {len(sealed)} of {len(texts)} value(s)")
            return sealed

        parts = await asyncio.gather(*map(batch, _batches(list(plaintexts))))
        return [ciphertext for part in parts for ciphertext in part]

    async def _secrets_batch(self, path: str, request: BaseModel, answer: type[ModelT]) -> ModelT:
        """One batch of secrets sealed or opened: safe to repeat, and gzip-encoded, as the CLI
        sends it."""
        response = await self._request(
            "POST", path, body=request, always_retry=True, compressed=True
        )
        return parse_answer(answer, response, f"POST {path}")

    async def import_stack(
        self, org: str, project: str, stack: str, deployment: AppUntypedDeployment
    ) -> str:
        """Make `deployment` (secrets sealed with this stack's key) the stack's state, as
        `pulumi stack import` does, and wait for the import's update to end; return its
        final status (`succeeded`, `failed` or `cancelled`)."""
        path = stack_path(org, project, stack)
        response = await self._request("POST", f"{path}/import", body=deployment, compressed=True)
        update = parse_answer(AppImportStackResponse, response, f"POST {path}/import")
        status_path = f"{path}/update/{segment(update.update_id)}"
        delay = IMPORT_POLL_INTERVAL
        deadline = time.monotonic() + IMPORT_TIMEOUT
        while True:
            results = await self._get(AppUpdateResults, status_path)
            if results.status in FINISHED_UPDATE_STATUSES:
                return results.status
            if time.monotonic() > deadline:
                raise TransportError(
                    f"the import into {org}/{project}/{stack} had not ended after "
                    f"{IMPORT_TIMEOUT:.0f} s (its update is {results.status})",
                    hint="See the stack's update in Pulumi Cloud, then run the same command again.",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, IMPORT_POLL_MAX_INTERVAL)

    async def replace_stack_tags(
        self, org: str, project: str, stack: str, tags: Mapping[str, str]
    ) -> None:
        """Make `tags` all of the stack's tags, as `pulumi stack tag set` does."""
        await self._request(
            "PATCH",
            f"{stack_path(org, project, stack)}/tags",
            text=json.dumps(dict(tags)),
            always_retry=True,
        )


def stack_path(org: str, project: str, stack: str) -> str:
    return f"/api/stacks/{segment(org)}/{segment(project)}/{segment(stack)}"


def _batches(values: list[str]) -> list[list[str]]:
    return [
        values[start : start + SECRETS_BATCH_SIZE]
        for start in range(0, len(values), SECRETS_BATCH_SIZE)
    ]


def _from_base64(text: str, path: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise TransportError(f"POST {path} answered with a value that is not base64 text") from None
