"""Exports read back: the FEC's 18 columns and balances, the CSV's rows, the Beancount file
through bean-check (whole journal and a period), and refused requests."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from rollon.ledger.audit.book_accounts import book_account
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.exports import ExportFormat, export, parse_format
from rollon.ledger.audit.fec import COLUMNS as FEC_COLUMNS
from rollon.ledger.audit.local_time import day_start_ns
from rollon.ledger.audit.snapshot import Period
from rollon.ledger.queries import list_accounts, trial_balance
from rollon.ledger.service import Ledger
from tests.ledger.audit_books import Books, build_books, last_seq, sql_edit_amount
from tests.ledger.builders import ManualClock

POSTED_TRANSFERS = 16  # build_books: 18 entries, of which two holds move nothing
_AMOUNT = re.compile(r"^\d+,\d{2}$")
_DATE = re.compile(r"^\d{8}$")


@pytest.fixture
def books(ledger: Ledger, clock: ManualClock) -> Books:
    return build_books(ledger, clock)


def text_of(
    engine: Engine, fmt: ExportFormat, period: Period | None = None, separator: str = "\t"
) -> str:
    return "".join(export(engine, fmt, period or Period(), fec_separator=separator))


def cents(text: str) -> int:
    units, decimals = text.split(",")
    return int(units) * 100 + int(decimals)


# -- FEC ---------------------------------------------------------------------------------------
def parse_fec(text: str, separator: str = "\t") -> list[dict[str, str]]:
    lines = text.splitlines()
    assert lines[0].split(separator) == list(FEC_COLUMNS)
    rows = []
    for line in lines[1:]:
        fields = line.split(separator)
        assert len(fields) == 18, line
        rows.append(dict(zip(FEC_COLUMNS, fields, strict=True)))
    return rows


def check_fec(rows: list[dict[str, str]]) -> dict[tuple[str, str], int]:
    """Every écriture balances; returns each account's balance (credit less debit)."""
    per_entry: defaultdict[tuple[str, str], int] = defaultdict(int)
    per_account: defaultdict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        for date_column in ("EcritureDate", "PieceDate", "ValidDate"):
            assert _DATE.match(row[date_column]), row
        assert _AMOUNT.match(row["Debit"]) and _AMOUNT.match(row["Credit"]), row
        debit, credit = cents(row["Debit"]), cents(row["Credit"])
        assert (debit == 0) != (credit == 0), row  # one side per line
        assert row["CompteNum"][:3].isdigit()
        per_entry[row["JournalCode"], row["EcritureNum"]] += debit - credit
        per_account[row["CompteNum"], row["CompAuxNum"]] += credit - debit
    assert all(v == 0 for v in per_entry.values()), per_entry
    return dict(per_account)


def expected_balances(engine: Engine, at_ns: int | None = None) -> dict[tuple[str, str], int]:
    with engine.connect() as connection:
        accounts = {a.id: a for a in list_accounts(connection)}
        lines = trial_balance(connection, at_ns).lines
    out: defaultdict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        book = book_account(accounts[line.account_id])
        if line.balance:
            out[book.number, book.aux_number] += line.balance
    return dict(out)


def test_fec_has_its_columns_and_balances(engine: Engine, books: Books) -> None:
    rows = parse_fec(text_of(engine, ExportFormat.FEC))
    balances = check_fec(rows)
    assert {k: v for k, v in balances.items() if v} == expected_balances(engine)
    # One debit and one credit line per posted transfer: holds and their release move nothing.
    assert len(rows) == 2 * POSTED_TRANSFERS
    assert {row["JournalCode"] for row in rows} == {"EMI", "PAI", "VIR", "REM", "REC", "COM", "VER"}
    for journal in {row["JournalCode"] for row in rows}:
        numbers = sorted({int(r["EcritureNum"]) for r in rows if r["JournalCode"] == journal})
        assert numbers == list(range(1, len(numbers) + 1))  # continuous within each journal
    member = next(r for r in rows if r["CompAuxNum"].startswith("ADH"))
    assert member["CompteNum"] == "8021" and member["Idevise"] == "RLN"
    bank = next(r for r in rows if r["CompteNum"] == "5120")
    assert bank["Idevise"] == "" and bank["Montantdevise"] == ""
    deposit = next(r for r in rows if "CAISSE-ROUEN-0001" in r["EcritureLib"])
    assert deposit["EcritureDate"] == books.day1.strftime("%Y%m%d")


def test_fec_of_a_period_carries_balances_forward(engine: Engine, books: Books) -> None:
    start = day_start_ns(books.day2)
    end = day_start_ns(books.day3)
    rows = parse_fec(text_of(engine, ExportFormat.FEC, Period(start, end), "|"), "|")
    opening = [r for r in rows if r["JournalCode"] == "AN"]
    assert {r["EcritureNum"] for r in opening} == {"1", "2"}  # one per ledger
    assert all(r["EcritureDate"] == books.day2.strftime("%Y%m%d") for r in opening)
    assert {r["JournalCode"] for r in rows} - {"AN"} == {"PAI", "VIR", "REM"}
    balances = check_fec(rows)
    assert {k: v for k, v in balances.items() if v} == expected_balances(engine, end - 1)


