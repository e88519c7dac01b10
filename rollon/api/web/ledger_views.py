"""Ledger reads the pages share: an account's history as lines people read, with the
other side's name as the ledger holds it (never a name a visitor typed)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from uuid import UUID, uuid5

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rollon.ledger.accounts import AccountKind
from rollon.ledger.queries import history
from rollon.ledger.schema import accounts
from rollon.ledger.transfers import JournalEntry, TransferFlag

HISTORY_PAGE: Final = 20
# Ids of the operations the pages start: derived from the viewer's token and the id the
# form was given, so a double submit is one operation and no visitor can pick another's id.
_OPERATION_NAMESPACE: Final = UUID("6f1c2a4e-9b3d-4f7a-8e51-0c2d9a7b3e14")


def operation_id(token_id: UUID, purpose: str, form_id: UUID) -> UUID:
    """The ledger id of an operation started by a page form."""
    return uuid5(_OPERATION_NAMESPACE, f"{token_id}/{purpose}/{form_id}")


@dataclass(frozen=True, slots=True)
class HistoryLine:
    seq: int
    timestamp_ns: int
    code: str
    incoming: bool
    amount: int
    counterparty: str
    counterparty_is_system: bool
    memo: str
    pending: bool
    balance_after: int


def account_names(connection: Connection, ids: Iterable[UUID]) -> dict[UUID, tuple[str, str]]:
    """Name and kind of each of these accounts (a page's worth)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = connection.execute(
        sa.select(accounts.c.id, accounts.c.name, accounts.c.kind).where(accounts.c.id.in_(wanted))
    )
    return {row.id: (row.name, row.kind) for row in rows}


def history_page(
    connection: Connection, account_id: UUID, before_seq: int | None
) -> tuple[list[HistoryLine], int | None]:
    """One page of an account's history, newest first, and the cursor of the next page."""
    entries = history(connection, account_id, before_seq=before_seq, limit=HISTORY_PAGE + 1)
    page = entries[:HISTORY_PAGE]
    others = [_other_side(entry, account_id) for entry in page]
    names = account_names(connection, others)
    lines = []
    for entry, other in zip(page, others, strict=True):
        transfer = entry.transfer
        incoming = transfer.credit_account_id == account_id
        name, kind = names.get(other, ("?", AccountKind.SYSTEM.value))
        lines.append(
            HistoryLine(
                seq=entry.seq,
                timestamp_ns=entry.timestamp_ns,
                code=transfer.code.value,
                incoming=incoming,
                amount=transfer.amount,
                counterparty=name,
                counterparty_is_system=kind == AccountKind.SYSTEM.value,
                memo=transfer.memo,
                pending=bool(transfer.flags & TransferFlag.PENDING),
                balance_after=entry.credit_balance_after if incoming else entry.debit_balance_after,
            )
        )
    next_cursor = page[-1].seq if len(entries) > HISTORY_PAGE else None
    return lines, next_cursor


def _other_side(entry: JournalEntry, account_id: UUID) -> UUID:
    transfer = entry.transfer
    if transfer.debit_account_id == account_id:
        return transfer.credit_account_id
    return transfer.debit_account_id
