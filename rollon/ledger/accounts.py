"""Accounts: who can hold money, on which ledger, under which limits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID


class LedgerCode(StrEnum):
    """The two ledgers; a transfer never crosses them."""

    RLN = "RLN"  # RolloN, in centimes
    EUR = "EUR"  # mirror of the guarantee fund's bank account, in euro cents


class AccountKind(StrEnum):
    MEMBER = "member"
    MERCHANT = "merchant"
    EXCHANGE_POINT = "exchange_point"
    SYSTEM = "system"


@dataclass(slots=True)
class Balances:
    """An account's limits and running totals, as the state machine sees them.

    Mutable on purpose: the state machine works on its own copies, then hands the changed
    ones back to storage.
    """

    id: UUID
    ledger: LedgerCode
    no_overdraft: bool
    closed: bool
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    @property
    def posted(self) -> int:
        """Net posted balance: credits minus debits (a member's money is a credit balance)."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What may still be debited: posted balance less the holds of pending debits."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    def copy(self) -> Balances:
        return Balances(
            self.id,
            self.ledger,
            self.no_overdraft,
            self.closed,
            self.debits_posted,
            self.credits_posted,
            self.debits_pending,
            self.credits_pending,
        )


@dataclass(frozen=True, slots=True)
class Account:
    """An account as people see it: its balances plus who it belongs to."""

    id: UUID
    ledger: LedgerCode
    kind: AccountKind
    name: str
    no_overdraft: bool
    closed: bool
    created_at_ns: int
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        return self.credits_posted - self.debits_posted - self.debits_pending
