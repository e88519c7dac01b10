"""Reports for the people who run the currency: the exchange points' daily closing and the
monthly activity report (as JSON-ready data and as a chart).

Closing: an issuance made at an exchange point runs issuance → exchange point → member, each
RolloN leg followed in its linked chain by its euro leg (operations.issuance). For one local
day, each exchange point's closing sums the RolloN it handed out against the euros it
collected (bank → reserve) and the bonus on change (grants → reserve), for the operator's
cash count. RolloN credited to an exchange point outside such a chain are shown apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rollon.ledger import chart
from rollon.ledger.accounts import AccountKind, LedgerCode
from rollon.ledger.audit.book_accounts import posted_amount
from rollon.ledger.audit.chart_svg import Series, line_chart_svg
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.local_time import day_bounds_ns, local_date, month_bounds_ns
from rollon.ledger.audit.snapshot import iter_entries
from rollon.ledger.queries import balance_at_seq, get_account, last_seq_at, list_accounts
from rollon.ledger.schema import transfers
from rollon.ledger.storage import entry_from_row
from rollon.ledger.transfers import JournalEntry, TransferCode, TransferFlag

MAX_CLOSING_LINES = 10_000  # one counter's day; the totals stay right past it
_IN_CHUNK = 500  # seqs per IN (...) query
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


# -- exchange-point closing -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CounterIssuance:
    """One RolloN leg handed out at the counter."""

    seq: int
    transfer_id: UUID
    recorded_at_ns: int
    member_id: UUID
    amount: int
    bonus: bool  # funded by grants, not paid for at the counter
    euro_reference: str


@dataclass(slots=True)
class ExchangePointClosing:
    """One exchange point's day: what it handed out and what its till should hold."""

    exchange_point_id: UUID
    name: str
    day: date
    issuances: int = 0  # paid issuances (bonus legs not counted)
    rollon_issued: int = 0  # handed out: paid plus bonus
    bonus_issued: int = 0
    euros_collected: int = 0  # what the till should hold for the day
    unattributed: int = 0  # RolloN credited from issuance outside an issuance chain
    lines: list[CounterIssuance] = field(default_factory=list)
    lines_truncated: bool = False


def _entries_at(connection: Connection, seqs: Iterable[int]) -> dict[int, JournalEntry]:
    wanted = sorted(set(seqs))
    found: dict[int, JournalEntry] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        for row in connection.execute(sa.select(transfers).where(transfers.c.seq.in_(chunk))):
            found[row.seq] = entry_from_row(row)
    return found


def exchange_point_closing(
    connection: Connection, day: date, exchange_point_id: UUID | None = None
) -> list[ExchangePointClosing]:
    """The closing of one local day for every exchange point (or the one named)."""
    if exchange_point_id is None:
        points = [a for a in list_accounts(connection) if a.kind is AccountKind.EXCHANGE_POINT]
    else:
        account = get_account(connection, exchange_point_id)
        if account is None or account.kind is not AccountKind.EXCHANGE_POINT:
            raise AuditInputError(
                "not_an_exchange_point", f"{exchange_point_id} is not an exchange point's account"
            )
        points = [account]
    start_ns, end_ns = day_bounds_ns(day)
    first_seq = last_seq_at(connection, start_ns - 1) + 1
    last_seq = last_seq_at(connection, end_ns - 1)
    closings = []
    for point in points:
        closing = ExchangePointClosing(point.id, point.name, day)
        hits = [
            entry_from_row(row)
            for row in connection.execute(
                sa.select(transfers)
                .where(
                    transfers.c.credit_account_id == point.id,
                    transfers.c.debit_account_id == chart.ISSUANCE.id,
                    transfers.c.seq >= first_seq,
                    transfers.c.seq <= last_seq,
                )
                .order_by(transfers.c.seq)
            )
        ]
        chain = _entries_at(connection, (h.seq + k for h in hits for k in (1, 2)))
        for hit in hits:
            _count(closing, hit, chain.get(hit.seq + 1), chain.get(hit.seq + 2))
        closings.append(closing)
    return closings


