"""One entry point for every export: pick a format and a period, get the file in chunks.

Each export is read from one read snapshot and streamed a page of the journal at a time, so
memory does not grow with the journal, and the ledger keeps writing meanwhile. Bad requests
(an empty period, a period on the journal export) are refused before the first chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from rollon.ledger.audit.beancount_file import beancount_lines
from rollon.ledger.audit.csv_export import csv_lines
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.fec import fec_lines
from rollon.ledger.audit.journal_file import journal_lines
from rollon.ledger.audit.snapshot import Period, read_snapshot

Progress = Callable[[int], None]
WHOLE_JOURNAL = Period()


class ExportFormat(StrEnum):
    """The export formats, by the name clients give."""

    FEC = "fec"
    CSV = "csv"
    BEANCOUNT = "beancount"
    JOURNAL = "journal"  # the whole journal, for offline verification


MEDIA_TYPES = {
    ExportFormat.FEC: "text/plain; charset=utf-8",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.BEANCOUNT: "text/plain; charset=utf-8",
    ExportFormat.JOURNAL: "application/x-ndjson",
}
FILE_SUFFIXES = {
    ExportFormat.FEC: ".txt",
    ExportFormat.CSV: ".csv",
    ExportFormat.BEANCOUNT: ".beancount",
    ExportFormat.JOURNAL: ".jsonl",
}


def parse_format(text: str) -> ExportFormat:
    """A format from its name, in any case; refused with `unknown_format` otherwise."""
    try:
        return ExportFormat(text.strip().lower())
    except ValueError:
        names = ", ".join(f.value for f in ExportFormat)
        raise AuditInputError(
            "unknown_format", f"{text!r} is not an export format ({names})"
        ) from None


def export(
    engine: Engine,
    fmt: ExportFormat,
    period: Period = WHOLE_JOURNAL,
    *,
    public_keys: Sequence[Ed25519PublicKey] = (),
    fec_separator: str = "\t",
    progress: Progress | None = None,
) -> Iterator[str]:
    """The export as text chunks. Checks the request now; reads when iterated."""
    if fmt is ExportFormat.JOURNAL and (period.from_ns is not None or period.to_ns is not None):
        raise AuditInputError(
            "journal_export_is_whole",
            "the journal export always holds the whole journal, so that it can be verified; "
            "leave out from and to",
        )
    if fmt is ExportFormat.FEC and fec_separator not in ("\t", "|"):
        raise AuditInputError("bad_separator", "the FEC separator is a tab or a pipe")
    return _stream(engine, fmt, period, public_keys, fec_separator, progress)


def _stream(
    engine: Engine,
    fmt: ExportFormat,
    period: Period,
    public_keys: Sequence[Ed25519PublicKey],
    fec_separator: str,
    progress: Progress | None,
) -> Iterator[str]:
    with read_snapshot(engine) as connection:
        if fmt is ExportFormat.FEC:
            yield from fec_lines(connection, period, fec_separator, progress)
        elif fmt is ExportFormat.CSV:
            yield from csv_lines(connection, period, progress)
        elif fmt is ExportFormat.BEANCOUNT:
            yield from beancount_lines(connection, period, progress)
        else:
            yield from journal_lines(connection, public_keys, time.time_ns(), progress)