def test_fec_text_fields_never_break_the_columns(engine: Engine, ledger: Ledger) -> None:
    from uuid import uuid4

    from rollon.ledger.accounts import AccountKind

    odd = ledger.open_account(kind=AccountKind.MEMBER, name="Tab\there | pipe")
    assert ledger.issue(uuid4(), odd.id, 100, "line\nbreak\tand | pipe").applied
    rows = parse_fec(text_of(engine, ExportFormat.FEC))
    assert any(r["CompAuxLib"] == "Tab here pipe" for r in rows)


# -- CSV ---------------------------------------------------------------------------------------
def test_csv_has_one_row_per_entry(engine: Engine, books: Books) -> None:
    rows = list(csv.DictReader(io.StringIO(text_of(engine, ExportFormat.CSV))))
    assert [int(r["seq"]) for r in rows] == list(range(1, last_seq(engine) + 1))
    assert all(r["amount"].isdigit() for r in rows)  # centimes, never a decimal
    pending = [r for r in rows if "pending" in r["flags"].split("|")]
    assert len(pending) == 2
    # A name a spreadsheet would run as a formula is quoted.
    assert any(r["credit_account_name"] == "'=Bruno Hamel" for r in rows)
    assert rows[0]["recorded_at"].endswith("Z")


def test_csv_of_a_period(engine: Engine, books: Books) -> None:
    start = day_start_ns(books.day3)
    rows = list(csv.DictReader(io.StringIO(text_of(engine, ExportFormat.CSV, Period(start)))))
    assert {r["code"] for r in rows} == {"reconversion", "fee", "payout"}


# -- Beancount ---------------------------------------------------------------------------------
def bean_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "books.beancount"
    path.write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "beancount.scripts.check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_beancount_passes_bean_check(engine: Engine, books: Books, tmp_path: Path) -> None:
    text = text_of(engine, ExportFormat.BEANCOUNT)
    checked = bean_check(text, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "commodity RLN" in text and "commodity EUR" in text
    assert text.count(" open ") == 11  # seven system accounts and four of people
    assert text.count(" balance ") == 11


def test_beancount_of_a_period_passes_bean_check(
    engine: Engine, books: Books, tmp_path: Path
) -> None:
    period = Period(day_start_ns(books.day2), day_start_ns(books.day3))
    text = text_of(engine, ExportFormat.BEANCOUNT, period)
    checked = bean_check(text, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "balances carried forward, RLN" in text
    assert "reconversion" not in text


def test_beancount_of_broken_books_fails_bean_check(
    engine: Engine, books: Books, tmp_path: Path
) -> None:
    """bean-check is a real check: once an amount is edited behind the ledger's back, the
    postings no longer add up to the balances the ledger holds."""
    sql_edit_amount(engine, 9, delta=100)
    checked = bean_check(text_of(engine, ExportFormat.BEANCOUNT), tmp_path)
    assert checked.returncode != 0
    assert "Balance failed" in checked.stdout + checked.stderr


# -- requests refused --------------------------------------------------------------------------
def test_bad_export_requests_are_refused(engine: Engine) -> None:
    with pytest.raises(AuditInputError) as refused:
        export(engine, ExportFormat.JOURNAL, Period(from_ns=1))
    assert refused.value.code == "journal_export_is_whole"
    with pytest.raises(AuditInputError) as refused:
        parse_format("xlsx")
    assert refused.value.code == "unknown_format"
    assert parse_format(" FEC ") is ExportFormat.FEC
    with pytest.raises(AuditInputError) as refused:
        Period(from_ns=10, to_ns=10)
    assert refused.value.code == "period_empty"
    with pytest.raises(AuditInputError) as refused:
        export(engine, ExportFormat.FEC, fec_separator=";")
    assert refused.value.code == "bad_separator"


def test_exports_stream_page_by_page(engine: Engine, ledger: Ledger) -> None:
    """The export arrives in chunks, one per page of the journal, not as one string."""
    from uuid import uuid4

    from rollon.ledger.accounts import AccountKind
    from rollon.ledger.audit import snapshot

    anne = ledger.open_account(kind=AccountKind.MEMBER, name="Anne")
    for _ in range(7):
        assert ledger.issue(uuid4(), anne.id, 100, "x").applied
    chunks = list(export(engine, ExportFormat.CSV))
    assert len(chunks) == 2  # the header, then one page (14 entries < PAGE_SIZE)
    assert len("".join(chunks).splitlines()) == 15
    with engine.connect() as connection:
        pages = list(snapshot.iter_entries(connection, page_size=4))
    assert [len(p) for p in pages] == [4, 4, 4, 2]
