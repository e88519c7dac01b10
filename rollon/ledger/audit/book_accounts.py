"""How ledger accounts appear in accounting files: FEC account numbers (plan comptable
général style, members, merchants and exchange points as auxiliary accounts) and Beancount
account names.

The RolloN ledger is kept in class 8 (comptes spéciaux): RolloN are a commitment the euros of
the guarantee fund already carry on the balance sheet, so they are not counted twice. The
euro ledger uses classes 4, 5 and 7. Amounts keep the ledger's own sides: the FEC's debit
is the ledger's debit. In Beancount a debit is a positive posting, so an account's Beancount
balance is minus its ledger balance (credits minus debits), and each account sits under the
root that matches the sign it normally has.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.engine import Connection

from rollon.ledger import chart, queries
from rollon.ledger.accounts import Account, AccountKind, LedgerCode
from rollon.ledger.transfers import JournalEntry, TransferFlag


@dataclass(frozen=True, slots=True)
class BookAccount:
    """One ledger account's names in the accounting files."""

    number: str  # FEC CompteNum
    label: str  # FEC CompteLib
    aux_number: str  # FEC CompAuxNum, "" for a general account
    aux_label: str  # FEC CompAuxLib
    beancount: str  # Beancount account name


# (ledger, system account name) -> (number, label, beancount name)
_SYSTEM: dict[tuple[LedgerCode, str], tuple[str, str, str]] = {
    (chart.ISSUANCE.ledger, chart.ISSUANCE.name): (
        "8010",
        "RolloN émis (contrepartie de la circulation)",
        "Assets:RLN:Issued",
    ),
    (chart.FEES.ledger, chart.FEES.name): (
        "8030",
        "Commissions perçues en RolloN",
        "Income:RLN:Fees",
    ),
    (chart.RESERVE.ledger, chart.RESERVE.name): (
        "4680",
        "Réserve du fonds de garantie (RolloN en circulation)",
        "Liabilities:EUR:Reserve",
    ),
    (chart.BANK.ledger, chart.BANK.name): (
        "5120",
        "Banque du fonds de garantie (dépôts et versements)",
        "Assets:EUR:Bank",
    ),
    (chart.PAYOUTS_DUE.ledger, chart.PAYOUTS_DUE.name): (
        "4675",
        "Commerçants, reconversions à verser",
        "Liabilities:EUR:PayoutsDue",
    ),
    (chart.REVENUE.ledger, chart.REVENUE.name): (
        "7060",
        "Commissions de reconversion",
        "Income:EUR:Revenue",
    ),
    (chart.GRANTS.ledger, chart.GRANTS.name): (
        "4410",
        "Subventions affectées au bonus de change",
        "Assets:EUR:Grants",
    ),
}

# (ledger, kind) -> (collective account number, label, aux prefix, Beancount parent)
_HOLDERS: dict[tuple[LedgerCode, AccountKind], tuple[str, str, str, str]] = {
    (LedgerCode.RLN, AccountKind.MEMBER): (
        "8021",
        "RolloN des adhérents",
        "ADH",
        "Liabilities:RLN:Members",
    ),
    (LedgerCode.RLN, AccountKind.MERCHANT): (
        "8022",
        "RolloN des commerçants",
        "COM",
        "Liabilities:RLN:Merchants",
    ),
    (LedgerCode.RLN, AccountKind.EXCHANGE_POINT): (
        "8023",
        "RolloN des comptoirs de change",
        "CPT",
        "Liabilities:RLN:ExchangePoints",
    ),
    (LedgerCode.EUR, AccountKind.MEMBER): (
        "4671",
        "Adhérents, euros",
        "ADH",
        "Liabilities:EUR:Members",
    ),
    (LedgerCode.EUR, AccountKind.MERCHANT): (
        "4672",
        "Commerçants, euros",
        "COM",
        "Liabilities:EUR:Merchants",
    ),
    (LedgerCode.EUR, AccountKind.EXCHANGE_POINT): (
        "4673",
        "Comptoirs de change, euros",
        "CPT",
        "Liabilities:EUR:ExchangePoints",
    ),
}

# System accounts the chart may gain later (demurrage...): kept apart, never mistaken.
_OTHER_SYSTEM = {LedgerCode.RLN: "8090", LedgerCode.EUR: "4790"}


def _component(name: str) -> str:
    """A Beancount account component from a free name: letters and digits, capitalised."""
    words = re.findall(r"[A-Za-z0-9]+", name)
    text = "".join(w[:1].upper() + w[1:] for w in words) or "Account"
    return text if text[0].isupper() or text[0].isdigit() else "X" + text


def book_account(account: Account) -> BookAccount:
    """Where an account appears in the FEC and in Beancount."""
    if account.kind is AccountKind.SYSTEM:
        known = _SYSTEM.get((account.ledger, account.name))
        if known is not None:
            number, label, beancount = known
            return BookAccount(number, label, "", "", beancount)
        return BookAccount(
            _OTHER_SYSTEM[account.ledger],
            account.name,
            "",
            "",
            f"Equity:{account.ledger.value}:{_component(account.name)}",
        )
    number, label, prefix, parent = _HOLDERS[(account.ledger, account.kind)]
    hex_id = account.id.hex.upper()
    return BookAccount(number, label, f"{prefix}{hex_id}", account.name, f"{parent}:{hex_id}")


def unknown_account(account_id: UUID) -> BookAccount:
    """Where a transfer to an account the books do not list is put: in plain sight, under
    its own name, so an export of broken books still shows every line (and bean-check
    refuses it, as the account was never opened)."""
    hex_id = account_id.hex.upper()
    return BookAccount(
        "4799", "Compte inconnu du grand livre", hex_id, "", f"Equity:Unknown:{hex_id}"
    )


def posted_amount(entry: JournalEntry) -> int:
    """What an entry moves in the books: its amount once posted, nothing for a hold or its
    release (pending money is not yet anyone's)."""
    flags = entry.transfer.flags
    if flags & (TransferFlag.PENDING | TransferFlag.VOID_PENDING):
        return 0
    return entry.transfer.amount


def balances_at_seq(
    connection: Connection, accounts: Iterable[Account], seq: int
) -> dict[UUID, int]:
    """Each account's posted balance (credits minus debits) just after entry `seq`."""
    everyone = queries.balances_at_seq(connection, seq) if seq > 0 else {}
    return {a.id: everyone.get(a.id, 0) for a in accounts}
