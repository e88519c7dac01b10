"""Verify the books: recompute the hash chain, check the signed checkpoints, replay every
balance from the journal and check the invariants of DESIGN.md.

`JournalReplay` is pure (feed it entries in order, from a database or from an export file);
`verify_database` streams a database into it page by page, so memory stays bounded by the
number of accounts and open holds, never by the length of the journal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from rollon.ledger import chart
from rollon.ledger.accounts import Balances, LedgerCode
from rollon.ledger.journal import (
    GENESIS,
    ChainHead,
    Checkpoint,
    checkpoint_is_valid,
    key_id,
    recompute_hash,
)
from rollon.ledger.schema import accounts, checkpoints, holds, journal_head, transfers
from rollon.ledger.storage import balances_from_row, entry_from_row
from rollon.ledger.transfers import JournalEntry, TransferFlag

MAX_PROBLEMS = 100  # a broken journal can break everywhere; the first ones say enough
PAGE_SIZE = 5_000


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing found wrong, naming the entry (seq, transfer id) or account concerned."""

    kind: str
    message: str
    seq: int | None = None
    transfer_id: UUID | None = None
    account_id: UUID | None = None


@dataclass(slots=True)
class VerifyReport:
    entries_checked: int = 0
    checkpoints_checked: int = 0
    last_seq: int = 0
    problems: list[Problem] = field(default_factory=list)
    truncated: bool = False  # more problems were found than are listed

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None


@dataclass(slots=True)
class _Hold:
    debit: UUID
    credit: UUID
    amount: int


class JournalReplay:
    """Checks a journal fed to it in order. Holds one running total per account."""

    def __init__(
        self,
        account_ledgers: Mapping[UUID, tuple[LedgerCode, bool]],
        signed: Iterable[Checkpoint],
        public_keys: Iterable[Ed25519PublicKey],
    ) -> None:
        """`account_ledgers`: account id -> (ledger, no_overdraft) for every known account."""
        self.report = VerifyReport()
        self._ledgers = dict(account_ledgers)
        self._balances = {
            account_id: Balances(account_id, ledger, no_overdraft, False)
            for account_id, (ledger, no_overdraft) in self._ledgers.items()
        }
        self._keys = {key_id(k): k for k in public_keys}
        self._checkpoints = {c.seq: c for c in signed}
        self._holds: dict[UUID, _Hold] = {}
        self._head = GENESIS
        self._drifted: set[UUID] = set()  # accounts already reported, so one edit is one line

    def problem(self, problem: Problem) -> None:
        if len(self.report.problems) < MAX_PROBLEMS:
            self.report.problems.append(problem)
        else:
            self.report.truncated = True

    # -- entry by entry -------------------------------------------------------------------------
    def feed(self, entry: JournalEntry) -> None:
        t = entry.transfer
        if entry.seq != self._head.seq + 1:
            self.problem(
                Problem(
                    "sequence_gap",
                    f"entry {entry.seq} follows entry {self._head.seq}: entries were deleted, "
                    "inserted or reordered",
                    entry.seq,
                    t.id,
                )
            )
        if entry.prev_hash != self._head.hash:
            self.problem(
                Problem(
                    "chain_broken",
                    f"entry {entry.seq} does not continue the chain",
                    entry.seq,
                    t.id,
                )
            )
        if recompute_hash(entry) != entry.hash:
            self.problem(
                Problem(
                    "hash_mismatch",
                    f"entry {entry.seq} was edited after it was written",
                    entry.seq,
                    t.id,
                )
            )
        if entry.timestamp_ns <= self._head.timestamp_ns:
            self.problem(
                Problem(
                    "timestamp_order",
                    f"entry {entry.seq} is not later than the one before",
                    entry.seq,
                    t.id,
                )
            )
        self._replay(entry)
        self._check_checkpoint(entry)
        self._head = ChainHead(entry.seq, entry.hash, entry.timestamp_ns)
        self.report.entries_checked += 1
        self.report.last_seq = entry.seq

    def _replay(self, entry: JournalEntry) -> None:
        t = entry.transfer
        debit = self._balances.get(t.debit_account_id)
        credit = self._balances.get(t.credit_account_id)
        if debit is None or credit is None:
            self.problem(
                Problem(
                    "unknown_account", "entry names an account that does not exist", entry.seq, t.id
                )
            )
            return
        if debit.ledger != t.ledger or credit.ledger != t.ledger:
            self.problem(Problem("ledger_mismatch", "entry crosses ledgers", entry.seq, t.id))
        if t.flags & TransferFlag.PENDING:
            debit.debits_pending += t.amount
            credit.credits_pending += t.amount
            self._holds[t.id] = _Hold(t.debit_account_id, t.credit_account_id, t.amount)
        elif t.flags & (TransferFlag.POST_PENDING | TransferFlag.VOID_PENDING):
            hold = self._holds.pop(t.pending_id, None) if t.pending_id is not None else None
            if hold is None:
                self.problem(
                    Problem(
                        "unknown_pending",
                        "entry resolves no open pending transfer",
                        entry.seq,
                        t.id,
                    )
                )
                return
            debit.debits_pending -= hold.amount
            credit.credits_pending -= hold.amount
            if t.flags & TransferFlag.POST_PENDING:
                debit.debits_posted += t.amount
                credit.credits_posted += t.amount
        else:
            debit.debits_posted += t.amount
            credit.credits_posted += t.amount
        for account, recorded in (
            (debit, entry.debit_balance_after),
            (credit, entry.credit_balance_after),
        ):
            if account.posted != recorded and account.id not in self._drifted:
                self._drifted.add(account.id)
                self.problem(
                    Problem(
                        "balance_after_mismatch",
                        "the balance recorded in the entry differs from the replayed one",
                        entry.seq,
                        t.id,
                        account.id,
                    )
                )
        if debit.no_overdraft and debit.available < 0:
            self.problem(
                Problem(
                    "overdraft",
                    f"account went below zero at entry {entry.seq}",
                    entry.seq,
                    t.id,
                    debit.id,
                )
            )

    def _check_checkpoint(self, entry: JournalEntry) -> None:
        checkpoint = self._checkpoints.get(entry.seq)
        if checkpoint is None:
            return
        self.report.checkpoints_checked += 1
        key = self._keys.get(checkpoint.key_id)
        if key is None:
            self.problem(
                Problem(
                    "checkpoint_unknown_key",
                    f"checkpoint {entry.seq} names an unknown key",
                    entry.seq,
                )
            )
        elif not checkpoint_is_valid(key, checkpoint):
            self.problem(
                Problem(
                    "checkpoint_bad_signature",
                    f"checkpoint {entry.seq} is not validly signed",
                    entry.seq,
                )
            )
        if checkpoint.hash != entry.hash or checkpoint.timestamp_ns != entry.timestamp_ns:
            self.problem(
                Problem(
                    "checkpoint_mismatch",
                    f"the journal at entry {entry.seq} differs from what was signed",
                    entry.seq,
                    entry.transfer.id,
                )
            )

    # -- at the end ------------------------------------------------------------------------------
    def finish(
        self,
        stored: Iterable[Balances] | None = None,
        stored_holds: Iterable[UUID] | None = None,
        stored_head: ChainHead | None = None,
    ) -> VerifyReport:
        """Compare the replay with what the database stores (when given) and check the
        invariants on the replayed balances."""
        for seq in sorted(s for s in self._checkpoints if s > self._head.seq):
            self.problem(
                Problem("journal_truncated", f"checkpoint {seq} is past the journal's end", seq)
            )
        if stored_head is not None and stored_head != self._head:
            self.problem(
                Problem(
                    "head_mismatch",
                    f"the journal head says entry {stored_head.seq}, the journal ends at "
                    f"{self._head.seq}",
                    stored_head.seq,
                )
            )
        if stored is not None:
            self._compare_balances(stored)
        if stored_holds is not None and set(stored_holds) != set(self._holds):
            self.problem(Problem("holds_mismatch", "open holds differ from the journal's"))
        self._check_invariants()
        return self.report

    def _compare_balances(self, stored: Iterable[Balances]) -> None:
        for account in stored:
            replayed = self._balances.get(account.id)
            if replayed is None or _totals(replayed) != _totals(account):
                self.problem(
                    Problem(
                        "balance_mismatch",
                        "stored balance differs from the sum of its journal entries",
                        account_id=account.id,
                    )
                )

    def _check_invariants(self) -> None:
        for ledger in LedgerCode:
            total = sum(b.posted for b in self._balances.values() if b.ledger == ledger)
            if total != 0:
                self.problem(Problem("ledger_unbalanced", f"{ledger} balances sum to {total}"))
        issuance = self._balances.get(chart.ISSUANCE.id)
        reserve = self._balances.get(chart.RESERVE.id)
        if issuance is not None and reserve is not None and reserve.posted != -issuance.posted:
            self.problem(
                Problem(
                    "reserve_mismatch",
                    f"reserve holds {reserve.posted} but {-issuance.posted} RolloN circulate",
                )
            )
        for b in self._balances.values():
            if b.no_overdraft and b.available < 0:
                self.problem(Problem("overdraft", "account is below zero", account_id=b.id))


