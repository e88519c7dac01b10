"""A small reference model of the ledger's rules, written apart from the state machine.

It is meant to be obviously right rather than fast: plain dicts, and a whole copy of the
state for each chain of linked transfers, kept if the chain succeeds and dropped if not.
The property tests run the same batches through it and through the real state machine (or
the real database) and demand the same results, journal, balances, holds and failed ids.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from rollon.ledger.accounts import LedgerCode
from rollon.ledger.journal import expiry_id
from rollon.ledger.transfers import Result, Transfer, TransferCode, TransferFlag

MAX_VALUE = 2**63 - 1
MEMO_BYTES = 512
MAX_HOLD_S = 366 * 24 * 3600
NS_PER_S = 1_000_000_000

F = TransferFlag
R = Result
REMEMBERED_FAILURES = {
    R.INSUFFICIENT_FUNDS,
    R.ACCOUNT_NOT_FOUND,
    R.ACCOUNT_CLOSED,
    R.PENDING_NOT_FOUND,
    R.PENDING_EXPIRED,
    R.PENDING_ALREADY_POSTED,
    R.PENDING_ALREADY_VOIDED,
    R.EXCEEDS_PENDING_AMOUNT,
    R.OVERFLOW,
}


@dataclass
class ModelAccount:
    ledger: LedgerCode
    limited: bool  # "no overdraft": may never go below zero
    closed: bool = False
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def spendable(self) -> int:
        return self.balance - self.debits_pending


@dataclass(frozen=True)
class ModelEntry:
    transfer: Transfer
    timestamp_ns: int
    expires_at_ns: int | None
    debit_after: int
    credit_after: int


@dataclass
class Model:
    accounts: dict[UUID, ModelAccount]
    committed: dict[UUID, Transfer] = field(default_factory=dict)
    failed: dict[UUID, Result] = field(default_factory=dict)
    open_holds: dict[UUID, tuple[Transfer, int | None]] = field(default_factory=dict)
    closed_holds: dict[UUID, Result] = field(default_factory=dict)
    journal: list[ModelEntry] = field(default_factory=list)
    last_ts: int = 0  # ledger time of the last entry (of the whole journal, if it is shared)
    next_ts: int = 0

    def run_batch(self, now_ns: int, requests: Sequence[Sequence[Transfer]]) -> list[list[Result]]:
        """One batch at ledger time `now_ns`: expiries first, then each request in turn."""
        self.next_ts = max(now_ns, self.last_ts + 1)
        due = [
            (expires, pending_id)
            for pending_id, (_, expires) in self.open_holds.items()
            if expires is not None and expires <= now_ns
        ]
        for _, pending_id in sorted(due):
            pending, _ = self.open_holds[pending_id]
            void = Transfer(
                id=expiry_id(pending_id),
                debit_account_id=pending.debit_account_id,
                credit_account_id=pending.credit_account_id,
                amount=pending.amount,
                ledger=pending.ledger,
                code=TransferCode.EXPIRY,
                flags=F.VOID_PENDING,
                pending_id=pending_id,
                memo="expired",
            )
            self._apply(void)
        return [self._run_request(request) for request in requests]

    def _run_request(self, request: Sequence[Transfer]) -> list[Result]:
        results: list[Result] = []
        chain: list[Transfer] = []
        for t in request:
            chain.append(t)
            if not t.flags & F.LINKED:
                results += self._run_chain(chain)
                chain = []
        if chain:
            results += self._run_chain(chain)  # still open at the end of the request
        return results

    def _run_chain(self, chain: list[Transfer]) -> list[Result]:
        trial = copy.deepcopy(self)
        results: list[Result] = []
        for i, t in enumerate(chain):
            result = trial._decide(t)
            if result not in (R.OK, R.EXISTS):
                return self._refuse(chain, i, result)
            results.append(result)
        if chain[-1].flags & F.LINKED:
            return self._refuse(chain, len(chain) - 1, R.LINKED_CHAIN_OPEN)
        self.__dict__.update(trial.__dict__)  # the chain holds: keep what it did
        return results

    def _refuse(self, chain: list[Transfer], at: int, own: Result) -> list[Result]:
        results = [R.LINKED_TRANSFER_FAILED] * len(chain)
        results[at] = own
        if own in REMEMBERED_FAILURES:
            self.failed[chain[at].id] = own
        return results

    def _decide(self, t: Transfer) -> Result:
        if t.id in self.committed:
            return R.EXISTS if self.committed[t.id] == t else R.EXISTS_WITH_DIFFERENT_FIELDS
        if t.id.variant == uuid.RESERVED_FUTURE:  # ids the ledger keeps for its own entries
            return R.EXISTS_WITH_DIFFERENT_FIELDS
        if t.id in self.failed:
            return R.ID_ALREADY_FAILED
        refusal = self._refusal(t)
        if refusal is not None:
            return refusal
        self._apply(t)
        return R.OK

    def _refusal(self, t: Transfer) -> Result | None:
        two_phase = [f for f in (F.PENDING, F.POST_PENDING, F.VOID_PENDING) if t.flags & f]
        resolves = two_phase in ([F.POST_PENDING], [F.VOID_PENDING])
        if len(two_phase) > 1:
            return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if t.amount < 1:
            return R.AMOUNT_MUST_BE_POSITIVE
        if t.amount > MAX_VALUE:
            return R.AMOUNT_TOO_LARGE
        if resolves and t.pending_id is None:
            return R.PENDING_ID_REQUIRED
        if not resolves and t.pending_id is not None:
            return R.PENDING_ID_NOT_ALLOWED
        if t.timeout_s and two_phase != [F.PENDING]:
            return R.TIMEOUT_NOT_ALLOWED
        if t.timeout_s < 0 or t.timeout_s > MAX_HOLD_S:
            return R.INVALID_TIMEOUT
        if t.event_time_ns is not None and (t.event_time_ns < 0 or t.event_time_ns > MAX_VALUE):
            return R.INVALID_EVENT_TIME
        if len(t.memo.encode()) > MEMO_BYTES:
            return R.MEMO_TOO_LONG
        if t.debit_account_id == t.credit_account_id:
            return R.SAME_ACCOUNT
        if t.debit_account_id not in self.accounts or t.credit_account_id not in self.accounts:
            return R.ACCOUNT_NOT_FOUND
        debit = self.accounts[t.debit_account_id]
        credit = self.accounts[t.credit_account_id]
        if t.ledger != debit.ledger or t.ledger != credit.ledger:
            return R.LEDGER_MISMATCH
        if two_phase != [F.VOID_PENDING] and (debit.closed or credit.closed):
            return R.ACCOUNT_CLOSED
        if resolves:
            assert t.pending_id is not None
            if t.pending_id not in self.open_holds:
                return self.closed_holds.get(t.pending_id, R.PENDING_NOT_FOUND)
            pending, _ = self.open_holds[t.pending_id]
            same_parties = (
                pending.debit_account_id == t.debit_account_id
                and pending.credit_account_id == t.credit_account_id
                and pending.ledger == t.ledger
            )
            if not same_parties:
                return R.PENDING_MISMATCH
            if t.amount > pending.amount:
                return R.EXCEEDS_PENDING_AMOUNT
            if two_phase == [F.VOID_PENDING] and t.amount != pending.amount:
                return R.PENDING_MISMATCH
            return None
        if debit.limited and debit.spendable < t.amount:
            return R.INSUFFICIENT_FUNDS
        if credit.credits_posted + credit.credits_pending + t.amount > MAX_VALUE:
            return R.OVERFLOW
        if debit.debits_posted + debit.debits_pending + t.amount > MAX_VALUE:
            return R.OVERFLOW
        return None

    def _apply(self, t: Transfer) -> None:
        debit = self.accounts[t.debit_account_id]
        credit = self.accounts[t.credit_account_id]
        timestamp = self.next_ts
        self.next_ts += 1
        expires: int | None = None
        if t.flags & F.PENDING:
            debit.debits_pending += t.amount
            credit.credits_pending += t.amount
            expires = timestamp + t.timeout_s * NS_PER_S if t.timeout_s else None
            self.open_holds[t.id] = (t, expires)
        elif t.flags & (F.POST_PENDING | F.VOID_PENDING):
            assert t.pending_id is not None
            pending, _ = self.open_holds.pop(t.pending_id)
            debit.debits_pending -= pending.amount
            credit.credits_pending -= pending.amount
            if t.flags & F.POST_PENDING:
                debit.debits_posted += t.amount
                credit.credits_posted += t.amount
                self.closed_holds[t.pending_id] = R.PENDING_ALREADY_POSTED
            elif t.code is TransferCode.EXPIRY:
                self.closed_holds[t.pending_id] = R.PENDING_EXPIRED
            else:
                self.closed_holds[t.pending_id] = R.PENDING_ALREADY_VOIDED
        else:
            debit.debits_posted += t.amount
            credit.credits_posted += t.amount
        self.committed[t.id] = t
        self.last_ts = timestamp
        self.journal.append(ModelEntry(t, timestamp, expires, debit.balance, credit.balance))
