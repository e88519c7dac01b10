"""Accounts: `POST /v1/accounts` (admin) opens one; `GET /v1/accounts/{id}` shows its
balance and `GET /v1/accounts/{id}/transfers` its history, newest first, a page at a time
(the owner, an admin or an auditor)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from rollon.api.auth import Principal, Role, check_account_access, require_roles
from rollon.api.fields import RequestModel, from_ns
from rollon.api.problems import PROBLEM_RESPONSES, Problem, ProblemError
from rollon.api.state import StateDep
from rollon.ledger.accounts import Account, AccountKind, LedgerCode
from rollon.ledger.queries import get_account, history
from rollon.ledger.service import MAX_NAME_LENGTH, AccountError
from rollon.ledger.transfers import JournalEntry, TransferCode, TransferFlag

router = APIRouter(prefix="/v1", tags=["accounts"], responses=PROBLEM_RESPONSES)

MAX_HISTORY_PAGE = 200
DEFAULT_HISTORY_PAGE = 50
_ACCOUNT_ERROR_STATUS = {"account_exists": 409}


class OpenableKind(StrEnum):
    MEMBER = "member"
    MERCHANT = "merchant"
    EXCHANGE_POINT = "exchange_point"


class AccountIn(RequestModel):
    kind: OpenableKind = Field(examples=["member"])
    name: str = Field(
        min_length=1, max_length=MAX_NAME_LENGTH, examples=["Alice Martin"], description="Holder"
    )
    id: UUID | None = Field(
        default=None, description="Choose the id yourself; a new one is made otherwise"
    )


class AccountOut(BaseModel):
    id: UUID
    kind: AccountKind
    name: str
    ledger: LedgerCode
    balance: int = Field(description="Posted balance, in centimes", examples=[4250])
    available: int = Field(description="Balance less funds on hold, in centimes")
    closed: bool
    created_at: datetime

    @classmethod
    def of(cls, account: Account) -> AccountOut:
        return cls(
            id=account.id,
            kind=account.kind,
            name=account.name,
            ledger=account.ledger,
            balance=account.balance,
            available=account.available,
            closed=account.closed,
            created_at=from_ns(account.created_at_ns),
        )


class HistoryEntry(BaseModel):
    id: UUID = Field(description="The transfer's id")
    seq: int = Field(description="Its place in the journal")
    recorded_at: datetime
    direction: Literal["in", "out"] = Field(description="Money into or out of this account")
    amount: int = Field(description="In centimes, always positive", examples=[1250])
    counterparty_id: UUID
    code: TransferCode
    memo: str
    pending: bool = Field(description="A hold, not (yet) a movement of the balance")
    balance_after: int = Field(description="This account's posted balance just after")

    @classmethod
    def of(cls, entry: JournalEntry, account_id: UUID) -> HistoryEntry:
        transfer = entry.transfer
        outgoing = transfer.debit_account_id == account_id
        return cls(
            id=transfer.id,
            seq=entry.seq,
            recorded_at=from_ns(entry.timestamp_ns),
            direction="out" if outgoing else "in",
            amount=transfer.amount,
            counterparty_id=transfer.credit_account_id if outgoing else transfer.debit_account_id,
            code=transfer.code,
            memo=transfer.memo,
            pending=bool(transfer.flags & TransferFlag.PENDING),
            balance_after=entry.debit_balance_after if outgoing else entry.credit_balance_after,
        )


class HistoryPage(BaseModel):
    items: list[HistoryEntry]
    next_cursor: int | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page"
    )


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such account (`account_not_found`)"}
}


@router.post(
    "/accounts",
    status_code=201,
    summary="Open an account (zero balance)",
    responses={409: {"model": Problem, "description": "The id is taken (`account_exists`)"}},
)
def open_account(
    body: AccountIn,
    state: StateDep,
    principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
) -> AccountOut:
    try:
        account = state.ledger.open_account(
            kind=AccountKind(body.kind.value), name=body.name, account_id=body.id
        )
    except AccountError as error:
        status = _ACCOUNT_ERROR_STATUS.get(error.code, 422)
        raise ProblemError(status, error.code, "Account not opened", str(error)) from None
    return AccountOut.of(account)


_READERS = require_roles(*Role)


def _account(state: StateDep, account_id: UUID) -> Account:
    with state.engine.connect() as connection:
        account = get_account(connection, account_id)
    if account is None:
        raise ProblemError(404, "account_not_found", "Account not found", f"no {account_id}")
    return account


@router.get("/accounts/{account_id}", summary="An account and its balance", responses=_NOT_FOUND)
def read_account(
    account_id: UUID,
    state: StateDep,
    principal: Annotated[Principal, Depends(_READERS)],
) -> AccountOut:
    check_account_access(principal, account_id)
    return AccountOut.of(_account(state, account_id))


@router.get(
    "/accounts/{account_id}/transfers", summary="History, newest first", responses=_NOT_FOUND
)
def account_history(
    account_id: UUID,
    state: StateDep,
    principal: Annotated[Principal, Depends(_READERS)],
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_PAGE)] = DEFAULT_HISTORY_PAGE,
    cursor: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="`next_cursor` of the page before")
    ] = None,
) -> HistoryPage:
    check_account_access(principal, account_id)
    _account(state, account_id)
    with state.engine.connect() as connection:
        # One more than asked: whether it exists says if there is a next page.
        entries = history(connection, account_id, before_seq=cursor, limit=limit + 1)
    page = entries[:limit]
    more = len(entries) > limit
    return HistoryPage(
        items=[HistoryEntry.of(e, account_id) for e in page],
        next_cursor=page[-1].seq if more else None,
    )
