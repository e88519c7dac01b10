"""The member's pages: balance and history (`/wallet`), sending RolloN to another member
(`/wallet/send`, with a confirmation showing the recipient's name from the ledger).

Money moves only through the ledger's hot path (`Ledger.submit_async`), as the API's
`POST /v1/transfers` does; each form carries an id given when it was shown, so sending
the same form twice moves the money once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from rollon.api.fields import MAX_MEMO_LENGTH
from rollon.api.token_store import Role
from rollon.api.web.forms import Form
from rollon.api.web.ledger_views import HistoryLine, history_page, operation_id
from rollon.api.web.rendering import Page, WebError, WebRoute, signed_in
from rollon.ledger.accounts import Account, AccountKind, LedgerCode
from rollon.ledger.money import format_amount
from rollon.ledger.queries import get_account, get_transfer
from rollon.ledger.transfers import Result, Transfer, TransferCode

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
