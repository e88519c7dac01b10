"""Read-side queries: accounts, balances now and at any past moment, history, trial balance.

Each costs the same at 10k or 1M transfers: a primary-key read, or index seeks on
(account, seq) and on timestamp. No query scans the journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rollon.ledger.accounts import Account, AccountKind, LedgerCode
from rollon.ledger.schema import accounts, transfers
from rollon.ledger.storage import account_from_row, entry_from_row
from rollon.ledger.transfers import JournalEntry

MAX_PAGE = 500


def get_account(connection: Connection, account_id: UUID) -> Account | None:
    row = connection.execute(sa.select(accounts).where(accounts.c.id == account_id)).first()
    return None if row is None else account_from_row(row)


def list_accounts(connection: Connection) -> list[Account]:
    rows = connection.execute(sa.select(accounts).order_by(accounts.c.ledger, accounts.c.id))
    return [account_from_row(row) for row in rows]


def get_transfer(connection: Connection, transfer_id: UUID) -> JournalEntry | None:
    row = connection.execute(sa.select(transfers).where(transfers.c.id == transfer_id)).first()
    return None if row is None else entry_from_row(row)


def history(
    connection: Connection, account_id: UUID, before_seq: int | None = None, limit: int = 50
) -> list[JournalEntry]:
    """The account's entries, newest first, strictly before `before_seq` (the cursor)."""
    assert 0 < limit <= MAX_PAGE
    bound = before_seq if before_seq is not None else 2**63 - 1
    # Two index seeks, one per side, merged: cheaper than OR on both columns.
    sides = [
        sa.select(transfers)
        .where(column == account_id, transfers.c.seq < bound)
        .order_by(transfers.c.seq.desc())
        .limit(limit)
        for column in (transfers.c.debit_account_id, transfers.c.credit_account_id)
    ]
    rows = [row for side in sides for row in connection.execute(side)]
    rows.sort(key=lambda row: row.seq, reverse=True)
    return [entry_from_row(row) for row in rows[:limit]]


def last_seq_at(connection: Connection, at_ns: int) -> int:
    """The sequence number of the last entry recorded at or before `at_ns` (0 if none).

    Timestamps rise with seq (the journal's own order), so the entry with the latest
    timestamp up to `at_ns` is the last one: one seek on the timestamp index, where
    max(seq) over the range would read every entry before `at_ns`."""
    seq = connection.execute(
        sa.select(transfers.c.seq)
        .where(transfers.c.timestamp_ns <= at_ns)
        .order_by(transfers.c.timestamp_ns.desc())
        .limit(1)
    ).scalar_one_or_none()
    return int(seq or 0)


def balance_at_seq(connection: Connection, account_id: UUID, seq: int) -> int:
    """The account's posted balance just after entry `seq`, from the entries' own figures."""
    best: tuple[int, int] = (0, 0)  # (seq, balance)
    for column, balance in (
        (transfers.c.debit_account_id, transfers.c.debit_balance_after),
        (transfers.c.credit_account_id, transfers.c.credit_balance_after),
    ):
        row = connection.execute(
            sa.select(transfers.c.seq, balance)
            .where(column == account_id, transfers.c.seq <= seq)
            .order_by(transfers.c.seq.desc())
            .limit(1)
        ).first()
        if row is not None and row[0] > best[0]:
            best = (row[0], row[1])
    return best[1]


def balances_at_seq(connection: Connection, seq: int) -> dict[UUID, int]:
    """Every account's posted balance just after entry `seq`, in one statement: per account,
    its last entry on each side at or before `seq`, each found by one index seek."""
    entry = transfers.alias("entry")

    def last_on(side: sa.ColumnElement[UUID], value: sa.ColumnElement[int]) -> sa.ScalarSelect[int]:
        return (
            sa.select(value)
            .where(side == accounts.c.id, entry.c.seq <= seq)
            .order_by(entry.c.seq.desc())
            .limit(1)
            .scalar_subquery()
        )

    rows = connection.execute(
        sa.select(
            accounts.c.id,
            last_on(entry.c.debit_account_id, entry.c.seq),
            last_on(entry.c.debit_account_id, entry.c.debit_balance_after),
            last_on(entry.c.credit_account_id, entry.c.seq),
            last_on(entry.c.credit_account_id, entry.c.credit_balance_after),
        )
    )
    return {
        account_id: max((debit_seq or 0, debit or 0), (credit_seq or 0, credit or 0))[1]
        for account_id, debit_seq, debit, credit_seq, credit in rows
    }


def balance_at(connection: Connection, account_id: UUID, at_ns: int) -> int:
    """The account's posted balance as it was at `at_ns` (ledger time)."""
    return balance_at_seq(connection, account_id, last_seq_at(connection, at_ns))


@dataclass(frozen=True, slots=True)
class TrialBalanceLine:
    account_id: UUID
    name: str
    kind: AccountKind
    ledger: LedgerCode
    balance: int


@dataclass(frozen=True, slots=True)
class TrialBalance:
    """Balances per account at a moment; per ledger they sum to zero in sound books."""

    at_ns: int | None
    as_of_seq: int
    lines: Sequence[TrialBalanceLine]

    def total(self, ledger: LedgerCode) -> int:
        return sum(line.balance for line in self.lines if line.ledger == ledger)


def trial_balance(connection: Connection, at_ns: int | None = None) -> TrialBalance:
    """Every account's posted balance now (`at_ns` None) or at a past moment."""
    if at_ns is None:
        seq = last_seq_at(connection, 2**63 - 1)
        lines = [
            TrialBalanceLine(a.id, a.name, a.kind, a.ledger, a.balance)
            for a in list_accounts(connection)
        ]
        return TrialBalance(at_ns=None, as_of_seq=seq, lines=lines)
    seq = last_seq_at(connection, at_ns)
    balances = balances_at_seq(connection, seq)
    lines = [
        TrialBalanceLine(a.id, a.name, a.kind, a.ledger, balances.get(a.id, 0))
        for a in list_accounts(connection)
        if a.created_at_ns <= at_ns
    ]
    return TrialBalance(at_ns=at_ns, as_of_seq=seq, lines=lines)
