"""Tokens: `POST /v1/tokens` (admin) creates one and shows its secret once;
`DELETE /v1/tokens/{id}` revokes one (admin, or the token itself); `GET /v1/tokens/self`
tells a caller who it is."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from rollon.api.auth import Principal, Role, require_roles
from rollon.api.fields import RequestModel, from_ns
from rollon.api.problems import PROBLEM_RESPONSES, Problem, ProblemError
from rollon.api.schema import MAX_TOKEN_NAME_LENGTH
from rollon.api.state import StateDep
from rollon.api.token_store import TokenError, TokenRecord, create_token, revoke_token

router = APIRouter(prefix="/v1", tags=["tokens"], responses=PROBLEM_RESPONSES)

_TOKEN_ERROR_STATUS = {"account_not_found": 404, "account_closed": 409}


class TokenIn(RequestModel):
    role: Role = Field(description="What the token may do", examples=["member"])
    account_id: UUID | None = Field(
        default=None,
        description="The account a member, merchant or operator token acts for "
        "(an exchange point for operators); none for admin and auditor tokens",
        examples=["3f0e4f8e-5a7b-4bcd-9a1e-2b7c9d0e1f23"],
    )
    name: str = Field(
        min_length=1,
        max_length=MAX_TOKEN_NAME_LENGTH,
        description="Who holds it, for the association's records",
        examples=["Alice Martin's phone"],
    )


class TokenOut(BaseModel):
    id: UUID
    role: Role
    account_id: UUID | None
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: TokenRecord) -> TokenOut:
        return cls(
            id=record.id,
            role=record.role,
            account_id=record.account_id,
            name=record.name,
            created_at=from_ns(record.created_at_ns),
            revoked_at=None if record.revoked_at_ns is None else from_ns(record.revoked_at_ns),
        )


class NewToken(TokenOut):
    token: str = Field(
        description="The secret: send it as `Authorization: Bearer …`. Shown this once only.",
        examples=["rln_q3Jx0yS4m7e8Y0fR2u1o9aZkLw6bT5cVdN3hG8pQ1xE"],
    )


class Caller(BaseModel):
    token_id: UUID
    role: Role
    account_id: UUID | None
    name: str


@router.post(
    "/tokens",
    status_code=201,
    summary="Create a token (shown once)",
    responses={
        404: {"model": Problem, "description": "No such account (`account_not_found`)"},
        409: {"model": Problem, "description": "The account is closed (`account_closed`)"},
    },
)
def post_token(
    body: TokenIn,
    state: StateDep,
    principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
) -> NewToken:
    try:
        record, secret = create_token(state.engine, body.role, body.account_id, body.name)
    except TokenError as error:
        status = _TOKEN_ERROR_STATUS.get(error.code, 422)
        raise ProblemError(status, error.code, "Token not created", str(error)) from None
    return NewToken(**TokenOut.of(record).model_dump(), token=secret)


@router.get("/tokens/self", summary="Who am I? (the calling token)")
async def get_self(principal: Annotated[Principal, Depends(require_roles(*Role))]) -> Caller:
    return Caller(
        token_id=principal.token_id,
        role=principal.role,
        account_id=principal.account_id,
        name=principal.name,
    )


@router.delete(
    "/tokens/{token_id:uuid}",
    summary="Revoke a token for good",
    responses={404: {"model": Problem, "description": "No such token (`token_not_found`)"}},
)
async def delete_token(
    token_id: UUID,
    state: StateDep,
    principal: Annotated[Principal, Depends(require_roles(*Role))],
) -> TokenOut:
    if principal.role is not Role.ADMIN and principal.token_id != token_id:
        raise ProblemError(403, "forbidden", "Forbidden", "only an admin revokes other tokens")
    record = await run_in_threadpool(revoke_token, state.engine, token_id)
    if record is None:
        raise ProblemError(404, "token_not_found", "Token not found", f"no token {token_id}")
    state.authenticator.forget_all()
    return TokenOut.of(record)
