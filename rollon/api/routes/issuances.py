"""`POST /v1/issuances` (admin, operator): issue RolloN to an account against euros received
(idempotent). Books issuance → account on the RolloN ledger and bank → reserve on the euro
ledger, plus the bonus on change (`ROLLON_BONUS_BPS`, funded by grants), all or nothing.

An operator's issuances pass through its exchange point's account (issuance → exchange point
→ member, in the same linked chain), so the journal records which counter took the euros;
an admin may name an exchange point the same way, or none (euros received by the bank)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from rollon.api.auth import Principal, Role, require_roles
from rollon.api.fields import Centimes, RequestModel
from rollon.api.idempotency import Answer, IdempotencyDep, json_answer
from rollon.api.problems import PROBLEM_RESPONSES, Problem, ProblemError, problem_for_result
from rollon.api.state import get_state
from rollon.ledger import operations
from rollon.ledger.accounts import AccountKind
from rollon.ledger.money import apply_rate_bps
from rollon.ledger.transfers import Result

router = APIRouter(prefix="/v1", tags=["issuances"], responses=PROBLEM_RESPONSES)

MAX_EURO_REFERENCE_LENGTH = 100  # with the bonus prefix, stays within the ledger's memo
_RECIPIENTS = frozenset({AccountKind.MEMBER, AccountKind.MERCHANT})


class IssuanceIn(RequestModel):
    id: UUID | None = Field(
        default=None,
        description="The operation's id: sending it again never issues twice. Derived from "
        "the Idempotency-Key when absent.",
    )
    account_id: UUID = Field(description="The member (or merchant) who paid euros")
    amount: Centimes
    euro_reference: str = Field(
        min_length=1,
        max_length=MAX_EURO_REFERENCE_LENGTH,
        description="Where the euros are: receipt number, bank transaction reference",
        examples=["comptoir-rouen-2024-000123"],
    )
    exchange_point_id: UUID | None = Field(
        default=None,
        description="The exchange point that took the euros. An operator's own, by default; "
        "an admin may name one or none.",
    )


class IssuanceOut(BaseModel):
    id: UUID
    account_id: UUID
    amount: int = Field(description="RolloN issued against the euros, in centimes")
    bonus: int = Field(description="Bonus on change, in centimes, funded by grants")
    euro_reference: str
    exchange_point_id: UUID | None
    result: Literal["ok", "exists"]
    transfer_ids: list[UUID] = Field(description="The operation's linked transfers")


@router.post(
    "/issuances",
    status_code=201,
    response_model=IssuanceOut,
    summary="Issue RolloN against euros received",
    responses={
        200: {"model": IssuanceOut, "description": "Done before with this id (a retry)"},
        404: {"model": Problem, "description": "No such account (`account_not_found`)"},
        409: {"model": Problem, "description": "Id or key reused, or account closed"},
    },
)
async def post_issuance(
    body: IssuanceIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.OPERATOR))],
    idempotency: IdempotencyDep,
) -> Response:
    state = get_state(request)  # no dependency for it: one of the hot paths
    operation_id = idempotency.operation_id(principal, body.id)
    bonus_bps = state.settings.bonus_bps
    exchange_point_id = body.exchange_point_id
    if principal.role is Role.OPERATOR:
        if exchange_point_id not in (None, principal.account_id):
            raise ProblemError(
                403, "forbidden", "Forbidden", "an operator issues through its own exchange point"
            )
        exchange_point_id = principal.account_id

    async def execute() -> Answer:
        kind = await state.account_kinds.kind_of(body.account_id)
        if kind is None:
            raise problem_for_result(Result.ACCOUNT_NOT_FOUND, f"no account {body.account_id}")
        if kind not in _RECIPIENTS:
            raise ProblemError(
                422,
                "account_kind_not_allowed",
                "Cannot issue to this account",
                f"RolloN are issued to member and merchant accounts, not to a {kind} account",
            )
        if exchange_point_id is not None:
            counter = await state.account_kinds.kind_of(exchange_point_id)
            if counter is not AccountKind.EXCHANGE_POINT:
                raise ProblemError(
                    422,
                    "exchange_point_not_found",
                    "No such exchange point",
                    f"{exchange_point_id} is not an exchange point's account",
                )
        legs = operations.issuance(
            operation_id,
            body.account_id,
            body.amount,
            body.euro_reference,
            bonus_bps,
            exchange_point_id=exchange_point_id,
        )
        # The same as Ledger.issue, awaited: the event loop keeps serving meanwhile.
        outcome = operations.outcome_of(await state.ledger.submit_async(legs))
        if outcome not in (Result.OK, Result.EXISTS):
            raise problem_for_result(outcome, f"the ledger refused the issuance: {outcome}")
        answer = IssuanceOut(
            id=operation_id,
            account_id=body.account_id,
            amount=body.amount,
            bonus=apply_rate_bps(body.amount, bonus_bps),
            euro_reference=body.euro_reference,
            exchange_point_id=exchange_point_id,
            result="ok" if outcome is Result.OK else "exists",
            transfer_ids=[leg.id for leg in legs],
        )
        return json_answer(201 if outcome is Result.OK else 200, answer)

    return await idempotency.run(principal, body, execute)