def _count(
    closing: ExchangePointClosing,
    hit: JournalEntry,
    handover: JournalEntry | None,
    euro: JournalEntry | None,
) -> None:
    amount = posted_amount(hit)
    linked = bool(hit.transfer.flags & TransferFlag.LINKED)
    whole = (
        linked
        and handover is not None
        and euro is not None
        and handover.transfer.flags & TransferFlag.LINKED
        and handover.transfer.debit_account_id == closing.exchange_point_id
        and handover.transfer.amount == amount
        and euro.transfer.ledger is LedgerCode.EUR
        and euro.transfer.credit_account_id == chart.RESERVE.id
        and euro.transfer.debit_account_id in (chart.BANK.id, chart.GRANTS.id)
        and euro.transfer.amount == amount
    )
    if not whole or handover is None or euro is None:
        closing.unattributed += amount
        return
    bonus = euro.transfer.debit_account_id == chart.GRANTS.id
    closing.rollon_issued += amount
    if bonus:
        closing.bonus_issued += amount
    else:
        closing.issuances += 1
        closing.euros_collected += amount
    if len(closing.lines) < MAX_CLOSING_LINES:
        closing.lines.append(
            CounterIssuance(
                seq=hit.seq,
                transfer_id=hit.transfer.id,
                recorded_at_ns=hit.timestamp_ns,
                member_id=handover.transfer.credit_account_id,
                amount=amount,
                bonus=bonus,
                euro_reference=euro.transfer.memo,
            )
        )
    else:
        closing.lines_truncated = True


# -- monthly activity -------------------------------------------------------------------------
@dataclass(slots=True)
class Tally:
    """A count of movements and their value in centimes."""

    count: int = 0
    value: int = 0

    def add(self, amount: int) -> None:
        self.count += 1
        self.value += amount


@dataclass(frozen=True, slots=True)
class DailyPoint:
    """Circulation and reserve at the end of one local day."""

    day: date
    circulation: int
    reserve: int


@dataclass(slots=True)
class MonthlyReport:
    """A month's activity: flows by kind, active accounts, circulation and reserve."""

    month: str  # YYYY-MM
    from_ns: int
    to_ns: int
    issued: Tally = field(default_factory=Tally)  # RolloN created (paid and bonus)
    euros_deposited: Tally = field(default_factory=Tally)  # bank → reserve
    bonus_from_grants: Tally = field(default_factory=Tally)  # grants → reserve
    reconverted: Tally = field(default_factory=Tally)  # RolloN back to euros
    reconversion_fees: Tally = field(default_factory=Tally)  # reserve → revenue
    payouts: Tally = field(default_factory=Tally)  # payouts_due → bank
    transfers: Tally = field(default_factory=Tally)  # member to member
    payments: Tally = field(default_factory=Tally)  # to merchants
    refunds: Tally = field(default_factory=Tally)
    active_members: int = 0
    active_merchants: int = 0
    circulation_start: int = 0
    circulation_end: int = 0
    reserve_start: int = 0
    reserve_end: int = 0
    daily: list[DailyPoint] = field(default_factory=list)


def parse_month(text: str) -> tuple[int, int]:
    """ "2025-03" -> (2025, 3); anything else is refused."""
    found = _MONTH.match(text.strip())
    if found is None or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1970:
        raise AuditInputError("bad_month", f"{text!r} is not a month such as 2025-03")
    return int(found.group(1)), int(found.group(2))


def _tally(report: MonthlyReport, entry: JournalEntry, kinds: dict[UUID, AccountKind]) -> set[UUID]:
    """Count one entry into the report; returns the member and merchant accounts it moved."""
    amount = posted_amount(entry)
    if amount == 0:
        return set()
    t = entry.transfer
    if t.ledger is LedgerCode.EUR:
        route = (t.debit_account_id, t.credit_account_id)
        tallies = {
            (chart.BANK.id, chart.RESERVE.id): report.euros_deposited,
            (chart.GRANTS.id, chart.RESERVE.id): report.bonus_from_grants,
            (chart.RESERVE.id, chart.REVENUE.id): report.reconversion_fees,
            (chart.PAYOUTS_DUE.id, chart.BANK.id): report.payouts,
        }
        if route in tallies:
            tallies[route].add(amount)
        return set()
    if t.debit_account_id == chart.ISSUANCE.id:
        report.issued.add(amount)
    elif t.credit_account_id == chart.ISSUANCE.id:
        report.reconverted.add(amount)
    elif t.code is TransferCode.TRANSFER:
        report.transfers.add(amount)
    elif t.code is TransferCode.PAYMENT:
        report.payments.add(amount)
    elif t.code is TransferCode.REFUND:
        report.refunds.add(amount)
    return {
        a
        for a in (t.debit_account_id, t.credit_account_id)
        if kinds.get(a) in (AccountKind.MEMBER, AccountKind.MERCHANT)
    }


