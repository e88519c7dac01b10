"""Transfers, their flags and codes, and the result codes the ledger answers with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntFlag, StrEnum
from typing import Any
from uuid import UUID

from rollon.ledger.accounts import LedgerCode


class TransferFlag(IntFlag):
    NONE = 0
    LINKED = 1  # this transfer and the next succeed or fail together
    PENDING = 2  # hold the funds until posted, voided or expired
    POST_PENDING = 4  # post (all or part of) the pending transfer `pending_id`
    VOID_PENDING = 8  # release the pending transfer `pending_id`


class TransferCode(StrEnum):
    """What a transfer is for, in the association's books."""

    ISSUANCE = "issuance"
    TRANSFER = "transfer"
    PAYMENT = "payment"
    REFUND = "refund"
    RECONVERSION = "reconversion"
    PAYOUT = "payout"
    FEE = "fee"
    CORRECTION = "correction"
    EXPIRY = "expiry"  # written by the ledger itself when a pending transfer times out


class Result(StrEnum):
    """One result per transfer, never an exception (TigerBeetle's style)."""

    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    ACCOUNT_NOT_FOUND = "account_not_found"
    ACCOUNT_CLOSED = "account_closed"
    LEDGER_MISMATCH = "ledger_mismatch"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    AMOUNT_TOO_LARGE = "amount_too_large"
    SAME_ACCOUNT = "same_account"
    LINKED_TRANSFER_FAILED = "linked_transfer_failed"
    LINKED_CHAIN_OPEN = "linked_chain_open"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    PENDING_ID_REQUIRED = "pending_id_required"
    PENDING_ID_NOT_ALLOWED = "pending_id_not_allowed"
    TIMEOUT_NOT_ALLOWED = "timeout_not_allowed"
    INVALID_TIMEOUT = "invalid_timeout"
    INVALID_EVENT_TIME = "invalid_event_time"
    MEMO_TOO_LONG = "memo_too_long"
    PENDING_NOT_FOUND = "pending_not_found"
    PENDING_EXPIRED = "pending_expired"
    PENDING_ALREADY_POSTED = "pending_already_posted"
    PENDING_ALREADY_VOIDED = "pending_already_voided"
    PENDING_MISMATCH = "pending_mismatch"
    EXCEEDS_PENDING_AMOUNT = "exceeds_pending_amount"
    OVERFLOW = "overflow"
    ID_ALREADY_FAILED = "id_already_failed"


# Refusals that depend on the ledger's state at the time: the id stays failed, so a retry can
# never turn an old refusal into a payment the payer no longer expects.
STATE_DEPENDENT_FAILURES = frozenset(
    {
        Result.INSUFFICIENT_FUNDS,
        Result.ACCOUNT_NOT_FOUND,
        Result.ACCOUNT_CLOSED,
        Result.PENDING_NOT_FOUND,
        Result.PENDING_EXPIRED,
        Result.PENDING_ALREADY_POSTED,
        Result.PENDING_ALREADY_VOIDED,
        Result.EXCEEDS_PENDING_AMOUNT,
        Result.OVERFLOW,
    }
)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A request to move `amount` from `debit_account_id` to `credit_account_id`.

    `id` is chosen by the client and is the idempotency key. `event_time_ns` is when it
    happened, when that differs from when the ledger records it (an import of history).
    For POST_PENDING and VOID_PENDING, accounts and ledger must match the pending transfer.
    """

    id: UUID
    debit_account_id: UUID
    credit_account_id: UUID
    amount: int
    ledger: LedgerCode
    code: TransferCode
    flags: TransferFlag = TransferFlag.NONE
    pending_id: UUID | None = None
    timeout_s: int = 0
    memo: str = ""
    event_time_ns: int | None = None

    def __reduce__(self) -> tuple[Callable[..., Transfer], tuple[Any, ...]]:
        # Every payment crosses to the ledger's writer process and back pickled. By default
        # a slots dataclass pickles its state through Python code, and UUIDs and enums by
        # class: 10 µs each way. Plain values pickle in C: about 1 µs out, 4 back.
        pending = self.pending_id
        return _transfer, (
            self.id.bytes,
            self.debit_account_id.bytes,
            self.credit_account_id.bytes,
            self.amount,
            self.ledger.value,
            self.code.value,
            int(self.flags),
            None if pending is None else pending.bytes,
            self.timeout_s,
            self.memo,
            self.event_time_ns,
        )


# Enum members by value, through dicts: calling an Enum class costs more than the rest of a
# stored row's conversion (storage) or of an unpickled transfer.
LEDGER_CODES = {code.value: code for code in LedgerCode}
TRANSFER_CODES = {code.value: code for code in TransferCode}
FLAGS_BY_BITS = {int(flags): flags for flags in map(TransferFlag, range(16))}
RESULTS = {result.value: result for result in Result}


def _transfer(
    id_bytes: bytes,
    debit_bytes: bytes,
    credit_bytes: bytes,
    amount: int,
    ledger: str,
    code: str,
    flags: int,
    pending_bytes: bytes | None,
    timeout_s: int,
    memo: str,
    event_time_ns: int | None,
) -> Transfer:
    """A Transfer from what its `__reduce__` gave."""
    return Transfer(
        UUID(bytes=id_bytes),
        UUID(bytes=debit_bytes),
        UUID(bytes=credit_bytes),
        amount,
        LEDGER_CODES[ledger],
        TRANSFER_CODES[code],
        FLAGS_BY_BITS[flags],
        None if pending_bytes is None else UUID(bytes=pending_bytes),
        timeout_s,
        memo,
        event_time_ns,
    )


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A transfer as the journal holds it: with its place in the chain, the time the ledger
    recorded it, both accounts' posted balances just after it, and its hash."""

    seq: int
    timestamp_ns: int
    transfer: Transfer
    expires_at_ns: int | None
    debit_balance_after: int
    credit_balance_after: int
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class Hold:
    """An open pending transfer: funds held on the debit account until post, void or expiry."""

    transfer: Transfer
    expires_at_ns: int | None
