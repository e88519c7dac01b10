"""The member's pages: balance and history (`/wallet`); paying a merchant from a QR code,
scanned with the camera or pasted (`/wallet/pay`); sending RolloN to another member
(`/wallet/send`). Both ask for a confirmation that names the payee as the ledger and the
merchant directory hold it, never as the payload or the visitor wrote it.

Money moves only through the services the API's routes use: `PaymentRequests.pay` for QR
payments, and the ledger's hot path (`Ledger.submit_async`) for transfers, as
`POST /v1/transfers` does. Each form carries an id given when it was shown, so sending the
same form twice moves the money once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Final
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from rollon.api.fields import MAX_MEMO_LENGTH
from rollon.api.merchant_services import merchants_of
from rollon.api.token_store import Role
from rollon.api.web.forms import Form
from rollon.api.web.ledger_views import HistoryLine, history_page, operation_id
from rollon.api.web.rendering import Page, WebError, WebRoute, signed_in
from rollon.ledger.accounts import Account, AccountKind, LedgerCode
from rollon.ledger.money import format_amount
from rollon.ledger.queries import get_account, get_transfer
from rollon.ledger.transfers import Result, Transfer, TransferCode
from rollon.merchants.errors import MerchantError
from rollon.merchants.requests import PaymentPreview, RequestStatus

router = APIRouter(route_class=WebRoute, include_in_schema=False)

MemberPage = Annotated[Page, Depends(signed_in(Role.MEMBER))]
SEND_PURPOSE: Final = "send"
_DONE: Final = (Result.OK, Result.EXISTS)


@dataclass(frozen=True, slots=True)
class WalletView:
    account: Account
    lines: list[HistoryLine]
    next_cursor: int | None
    notice: str | None


def done_notice(page: Page, connection: Connection, transfer_id: UUID, key: str) -> str | None:
    """The line telling a member that their transfer or payment went through. Only for a
    transfer out of their own account: the id comes from the address bar."""
    entry = get_transfer(connection, transfer_id)
    if entry is None or entry.transfer.debit_account_id != page.viewer_account:
        return None
    recipient = get_account(connection, entry.transfer.credit_account_id)
    name = recipient.name if recipient is not None else "?"
    return page.t(key, amount=format_amount(entry.transfer.amount), name=name)


@router.get("/wallet")
async def wallet(
    page: MemberPage,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    sent: UUID | None = None,
    paid: UUID | None = None,
) -> Response:
    account_id = page.viewer_account

    def read() -> WalletView | None:
        with page.state.engine.connect() as connection:
            account = get_account(connection, account_id)
            if account is None:
                return None
            lines, next_cursor = history_page(connection, account_id, before)
            notice = None
            if sent is not None:
                notice = done_notice(page, connection, sent, "send.done")
            elif paid is not None:
                notice = done_notice(page, connection, paid, "pay.done")
        return WalletView(account, lines, next_cursor, notice)

    view = await run_in_threadpool(read)
    if view is None:
        raise WebError(404, "error.account_not_found")
    return page.render("wallet.html", view=view)


# -- sending to another member -------------------------------------------------------------
@router.get("/wallet/send")
async def send_form(page: MemberPage) -> Response:
    return page.render("send.html", form=None, form_id=uuid4())


@dataclass(frozen=True, slots=True)
class _Send:
    recipient: Account
    amount: int
    memo: str
    form_id: UUID


async def _checked_send(page: Page, form: Form) -> _Send | None:
    """The transfer a send form describes, or None with the reasons recorded in `form`."""
    recipient_id = form.account_id("to")
    amount = form.amount("amount")
    memo = form.text("memo", max_chars=MAX_MEMO_LENGTH, required=False)
    form_id = form.operation_id("form_id")
    recipient = None
    if recipient_id is not None:
        recipient = await run_in_threadpool(_account, page, recipient_id)
        if recipient is None:
            form.fail("to", page.t("error.account_not_found"))
        elif recipient.id == page.viewer_account:
            form.fail("to", page.t("error.same_account"))
        elif recipient.kind is not AccountKind.MEMBER:
            form.fail("to", page.t("error.destination_not_member"))
        elif recipient.closed:
            form.fail("to", page.t("error.account_closed"))
    if not form.ok or recipient is None or form_id is None:
        return None
    return _Send(recipient, amount, memo, form_id)


def _account(page: Page, account_id: UUID) -> Account | None:
    with page.state.engine.connect() as connection:
        return get_account(connection, account_id)


@router.post("/wallet/send/check")
async def send_check(page: MemberPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    send = await _checked_send(page, form)
    if send is None:
        return page.render("send.html", status=422, form=form, form_id=form.raw("form_id"))
    return page.render("send_confirm.html", form=form, send=send)


@router.post("/wallet/send")
async def send(page: MemberPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    send = await _checked_send(page, form)
    if send is None:
        return page.render("send.html", status=422, form=form, form_id=form.raw("form_id"))
    assert page.viewer is not None
    transfer = Transfer(
        id=operation_id(page.viewer.token_id, SEND_PURPOSE, send.form_id),
        debit_account_id=page.viewer_account,
        credit_account_id=send.recipient.id,
        amount=send.amount,
        ledger=LedgerCode.RLN,
        code=TransferCode.TRANSFER,
        memo=send.memo,
    )
    (result,) = await page.state.ledger.submit_async([transfer])
    if result not in _DONE:
        form.fail("amount", page.t.error(result.value, result.value))
        return page.render("send.html", status=422, form=form, form_id=uuid4())
    return RedirectResponse(f"/wallet?sent={transfer.id}", status_code=303)


# -- paying a merchant from a QR code ---------------------------------------------------------
PAY_PURPOSE: Final = "pay"
MAX_PAYLOAD_CHARS: Final = 1_000  # a RolloN payload is about 300 characters
_CLOSED_STATUS_CODES: Final = {
    RequestStatus.PAID: "request_already_paid",
    RequestStatus.PARTIALLY_REFUNDED: "request_already_paid",
    RequestStatus.REFUNDED: "request_already_paid",
    RequestStatus.EXPIRED: "request_expired",
    RequestStatus.CANCELLED: "request_cancelled",
}


@router.get("/wallet/pay")
async def pay_form(page: MemberPage) -> Response:
    return page.render("pay.html", form=None)


async def _preview(page: Page, form: Form) -> PaymentPreview | None:
    """What the payload asks, with the merchant's name from the directory; None (with the
    reason in `form`) when it cannot be paid."""
    payload = form.text("payload", max_chars=MAX_PAYLOAD_CHARS)
    if not form.ok:
        return None
    try:
        preview = await run_in_threadpool(merchants_of(page.request).requests.preview, payload)
    except MerchantError as error:
        form.fail("payload", page.t.error(error.code, str(error)))
        return None
    closed = _CLOSED_STATUS_CODES.get(preview.status) if preview.status is not None else None
    if closed is not None:
        form.fail("payload", page.t.error(closed, closed))
        return None
    return preview


@router.post("/wallet/pay/check")
async def pay_check(page: MemberPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    preview = await _preview(page, form)
    if preview is None:
        return page.render("pay.html", status=422, form=form)
    return page.render("pay_confirm.html", form=form, preview=preview, form_id=uuid4())


@router.post("/wallet/pay")
async def pay(page: MemberPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    preview = await _preview(page, form)
    if preview is None:
        return page.render("pay.html", status=422, form=form)
    form_id = form.operation_id("form_id")
    amount = preview.amount if preview.amount is not None else form.amount("amount")
    if not form.ok or form_id is None:
        return page.render(
            "pay_confirm.html", status=422, form=form, preview=preview, form_id=uuid4()
        )
    assert page.viewer is not None
    try:
        payment = await run_in_threadpool(
            partial(
                merchants_of(page.request).requests.pay,
                form.raw("payload"),
                page.viewer_account,
                amount=amount,
                payment_id=operation_id(page.viewer.token_id, PAY_PURPOSE, form_id),
            )
        )
    except MerchantError as error:
        form.fail("amount" if preview.static else "payload", page.t.error(error.code, str(error)))
        return page.render(
            "pay_confirm.html", status=422, form=form, preview=preview, form_id=uuid4()
        )
    return RedirectResponse(f"/wallet?paid={payment.transfer_id}", status_code=303)
