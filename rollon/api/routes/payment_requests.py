"""Payment requests: a merchant asks for an amount and shows the QR code; the till learns of
the payment by long-poll (`?wait_s=`) or server-sent events; refunds go back to the payer.

| method and path | who |
| --- | --- |
| POST /v1/payment-requests | merchant |
| GET /v1/payment-requests | merchant (its own, newest first) |
| GET /v1/payment-requests/{id}[?wait_s=&status=] | the merchant, members (payers), admin, auditor |
| GET /v1/payment-requests/{id}/events | the merchant, admin (text/event-stream) |
| GET /v1/payment-requests/{id}/qr.svg, qr.png | the merchant, admin |
| POST /v1/payment-requests/{id}/cancel | merchant |
| POST /v1/payment-requests/{id}/refunds, GET .../refunds | merchant |
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from rollon.api.auth import Principal, Role, require_roles
from rollon.api.fields import Centimes, RequestModel, from_ns
from rollon.api.hot_route import hot, hot_route_openapi, read_call
from rollon.api.idempotency import Answer, IdempotencyDep, json_answer
from rollon.api.merchant_services import MerchantsDep, merchants_of, problem_of
from rollon.api.problems import PROBLEM_RESPONSES, ProblemError
from rollon.api.routes.merchants import qr_response
from rollon.merchants.errors import MerchantError
from rollon.merchants.notifier import TooManyWaiters
from rollon.merchants.payload import MAX_VALIDITY_S
from rollon.merchants.refunds import Refund, RefundStatus
from rollon.merchants.requests import MAX_WAIT_S, PaymentRequest, RequestStatus
from rollon.merchants.schema import MAX_DESCRIPTION_LENGTH, MAX_REFERENCE_LENGTH
from rollon.merchants.service import Merchants

router = APIRouter(prefix="/v1", tags=["payment requests"], responses=PROBLEM_RESPONSES)
NS_PER_S = 1_000_000_000

_MERCHANT_GATE = require_roles(Role.MERCHANT)
_MERCHANT = Depends(_MERCHANT_GATE)
_READERS = Depends(require_roles(Role.MERCHANT, Role.MEMBER, Role.ADMIN, Role.AUDITOR))
_OWNER_OR_ADMIN = Depends(require_roles(Role.MERCHANT, Role.ADMIN))


class PaymentRequestIn(RequestModel):
    id: UUID | None = Field(default=None, description="Chosen by the client: a retry is safe")
    amount: Centimes
    reference: str = Field(default="", max_length=MAX_REFERENCE_LENGTH, examples=["Table 4"])
    description: str = Field(default="", max_length=MAX_DESCRIPTION_LENGTH)
    expires_in: int | None = Field(
        default=None,
        ge=1,
        le=MAX_VALIDITY_S,
        description="Seconds the request stays payable (default: the service's, 300)",
    )


class PaymentRequestOut(BaseModel):
    id: UUID
    status: RequestStatus
    amount: int = Field(examples=[1250])
    reference: str
    description: str
    merchant_id: UUID
    account_id: UUID = Field(description="The merchant's RolloN account, which is paid")
    merchant_name: str = Field(description="From the directory: what the payer must see")
    merchant_city: str
    static: bool = Field(description="Made by a payment from the merchant's counter code")
    payload: str = Field(description="The signed text to show as a QR code")
    created_at: datetime
    expires_at: datetime
    payer_id: UUID | None
    transfer_id: UUID | None
    paid_at: datetime | None
    refunded_amount: int


class PaymentRequestPageOut(BaseModel):
    items: list[PaymentRequestOut]
    next_cursor: int | None = Field(description="Pass as `before` for older requests")


class RefundIn(RequestModel):
    id: UUID | None = Field(default=None, description="Chosen by the client: a retry is safe")
    amount: Centimes | None = Field(default=None, description="All that is left when absent")


class RefundOut(BaseModel):
    id: UUID
    request_id: UUID
    amount: int
    status: RefundStatus
    transfer_id: UUID
    created_at: datetime
    request: PaymentRequestOut | None = None
    result: Literal["ok", "exists"] | None = None


def request_out(request: PaymentRequest) -> PaymentRequestOut:
    return PaymentRequestOut(
        id=request.id,
        status=request.status,
        amount=request.amount,
        reference=request.reference,
        description=request.description,
        merchant_id=request.merchant_id,
        account_id=request.account_id,
        merchant_name=request.merchant_name,
        merchant_city=request.merchant_city,
        static=request.static,
        payload=request.payload,
        created_at=from_ns(request.created_at_ns),
        expires_at=from_ns(request.expires_at_s * NS_PER_S),
        payer_id=request.payer_account_id,
        transfer_id=request.transfer_id,
        paid_at=from_ns(request.paid_at_ns) if request.paid_at_ns is not None else None,
        refunded_amount=request.refunded_amount,
    )


def refund_out(refund: Refund) -> RefundOut:
    return RefundOut(
        id=refund.id,
        request_id=refund.request_id,
        amount=refund.amount,
        status=refund.status,
        transfer_id=refund.transfer_id,
        created_at=from_ns(refund.created_at_ns),
    )


def _acting_merchant(principal: Principal) -> UUID:
    assert principal.role is Role.MERCHANT
    if principal.account_id is None:
        raise ProblemError(403, "forbidden", "Forbidden", "this token acts for no account")
    return principal.account_id


@router.post(
    "/payment-requests",
    status_code=201,
    response_model=PaymentRequestOut,
    summary="Ask for a payment: the answer carries the QR payload",
    openapi_extra=hot_route_openapi(PaymentRequestIn),
)
@hot
async def post_payment_request(request: Request) -> Response:
    principal, body, idempotency = await read_call(request, _MERCHANT_GATE, PaymentRequestIn)
    merchants = merchants_of(request)
    account_id = _acting_merchant(principal)
    request_id = idempotency.operation_id(principal, body.id)

    async def execute() -> Answer:
        try:
            request = await merchants.requests.create_async(
                account_id,
                body.amount,
                reference=body.reference,
                description=body.description,
                expires_in_s=body.expires_in,
                request_id=request_id,
            )
        except MerchantError as error:
            raise problem_of(error) from None
        return json_answer(201, request_out(request))

    return await idempotency.run(principal, body, execute)


@router.get(
    "/payment-requests", response_model=PaymentRequestPageOut, summary="The merchant's requests"
)
async def list_payment_requests(
    merchants: MerchantsDep,
    principal: Annotated[Principal, _MERCHANT],
    before: Annotated[int | None, Query(ge=0, description="A `next_cursor`")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> PaymentRequestPageOut:
    account_id = _acting_merchant(principal)
    items = await run_in_threadpool(
        lambda: merchants.requests.list_for_merchant(account_id, before_ns=before, limit=limit)
    )
    cursor = items[-1].created_at_ns if len(items) == limit else None
    return PaymentRequestPageOut(items=[request_out(r) for r in items], next_cursor=cursor)


async def _readable(
    merchants: Merchants, request_id: UUID, principal: Principal, *, owner_only: bool
) -> PaymentRequest:
    """The request, if this caller may see it: its merchant, an admin; for reading also
    members (who scanned its code) and auditors. Another merchant gets 404."""
    try:
        request = await run_in_threadpool(merchants.requests.get, request_id)
    except MerchantError as error:
        raise problem_of(error) from None
    if principal.role is Role.MERCHANT and not principal.owns(request.account_id):
        raise ProblemError(
            404, "request_not_found", "Request not found", f"no payment request {request_id}"
        )
    if owner_only and principal.role not in (Role.MERCHANT, Role.ADMIN):
        raise ProblemError(403, "forbidden", "Forbidden", "only the merchant or an admin")
    return request


@router.get(
    "/payment-requests/{request_id}",
    response_model=PaymentRequestOut,
    summary="A request; with `wait_s`, waits until its status differs from `status`",
)
async def get_payment_request(
    request_id: UUID,
    merchants: MerchantsDep,
    principal: Annotated[Principal, _READERS],
    wait_s: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="Long-poll: wait up to this long")
    ] = 0,
    status: Annotated[
        RequestStatus | None,
        Query(description="The status the caller knows (default: the current one)"),
    ] = None,
) -> PaymentRequestOut:
    request = await _readable(merchants, request_id, principal, owner_only=False)
    if wait_s > 0:
        known = status or request.status
        try:
            request = await merchants.requests.wait_for_change(request_id, known, wait_s)
        except TooManyWaiters:
            raise ProblemError(
                503,
                "too_many_waiters",
                "Too many waiters",
                "retry shortly",
                headers={"Retry-After": "1"},
            ) from None
    return request_out(request)


@router.get(
    "/payment-requests/{request_id}/events",
    response_class=StreamingResponse,
    summary="Server-sent events: the request now, then each change of status",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def payment_request_events(
    request_id: UUID,
    merchants: MerchantsDep,
    principal: Annotated[Principal, _OWNER_OR_ADMIN],
    wait_s: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = MAX_WAIT_S,
) -> StreamingResponse:
    await _readable(merchants, request_id, principal, owner_only=True)

    async def events() -> AsyncIterator[bytes]:
        try:
            async for request in merchants.requests.changes(request_id, wait_s):
                data = request_out(request).model_dump_json()
                yield f"event: status\ndata: {data}\n\n".encode()
        except TooManyWaiters:
            yield b"event: retry\ndata: {}\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get(
    "/payment-requests/{request_id}/qr.{image_format}",
    response_class=Response,
    summary="The request's QR code, as an SVG or PNG image",
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
)
async def payment_request_qr(
    request_id: UUID,
    image_format: str,
    merchants: MerchantsDep,
    principal: Annotated[Principal, _OWNER_OR_ADMIN],
) -> Response:
    if image_format not in ("svg", "png"):
        raise ProblemError(404, "not_found", "Not found", "images are qr.svg or qr.png")
    request = await _readable(merchants, request_id, principal, owner_only=True)
    return qr_response(request.payload, image_format)


@router.post(
    "/payment-requests/{request_id}/cancel",
    response_model=PaymentRequestOut,
    summary="Withdraw an open request (a payment racing it either landed or never will)",
)
async def cancel_payment_request(
    request_id: UUID, merchants: MerchantsDep, principal: Annotated[Principal, _MERCHANT]
) -> PaymentRequestOut:
    account_id = _acting_merchant(principal)
    try:
        request = await run_in_threadpool(merchants.requests.cancel, request_id, account_id)
    except MerchantError as error:
        raise problem_of(error) from None
    return request_out(request)


@router.post(
    "/payment-requests/{request_id}/refunds",
    status_code=201,
    response_model=RefundOut,
    summary="Refund all or part of what was paid, back to the payer",
)
async def post_refund(
    request_id: UUID,
    body: RefundIn,
    merchants: MerchantsDep,
    principal: Annotated[Principal, _MERCHANT],
    idempotency: IdempotencyDep,
) -> Response:
    account_id = _acting_merchant(principal)
    refund_id = idempotency.operation_id(principal, body.id)

    async def execute() -> Answer:
        try:
            outcome = await run_in_threadpool(
                merchants.refunds.refund, request_id, account_id, refund_id, body.amount
            )
        except MerchantError as error:
            raise problem_of(error) from None
        answer = refund_out(outcome.refund)
        answer.request = request_out(outcome.request)
        answer.result = "exists" if outcome.replayed else "ok"
        return json_answer(200 if outcome.replayed else 201, answer)

    return await idempotency.run(principal, body, execute)


@router.get(
    "/payment-requests/{request_id}/refunds",
    response_model=list[RefundOut],
    summary="A request's refunds",
)
async def list_refunds(
    request_id: UUID, merchants: MerchantsDep, principal: Annotated[Principal, _MERCHANT]
) -> list[RefundOut]:
    account_id = _acting_merchant(principal)
    try:
        refunds = await run_in_threadpool(
            merchants.refunds.list_for_request, request_id, account_id
        )
    except MerchantError as error:
        raise problem_of(error) from None
    return [refund_out(r) for r in refunds]
