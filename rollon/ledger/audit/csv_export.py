"""The journal as CSV: one row per entry, every entry (holds and their release included),
amounts in centimes, times both as ISO 8601 UTC and as ledger nanoseconds.

Free text (account names, memos) that a spreadsheet would run as a formula (it starts with
=, +, -, @ or a control character) is prefixed with a quote mark, as OWASP advises.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from uuid import UUID

from sqlalchemy.engine import Connection

from rollon.ledger.audit.local_time import to_datetime
from rollon.ledger.audit.snapshot import Period, iter_entries, seq_range
from rollon.ledger.queries import list_accounts
from rollon.ledger.transfers import JournalEntry, TransferFlag

COLUMNS = (
    "seq",
    "recorded_at",
    "timestamp_ns",
    "event_time_ns",
    "transfer_id",
    "ledger",
    "code",
    "flags",
    "debit_account_id",
    "debit_account_name",
    "credit_account_id",
    "credit_account_name",
    "amount",
    "pending_id",
    "memo",
    "debit_balance_after",
    "credit_balance_after",
    "hash",
)

Progress = Callable[[int], None]


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _flag_names(flags: TransferFlag) -> str:
    return "|".join(f.name.lower() for f in TransferFlag if f and f in flags and f.name)


def _row(entry: JournalEntry, names: Mapping[UUID, str]) -> list[object]:
    t = entry.transfer
    return [
        entry.seq,
        to_datetime(entry.timestamp_ns).isoformat().replace("+00:00", "Z"),
        entry.timestamp_ns,
        "" if t.event_time_ns is None else t.event_time_ns,
        t.id,
        t.ledger.value,
        t.code.value,
        _flag_names(t.flags),
        t.debit_account_id,
        _text(names.get(t.debit_account_id, "")),
        t.credit_account_id,
        _text(names.get(t.credit_account_id, "")),
        t.amount,
        "" if t.pending_id is None else t.pending_id,
        _text(t.memo),
        entry.debit_balance_after,
        entry.credit_balance_after,
        entry.hash.hex(),
    ]


def csv_lines(
    connection: Connection, period: Period, progress: Progress | None = None
) -> Iterator[str]:
    """The CSV of a period, read from `connection` (use a read snapshot), in chunks."""
    names = {a.id: a.name for a in list_accounts(connection)}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    seqs = seq_range(connection, period)
    done = 0
    for page in iter_entries(connection, seqs.first_seq, seqs.last_seq):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_row(e, names) for e in page)
        yield buffer.getvalue()
        done += len(page)
        if progress is not None:
            progress(done)
