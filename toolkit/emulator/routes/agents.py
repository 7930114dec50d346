"""The calls on agent accounts: sign-up (a proof of work instead of credentials), the claim
token's validation, and the claim of an agent's org into another, with its status.

(No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.)
"""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse

from toolkit.emulator import serializers
from toolkit.emulator.routes.service import Service
from toolkit.emulator.serializers import json_response
from toolkit.emulator.state import Caller, ServiceFault
from toolkit.models import AgentClaimRequest, AgentSignupRequest


def agents_router(service: Service) -> APIRouter:
    router = APIRouter()
    state = service.state
    Authenticated = Annotated[Caller, Depends(service.caller)]

    # Sign-up needs no credentials: the proof of work stands in for them.
    @router.get("/api/agents/signup")
    async def signup_challenge() -> JSONResponse:
        return json_response(serializers.signup_challenge(state.signup_challenge()))

    @router.post("/api/agents/signup")
    async def signup(request: Annotated[AgentSignupRequest, Body()]) -> JSONResponse:
        account = state.sign_up_agent(request.challenge_id, request.challenge_result)
        return json_response(serializers.signup(account))

    # The claim token is the credential here; an access token, if sent, must still be valid.
    @router.get(
        "/api/agents/signup/validate/{claim_token}", dependencies=[Depends(service.token_if_sent)]
    )
    async def validate_claim_token(claim_token: str) -> JSONResponse:
        return json_response(serializers.claim(state.validate_claim(claim_token)))

    @router.post("/api/agents/{org}/claim")
    async def claim(
        who: Authenticated,
        org: str,
        request: Annotated[AgentClaimRequest, Body()],
        dry_run: Annotated[bool, Query(alias="dryRun")] = False,
    ) -> JSONResponse:
        if not request.claim_token:
            raise ServiceFault(400, "Bad Request: claimToken is missing")
        record = state.claim(
            who,
            org,
            request.claim_token,
            request.conflicts_resolution or [],
            dry_run=dry_run,
        )
        return json_response(serializers.claim(record))

    @router.get("/api/agents/{org}/claim/status")
    async def claim_status(who: Authenticated, org: str) -> JSONResponse:
        return json_response(serializers.claims_status(state.claims_status(who, org)))

    return router