def monthly_report(connection: Connection, month: str, now_ns: int) -> MonthlyReport:
    """Activity of one local calendar month, read from `connection` (use a read snapshot);
    days after `now_ns` are left out of the daily series."""
    year, month_number = parse_month(month)
    from_ns, to_ns = month_bounds_ns(year, month_number)
    if from_ns > now_ns:
        raise AuditInputError("month_in_future", f"{month} has not started yet")
    report = MonthlyReport(month=f"{year:04d}-{month_number:02d}", from_ns=from_ns, to_ns=to_ns)
    kinds = {a.id: a.kind for a in list_accounts(connection)}
    opening_seq = last_seq_at(connection, from_ns - 1)
    closing_seq = last_seq_at(connection, min(to_ns, now_ns + 1) - 1)
    active: set[UUID] = set()
    for page in iter_entries(connection, opening_seq + 1, closing_seq):
        for entry in page:
            active |= _tally(report, entry, kinds)
    report.active_members = sum(1 for a in active if kinds[a] is AccountKind.MEMBER)
    report.active_merchants = sum(1 for a in active if kinds[a] is AccountKind.MERCHANT)
    report.circulation_start, report.reserve_start = _fund_at(connection, opening_seq)
    report.circulation_end, report.reserve_end = _fund_at(connection, closing_seq)
    day = local_date(from_ns)
    while day_bounds_ns(day)[0] < min(to_ns, now_ns + 1):
        seq = last_seq_at(connection, min(day_bounds_ns(day)[1], now_ns + 1) - 1)
        report.daily.append(DailyPoint(day, *_fund_at(connection, seq)))
        day += timedelta(days=1)
    return report


def _fund_at(connection: Connection, seq: int) -> tuple[int, int]:
    """(circulation, reserve) just after entry `seq`."""
    return (
        -balance_at_seq(connection, chart.ISSUANCE.id, seq),
        balance_at_seq(connection, chart.RESERVE.id, seq),
    )


def report_json(report: MonthlyReport) -> dict[str, Any]:
    """The report as plain JSON values (amounts in centimes, days as YYYY-MM-DD)."""

    def tally(t: Tally) -> dict[str, int]:
        return {"count": t.count, "value": t.value}

    return {
        "month": report.month,
        "from_ns": report.from_ns,
        "to_ns": report.to_ns,
        "issued": tally(report.issued),
        "euros_deposited": tally(report.euros_deposited),
        "bonus_from_grants": tally(report.bonus_from_grants),
        "reconverted": tally(report.reconverted),
        "reconversion_fees": tally(report.reconversion_fees),
        "payouts": tally(report.payouts),
        "transfers": tally(report.transfers),
        "payments": tally(report.payments),
        "refunds": tally(report.refunds),
        "active_members": report.active_members,
        "active_merchants": report.active_merchants,
        "circulation": {"start": report.circulation_start, "end": report.circulation_end},
        "reserve": {"start": report.reserve_start, "end": report.reserve_end},
        "daily": [
            {"day": p.day.isoformat(), "circulation": p.circulation, "reserve": p.reserve}
            for p in report.daily
        ],
    }


def report_chart_svg(report: MonthlyReport) -> str:
    """Circulation and reserve at the end of each day of the month, as an SVG chart."""
    points: Sequence[DailyPoint] = report.daily or [
        DailyPoint(local_date(report.from_ns), report.circulation_start, report.reserve_start)
    ]
    return line_chart_svg(
        f"RolloN in circulation and reserve, {report.month}",
        "€",
        [p.day for p in points],
        [
            Series("reserve (euros)", "#2ca02c", [p.reserve for p in points], dashed=True),
            Series("RolloN in circulation", "#1f4e9c", [p.circulation for p in points]),
        ],
    )
