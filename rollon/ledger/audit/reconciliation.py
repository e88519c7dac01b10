"""Reconciliation: does the guarantee fund cover every RolloN, and does the reserve agree with
the fund's real bank account?

1. `reserve_coverage`: money in circulation (minus the issuance account's balance) against
   the reserve, now or at any past moment, with the RolloN the accounts hold as a cross-check.
2. `reconcile_statement`: the lines of an imported bank statement against the ledger's
   bank-side transfers (deposits: bank → reserve; payouts: payouts_due → bank). Lines are
   matched one to one, by reference first (the transfer's memo, such as the euro reference of
   an issuance, or its id, found in the line's text), then by amount and nearest date within
   a few days. What is left on either side is listed, and the difference between the two
   totals is explained to the centime by those lists.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rollon.ledger import chart
from rollon.ledger.accounts import LedgerCode
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.local_time import day_start_ns, local_date
from rollon.ledger.audit.statements import Statement, StatementLine
from rollon.ledger.queries import balance_at_seq, last_seq_at, trial_balance
from rollon.ledger.schema import transfers
from rollon.ledger.transfers import TransferFlag

TOLERANCE_DAYS = 3  # a deposit recorded on the 31st may be booked by the bank on the 2nd
MAX_TOLERANCE_DAYS = 31
MAX_LEDGER_MOVEMENTS = 200_000  # one statement's window; a longer one is refused, not slow
MIN_REFERENCE_CHARS = 4  # shorter memos would be found by chance in any line
MAX_REFERENCE_WORDS = 6  # a reference is looked for as a run of at most this many words
_SEPARATORS = re.compile(r"[\s,;:/()\[\]]+")


# -- 1. coverage ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Coverage:
    """The fund against the money in circulation at one moment (centimes)."""

    at_ns: int | None
    as_of_seq: int
    circulation: int  # minus the issuance account's balance
    held_by_accounts: int  # every other RolloN balance: equals circulation in sound books
    reserve: int
    payouts_due: int
    revenue: int
    grants: int
    bank: int

    @property
    def difference(self) -> int:
        """Reserve less circulation: zero when the fund covers every RolloN, one for one."""
        return self.reserve - self.circulation

    @property
    def balanced(self) -> bool:
        return self.difference == 0 and self.held_by_accounts == self.circulation


def reserve_coverage(connection: Connection, at_ns: int | None = None) -> Coverage:
    """Circulation against the reserve now (`at_ns` None) or as it was at `at_ns`."""
    balances = trial_balance(connection, at_ns)
    by_id = {line.account_id: line.balance for line in balances.lines}
    held = sum(
        line.balance
        for line in balances.lines
        if line.ledger is LedgerCode.RLN and line.account_id != chart.ISSUANCE.id
    )
    return Coverage(
        at_ns=at_ns,
        as_of_seq=balances.as_of_seq,
        circulation=-by_id.get(chart.ISSUANCE.id, 0),
        held_by_accounts=held,
        reserve=by_id.get(chart.RESERVE.id, 0),
        payouts_due=by_id.get(chart.PAYOUTS_DUE.id, 0),
        revenue=by_id.get(chart.REVENUE.id, 0),
        grants=by_id.get(chart.GRANTS.id, 0),
        bank=by_id.get(chart.BANK.id, 0),
    )


# -- 2. bank statements -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BankMovement:
    """A ledger transfer that moves euros into (+) or out of (-) the fund's bank account."""

    seq: int
    transfer_id: UUID
    day: date  # the local day the ledger recorded it
    amount: int
    code: str
    memo: str


@dataclass(frozen=True, slots=True)
class Match:
    """A statement line paired with the ledger transfer it books."""

    line: StatementLine
    movement: BankMovement
    by: Literal["reference", "amount_and_date"]

    @property
    def days_apart(self) -> int:
        return (self.line.booking_date - self.movement.day).days


@dataclass(frozen=True, slots=True)
class ExplanationItem:
    """One reason the statement's total and the ledger's differ, with its amount."""

    kind: str
    description: str
    amount: int  # what it adds to the difference (statement total less ledger total)
    count: int


@dataclass(frozen=True, slots=True)
class FundBalance:
    """The statement's closing balance against what the fund should hold at that day's end:
    the reserve, plus payouts owed but not yet paid, plus the association's fees not yet
    taken out. `grant_funded_bonus` of it came from grants, not from the counter."""

    statement_closing: int
    reserve: int
    payouts_due: int
    revenue: int
    grant_funded_bonus: int

    @property
    def expected(self) -> int:
        return self.reserve + self.payouts_due + self.revenue

    @property
    def difference(self) -> int:
        return self.statement_closing - self.expected


