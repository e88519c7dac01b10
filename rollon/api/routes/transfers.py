"""`POST /v1/transfers`: the owner of an account sends RolloN from it (idempotent).

Members pay members, merchants and exchange points; a merchant pays only other merchants
(its suppliers): what it earns otherwise leaves through reconversion. System accounts are
never a destination here: money enters and leaves circulation only through issuance and
reconversion, which keep the guarantee fund's mirror in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from rollon.api.auth import Role, require_roles
from rollon.api.fields import Centimes, Memo, RequestModel
from rollon.api.hot_route import hot, hot_route_openapi, read_call
from rollon.api.idempotency import Answer, json_answer
from rollon.api.problems import PROBLEM_RESPONSES, Problem, ProblemError, problem_for_result
from rollon.api.state import get_state
from rollon.ledger.accounts import AccountKind, LedgerCode
from rollon.ledger.transfers import Result, Transfer, TransferCode

router = APIRouter(prefix="/v1", tags=["transfers"], responses=PROBLEM_RESPONSES)
_SENDERS = require_roles(Role.MEMBER, Role.MERCHANT)

_DESTINATIONS: dict[Role, frozenset[AccountKind]] = {
    Role.MEMBER: frozenset({AccountKind.MEMBER, AccountKind.MERCHANT, AccountKind.EXCHANGE_POINT}),
    Role.MERCHANT: frozenset({AccountKind.MERCHANT}),
}


class TransferIn(RequestModel):
    id: UUID | None = Field(
        default=None,
        description="The transfer's id, chosen by the client: sending the same id again "
        "never pays twice. Derived from the Idempotency-Key when absent.",
        examples=["0e7d5a3c-1b2f-4e8a-9c6d-5f4e3d2c1b0a"],
    )
    source_id: UUID = Field(
        description="Your own account", examples=["3f0e4f8e-5a7b-4bcd-9a1e-2b7c9d0e1f23"]
    )
    destination_id: UUID = Field(examples=["9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"])
    amount: Centimes
    memo: Memo = ""


class TransferOut(BaseModel):
    id: UUID
    source_id: UUID
    destination_id: UUID
    amount: int = Field(examples=[1250])
    memo: str
    result: Literal["ok", "exists"] = Field(
        description="`ok`: done now; `exists`: this id was done before, with these fields"
    )


@router.post(
    "/transfers",
    status_code=201,
    response_model=TransferOut,
    summary="Send RolloN from your account",
    openapi_extra=hot_route_openapi(TransferIn),
    responses={
        200: {"model": TransferOut, "description": "Done before with this id (a retry)"},
        404: {"model": Problem, "description": "No such destination (`account_not_found`)"},
        409: {"model": Problem, "description": "Id or key reused, or account closed"},
    },
)
@hot
async def post_transfer(request: Request) -> Response:
    principal, body, idempotency = await read_call(request, _SENDERS, TransferIn)
    state = get_state(request)
    if not principal.owns(body.source_id):
        raise ProblemError(
            403, "forbidden", "Forbidden", "you may only send money from your own account"
        )
    transfer = Transfer(
        id=idempotency.operation_id(principal, body.id),
        debit_account_id=body.source_id,
        credit_account_id=body.destination_id,
        amount=body.amount,
        ledger=LedgerCode.RLN,
        code=TransferCode.TRANSFER,
        memo=body.memo,
    )

    async def prepare() -> list[Transfer]:
        kind = await state.account_kinds.kind_of(body.destination_id)
        if kind is None:
            raise problem_for_result(Result.ACCOUNT_NOT_FOUND, f"no account {body.destination_id}")
        if kind not in _DESTINATIONS[principal.role]:
            raise ProblemError(
                403,
                "destination_not_allowed",
                "Destination not allowed",
                f"a {principal.role} may not send money to a {kind} account",
            )
        return [transfer]

    return await idempotency.submit(
        principal, body, state.ledger, prepare, _TransferAnswer(transfer)
    )


@dataclass(frozen=True, slots=True)
class _TransferAnswer:
    """A transfer's answer for its result (run by the ledger's writer: see Answerer)."""

    transfer: Transfer

    def __call__(self, results: Sequence[Result]) -> Answer:
        (result,) = results
        transfer = self.transfer
        if result not in (Result.OK, Result.EXISTS):
            raise problem_for_result(result, _detail(result, transfer))
        answer = TransferOut(
            id=transfer.id,
            source_id=transfer.debit_account_id,
            destination_id=transfer.credit_account_id,
            amount=transfer.amount,
            memo=transfer.memo,
            result="ok" if result is Result.OK else "exists",
        )
        return json_answer(201 if result is Result.OK else 200, answer)

    def __reduce__(self) -> tuple[type[_TransferAnswer], tuple[Transfer]]:
        # Pickled with each payment, beside its transfer (which pickling then sends once).
        return _TransferAnswer, (self.transfer,)


def _detail(result: Result, transfer: Transfer) -> str:
    if result is Result.INSUFFICIENT_FUNDS:
        return f"account {transfer.debit_account_id} cannot pay {transfer.amount} centimes"
    if result is Result.ID_ALREADY_FAILED:
        return "this transfer id was refused before; a retry cannot succeed: use a new id"
    if result is Result.EXISTS_WITH_DIFFERENT_FIELDS:
        return "this transfer id was used for another transfer"
    return f"the ledger refused the transfer: {result.value}"
