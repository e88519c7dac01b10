"""The currency's chart of accounts: the system accounts every RolloN ledger has.

Their ids are derived from their names, so they are the same in every installation and a
script can name them without looking them up.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid5

from rollon.ledger.accounts import LedgerCode

_NAMESPACE = UUID("5d1c7a52-8f0e-4b8a-9a43-52011e5c0a1d")


def system_account_id(ledger: LedgerCode, name: str) -> UUID:
    return uuid5(_NAMESPACE, f"{ledger.value}:{name}")


@dataclass(frozen=True, slots=True)
class SystemAccount:
    ledger: LedgerCode
    name: str
    no_overdraft: bool
    purpose: str

    @property
    def id(self) -> UUID:
        return system_account_id(self.ledger, self.name)


ISSUANCE = SystemAccount(
    LedgerCode.RLN, "issuance", False, "minus the RolloN in circulation; may go negative"
)
FEES = SystemAccount(LedgerCode.RLN, "fees", True, "fees the association earns in RolloN")
RESERVE = SystemAccount(LedgerCode.EUR, "reserve", True, "euros backing the RolloN, one for one")
BANK = SystemAccount(LedgerCode.EUR, "bank", False, "the outside world: deposits and payouts")
PAYOUTS_DUE = SystemAccount(
    LedgerCode.EUR, "payouts_due", True, "euros owed to merchants for reconversions"
)
REVENUE = SystemAccount(LedgerCode.EUR, "revenue", True, "the association's share of fees")
GRANTS = SystemAccount(
    LedgerCode.EUR, "grants", False, "subsidies (the Région's) that fund the bonus on change"
)

SYSTEM_ACCOUNTS = (ISSUANCE, FEES, RESERVE, BANK, PAYOUTS_DUE, REVENUE, GRANTS)
