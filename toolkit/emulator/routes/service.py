"""What every router shares: the state it serves, who is calling, and how large a page is.

(No `from __future__ import annotations`: FastAPI reads the dependencies' annotations at
runtime.)
"""

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Header, Request

from toolkit.emulator.state import Caller, ServiceState


@dataclass(frozen=True)
class Service:
    """The state as the routes serve it. Its async methods are FastAPI dependencies: a router
    names them with `Depends(service.caller)` and the like.

    `page_size` is the page a list call gets when it names no size, `largest_page` the largest
    it gets whatever it asks.
    """

    state: ServiceState
    page_size: int
    largest_page: int

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError(f"the page size must be at least 1, got {self.page_size}")
        if self.largest_page < self.page_size:
            raise ValueError(
                f"the largest page ({self.largest_page}) must be at least the default one"
                f" ({self.page_size})"
            )

    async def caller(self, request: Request) -> Caller:
        """Who an access token (`Authorization: token ...`) names; 401 without a valid one."""
        authorization = request.headers.get("authorization")
        return self.state.authenticate(_credential(authorization, "token"))

    async def token_if_sent(self, authorization: Annotated[str | None, Header()] = None) -> None:
        """An access token, if sent, must be valid, even where the route needs none."""
        if authorization is not None:
            self.state.authenticate(_credential(authorization, "token"))

    async def lease_token(
        self, authorization: Annotated[str | None, Header()] = None
    ) -> str | None:
        """The lease an update's calls carry (`Authorization: update-token ...`)."""
        return _credential(authorization, "update-token")

    def limit(self, requested: int | None, *, default: int | None = None) -> int:
        """The page size of a list call: its `default` (else the app's page size) when none
        was asked, else what was asked (the query refuses less than 1), at most the largest
        page. A larger ask gets a smaller page rather than a refusal: the OpenAPI document
        names no bound for `maxResults` or `limit`, and a client follows the continuation
        token either way."""
        if requested is None:
            requested = self.page_size if default is None else default
        return min(requested, self.largest_page)


def project_path(request: Request) -> tuple[str, str]:
    """The org and project a project's path (`/api/stacks/{org}/{project}`) names, read as
    `stack_path` reads a stack's."""
    params = request.path_params
    return params["org"], params["project"]


def stack_path(request: Request) -> tuple[str, str, str]:
    """The org, project and stack a stack's path (`/api/stacks/{org}/{project}/{stack}...`)
    names. Read from the matched path rather than declared as three `str` parameters: FastAPI
    resolves and validates each declared parameter on every request, a sixth of the
    emulator's CPU on a stack's calls, and a path segment is a string already."""
    params = request.path_params
    return params["org"], params["project"], params["stack"]


def _credential(authorization: str | None, scheme: Literal["token", "update-token"]) -> str | None:
    """The token of an `Authorization: <scheme> <token>` header: an access token (`token`) or
    an update's lease (`update-token`); None for a missing header or another scheme."""
    if authorization is None:
        return None
    sent_scheme, _, token = authorization.partition(" ")
    return token.strip() if sent_scheme.lower() == scheme else None
