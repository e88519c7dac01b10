"""The merchant's pages: the till (`/till`: type an amount and a reference, the QR code
appears large, the page turns to "Payé" by itself), the day's payments with their total and
refunds (`/till/payments`), and reconversion to euros (`/till/reconversion`).

Everything goes through the merchants layer's services (`PaymentRequests`, `Refunds`,
`Reconversions`), the same objects the API's routes use (`rollon.api.merchant_services`).
The till waits for its payment with a long-poll on `/till/requests/{id}/status`, which
answers as soon as the request changes (at once in this process, within a second from
another).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from rollon.api import merchant_services
from rollon.api.token_store import Role
from rollon.api.web.forms import Form
from rollon.api.web.ledger_views import operation_id
from rollon.api.web.rendering import LOCAL_ZONE, Page, WebError, WebRoute, signed_in
from rollon.ledger.audit.local_time import day_start_ns
from rollon.ledger.money import format_amount
from rollon.ledger.queries import get_account
from rollon.merchants.errors import MerchantError
from rollon.merchants.qr import qr_svg
from rollon.merchants.requests import MAX_LIST_PAGE, PaymentRequest, RequestStatus
from rollon.merchants.schema import MAX_REFERENCE_LENGTH
from rollon.merchants.service import Merchants

router = APIRouter(route_class=WebRoute, include_in_schema=False)

MerchantPage = Annotated[Page, Depends(signed_in(Role.MERCHANT))]
STATUS_WAIT_S: Final = 25.0  # a long-poll answers by then, well before proxies cut it
MAX_DAY_PAGES: Final = 20  # a day's list reads at most this many pages of requests
PAID_STATUSES: Final = frozenset(
    {RequestStatus.PAID, RequestStatus.PARTIALLY_REFUNDED, RequestStatus.REFUNDED}
)
REQUEST_PURPOSE: Final = "payment-request"
REFUND_PURPOSE: Final = "refund"
RECONVERSION_PURPOSE: Final = "reconversion"


def merchants_of(page: Page) -> Merchants:
    """The running app's merchants services (one per app, shared with the API's routes)."""
    return merchant_services.merchants_of(page.request)


def _error(page: Page, error: MerchantError) -> str:
    return page.t.error(error.code, str(error))


# -- the till --------------------------------------------------------------------------------
@router.get("/till")
async def till(page: MerchantPage) -> Response:
    return await _till(page, form=None)


async def _till(page: Page, *, form: Form | None, status: int = 200) -> Response:
    account = await run_in_threadpool(_balance, page)
    return page.render(
        "till.html", status=status, form=form, form_id=uuid4(), balance=account, switch_path="/till"
    )


def _balance(page: Page) -> int:
    with page.state.engine.connect() as connection:
        account = get_account(connection, page.viewer_account)
    return 0 if account is None else account.balance


@router.post("/till/requests")
async def create_request(page: MerchantPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    amount = form.amount("amount")
    reference = form.text("reference", max_chars=MAX_REFERENCE_LENGTH, required=False)
    form_id = form.operation_id("form_id")
    if not form.ok or form_id is None:
        return await _till(page, form=form, status=422)
    assert page.viewer is not None
    request_id = operation_id(page.viewer.token_id, REQUEST_PURPOSE, form_id)
    try:
        request = await run_in_threadpool(
            merchants_of(page).requests.create,
            page.viewer_account,
            amount,
            reference=reference,
            request_id=request_id,
        )
    except MerchantError as error:
        form.fail("amount", _error(page, error))
        return await _till(page, form=form, status=422)
    return RedirectResponse(f"/till/requests/{request.id}", status_code=303)


async def _own_request(page: Page, request_id: UUID) -> PaymentRequest:
    try:
        return await run_in_threadpool(
            merchants_of(page).requests.get_for_merchant, request_id, page.viewer_account
        )
    except MerchantError as error:
        raise WebError(404, "error.request_not_found") from error


def status_label(page: Page, status: RequestStatus) -> str:
    if status is RequestStatus.PAID:
        return page.t("till.paid")
    if status is RequestStatus.OPEN:
        return page.t("till.waiting")
    return page.t(f"status.{status.value}")


@router.get("/till/requests/{request_id}")
async def show_request(page: MerchantPage, request_id: UUID) -> Response:
    request = await _own_request(page, request_id)
    return page.render(
        "till_request.html",
        request=request,
        label=status_label(page, request.status),
        paid=request.status in PAID_STATUSES,
        closed=request.status is not RequestStatus.OPEN,
    )


@router.get("/till/requests/{request_id}/qr.svg")
async def request_qr(page: MerchantPage, request_id: UUID) -> Response:
    request = await _own_request(page, request_id)
    return Response(qr_svg(request.payload), media_type="image/svg+xml")


@router.get("/till/requests/{request_id}/status")
async def request_status(
    page: MerchantPage, request_id: UUID, known: RequestStatus | None = None
) -> Response:
    """The request's status once it differs from `known`, or after STATUS_WAIT_S (JSON)."""
    await _own_request(page, request_id)
    request = await merchants_of(page).requests.wait_for_change(request_id, known, STATUS_WAIT_S)
    return JSONResponse(
        {
            "status": request.status.value,
            "label": status_label(page, request.status),
            "paid": request.status in PAID_STATUSES,
            "closed": request.status is not RequestStatus.OPEN,
        }
    )


