"""Fixtures for the merchants' tests: a Ledger with a signing key, the Merchants services
on a clock the test moves, merchants and members with money, and the books' invariants."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from rollon.ledger import chart
from rollon.ledger.accounts import AccountKind, LedgerCode
from rollon.ledger.queries import get_account, trial_balance
from rollon.ledger.service import Ledger
from rollon.merchants.directory import Merchant, MerchantApplication
from rollon.merchants.iban import iban_from_bban
from rollon.merchants.service import Merchants
from rollon.merchants.settings import MerchantSettings
from rollon.merchants.siret import luhn_valid

FUND_IBAN = "FR7630006000011234567890189"
_serial = itertools.count(1)


class Clock:
    """Real time, plus whatever the test adds to jump past expiries; or, once frozen, the
    time of the freeze plus those jumps (a test that checks a request one second before
    its expiry must not see real time cross into the next whole second)."""

    def __init__(self) -> None:
        self.offset_ns = 0
        self._frozen_ns: int | None = None

    def __call__(self) -> int:
        now_ns = time.time_ns() if self._frozen_ns is None else self._frozen_ns
        return now_ns + self.offset_ns

    def advance(self, seconds: int) -> None:
        self.offset_ns += seconds * 1_000_000_000

    def freeze(self) -> None:
        self._frozen_ns = time.time_ns()


def make_siret(n: int) -> str:
    """A valid SIRET, different for each n."""
    base = f"{n:08d}"
    siren = next(base + d for d in "0123456789" if luhn_valid(base + d))
    return next(siren + f"{k:05d}" for k in range(1, 100) if luhn_valid(siren + f"{k:05d}"))


def make_iban(n: int) -> str:
    return iban_from_bban("FR", f"3000400003{n:011d}03")


def application(n: int | None = None, **changes: str) -> MerchantApplication:
    n = next(_serial) if n is None else n
    fields = {
        "legal_name": f"SARL Boulangerie {n}",
        "trade_name": f"Boulangerie n°{n}",
        "siret": make_siret(n),
        "category": "bakery",
        "address": f"{n} rue du Gros-Horloge",
        "postcode": "76000",
        "city": "Rouen",
        "iban": make_iban(n),
    }
    fields.update(changes)
    return MerchantApplication(**fields)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(engine: Engine) -> Iterator[Ledger]:
    ledger = Ledger(engine, signing_key=Ed25519PrivateKey.generate())
    yield ledger
    ledger.close()


@pytest.fixture
def merchants(engine: Engine, ledger: Ledger, clock: Clock) -> Merchants:
    settings = MerchantSettings(reconversion_fee_bps=300, request_ttl_s=300, fund_iban=FUND_IBAN)
    return Merchants(engine, ledger, settings, clock_ns=clock)


@pytest.fixture
def shop(merchants: Merchants) -> Merchant:
    return merchants.directory.onboard(application())


def member_with(ledger: Ledger, amount: int, name: str = "Camille") -> UUID:
    """A member account holding `amount` centimes, issued against euros."""
    account = ledger.open_account(kind=AccountKind.MEMBER, name=name)
    if amount:
        assert ledger.issue(uuid4(), account.id, amount, "euros at the counter").applied
    return account.id


def balance(engine: Engine, account_id: UUID) -> int:
    with engine.connect() as connection:
        account = get_account(connection, account_id)
    assert account is not None
    return account.balance


def assert_books_balance(engine: Engine, merchants: Merchants | None = None) -> None:
    """DESIGN.md's invariants: each ledger sums to zero; the reserve equals the money in
    circulation; and what the ledger owes merchants is what their reconversions say."""
    with engine.connect() as connection:
        books = trial_balance(connection)
    assert books.total(LedgerCode.RLN) == 0
    assert books.total(LedgerCode.EUR) == 0
    by_id = {line.account_id: line.balance for line in books.lines}
    assert by_id[chart.RESERVE.id] == -by_id[chart.ISSUANCE.id]
    assert all(
        line.balance >= 0
        for line in books.lines
        if line.kind in (AccountKind.MEMBER, AccountKind.MERCHANT)
    )
    if merchants is not None:
        assert by_id[chart.PAYOUTS_DUE.id] == merchants.reconversions.owed()
