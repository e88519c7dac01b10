"""Reconversions and payouts.

`POST /v1/reconversions` (merchant): RolloN back to euros at the configured fee; answers
`fee` and `net`. Admins settle what is owed: `POST /v1/payouts/settlements` makes the
pain.001 SEPA credit transfer file (`GET .../{id}/pain.001.xml`), and, once the bank has
executed it, `POST .../{id}/paid` records the payout in the ledger (or `.../cancel` puts
its reconversions back in the queue if the bank refused it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rollon.api.auth import Principal, Role, require_roles
from rollon.api.fields import Centimes, RequestModel, from_ns
from rollon.api.idempotency import Answer, IdempotencyDep, json_answer
from rollon.api.merchant_services import MerchantsDep, problem_of
from rollon.api.problems import PROBLEM_RESPONSES, ProblemError
from rollon.merchants.errors import MerchantError
from rollon.merchants.reconversions import (
    Reconversion,
    ReconversionStatus,
    Settlement,
    SettlementStatus,
)

router = APIRouter(prefix="/v1", tags=["reconversions"], responses=PROBLEM_RESPONSES)

_MERCHANT = Depends(require_roles(Role.MERCHANT))
_ADMIN = Depends(require_roles(Role.ADMIN))
_ADMIN_OR_AUDITOR = Depends(require_roles(Role.ADMIN, Role.AUDITOR))


class ReconversionIn(RequestModel):
    id: UUID | None = Field(default=None, description="Chosen by the client: a retry is safe")
    amount: Centimes


class ReconversionOut(BaseModel):
    id: UUID
    account_id: UUID
    amount: int = Field(description="RolloN centimes taken from the account")
    fee_bps: int = Field(description="The fee rate applied, in basis points (300 = 3 %)")
    fee: int = Field(description="Euro cents kept by the association")
    net: int = Field(description="Euro cents owed to the merchant, paid by SEPA transfer")
    status: ReconversionStatus
    created_at: datetime
    settlement_id: UUID | None
    result: Literal["ok", "exists"] | None = None


class SettlementIn(RequestModel):
    id: UUID | None = Field(default=None, description="Chosen by the client: a retry is safe")
    execution_date: date | None = Field(
        default=None, description="When the bank should pay (default: today)"
    )


class SettlementOut(BaseModel):
    id: UUID
    message_id: str
    status: SettlementStatus
    created_at: datetime
    execution_date: date
    total: int = Field(description="Euro cents paid out by this file")
    transfers: int = Field(description="Credit transfers in the file (one per merchant)")
    reconversions: int
    document_url: str


class PayoutsOut(BaseModel):
    owed: int = Field(description="Euro cents owed to merchants (due or in a prepared file)")
    settlements: list[SettlementOut]


def reconversion_out(reconversion: Reconversion, replayed: bool | None = None) -> ReconversionOut:
    return ReconversionOut(
        id=reconversion.id,
        account_id=reconversion.account_id,
        amount=reconversion.amount,
        fee_bps=reconversion.fee_bps,
        fee=reconversion.fee,
        net=reconversion.net,
        status=reconversion.status,
        created_at=from_ns(reconversion.created_at_ns),
        settlement_id=reconversion.settlement_id,
        result=None if replayed is None else ("exists" if replayed else "ok"),
    )


def settlement_out(settlement: Settlement) -> SettlementOut:
    return SettlementOut(
        id=settlement.id,
        message_id=settlement.message_id,
        status=settlement.status,
        created_at=from_ns(settlement.created_at_ns),
        execution_date=settlement.execution_date,
        total=settlement.total,
        transfers=settlement.transfers,
        reconversions=settlement.reconversions,
        document_url=f"/v1/payouts/settlements/{settlement.id}/pain.001.xml",
    )


@router.post(
    "/reconversions",
    status_code=201,
    response_model=ReconversionOut,
    summary="Convert RolloN to euros (fee and net in the answer)",
)
async def post_reconversion(
    body: ReconversionIn,
    merchants: MerchantsDep,
    principal: Annotated[Principal, _MERCHANT],
    idempotency: IdempotencyDep,
) -> Response:
    if principal.account_id is None:
        raise ProblemError(403, "forbidden", "Forbidden", "this token acts for no account")
    account_id = principal.account_id
    reconversion_id = idempotency.operation_id(principal, body.id)

    async def execute() -> Answer:
        earlier = await run_in_threadpool(merchants.reconversions.get, reconversion_id)
        try:
            reconversion = await run_in_threadpool(
                merchants.reconversions.reconvert, account_id, body.amount, reconversion_id
            )
        except MerchantError as error:
            raise problem_of(error) from None
        replayed = earlier is not None
        return json_answer(201 if not replayed else 200, reconversion_out(reconversion, replayed))

    return await idempotency.run(principal, body, execute)


@router.get(
    "/reconversions", response_model=list[ReconversionOut], summary="The merchant's reconversions"
)
async def list_reconversions(
    merchants: MerchantsDep,
    principal: Annotated[Principal, _MERCHANT],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[ReconversionOut]:
    if principal.account_id is None:
        raise ProblemError(403, "forbidden", "Forbidden", "this token acts for no account")
    items = await run_in_threadpool(
        merchants.reconversions.list_for_merchant, principal.account_id, limit
    )
    return [reconversion_out(r) for r in items]


@router.get("/payouts", response_model=PayoutsOut, summary="What is owed, and recent payout files")
async def get_payouts(
    merchants: MerchantsDep, principal: Annotated[Principal, _ADMIN_OR_AUDITOR]
) -> PayoutsOut:
    owed = await run_in_threadpool(merchants.reconversions.owed)
    settlements = await run_in_threadpool(merchants.reconversions.list_settlements, 20)
    return PayoutsOut(owed=owed, settlements=[settlement_out(s) for s in settlements])


@router.post(
    "/payouts/settlements",
    status_code=201,
    response_model=SettlementOut,
    summary="Make the SEPA payout file (pain.001) for everything owed",
)
async def post_settlement(
    body: SettlementIn,
    merchants: MerchantsDep,
    principal: Annotated[Principal, _ADMIN],
    idempotency: IdempotencyDep,
) -> Response:
    settlement_id = idempotency.operation_id(principal, body.id)
    execution_date = body.execution_date or datetime.now(UTC).date()

    async def execute() -> Answer:
        try:
            settlement = await run_in_threadpool(
                merchants.reconversions.prepare_settlement, settlement_id, execution_date
            )
        except MerchantError as error:
            raise problem_of(error) from None
        return json_answer(201, settlement_out(settlement))

    return await idempotency.run(principal, body, execute)


async def _settlement(merchants: MerchantsDep, settlement_id: UUID) -> Settlement:
    settlement = await run_in_threadpool(merchants.reconversions.get_settlement, settlement_id)
    if settlement is None:
        raise ProblemError(
            404, "settlement_not_found", "Settlement not found", f"no settlement {settlement_id}"
        )
    return settlement


@router.get(
    "/payouts/settlements/{settlement_id}",
    response_model=SettlementOut,
    summary="A payout settlement",
)
async def get_settlement(
    settlement_id: UUID, merchants: MerchantsDep, principal: Annotated[Principal, _ADMIN_OR_AUDITOR]
) -> SettlementOut:
    return settlement_out(await _settlement(merchants, settlement_id))


@router.get(
    "/payouts/settlements/{settlement_id}/pain.001.xml",
    response_class=Response,
    summary="The settlement's SEPA credit transfer file, for the bank",
    responses={200: {"content": {"application/xml": {}}}},
)
async def get_settlement_document(
    settlement_id: UUID, merchants: MerchantsDep, principal: Annotated[Principal, _ADMIN_OR_AUDITOR]
) -> Response:
    settlement = await _settlement(merchants, settlement_id)
    filename = f"{settlement.message_id}.xml"
    return Response(
        settlement.document.encode("utf-8"),
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post(
    "/payouts/settlements/{settlement_id}/paid",
    response_model=SettlementOut,
    summary="The bank executed the file: record the payout in the ledger",
)
async def mark_settlement_paid(
    settlement_id: UUID, merchants: MerchantsDep, principal: Annotated[Principal, _ADMIN]
) -> SettlementOut:
    try:
        settlement = await run_in_threadpool(merchants.reconversions.mark_paid, settlement_id)
    except MerchantError as error:
        raise problem_of(error) from None
    return settlement_out(settlement)


@router.post(
    "/payouts/settlements/{settlement_id}/cancel",
    response_model=SettlementOut,
    summary="The bank refused the file: its reconversions wait for the next one",
)
async def cancel_settlement(
    settlement_id: UUID, merchants: MerchantsDep, principal: Annotated[Principal, _ADMIN]
) -> SettlementOut:
    try:
        settlement = await run_in_threadpool(
            merchants.reconversions.cancel_settlement, settlement_id
        )
    except MerchantError as error:
        raise problem_of(error) from None
    return settlement_out(settlement)
