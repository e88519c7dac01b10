"""Consistent reads of the journal: one read transaction, entries streamed page by page, and
periods of ledger time turned into ranges of sequence numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rollon.ledger.accounts import Account
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.queries import last_seq_at, list_accounts
from rollon.ledger.schema import transfers
from rollon.ledger.storage import entry_from_row
from rollon.ledger.transfers import JournalEntry

PAGE_SIZE = 5_000
END_OF_TIME_NS = 2**63 - 1
LAST_SEQ = 2**63 - 1


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A read transaction that sees one state of the books from start to end, while the
    ledger keeps writing (PostgreSQL: REPEATABLE READ; SQLite: a WAL read transaction)."""
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**options) as connection, connection.begin():
        yield connection


def iter_entries(
    connection: Connection,
    first_seq: int = 1,
    last_seq: int = LAST_SEQ,
    page_size: int = PAGE_SIZE,
) -> Iterator[list[JournalEntry]]:
    """The entries first_seq..last_seq in order, a page at a time (keyset pagination)."""
    assert 0 < page_size <= PAGE_SIZE
    after = first_seq - 1
    while after < last_seq:
        rows = connection.execute(
            sa.select(transfers)
            .where(transfers.c.seq > after, transfers.c.seq <= last_seq)
            .order_by(transfers.c.seq)
            .limit(page_size)
        ).all()
        if not rows:
            return
        yield [entry_from_row(row) for row in rows]
        after = rows[-1].seq


@dataclass(frozen=True, slots=True)
class Period:
    """Ledger time [from_ns, to_ns); None means from the first entry, or up to now."""

    from_ns: int | None = None
    to_ns: int | None = None

    def __post_init__(self) -> None:
        if self.from_ns is not None and self.to_ns is not None and self.from_ns >= self.to_ns:
            raise AuditInputError("period_empty", "the period must start before it ends")
        for bound in (self.from_ns, self.to_ns):
            if bound is not None and not 0 < bound <= END_OF_TIME_NS:
                raise AuditInputError("period_out_of_range", "a period bound is out of range")


@dataclass(frozen=True, slots=True)
class SeqRange:
    """The entries of a period: first_seq..last_seq (empty when first_seq > last_seq), and
    the sequence number the opening balances are taken at (0: the books were empty)."""

    first_seq: int
    last_seq: int
    opening_seq: int


def seq_range(connection: Connection, period: Period) -> SeqRange:
    """Resolve a period to the entries it holds, by the ledger's recording time."""
    opening = 0 if period.from_ns is None else last_seq_at(connection, period.from_ns - 1)
    last = last_seq_at(connection, END_OF_TIME_NS if period.to_ns is None else period.to_ns - 1)
    return SeqRange(first_seq=opening + 1, last_seq=last, opening_seq=opening)


def accounts_before(connection: Connection, at_ns: int | None) -> dict[UUID, Account]:
    """Every account opened before `at_ns` (all of them when None), by id."""
    return {a.id: a for a in list_accounts(connection) if at_ns is None or a.created_at_ns < at_ns}