def _totals(b: Balances) -> tuple[int, int, int, int]:
    return (b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending)


Progress = Callable[[int], None]


def verify_database(
    engine: Engine,
    public_keys: Iterable[Ed25519PublicKey],
    *,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify the whole journal and every balance of a database, in bounded memory.

    Runs in one read transaction (a consistent snapshot, also on PostgreSQL), so the ledger
    may keep writing meanwhile. `progress` is called with the number of entries checked.
    """
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**options) as connection, connection.begin():
        stored = [balances_from_row(r) for r in connection.execute(sa.select(accounts))]
        signed = [
            Checkpoint(r.seq, bytes(r.hash), r.timestamp_ns, r.key_id, bytes(r.signature))
            for r in connection.execute(sa.select(checkpoints))
        ]
        replay = JournalReplay(
            {b.id: (b.ledger, b.no_overdraft) for b in stored}, signed, public_keys
        )
        after = 0
        while True:
            page = connection.execute(
                sa.select(transfers)
                .where(transfers.c.seq > after)
                .order_by(transfers.c.seq)
                .limit(page_size)
            ).all()
            if not page:
                break
            for row in page:
                replay.feed(entry_from_row(row))
            after = page[-1].seq
            if progress is not None:
                progress(replay.report.entries_checked)
        head_row = connection.execute(sa.select(journal_head)).one_or_none()
        head = (
            None
            if head_row is None
            else ChainHead(head_row.seq, bytes(head_row.hash), head_row.timestamp_ns)
        )
        open_holds = list(connection.execute(sa.select(holds.c.transfer_id)).scalars())
        report = replay.finish(stored, open_holds, head)
    if head is None:
        report.problems.insert(0, Problem("head_missing", "the journal head row is missing"))
    return report
