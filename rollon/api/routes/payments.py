"""`POST /v1/payments`: a member pays from a scanned QR payload (idempotent), and
`POST /v1/payments/preview`: what the payer is about to pay, with the merchant's name as
the directory holds it for the paid account, never as the payload claims it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rollon.api.auth import Principal, Role, require_roles
from rollon.api.fields import Centimes, RequestModel, from_ns
from rollon.api.hot_route import hot, hot_route_openapi, read_call
from rollon.api.idempotency import Answer, json_answer
from rollon.api.merchant_services import MerchantsDep, merchants_of, problem_of
from rollon.api.problems import PROBLEM_RESPONSES, ProblemError
from rollon.api.routes.payment_requests import PaymentRequestOut, request_out
from rollon.merchants.errors import MerchantError
from rollon.merchants.payload import MAX_PAYLOAD_CHARS
from rollon.merchants.requests import RequestStatus

router = APIRouter(prefix="/v1", tags=["payments"], responses=PROBLEM_RESPONSES)
NS_PER_S = 1_000_000_000

_PAYERS = require_roles(Role.MEMBER)
_MEMBER = Depends(_PAYERS)


class PaymentIn(RequestModel):
    id: UUID | None = Field(
        default=None,
        description="Chosen by the client: paying again with it never pays twice. Needed "
        "(or an Idempotency-Key) for a merchant's static code.",
    )
    payload: str = Field(max_length=MAX_PAYLOAD_CHARS, description="The scanned QR text")
    source_id: UUID = Field(description="Your own account")
    amount: Centimes | None = Field(
        default=None,
        description="Static code: the amount to pay. Payment request: if given, must be its "
        "amount (what you were shown).",
    )


class PaymentOut(BaseModel):
    request_id: UUID
    transfer_id: UUID
    source_id: UUID
    amount: int
    merchant_id: UUID
    merchant_name: str = Field(description="From the directory, for the paid account")
    merchant_city: str
    status: RequestStatus
    paid_at: datetime | None
    result: Literal["ok", "exists"]
    request: PaymentRequestOut


class PreviewIn(RequestModel):
    payload: str = Field(max_length=MAX_PAYLOAD_CHARS)


class PreviewOut(BaseModel):
    merchant_id: UUID
    account_id: UUID
    merchant_name: str = Field(description="From the directory: show this, not the payload's")
    merchant_city: str
    static: bool
    amount: int | None = Field(description="None for a static code: the payer types it")
    reference: str
    request_id: UUID | None
    status: RequestStatus | None
    expires_at: datetime | None


@router.post(
    "/payments",
    status_code=201,
    response_model=PaymentOut,
    summary="Pay a payment request (or a merchant's counter code) from its QR payload",
    responses={200: {"model": PaymentOut, "description": "Paid before by you (a retry)"}},
    openapi_extra=hot_route_openapi(PaymentIn),
)
@hot
async def post_payment(request: Request) -> Response:
    principal, body, idempotency = await read_call(request, _PAYERS, PaymentIn)
    merchants = merchants_of(request)
    if not principal.owns(body.source_id):
        raise ProblemError(403, "forbidden", "Forbidden", "you may only pay from your own account")
    payment_id = idempotency.operation_id(principal, body.id)

    async def execute() -> Answer:
        try:
            payment = await merchants.requests.pay_async(
                body.payload, body.source_id, amount=body.amount, payment_id=payment_id
            )
        except MerchantError as error:
            raise problem_of(error) from None
        request = payment.request
        answer = PaymentOut(
            request_id=request.id,
            transfer_id=payment.transfer_id,
            source_id=payment.payer_account_id,
            amount=request.amount,
            merchant_id=request.merchant_id,
            merchant_name=request.merchant_name,
            merchant_city=request.merchant_city,
            status=request.status,
            paid_at=from_ns(request.paid_at_ns) if request.paid_at_ns is not None else None,
            result="exists" if payment.replayed else "ok",
            request=request_out(request),
        )
        return json_answer(200 if payment.replayed else 201, answer)

    return await idempotency.run(principal, body, execute)


@router.post(
    "/payments/preview",
    response_model=PreviewOut,
    summary="Check a scanned payload and show whom it pays, before paying",
)
async def preview_payment(
    body: PreviewIn, merchants: MerchantsDep, principal: Annotated[Principal, _MEMBER]
) -> PreviewOut:
    try:
        preview = await run_in_threadpool(merchants.requests.preview, body.payload)
    except MerchantError as error:
        raise problem_of(error) from None
    expires_at = None
    if preview.expires_at_s is not None:
        expires_at = from_ns(preview.expires_at_s * NS_PER_S)
    return PreviewOut(
        merchant_id=preview.merchant_id,
        account_id=preview.account_id,
        merchant_name=preview.merchant_name,
        merchant_city=preview.merchant_city,
        static=preview.static,
        amount=preview.amount,
        reference=preview.reference,
        request_id=preview.request_id,
        status=preview.status,
        expires_at=expires_at,
    )
