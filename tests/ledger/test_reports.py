"""Exchange-point closings and the monthly activity report (JSON and SVG chart); issuance
through an exchange point, which the closing reads."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from uuid import uuid4

import pytest
from sqlalchemy.engine import Engine

from rollon.ledger import chart, operations
from rollon.ledger.accounts import AccountKind
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.reports import (
    exchange_point_closing,
    monthly_report,
    parse_month,
    report_chart_svg,
    report_json,
)
from rollon.ledger.service import Ledger
from rollon.ledger.transfers import Result, TransferFlag
from rollon.ledger.verify import verify_database
from tests.ledger.audit_books import Books, build_books, find_seq, sql_delete
from tests.ledger.builders import ManualClock

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def books(ledger: Ledger, clock: ManualClock) -> Books:
    return build_books(ledger, clock)


# -- issuance at an exchange point -------------------------------------------------------------
def test_issuance_through_an_exchange_point_is_one_linked_chain() -> None:
    member, point, operation = uuid4(), uuid4(), uuid4()
    legs = operations.issuance(operation, member, 1_000, "R-1", 500, exchange_point_id=point)
    route = [(leg.debit_account_id, leg.credit_account_id, leg.amount) for leg in legs]
    assert route == [
        (chart.ISSUANCE.id, point, 1_000),
        (point, member, 1_000),
        (chart.BANK.id, chart.RESERVE.id, 1_000),
        (chart.ISSUANCE.id, point, 50),
        (point, member, 50),
        (chart.GRANTS.id, chart.RESERVE.id, 50),
    ]
    assert all(leg.flags & TransferFlag.LINKED for leg in legs[:-1])
    assert not legs[-1].flags & TransferFlag.LINKED
    assert len({leg.id for leg in legs}) == 6
    # Without an exchange point: the legs others rely on, unchanged.
    plain = operations.issuance(operation, member, 1_000, "R-1", 500)
    assert [(t.debit_account_id, t.credit_account_id) for t in plain] == [
        (chart.ISSUANCE.id, member),
        (chart.BANK.id, chart.RESERVE.id),
        (chart.ISSUANCE.id, member),
        (chart.GRANTS.id, chart.RESERVE.id),
    ]


def test_issuance_through_an_exchange_point_is_idempotent(engine: Engine, ledger: Ledger) -> None:
    member = ledger.open_account(kind=AccountKind.MEMBER, name="Anne")
    point = ledger.open_account(kind=AccountKind.EXCHANGE_POINT, name="Comptoir")
    other = ledger.open_account(kind=AccountKind.EXCHANGE_POINT, name="Autre comptoir")
    operation = uuid4()
    first = ledger.issue(operation, member.id, 2_000, "R-2", exchange_point_id=point.id)
    again = ledger.issue(operation, member.id, 2_000, "R-2", exchange_point_id=point.id)
    moved = ledger.issue(operation, member.id, 2_000, "R-2", exchange_point_id=other.id)
    assert (first.result, again.result) == (Result.OK, Result.EXISTS)
    assert moved.result is Result.EXISTS_WITH_DIFFERENT_FIELDS
    assert verify_database(engine, []).entries_checked == 3


# -- closing -----------------------------------------------------------------------------------
def test_exchange_point_closing_of_a_day(engine: Engine, books: Books) -> None:
    with engine.connect() as connection:
        (closing,) = exchange_point_closing(connection, books.day1)
        (quiet,) = exchange_point_closing(connection, books.day2, books.comptoir.id)
    assert closing.exchange_point_id == books.comptoir.id and closing.name == "Comptoir Rouen"
    assert (closing.issuances, closing.euros_collected) == (1, 10_000)
    assert (closing.rollon_issued, closing.bonus_issued, closing.unattributed) == (10_500, 500, 0)
    assert [(line.amount, line.bonus, line.member_id) for line in closing.lines] == [
        (10_000, False, books.anne.id),
        (500, True, books.anne.id),
    ]
    assert closing.lines[0].euro_reference == "CAISSE-ROUEN-0001"
    # Bruno's issuance went through no exchange point; day 2 saw none at the counter.
    assert (quiet.issuances, quiet.rollon_issued, quiet.euros_collected) == (0, 0, 0)


def test_closing_shows_a_chain_broken_with_sql(engine: Engine, books: Books) -> None:
    sql_delete(engine, find_seq(engine, memo="CAISSE-ROUEN-0001", ledger="EUR"))
    with engine.connect() as connection:
        (closing,) = exchange_point_closing(connection, books.day1)
    assert (closing.euros_collected, closing.unattributed) == (0, 10_000)
    assert closing.bonus_issued == 500  # the bonus chain is whole


def test_closing_refuses_an_account_that_is_not_an_exchange_point(
    engine: Engine, books: Books
) -> None:
    with engine.connect() as connection, pytest.raises(AuditInputError) as refused:
        exchange_point_closing(connection, books.day1, books.anne.id)
    assert refused.value.code == "not_an_exchange_point"


# -- monthly report ----------------------------------------------------------------------------
def test_monthly_report(engine: Engine, books: Books) -> None:
    with engine.connect() as connection:
        report = monthly_report(connection, "2025-06", books.day3_ns)
    data = report_json(report)
    assert data["month"] == "2025-06"
    assert data["issued"] == {"count": 3, "value": 15_500}
    assert data["euros_deposited"] == {"count": 2, "value": 15_000}
    assert data["bonus_from_grants"] == {"count": 1, "value": 500}
    assert data["payments"] == {"count": 2, "value": 1_850}  # 12.50, and 6.00 of a held 7.00
    assert data["transfers"] == {"count": 1, "value": 500}
    assert data["refunds"] == {"count": 1, "value": 250}
    assert data["reconverted"] == {"count": 1, "value": 1_000}
    assert data["reconversion_fees"] == {"count": 1, "value": 15}
    assert data["payouts"] == {"count": 1, "value": 985}
    assert (data["active_members"], data["active_merchants"]) == (2, 1)
    assert data["circulation"] == {"start": 0, "end": 14_500}
    assert data["reserve"] == {"start": 0, "end": 14_500}
    daily = data["daily"]
    assert daily[0]["day"] == "2025-06-01" and daily[-1]["day"] == books.day3.isoformat()
    assert [d["circulation"] for d in daily[-3:]] == [15_500, 15_500, 14_500]


def test_monthly_report_of_a_finished_month_has_every_day(engine: Engine, books: Books) -> None:
    later = books.day3_ns + 60 * 86_400 * 10**9
    with engine.connect() as connection:
        report = monthly_report(connection, "2025-06", later)
        july = monthly_report(connection, "2025-07", later)
    assert len(report.daily) == 30
    assert (july.issued.count, july.circulation_start, july.circulation_end) == (0, 14_500, 14_500)
    assert len(july.daily) == 31


def test_chart_is_an_svg_of_circulation_and_reserve(engine: Engine, books: Books) -> None:
    with engine.connect() as connection:
        report = monthly_report(connection, "2025-06", books.day3_ns)
    root = ET.fromstring(report_chart_svg(report))
    assert root.tag == f"{SVG}svg"
    lines = root.findall(f"{SVG}polyline")
    assert [line.findtext(f"{SVG}title") for line in lines] == [
        "reserve (euros)",
        "RolloN in circulation",
    ]
    points = [p.split(",") for p in lines[1].attrib["points"].split()]
    assert len(points) == len(report.daily)
    ys = [float(y) for _, y in points]
    assert ys[0] > ys[-1]  # none at the start of the month, 145 RolloN at the end
    assert "2025-06" in (root.findtext(f"{SVG}title") or "")


@pytest.mark.parametrize("text", ["2025-13", "2025-6", "June", "", "1969-12", "2025-06-01"])
def test_bad_months_are_refused(text: str) -> None:
    with pytest.raises(AuditInputError) as refused:
        parse_month(text)
    assert refused.value.code == "bad_month"


def test_a_month_not_started_is_refused(engine: Engine, clock: ManualClock) -> None:
    with engine.connect() as connection, pytest.raises(AuditInputError) as refused:
        monthly_report(connection, "2030-01", clock.now_ns)  # the clock is in June 2025
    assert refused.value.code == "month_in_future"