@router.post("/till/requests/{request_id}/cancel")
async def cancel_request(page: MerchantPage, request_id: UUID) -> Response:
    try:
        await run_in_threadpool(merchants_of(page).requests.cancel, request_id, page.viewer_account)
    except MerchantError as error:
        raise WebError(409, "error.service", detail=_error(page, error)) from error
    return RedirectResponse(f"/till/requests/{request_id}", status_code=303)


# -- the day's payments and refunds -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Day:
    payments: list[PaymentRequest]
    total: int
    refunded: int
    complete: bool  # False when the day holds more requests than one page reads


def _today(merchants: Merchants, account_id: UUID) -> Day:
    """Requests paid among those created since local midnight, newest first."""
    start_ns = day_start_ns(datetime.now(LOCAL_ZONE).date())
    paid: list[PaymentRequest] = []
    before_ns: int | None = None
    for _ in range(MAX_DAY_PAGES):
        batch = merchants.requests.list_for_merchant(
            account_id, before_ns=before_ns, limit=MAX_LIST_PAGE
        )
        recent = [r for r in batch if r.created_at_ns >= start_ns]
        paid += [r for r in recent if r.status in PAID_STATUSES]
        if len(recent) < len(batch) or len(batch) < MAX_LIST_PAGE:
            return _day(paid, complete=True)
        before_ns = batch[-1].created_at_ns
    return _day(paid, complete=False)


def _day(paid: list[PaymentRequest], *, complete: bool) -> Day:
    return Day(
        payments=paid,
        total=sum(r.amount for r in paid),
        refunded=sum(r.refunded_amount for r in paid),
        complete=complete,
    )


@router.get("/till/payments")
async def payments(page: MerchantPage, refunded: UUID | None = None) -> Response:
    merchants = merchants_of(page)
    day = await run_in_threadpool(_today, merchants, page.viewer_account)
    notice = None
    if refunded is not None:
        notice = await run_in_threadpool(_refund_notice, page, merchants, refunded)
    return page.render("till_payments.html", day=day, notice=notice)


def _refund_notice(page: Page, merchants: Merchants, request_id: UUID) -> str | None:
    try:
        done = merchants.refunds.list_for_request(request_id, page.viewer_account)
    except MerchantError:
        return None
    if not done:
        return None
    return page.t("till.refund_done", amount=format_amount(done[-1].amount))


@router.get("/till/payments/{request_id}/refund")
async def refund_form(page: MerchantPage, request_id: UUID) -> Response:
    request = await _own_request(page, request_id)
    return page.render("till_refund.html", request=request, form=None, form_id=uuid4())


@router.post("/till/payments/{request_id}/refund")
async def refund(page: MerchantPage, request_id: UUID) -> Response:
    request = await _own_request(page, request_id)
    form = Form.of(page.t, await page.request.form())
    amount = form.amount("amount")
    form_id = form.operation_id("form_id")
    if form.ok and form_id is not None:
        assert page.viewer is not None
        refund_id = operation_id(page.viewer.token_id, REFUND_PURPOSE, form_id)
        try:
            await run_in_threadpool(
                merchants_of(page).refunds.refund,
                request_id,
                page.viewer_account,
                refund_id,
                amount,
            )
        except MerchantError as error:
            form.fail("amount", _error(page, error))
        else:
            return RedirectResponse(f"/till/payments?refunded={request_id}", status_code=303)
    return page.render(
        "till_refund.html",
        status=422,
        request=request,
        form=form,
        form_id=uuid4(),
        switch_path=f"/till/payments/{request_id}/refund",
    )


# -- reconversion ----------------------------------------------------------------------------
@router.get("/till/reconversion")
async def reconversion(
    page: MerchantPage,
    done: Annotated[UUID | None, Query()] = None,
) -> Response:
    return await _reconversion(page, form=None, done=done)


async def _reconversion(
    page: Page, *, form: Form | None, done: UUID | None = None, status: int = 200
) -> Response:
    merchants = merchants_of(page)
    account_id = page.viewer_account
    past = await run_in_threadpool(merchants.reconversions.list_for_merchant, account_id)
    balance = await run_in_threadpool(_balance, page)
    notice = None
    if done is not None:
        finished = next((r for r in past if r.id == done), None)
        if finished is not None:
            notice = page.t(
                "reconversion.done",
                amount=format_amount(finished.amount),
                fee=format_amount(finished.fee, "€"),
                net=format_amount(finished.net, "€"),
            )
    fee_bps = merchants.settings.reconversion_fee_bps
    return page.render(
        "till_reconversion.html",
        status=status,
        form=form,
        form_id=uuid4(),
        past=past,
        balance=balance,
        notice=notice,
        rate=f"{fee_bps // 100},{fee_bps % 100:02d} %",
        switch_path="/till/reconversion",
    )


@router.post("/till/reconversion")
async def reconvert(page: MerchantPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    amount = form.amount("amount")
    form_id = form.operation_id("form_id")
    if not form.ok or form_id is None:
        return await _reconversion(page, form=form, status=422)
    assert page.viewer is not None
    reconversion_id = operation_id(page.viewer.token_id, RECONVERSION_PURPOSE, form_id)
    try:
        done = await run_in_threadpool(
            merchants_of(page).reconversions.reconvert,
            page.viewer_account,
            amount,
            reconversion_id,
        )
    except MerchantError as error:
        form.fail("amount", _error(page, error))
        return await _reconversion(page, form=form, status=422)
    return RedirectResponse(f"/till/reconversion?done={done.id}", status_code=303)
