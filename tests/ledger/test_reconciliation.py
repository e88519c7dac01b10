"""Reconciliation: circulation against the reserve at any moment, and bank statements
(CAMT.053 and CSV) matched against the ledger's bank-side transfers, on clean books and on
books broken with plain SQL; malformed statements refused with a clear code."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rollon.ledger import chart
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.reconciliation import (
    StatementReconciliation,
    reconcile_statement,
    reserve_coverage,
)
from rollon.ledger.audit.statement_store import list_statements, load_statement, store_statement
from rollon.ledger.audit.statements import MAX_STATEMENT_BYTES, Statement, parse_statement
from rollon.ledger.schema import accounts
from rollon.ledger.service import Ledger
from rollon.ledger.verify import verify_database
from tests.ledger.audit_books import Books, build_books, find_seq, sql_delete
from tests.ledger.builders import START_NS, ManualClock

CAMT_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
IBAN = "FR7630006000011234567890189"


@pytest.fixture
def books(ledger: Ledger, clock: ManualClock) -> Books:
    return build_books(ledger, clock)


def camt(
    entries: Sequence[tuple[str, str, str, str]],
    opening: str = "0.00",
    closing: str | None = None,
    *,
    namespace: str = CAMT_NS,
    currency: str = "EUR",
    period: tuple[str, str] = ("2025-06-15", "2025-06-18"),
    statements: int = 1,
) -> bytes:
    """A CAMT.053 statement. Each entry: (signed amount, booking date, end-to-end id, text)."""
    total = sum(_cents(e[0]) for e in entries)
    closing = closing or _money(_cents(opening) + total)

    def balance(code: str, amount: str, day: str) -> str:
        cents = _cents(amount)
        return (
            f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f'<Amt Ccy="{currency}">{_money(abs(cents))}</Amt>'
            f"<CdtDbtInd>{'CRDT' if cents >= 0 else 'DBIT'}</CdtDbtInd>"
            f"<Dt><Dt>{day}</Dt></Dt></Bal>"
        )

    def entry(amount: str, day: str, reference: str, text: str) -> str:
        cents = _cents(amount)
        side = "Dbtr" if cents >= 0 else "Cdtr"
        refs = f"<Refs><EndToEndId>{reference}</EndToEndId></Refs>" if reference else ""
        return (
            f'<Ntry><Amt Ccy="{currency}">{_money(abs(cents))}</Amt>'
            f"<CdtDbtInd>{'CRDT' if cents >= 0 else 'DBIT'}</CdtDbtInd><Sts>BOOK</Sts>"
            f"<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>"
            f"<AcctSvcrRef>BANK-{day}-{abs(cents)}</AcctSvcrRef>"
            f"<NtryDtls><TxDtls>{refs}<RltdPties><{side}><Nm>Someone</Nm></{side}></RltdPties>"
            f"<RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
        )

    statement = (
        f"<Stmt><Id>STMT-2025-06</Id><CreDtTm>{period[1]}T20:00:00</CreDtTm>"
        f"<FrToDt><FrDtTm>{period[0]}T00:00:00</FrDtTm><ToDtTm>{period[1]}T23:59:59</ToDtTm></FrToDt>"
        f"<Acct><Id><IBAN>{IBAN}</IBAN></Id><Ccy>{currency}</Ccy></Acct>"
        + balance("OPBD", opening, period[0])
        + balance("CLBD", closing, period[1])
        + "".join(entry(*e) for e in entries)
        + "</Stmt>"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{namespace}"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>MSG-1</MsgId><CreDtTm>{period[1]}T20:00:00</CreDtTm></GrpHdr>"
        + statement * statements
        + "</BkToCstmrStmt></Document>"
    ).encode()


def _cents(amount: str) -> int:
    sign = -1 if amount.startswith("-") else 1
    units, _, decimals = amount.lstrip("-").partition(".")
    return sign * (int(units) * 100 + int(decimals.ljust(2, "0")))


def _money(cents: int) -> str:
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"


# build_books on the bank side: +100.00 (CAISSE-ROUEN-0001) and +50.00 (VIR-BQ-0002) on
# 15 June, -9.85 (SEPA-PAYOUT-0001) on 17 June; the 5.00 bonus comes from grants.
FULL_MONTH = [
    ("100.00", "2025-06-15", "", "Versement comptoir CAISSE-ROUEN-0001"),
    ("50.00", "2025-06-16", "", "Virement de M. Hamel"),
    ("-9.85", "2025-06-18", "SEPA-PAYOUT-0001", "Reconversion"),
    ("-1.20", "2025-06-18", "", "Frais de tenue de compte"),
]


def reconcile(engine: Engine, data: bytes) -> StatementReconciliation:
    with engine.connect() as connection:
        return reconcile_statement(connection, parse_statement(data))


def explained(result: StatementReconciliation) -> dict[str, int]:
    return {item.kind: item.amount for item in result.explanation}


# -- circulation against the reserve ------------------------------------------------------------
def test_coverage_now_and_at_past_moments(engine: Engine, books: Books) -> None:
    with engine.connect() as connection:
        before = reserve_coverage(connection, START_NS - 1)
        day1 = reserve_coverage(connection, books.day1_ns)
        now = reserve_coverage(connection)
    assert (before.circulation, before.reserve, before.balanced) == (0, 0, True)
    assert (day1.circulation, day1.reserve, day1.balanced) == (15_500, 15_500, True)
    assert day1.held_by_accounts == 15_500
    # Day 3 reconverted 10.00: 0.15 of fee and 9.85 paid out left the reserve.
    assert (now.circulation, now.reserve, now.difference) == (14_500, 14_500, 0)
    assert (now.revenue, now.payouts_due, now.grants) == (15, 0, -500)


def test_coverage_shows_books_broken_with_sql(engine: Engine, books: Books) -> None:
    with engine.begin() as connection:
        connection.execute(
            accounts.update()
            .where(accounts.c.id == chart.RESERVE.id)
            .values(credits_posted=accounts.c.credits_posted + 100)
        )
    with engine.connect() as connection:
        now = reserve_coverage(connection)
    assert now.difference == 100 and not now.balanced
    report = verify_database(engine, [])
    assert any(
        p.kind == "balance_mismatch" and p.account_id == chart.RESERVE.id for p in report.problems
    )
    assert "reserve_mismatch" not in {p.kind for p in report.problems}  # the journal holds


def test_coverage_at_a_past_moment_after_a_deleted_deposit(engine: Engine, books: Books) -> None:
    sql_delete(engine, find_seq(engine, memo="VIR-BQ-0002", ledger="EUR"))
    with engine.connect() as connection:
        day1 = reserve_coverage(connection, books.day1_ns)
    assert (day1.circulation, day1.reserve, day1.difference) == (15_500, 10_500, -5_000)
    assert "reserve_mismatch" in {p.kind for p in verify_database(engine, []).problems}


# -- bank statements ---------------------------------------------------------------------------
def test_camt053_statement_reconciles_with_the_difference_explained(
    engine: Engine, books: Books
) -> None:
    result = reconcile(engine, camt(FULL_MONTH))
    by = {m.line.line_no: (m.by, m.movement.amount) for m in result.matched}
    assert by == {
        1: ("reference", 10_000),
        2: ("amount_and_date", 5_000),
        3: ("reference", -985),
    }
    assert [line.amount for line in result.unmatched_lines] == [-120]
    assert result.unmatched_movements == []
    assert (result.statement_total, result.ledger_total, result.difference) == (
        13_895,
        14_015,
        -120,
    )
    assert explained(result) == {
        "bank_lines_not_in_ledger": -120,
        "ledger_transfers_not_on_statement": 0,
        "booked_on_another_day": 0,
    }
    fund = result.fund
    assert fund is not None
    # The fund should hold the reserve and the fees; the bank holds 5.00 of bonus less (the
    # grant was not paid into it) and 1.20 of fees less.
    assert (fund.expected, fund.statement_closing, fund.grant_funded_bonus) == (14_515, 13_895, 500)
    assert fund.difference == -620


def test_ledger_transfers_missing_from_the_statement_are_listed(
    engine: Engine, books: Books
) -> None:
    result = reconcile(engine, camt([FULL_MONTH[0], FULL_MONTH[2]]))
    assert [m.memo for m in result.unmatched_movements] == ["VIR-BQ-0002"]
    assert explained(result)["ledger_transfers_not_on_statement"] == -5_000
    assert result.difference == sum(explained(result).values()) == -5_000
    assert not result.reconciled


def test_a_deposit_booked_the_day_after_is_explained(engine: Engine, books: Books) -> None:
    data = camt(FULL_MONTH[1:3], period=("2025-06-16", "2025-06-18"))
    result = reconcile(engine, data)
    assert len(result.matched) == 2 and result.reconciled
    assert explained(result)["booked_on_another_day"] == 5_000
    assert result.difference == 5_000


def test_csv_statement_reconciles(engine: Engine, books: Books) -> None:
    data = (
        b"Date;Debit;Credit;Reference;Description\n"
        b"15/06/2025;;100,00;CAISSE-ROUEN-0001;Versement comptoir\n"
        b"16/06/2025;;50,00;;Virement\n"
        b"18/06/2025;9,85;;SEPA-PAYOUT-0001;Reconversion\n"
    )
    result = reconcile(engine, data)
    assert result.reconciled and len(result.matched) == 3
    assert result.fund is None  # a CSV carries no balances


def test_statement_against_books_missing_a_payout(engine: Engine, books: Books) -> None:
    sql_delete(engine, find_seq(engine, memo="SEPA-PAYOUT-0001"))
    result = reconcile(engine, camt(FULL_MONTH))
    assert sorted(line.amount for line in result.unmatched_lines) == [-985, -120]
    assert explained(result)["bank_lines_not_in_ledger"] == -1_105


def test_statements_are_stored_once(engine: Engine, books: Books) -> None:
    data = camt(FULL_MONTH)
    statement = parse_statement(data)
    stored, created = store_statement(engine, data, statement, now_ns=1)
    again, created_again = store_statement(engine, data, statement, now_ns=2)
    assert created and not created_again and again.id == stored.id
    with engine.connect() as connection:
        loaded = load_statement(connection, stored.id)
        listed = list_statements(connection)
    assert loaded is not None and loaded.statement == statement
    assert [s.id for s in listed] == [stored.id]
    assert listed[0].account_iban == IBAN and listed[0].line_count == 4


# -- statements refused ------------------------------------------------------------------------
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><Document>&lol2;</Document>'
)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "statement_empty"),
        (b"   \n", "statement_empty"),
        (b"<Document><unclosed></Document>", "camt_malformed_xml"),
        (BILLION_LAUGHS, "camt_doctype_not_allowed"),
        (
            camt(FULL_MONTH, namespace="urn:iso:std:iso:20022:tech:xsd:camt.052.001.02"),
            "camt_not_camt053",
        ),
        (camt(FULL_MONTH, statements=2), "camt_statement_count"),
        (camt(FULL_MONTH, currency="USD"), "statement_currency_not_eur"),
        (camt(FULL_MONTH, closing="999.99"), "statement_unbalanced"),
        (
            camt(FULL_MONTH).replace(b"<BookgDt><Dt>2025-06-16</Dt></BookgDt>", b""),
            "camt_missing_field",
        ),
        (camt(FULL_MONTH).replace(b">50.00<", b">50.001<"), "statement_bad_amount"),
        (
            camt(FULL_MONTH).replace(b"<Dt>2025-06-16</Dt>", b"<Dt>16 June</Dt>"),
            "statement_bad_date",
        ),
        (
            camt(FULL_MONTH).replace(b"<IBAN>" + IBAN.encode() + b"</IBAN>", b""),
            "camt_missing_field",
        ),
        (b"booking_date;amount\n", "statement_empty"),
        (b"when;amount\n2025-06-15;1,00\n", "csv_missing_column"),
        (b"booking_date;reference\n2025-06-15;x\n", "csv_missing_column"),
        (b"booking_date;amount\n2025-06-15;1.005\n", "statement_bad_amount"),
        (b"booking_date;amount\n2025-06-15;douze\n", "statement_bad_amount"),
        (b"booking_date;amount\n2025-06-15;0,00\n", "statement_bad_amount"),
        (b"booking_date;amount\n31/02/2025;1,00\n", "statement_bad_date"),
        (b"booking_date;debit;credit\n2025-06-15;1,00;2,00\n", "statement_bad_amount"),
        (b"booking_date;amount;currency\n2025-06-15;1,00;USD\n", "statement_currency_not_eur"),
        (b"booking_date;amount;reference\n2025-06-15\n", "csv_bad_row"),
        (b"booking_date;amount\n2025-06-15;\xff\n", "csv_not_utf8"),
        (b"x" * (MAX_STATEMENT_BYTES + 1), "statement_too_large"),
    ],
    ids=[
        "empty",
        "blank",
        "broken-xml",
        "entities",
        "camt052",
        "two-statements",
        "dollars",
        "unbalanced",
        "no-booking-date",
        "three-decimals",
        "bad-date",
        "no-account",
        "csv-header-only",
        "csv-no-date-column",
        "csv-no-amount-column",
        "csv-three-decimals",
        "csv-words",
        "csv-zero",
        "csv-31-february",
        "csv-debit-and-credit",
        "csv-dollars",
        "csv-short-row",
        "csv-not-utf8",
        "too-large",
    ],
)
def test_malformed_statements_are_refused(data: bytes, code: str) -> None:
    with pytest.raises(AuditInputError) as refused:
        parse_statement(data)
    assert refused.value.code == code
    assert str(refused.value)  # a message a person can read


def test_csv_errors_name_the_line() -> None:
    with pytest.raises(AuditInputError) as refused:
        parse_statement(b"booking_date,amount\n2025-06-15,1.00\n2025-06-16,oops\n")
    assert refused.value.line == 3
    assert str(refused.value).startswith("line 3:")


def test_camt_batches_split_per_transaction() -> None:
    """A SEPA batch of payouts booked as one entry becomes one line per transaction."""
    batch = (
        b'<Ntry><Amt Ccy="EUR">30.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        b"<BookgDt><DtTm>2025-06-18T10:00:00+02:00</DtTm></BookgDt>"
        b"<NtryDtls>"
        b'<TxDtls><Refs><EndToEndId>P-1</EndToEndId></Refs><Amt Ccy="EUR">10.00</Amt></TxDtls>'
        b'<TxDtls><Refs><EndToEndId>P-2</EndToEndId></Refs><Amt Ccy="EUR">20.00</Amt></TxDtls>'
        b"</NtryDtls></Ntry>"
    )
    data = camt([], closing="-30.00").replace(b"</Stmt>", batch + b"</Stmt>")
    statement: Statement = parse_statement(data)
    assert [(line.amount, line.reference) for line in statement.lines] == [
        (-1_000, "P-1"),
        (-2_000, "P-2"),
    ]
    assert statement.lines[0].booking_date == date(2025, 6, 18)


def test_store_refuses_nothing_half_way(engine: Engine) -> None:
    """A refused file leaves no trace: nothing is stored before parsing succeeds."""
    with pytest.raises(AuditInputError):
        parse_statement(camt(FULL_MONTH, closing="1.00"))
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM bank_statements")).scalar() == 0
