"""The books as a Beancount file that passes `bean-check`.

RolloN (RLN) and euros (EUR) are commodities; every account is opened (with the ledger's
account id and name as metadata); each posted transfer is a transaction of two postings (the
ledger's debit positive, its credit negative), dated by the day the ledger recorded it. A
period export opens with one transaction per ledger carrying the balances forward, and every
file ends with a balance assertion per account, so bean-check proves that the postings add
up to the balances the ledger holds. Holds and their release move nothing and are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date, timedelta
from uuid import UUID

from sqlalchemy.engine import Connection

from rollon.ledger.accounts import Account, LedgerCode
from rollon.ledger.audit.book_accounts import (
    balances_at_seq,
    book_account,
    posted_amount,
    unknown_account,
)
from rollon.ledger.audit.local_time import LocalDays, local_date, to_datetime
from rollon.ledger.audit.snapshot import Period, iter_entries, seq_range
from rollon.ledger.queries import list_accounts
from rollon.ledger.transfers import JournalEntry

COMMODITIES = {LedgerCode.RLN: "RolloN", LedgerCode.EUR: "Euro"}
_EPOCH = date(1970, 1, 1)

Progress = Callable[[int], None]


def beancount_amount(centimes: int, ledger: LedgerCode) -> str:
    """-1250 -> "-12.50 RLN"."""
    sign = "-" if centimes < 0 else ""
    units, cents = divmod(abs(centimes), 100)
    return f"{sign}{units}.{cents:02d} {ledger.value}"


def _string(text: str) -> str:
    """A Beancount string literal: quotes and backslashes escaped, on one line."""
    flat = " ".join(text.split())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _header(accounts: Mapping[UUID, Account], open_until: date) -> str:
    lines = [
        'option "title" "RolloN ledger"',
        'option "operating_currency" "EUR"',
        "",
    ]
    for ledger, name in COMMODITIES.items():
        lines += [f"{_EPOCH} commodity {ledger.value}", f"  name: {_string(name)}"]
    lines.append("")
    for account in sorted(accounts.values(), key=lambda a: book_account(a).beancount):
        opened = min(local_date(account.created_at_ns), open_until)
        lines += [
            f"{opened} open {book_account(account).beancount} {account.ledger.value}",
            f"  account_id: {_string(str(account.id))}",
            f"  name: {_string(account.name)}",
        ]
    return "\n".join(lines) + "\n\n"


def _transaction(entry: JournalEntry, names: Mapping[UUID, str], days: LocalDays) -> str:
    amount = posted_amount(entry)
    if amount == 0:
        return ""
    t = entry.transfer
    recorded = to_datetime(entry.timestamp_ns).isoformat().replace("+00:00", "Z")
    narration = f"{t.code.value}: {t.memo}" if t.memo else t.code.value
    lines = [
        f"{days(entry.timestamp_ns)} * {_string(narration)}",
        f"  seq: {entry.seq}",
        f"  transfer_id: {_string(str(t.id))}",
        f"  recorded_at: {_string(recorded)}",
    ]
    if t.event_time_ns is not None:
        event = to_datetime(t.event_time_ns).isoformat().replace("+00:00", "Z")
        lines.append(f"  event_time: {_string(event)}")
    debit = names.get(t.debit_account_id) or unknown_account(t.debit_account_id).beancount
    credit = names.get(t.credit_account_id) or unknown_account(t.credit_account_id).beancount
    lines += [
        f"  {debit}  {beancount_amount(amount, t.ledger)}",
        f"  {credit}  {beancount_amount(-amount, t.ledger)}",
    ]
    return "\n".join(lines) + "\n\n"


def _carried_forward(
    accounts: Mapping[UUID, Account], balances: Mapping[UUID, int], day: date
) -> str:
    out = []
    for ledger in LedgerCode:
        postings = [
            f"  {book_account(accounts[i]).beancount}  {beancount_amount(-b, ledger)}"
            for i, b in sorted(balances.items(), key=lambda x: str(x[0]))
            if b != 0 and accounts[i].ledger is ledger
        ]
        if postings:
            out.append(
                "\n".join([f"{day} * {_string(f'balances carried forward, {ledger.value}')}"])
                + "\n"
                + "\n".join(postings)
                + "\n\n"
            )
    return "".join(out)


def _assertions(accounts: Mapping[UUID, Account], balances: Mapping[UUID, int], day: date) -> str:
    lines = [
        f"{day} balance {book_account(accounts[i]).beancount}  "
        f"{beancount_amount(-balances[i], accounts[i].ledger)}"
        for i in sorted(balances, key=lambda i: book_account(accounts[i]).beancount)
    ]
    return "\n".join(lines) + "\n"


def beancount_lines(
    connection: Connection, period: Period, progress: Progress | None = None
) -> Iterator[str]:
    """The Beancount file of a period, read from `connection` (use a read snapshot)."""
    accounts = {
        a.id: a
        for a in list_accounts(connection)
        if period.to_ns is None or a.created_at_ns < period.to_ns
    }
    seqs = seq_range(connection, period)
    start = local_date(period.from_ns) if period.from_ns is not None else _EPOCH
    yield _header(accounts, start)
    if seqs.opening_seq > 0:
        yield _carried_forward(
            accounts, balances_at_seq(connection, accounts.values(), seqs.opening_seq), start
        )
    names = {i: book_account(a).beancount for i, a in accounts.items()}
    last_day = start
    done = 0
    days = LocalDays()
    for page in iter_entries(connection, seqs.first_seq, seqs.last_seq):
        yield "".join(_transaction(e, names, days) for e in page)
        last_day = max(last_day, local_date(page[-1].timestamp_ns))
        done += len(page)
        if progress is not None:
            progress(done)
    closing_seq = max(seqs.last_seq, seqs.opening_seq)
    yield _assertions(
        accounts,
        balances_at_seq(connection, accounts.values(), closing_seq),
        last_day + timedelta(days=1),
    )