@dataclass(frozen=True, slots=True)
class StatementReconciliation:
    """A statement against the ledger: pairs, leftovers on each side, the explanation."""

    statement: Statement
    matched: Sequence[Match]
    unmatched_lines: Sequence[StatementLine]
    unmatched_movements: Sequence[BankMovement]  # recorded in the period, not on the statement
    statement_total: int
    ledger_total: int  # the ledger's bank-side movements recorded within the period
    explanation: Sequence[ExplanationItem]
    fund: FundBalance | None

    @property
    def difference(self) -> int:
        return self.statement_total - self.ledger_total

    @property
    def reconciled(self) -> bool:
        """Every line matched and nothing of the ledger missing from the statement."""
        return not self.unmatched_lines and not self.unmatched_movements


def bank_movements(connection: Connection, first_day: date, last_day: date) -> list[BankMovement]:
    """The ledger's bank-side transfers recorded between two local days (both included)."""
    start_ns = day_start_ns(first_day)
    end_ns = day_start_ns(last_day + timedelta(days=1))
    first_seq = last_seq_at(connection, start_ns - 1) + 1
    last_seq = last_seq_at(connection, end_ns - 1)
    movements: list[BankMovement] = []
    for column, sign in ((transfers.c.debit_account_id, 1), (transfers.c.credit_account_id, -1)):
        rows = connection.execute(
            sa.select(
                transfers.c.seq,
                transfers.c.id,
                transfers.c.timestamp_ns,
                transfers.c.amount,
                transfers.c.code,
                transfers.c.memo,
                transfers.c.flags,
            )
            .where(
                column == chart.BANK.id,
                transfers.c.seq >= first_seq,
                transfers.c.seq <= last_seq,
            )
            .order_by(transfers.c.seq)
            .limit(MAX_LEDGER_MOVEMENTS + 1)
        ).all()
        for row in rows:
            if row.flags & (TransferFlag.PENDING | TransferFlag.VOID_PENDING):
                continue  # a hold is not money moved
            movements.append(
                BankMovement(
                    row.seq,
                    row.id,
                    local_date(row.timestamp_ns),
                    sign * row.amount,
                    row.code,
                    row.memo,
                )
            )
    if len(movements) > MAX_LEDGER_MOVEMENTS:
        raise AuditInputError(
            "statement_period_too_long",
            f"the statement's period holds more than {MAX_LEDGER_MOVEMENTS} bank movements; "
            "reconcile it a month at a time",
        )
    movements.sort(key=lambda m: m.seq)
    return movements


def _tokens(text: str) -> list[str]:
    return [t for t in _SEPARATORS.split(text.lower()) if t]


def _spans(text: str) -> set[str]:
    """Every run of up to MAX_REFERENCE_WORDS consecutive words of a text, as one string."""
    words = _tokens(text)
    return {
        " ".join(words[i : i + n])
        for i in range(len(words))
        for n in range(1, MAX_REFERENCE_WORDS + 1)
        if i + n <= len(words)
    }


class _Pool:
    """Movements not matched yet, found by reference or by amount and nearest day."""

    def __init__(self, movements: Sequence[BankMovement]) -> None:
        self.taken: set[int] = set()
        self.by_reference: defaultdict[tuple[str, int], list[BankMovement]] = defaultdict(list)
        self.by_amount: defaultdict[int, list[BankMovement]] = defaultdict(list)
        for m in movements:
            memo = " ".join(_tokens(m.memo))
            if len(memo) >= MIN_REFERENCE_CHARS:
                self.by_reference[memo, m.amount].append(m)
            self.by_reference[str(m.transfer_id), m.amount].append(m)
            self.by_amount[m.amount].append(m)
        for same in self.by_amount.values():
            same.sort(key=lambda m: (m.day, m.seq))
        self.days = {amount: [m.day for m in same] for amount, same in self.by_amount.items()}

    def by_text(self, line: StatementLine) -> BankMovement | None:
        candidates = [
            m
            for span in _spans(line.text)
            for m in self.by_reference.get((span, line.amount), ())
            if m.seq not in self.taken
        ]
        return self._take(line, candidates)

    def by_day(self, line: StatementLine, tolerance_days: int) -> BankMovement | None:
        same = self.by_amount.get(line.amount, [])
        days = self.days.get(line.amount, [])
        low = bisect.bisect_left(days, line.booking_date - timedelta(days=tolerance_days))
        high = bisect.bisect_right(days, line.booking_date + timedelta(days=tolerance_days))
        return self._take(line, [m for m in same[low:high] if m.seq not in self.taken])

    def _take(self, line: StatementLine, free: list[BankMovement]) -> BankMovement | None:
        if not free:
            return None
        found = min(free, key=lambda m: (abs((line.booking_date - m.day).days), m.seq))
        self.taken.add(found.seq)
        return found


