"""Builders the ledger tests share: transfers, accounts with money on them, a manual clock,
and the check that the books are sound (verify passes, every ledger sums to zero)."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID, uuid4

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from rollon.ledger.accounts import Account, AccountKind, Balances, LedgerCode
from rollon.ledger.queries import list_accounts, trial_balance
from rollon.ledger.service import Ledger
from rollon.ledger.transfers import Result, Transfer, TransferCode, TransferFlag
from rollon.ledger.verify import VerifyReport, verify_database

NS_PER_S = 1_000_000_000
START_NS = 1_750_000_000 * NS_PER_S  # June 2025, in ledger time


class ManualClock:
    """A clock the test moves by hand, for timeouts and point-in-time queries."""

    def __init__(self, start_ns: int = START_NS) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance_s(self, seconds: float) -> int:
        """Move forward; returns the new time."""
        self.now_ns += int(seconds * NS_PER_S)
        return self.now_ns


def transfer(
    debit: UUID,
    credit: UUID,
    amount: int,
    *,
    transfer_id: UUID | None = None,
    ledger: LedgerCode = LedgerCode.RLN,
    code: TransferCode = TransferCode.TRANSFER,
    flags: TransferFlag = TransferFlag.NONE,
    pending_id: UUID | None = None,
    timeout_s: int = 0,
    memo: str = "",
    event_time_ns: int | None = None,
) -> Transfer:
    """A transfer with a fresh id unless one is given."""
    return Transfer(
        id=transfer_id or uuid4(),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        ledger=ledger,
        code=code,
        flags=flags,
        pending_id=pending_id,
        timeout_s=timeout_s,
        memo=memo,
        event_time_ns=event_time_ns,
    )


def balances(
    credits_posted: int = 0,
    *,
    ledger: LedgerCode = LedgerCode.RLN,
    no_overdraft: bool = True,
    closed: bool = False,
    debits_posted: int = 0,
) -> Balances:
    """An account as the pure state machine sees it, with a fresh id."""
    return Balances(
        uuid4(),
        ledger,
        no_overdraft,
        closed,
        debits_posted=debits_posted,
        credits_posted=credits_posted,
    )


def member(ledger: Ledger, name: str = "Anne", funded: int = 0) -> Account:
    """A member account, with `funded` centimes issued to it (through the hot path)."""
    account = ledger.open_account(kind=AccountKind.MEMBER, name=name)
    if funded:
        fund(ledger, account.id, funded)
    return account


def fund(ledger: Ledger, account_id: UUID, amount: int) -> None:
    """Issue RolloN to an account, both legs, as the association does at a counter."""
    outcome = ledger.issue(uuid4(), account_id, amount, "test deposit")
    assert outcome.result is Result.OK, outcome


def balance_of(engine: Engine, account_id: UUID) -> int:
    with engine.connect() as connection:
        by_id = {a.id: a for a in list_accounts(connection)}
    return by_id[account_id].balance


def verify(engine: Engine, public_keys: Iterable[Ed25519PublicKey] = ()) -> VerifyReport:
    return verify_database(engine, list(public_keys))


def assert_books_sound(engine: Engine, public_keys: Iterable[Ed25519PublicKey] = ()) -> None:
    """Verify passes and, now, every ledger sums to zero and no limited account is short."""
    report = verify(engine, public_keys)
    assert report.ok, report.problems
    with engine.connect() as connection:
        now = trial_balance(connection)
        for code in LedgerCode:
            assert now.total(code) == 0, code
        for account in list_accounts(connection):
            assert not account.no_overdraft or account.available >= 0, account
