"""An in-memory stand-in for storage.py, for the pure state machine tests.

It keeps what the tables keep (accounts, journal, failed ids, holds, head), builds each
`Snapshot` the way `storage.BatchReads` does (only what the batch names, plus holds due to
expire) and writes each `Outcome` with the same guards as `write_outcome`, plus the
database's own constraints (unique ids, one resolution per pending transfer), as asserts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

from rollon.ledger.accounts import Balances
from rollon.ledger.journal import GENESIS, ChainHead
from rollon.ledger.state_machine import Outcome, Snapshot, execute
from rollon.ledger.transfers import Hold, JournalEntry, Result, Transfer, TransferCode, TransferFlag

Requests = Sequence[Sequence[Transfer]]


def resolution_of(t: Transfer) -> Result:
    """What a later post or void of the same pending transfer is told."""
    if t.flags & TransferFlag.POST_PENDING:
        return Result.PENDING_ALREADY_POSTED
    if t.code is TransferCode.EXPIRY:
        return Result.PENDING_EXPIRED
    return Result.PENDING_ALREADY_VOIDED


class MemoryStore:
    def __init__(self, accounts: Iterable[Balances]) -> None:
        self.accounts = {a.id: a.copy() for a in accounts}
        self.entries: list[JournalEntry] = []
        self.by_id: dict[UUID, JournalEntry] = {}
        self.failed: dict[UUID, Result] = {}
        self.holds: dict[UUID, Hold] = {}
        self.resolved: dict[UUID, Result] = {}
        self.head: ChainHead = GENESIS

    def snapshot(self, requests: Requests, now_ns: int) -> Snapshot:
        batch = [t for request in requests for t in request]
        ids = {t.id for t in batch}
        pending_ids = {t.pending_id for t in batch if t.pending_id is not None}
        holds = {
            pending_id: hold
            for pending_id, hold in self.holds.items()
            if pending_id in pending_ids
            or (hold.expires_at_ns is not None and hold.expires_at_ns <= now_ns)
        }
        named = {t.debit_account_id for t in batch} | {t.credit_account_id for t in batch}
        for hold in holds.values():
            named |= {hold.transfer.debit_account_id, hold.transfer.credit_account_id}
        return Snapshot(
            now_ns=now_ns,
            head=self.head,
            accounts={i: self.accounts[i].copy() for i in named if i in self.accounts},
            existing={i: self.by_id[i].transfer for i in ids if i in self.by_id},
            failed={i: r for i, r in self.failed.items() if i in ids},
            holds=holds,
            resolved={i: r for i, r in self.resolved.items() if i in pending_ids},
        )

    def execute(self, requests: Requests, now_ns: int) -> Outcome:
        """Decide a batch and write it, as the hot path does in one transaction."""
        outcome = execute(self.snapshot(requests, now_ns), requests)
        self.write(outcome)
        return outcome

    def write(self, outcome: Outcome) -> None:
        for entry in outcome.entries:
            t = entry.transfer
            assert entry.seq == len(self.entries) + 1, "seq is the journal's primary key"
            assert t.id not in self.by_id, "transfer ids are unique"
            if self.entries:
                assert entry.timestamp_ns > self.entries[-1].timestamp_ns
            if t.pending_id is not None:
                assert t.pending_id not in self.resolved, "a pending transfer resolves once"
                self.resolved[t.pending_id] = resolution_of(t)
            self.entries.append(entry)
            self.by_id[t.id] = entry
        for failed_id, result in outcome.failures.items():
            assert failed_id not in self.failed, "failed ids are a primary key"
            self.failed[failed_id] = result
        for hold in outcome.holds_opened:
            assert hold.transfer.id not in self.holds
            self.holds[hold.transfer.id] = hold
        for pending_id in outcome.holds_closed:
            assert pending_id in self.holds, "closing a hold that is not open"
            del self.holds[pending_id]
        for account_id, after in outcome.accounts.items():
            # The guarded update: the row must still hold what the batch was decided on.
            assert self.accounts[account_id] == outcome.accounts_before[account_id]
            self.accounts[account_id] = after.copy()
        self.head = outcome.head