def match(
    statement: Statement, movements: Sequence[BankMovement], tolerance_days: int = TOLERANCE_DAYS
) -> tuple[list[Match], list[StatementLine], list[BankMovement]]:
    """Pair lines with movements one to one: by reference, then by amount and nearest date.
    Returns the pairs, the lines left over and every movement left over."""
    pool = _Pool(movements)
    matched: dict[int, Match] = {}
    lines = sorted(statement.lines, key=lambda line: (line.booking_date, line.line_no))
    for line in lines:
        found = pool.by_text(line)
        if found is not None:
            matched[line.line_no] = Match(line, found, "reference")
    for line in lines:
        if line.line_no not in matched:
            found = pool.by_day(line, tolerance_days)
            if found is not None:
                matched[line.line_no] = Match(line, found, "amount_and_date")
    pairs = sorted(matched.values(), key=lambda m: m.line.line_no)
    left_lines = [line for line in statement.lines if line.line_no not in matched]
    left_movements = [m for m in movements if m.seq not in pool.taken]
    return pairs, left_lines, left_movements


def reconcile_statement(
    connection: Connection, statement: Statement, tolerance_days: int = TOLERANCE_DAYS
) -> StatementReconciliation:
    """Match a statement against the ledger and explain the difference of their totals."""
    if not 0 <= tolerance_days <= MAX_TOLERANCE_DAYS:
        raise AuditInputError("bad_tolerance", f"the tolerance is 0 to {MAX_TOLERANCE_DAYS} days")
    margin = timedelta(days=tolerance_days)
    movements = bank_movements(connection, statement.from_date - margin, statement.to_date + margin)
    pairs, left_lines, left_movements = match(statement, movements, tolerance_days)

    def in_period(m: BankMovement) -> bool:
        return statement.from_date <= m.day <= statement.to_date

    ledger_total = sum(m.amount for m in movements if in_period(m))
    missing = [m for m in left_movements if in_period(m)]
    other_day = [p.movement for p in pairs if not in_period(p.movement)]
    explanation = [
        ExplanationItem(
            "bank_lines_not_in_ledger",
            "moved by the bank but recorded by no ledger transfer (bank fees, grant payments, "
            "withdrawals of the association's share, or an issuance or payout never recorded)",
            sum(line.amount for line in left_lines),
            len(left_lines),
        ),
        ExplanationItem(
            "ledger_transfers_not_on_statement",
            "recorded by the ledger within the period, not booked by the bank (yet)",
            -sum(m.amount for m in missing),
            len(missing),
        ),
        ExplanationItem(
            "booked_on_another_day",
            "booked by the bank within the period, recorded by the ledger just before or after",
            sum(m.amount for m in other_day),
            len(other_day),
        ),
    ]
    result = StatementReconciliation(
        statement=statement,
        matched=pairs,
        unmatched_lines=left_lines,
        unmatched_movements=missing,
        statement_total=statement.total,
        ledger_total=ledger_total,
        explanation=explanation,
        fund=_fund(connection, statement),
    )
    assert sum(item.amount for item in explanation) == result.difference, "unexplained"
    return result


def _fund(connection: Connection, statement: Statement) -> FundBalance | None:
    if statement.closing_balance is None:
        return None
    seq = last_seq_at(connection, day_start_ns(statement.to_date + timedelta(days=1)) - 1)
    return FundBalance(
        statement_closing=statement.closing_balance,
        reserve=balance_at_seq(connection, chart.RESERVE.id, seq),
        payouts_due=balance_at_seq(connection, chart.PAYOUTS_DUE.id, seq),
        revenue=balance_at_seq(connection, chart.REVENUE.id, seq),
        grant_funded_bonus=-balance_at_seq(connection, chart.GRANTS.id, seq),
    )
