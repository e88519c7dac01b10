"""Demo data that makes a fresh service explorable at once: the association, an exchange point
in Rouen, merchants in Rouen, Caen and Le Havre, members with balances and a few payments,
and a token for each.

Safe to run again on the same database: accounts, issuances and payments have fixed ids, so
a second run finds them done; tokens cannot be shown twice, so each run revokes the previous
demo tokens and prints new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID, uuid5

from sqlalchemy.engine import Engine

from rollon.api.token_store import Role, create_token, revoke_tokens_named
from rollon.ledger.accounts import AccountKind, LedgerCode
from rollon.ledger.service import AccountError, Ledger
from rollon.ledger.transfers import Result, Transfer, TransferCode
from rollon.merchants.directory import Category, MerchantApplication, MerchantDirectory

_NAMESPACE = UUID("8c0b5f3e-2d41-4a7e-9b6c-1f0e3d2c4b5a")
TOKEN_NAME_PREFIX = "demo: "  # noqa: S105  (a name prefix, not a secret)


@dataclass(frozen=True, slots=True)
class DemoAccount:
    key: str
    kind: AccountKind
    name: str
    role: Role
    issued: int = 0  # centimes issued at the start (members)
    merchant: MerchantApplication | None = None  # merchants are onboarded in the directory

    @property
    def id(self) -> UUID:
        return uuid5(_NAMESPACE, f"account:{self.key}")


ACCOUNTS = (
    DemoAccount(
        "comptoir-rouen",
        AccountKind.EXCHANGE_POINT,
        "Comptoir de change, Office de tourisme de Rouen",
        Role.OPERATOR,
    ),
    DemoAccount(
        "boulangerie-rouen",
        AccountKind.MERCHANT,
        "Boulangerie du Gros-Horloge, Rouen",
        Role.MERCHANT,
        merchant=MerchantApplication(
            legal_name="SARL Fournil du Gros-Horloge",
            trade_name="Boulangerie du Gros-Horloge",
            siret="81234567600017",
            category=Category.BAKERY.value,
            address="12 rue du Gros-Horloge",
            postcode="76000",
            city="Rouen",
            iban="FR7630003012340001234567854",
        ),
    ),
    DemoAccount(
        "fromagerie-caen",
        AccountKind.MERCHANT,
        "Fromagerie du Vaugueux, Caen",
        Role.MERCHANT,
        merchant=MerchantApplication(
            legal_name="Fromagerie du Vaugueux SAS",
            trade_name="Fromagerie du Vaugueux",
            siret="82345678500018",
            category=Category.GROCERY.value,
            address="5 rue du Vaugueux",
            postcode="14000",
            city="Caen",
            iban="FR7614707000210009876543269",
        ),
    ),
    DemoAccount(
        "librairie-le-havre",
        AccountKind.MERCHANT,
        "Librairie de la Porte Océane, Le Havre",
        Role.MERCHANT,
        merchant=MerchantApplication(
            legal_name="Librairie de la Porte Océane SARL",
            trade_name="Librairie de la Porte Océane",
            siret="83456789300013",
            category=Category.BOOKS_CULTURE.value,
            address="1 avenue Foch",
            postcode="76600",
            city="Le Havre",
            iban="FR7611425009000005551234543",
        ),
    ),
    DemoAccount("alice", AccountKind.MEMBER, "Alice Martin", Role.MEMBER, issued=15_000),
    DemoAccount("baptiste", AccountKind.MEMBER, "Baptiste Leroy", Role.MEMBER, issued=8_000),
    DemoAccount("chloe", AccountKind.MEMBER, "Chloé Dubois", Role.MEMBER, issued=4_250),
)
_BY_KEY = {a.key: a for a in ACCOUNTS}

# payer, payee, centimes, memo
PAYMENTS = (
    ("alice", "boulangerie-rouen", 450, "Pain de campagne et croissants"),
    ("baptiste", "fromagerie-caen", 1_290, "Camembert et pont-l'évêque"),
    ("chloe", "librairie-le-havre", 1_800, "Un roman"),
    ("alice", "chloe", 1_000, "Le cinéma de samedi"),
)

# Tokens without an account: (role, holder)
PEOPLE = ((Role.ADMIN, "Association Rollon"), (Role.AUDITOR, "Commissaire aux comptes"))


@dataclass(frozen=True, slots=True)
class Credential:
    role: Role
    name: str
    account_id: UUID | None
    token: str


def demo_steps() -> int:
    """How many steps `seed_demo` reports to its progress callback."""
    members = sum(1 for a in ACCOUNTS if a.issued)
    return 1 + len(ACCOUNTS) + members + len(PAYMENTS) + len(PEOPLE) + len(ACCOUNTS)


def seed_demo(
    engine: Engine,
    ledger: Ledger,
    *,
    bonus_bps: int = 0,
    step: Callable[[str], None] = lambda _: None,
) -> list[Credential]:
    """Seed the demo (idempotent) and return fresh tokens for everyone in it."""
    revoke_tokens_named(engine, TOKEN_NAME_PREFIX)
    step("revoked earlier demo tokens")
    directory = MerchantDirectory(engine, ledger)
    for account in ACCOUNTS:
        if account.merchant is not None:
            merchant_id = uuid5(_NAMESPACE, f"merchant:{account.key}")
            directory.onboard(account.merchant, merchant_id=merchant_id, account_id=account.id)
        else:
            try:
                ledger.open_account(kind=account.kind, name=account.name, account_id=account.id)
            except AccountError as error:
                if error.code != "account_exists":
                    raise
        step(f"account {account.name}")
    for account in ACCOUNTS:
        if account.issued:
            operation_id = uuid5(_NAMESPACE, f"issuance:{account.key}")
            outcome = ledger.issue(
                operation_id, account.id, account.issued, f"demo-{account.key}", bonus_bps
            )
            # Exists with other fields: a run with another bonus rate; the books hold the first.
            assert outcome.applied or outcome.result is Result.EXISTS_WITH_DIFFERENT_FIELDS
            step(f"issued to {account.name}")
    for payer, payee, amount, memo in PAYMENTS:
        transfer = Transfer(
            id=uuid5(_NAMESPACE, f"payment:{payer}:{payee}:{amount}"),
            debit_account_id=_BY_KEY[payer].id,
            credit_account_id=_BY_KEY[payee].id,
            amount=amount,
            ledger=LedgerCode.RLN,
            code=TransferCode.PAYMENT,
            memo=memo,
        )
        ledger.submit([transfer])
        step(f"payment {payer} -> {payee}")
    ledger.checkpoint()  # sign the journal's head: the demo's books are provable at once
    credentials = []
    for role, name in PEOPLE:
        _, secret = create_token(engine, role, None, TOKEN_NAME_PREFIX + name)
        credentials.append(Credential(role, name, None, secret))
        step(f"token for {name}")
    for account in ACCOUNTS:
        _, secret = create_token(engine, account.role, account.id, TOKEN_NAME_PREFIX + account.name)
        credentials.append(Credential(account.role, account.name, account.id, secret))
        step(f"token for {account.name}")
    return credentials
