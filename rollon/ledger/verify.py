"""Verify the books: recompute the hash chain, check the signed checkpoints, replay every
balance from the journal and check the invariants of DESIGN.md.

`JournalReplay` is pure (feed it entries in order, from a database or from an export file);
`verify_database` streams a database into it page by page, so memory stays bounded by the
number of accounts and open holds, never by the length of the journal.

Tampering is named by kind, with the entry (seq, transfer id) concerned:
- `entry_edited`: an entry's fields no longer give its hash, while the chain still runs
  through it; or it was rewritten with a new hash, and the next entry names the old one.
- `entry_deleted`: entries are missing from the chain (by their seq, since they are gone).
- `entry_inserted`: an entry the chain does not run through, or one that appears twice.
- `entry_reordered`: an entry out of its place, or stored under another seq than the one
  its hash was written with (renumbered runs are reported as one range).
Each entry's hash covers its seq and the previous entry's hash, so an entry moved to
another seq is recognised by recomputing its hash with nearby seqs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from uuid import UUID

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from rollon.ledger import chart
from rollon.ledger.accounts import Balances, LedgerCode
from rollon.ledger.journal import (
    GENESIS,
    GENESIS_HASH,
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
RECENT_WINDOW = 1_024  # entries remembered by seq, to check links and place moved entries
SEQ_SEARCH_SPAN = 64  # how far from its place a moved entry's written seq is looked for
MAX_SEQ_SEARCHES = 1_000  # a journal broken everywhere must not cost 2*SPAN hashes per entry


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
    signed_through_seq: int = 0  # the last entry a valid checkpoint covers; later ones are not
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


@dataclass(frozen=True, slots=True)
class _Seen:
    """A chained entry, remembered by the seq its hash was written with."""

    hash: bytes
    transfer_id: UUID
    timestamp_ns: int


@dataclass(frozen=True, slots=True)
class _Awaited:
    """The hash an entry names for its predecessor, which has not been seen yet."""

    prev_hash: bytes
    successor_seq: int


@dataclass(slots=True)
class _Gap:
    """Written seqs not seen yet: moved later in the stream, or deleted."""

    first: int
    last: int
    opened_at: int  # stream position, so that a gap left open long enough is a deletion


@dataclass(slots=True)
class _Run:
    """Consecutive entries stored `offset` away from the seq their hash was written with."""

    offset: int
    first_stored: int
    last_stored: int
    transfer_id: UUID


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
        # Chain state, bounded: the last RECENT_WINDOW entries by written seq, links still to
        # check, open gaps, the entry under suspicion, the current run of renumbered entries.
        self._recent: OrderedDict[int, _Seen] = OrderedDict()
        self._recent_hashes: dict[bytes, int] = {}  # the same entries, by hash
        self._awaiting: dict[int, _Awaited] = {}
        self._gaps: list[_Gap] = []
        self._suspect: JournalEntry | None = None
        self._run: _Run | None = None
        self._position = 0
        self._max_seq = 0
        self._searches = 0
        self._checked: set[int] = set()

    def problem(self, problem: Problem) -> None:
        if len(self.report.problems) < MAX_PROBLEMS:
            self.report.problems.append(problem)
        else:
            self.report.truncated = True

    # -- entry by entry -------------------------------------------------------------------------
    def feed(self, entry: JournalEntry) -> None:
        """Check one entry; entries come in stored order (by seq, or as the file lists them)."""
        self._position += 1
        self.report.entries_checked += 1
        self._replay(entry)
        if self._suspect is not None:
            self._judge_suspect(continued=entry.prev_hash == self._suspect.hash)
        written = self._written_seq(entry)
        if written is None:
            # Its fields do not give its hash at any nearby seq. Whether it was edited in place
            # or inserted shows in the next entry: does the chain run through it?
            self._suspect = entry
        else:
            self._place(entry, written)
        self._flush_gaps(older_than=self._position - RECENT_WINDOW)

    def _written_seq(self, entry: JournalEntry) -> int | None:
        """The seq this entry's hash was written with: its stored seq unless it was moved."""
        if recompute_hash(entry) == entry.hash:
            return entry.seq
        if self._run is not None:
            guess = entry.seq + self._run.offset
            if guess >= 1 and recompute_hash(replace(entry, seq=guess)) == entry.hash:
                return guess
        if self._searches >= MAX_SEQ_SEARCHES:
            return None
        self._searches += 1
        for distance in range(1, SEQ_SEARCH_SPAN + 1):
            for seq in (entry.seq - distance, entry.seq + distance):
                if seq >= 1 and recompute_hash(replace(entry, seq=seq)) == entry.hash:
                    return seq
        return None

    def _judge_suspect(self, *, continued: bool) -> None:
        """Decide the suspect entry: edited if the chain runs through it, inserted if not."""
        entry = self._suspect
        assert entry is not None
        self._suspect = None
        t = entry.transfer
        copy_of = self._recent_hashes.get(entry.hash)
        if continued and copy_of is None:
            self.problem(
                Problem(
                    "entry_edited",
                    f"entry {entry.seq} (transfer {t.id}) was edited after it was written: "
                    "its fields no longer give its hash",
                    entry.seq,
                    t.id,
                )
            )
            self._place(entry, entry.seq)
        else:
            self.problem(
                Problem(
                    "entry_inserted",
                    f"entry {entry.seq} (transfer {t.id}) was inserted: the chain does not "
                    "run through it"
                    + ("" if copy_of is None else f" (it carries the hash of entry {copy_of})"),
                    entry.seq,
                    t.id,
                )
            )

    def _place(self, entry: JournalEntry, written: int) -> None:
        """Put a chained entry at the seq it was written with and check its neighbours."""
        t = entry.transfer
        self._follow_run(entry, written)
        if written > self._max_seq + 1:
            self._gaps.append(_Gap(self._max_seq + 1, written - 1, self._position))
        elif written <= self._max_seq:
            if self._fill_gap(written):
                if written == entry.seq:  # a renumbered entry is reported with its run
                    self.problem(
                        Problem(
                            "entry_reordered",
                            f"entry {written} (transfer {t.id}) comes after entry "
                            f"{self._max_seq}: it was moved",
                            written,
                            t.id,
                        )
                    )
            elif written in self._recent:
                self.problem(
                    Problem(
                        "entry_inserted",
                        f"entry {written} (transfer {t.id}) appears a second time",
                        written,
                        t.id,
                    )
                )
                return
            else:
                self.problem(
                    Problem(
                        "entry_reordered",
                        f"entry {written} (transfer {t.id}) comes long after entry "
                        f"{self._max_seq}: it was moved far from its place",
                        written,
                        t.id,
                    )
                )
                return
        self._max_seq = max(self._max_seq, written)
        self._check_links(entry, written)
        self._recent[written] = _Seen(entry.hash, t.id, entry.timestamp_ns)
        self._recent.move_to_end(written)
        self._recent_hashes[entry.hash] = written
        while len(self._recent) > RECENT_WINDOW:
            forgotten_seq, forgotten = self._recent.popitem(last=False)
            if self._recent_hashes.get(forgotten.hash) == forgotten_seq:
                del self._recent_hashes[forgotten.hash]
        self._check_checkpoint(entry, written)
        if written >= self._head.seq:
            self._head = ChainHead(written, entry.hash, entry.timestamp_ns)
        self.report.last_seq = self._head.seq

    def _check_links(self, entry: JournalEntry, written: int) -> None:
        """The entry must name its predecessor's hash, and be named by its successor."""
        before = self._recent.get(written - 1)
        if written == 1 and entry.prev_hash != GENESIS_HASH:
            self.problem(
                Problem(
                    "entry_edited",
                    f"entry 1 (transfer {entry.transfer.id}) does not start from the genesis hash",
                    1,
                    entry.transfer.id,
                )
            )
        elif before is not None:
            if entry.prev_hash != before.hash:
                self._rewritten(written - 1, before.transfer_id, written)
            if entry.timestamp_ns <= before.timestamp_ns:
                self._late(entry, written)
        elif written > 1 and len(self._awaiting) < RECENT_WINDOW:
            self._awaiting[written - 1] = _Awaited(entry.prev_hash, written)
        awaited = self._awaiting.pop(written, None)
        if awaited is not None and awaited.prev_hash != entry.hash:
            self._rewritten(written, entry.transfer.id, awaited.successor_seq)
        after = self._recent.get(written + 1)
        if after is not None and after.timestamp_ns <= entry.timestamp_ns:
            self._late(entry, written)

    def _rewritten(self, seq: int, transfer_id: UUID, successor: int) -> None:
        self.problem(
            Problem(
                "entry_edited",
                f"entry {seq} (transfer {transfer_id}) was rewritten: entry {successor} was "
                "chained to another version of it",
                seq,
                transfer_id,
            )
        )

    def _late(self, entry: JournalEntry, written: int) -> None:
        self.problem(
            Problem(
                "timestamp_order",
                f"entry {written} is not later than the one before it",
                written,
                entry.transfer.id,
            )
        )

    def _fill_gap(self, seq: int) -> bool:
        """Whether `seq` was awaited in an open gap (then it is no longer missing)."""
        for i, gap in enumerate(self._gaps):
            if gap.first <= seq <= gap.last:
                pieces = [
                    _Gap(first, last, gap.opened_at)
                    for first, last in ((gap.first, seq - 1), (seq + 1, gap.last))
                    if first <= last
                ]
                self._gaps[i : i + 1] = pieces
                return True
        return False

    def _flush_gaps(self, older_than: int) -> None:
        """Gaps open for long enough (or more gaps than remembered) are deletions."""
        while self._gaps and (
            self._gaps[0].opened_at < older_than or len(self._gaps) > RECENT_WINDOW
        ):
            gap = self._gaps.pop(0)
            for seq in [s for s in self._awaiting if gap.first <= s <= gap.last]:
                del self._awaiting[seq]
            self._deleted(gap.first, gap.last)

    def _deleted(self, first: int, last: int) -> None:
        span = f"entry {first} is" if first == last else f"entries {first} to {last} are"
        self.problem(
            Problem(
                "entry_deleted",
                f"{span} missing from the chain: deleted (or moved more than {RECENT_WINDOW} "
                "entries away)",
                first,
            )
        )

    def _follow_run(self, entry: JournalEntry, written: int) -> None:
        """Group entries stored at another seq than written into runs, one problem each."""
        offset = written - entry.seq
        run = self._run
        if run is not None and run.offset == offset and run.last_stored + 1 == entry.seq:
            run.last_stored = entry.seq
            return
        self._close_run()
        if offset != 0:
            self._run = _Run(offset, entry.seq, entry.seq, entry.transfer.id)

    def _close_run(self) -> None:
        run = self._run
        if run is None:
            return
        self._run = None
        if run.first_stored == run.last_stored:
            what = (
                f"entry stored as {run.first_stored} (transfer {run.transfer_id}) was written "
                f"as entry {run.first_stored + run.offset}"
            )
        else:
            what = (
                f"entries stored as {run.first_stored} to {run.last_stored} were written as "
                f"{run.first_stored + run.offset} to {run.last_stored + run.offset} "
                f"(the first is transfer {run.transfer_id})"
            )
        self.problem(
            Problem(
                "entry_reordered",
                f"{what}: entries were reordered or renumbered",
                run.first_stored + run.offset,
                run.transfer_id,
            )
        )

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

    def _check_checkpoint(self, entry: JournalEntry, written: int) -> None:
        checkpoint = self._checkpoints.get(written)
        if checkpoint is None or written in self._checked:
            return
        self._checked.add(written)
        self.report.checkpoints_checked += 1
        key = self._keys.get(checkpoint.key_id)
        signed = False
        if key is None:
            self.problem(
                Problem(
                    "checkpoint_unknown_key",
                    f"checkpoint {written} names an unknown key",
                    written,
                )
            )
        elif not checkpoint_is_valid(key, checkpoint):
            self.problem(
                Problem(
                    "checkpoint_bad_signature",
                    f"checkpoint {written} is not validly signed",
                    written,
                )
            )
        else:
            signed = True
        if checkpoint.hash != entry.hash or checkpoint.timestamp_ns != entry.timestamp_ns:
            self.problem(
                Problem(
                    "checkpoint_mismatch",
                    f"entry {written} (transfer {entry.transfer.id}) differs from what "
                    f"checkpoint {written} signed: it was rewritten",
                    written,
                    entry.transfer.id,
                )
            )
        elif signed:
            self.report.signed_through_seq = max(self.report.signed_through_seq, written)

    # -- at the end ------------------------------------------------------------------------------
    def finish(
        self,
        stored: Iterable[Balances] | None = None,
        stored_holds: Iterable[UUID] | None = None,
        stored_head: ChainHead | None = None,
    ) -> VerifyReport:
        """Compare the replay with what the database stores (when given) and check the
        invariants on the replayed balances."""
        if self._suspect is not None:
            # The last entry: edited if the head still names it, or if it continues the chain.
            last = self._suspect
            before = self._recent.get(last.seq - 1)
            continued = (stored_head is not None and stored_head.hash == last.hash) or (
                before is not None and before.hash == last.prev_hash
            )
            self._judge_suspect(continued=continued)
        self._close_run()
        self._flush_gaps(older_than=self._position + 1)
        for seq in sorted(s for s in self._checkpoints if s > self._head.seq):
            self.problem(
                Problem("journal_truncated", f"checkpoint {seq} is past the journal's end", seq)
            )
        if stored_head is not None and stored_head != self._head:
            self._compare_head(stored_head)
        if stored is not None:
            self._compare_balances(stored)
        if stored_holds is not None and set(stored_holds) != set(self._holds):
            self.problem(Problem("holds_mismatch", "open holds differ from the journal's"))
        self._check_invariants()
        return self.report

    def _compare_head(self, stored_head: ChainHead) -> None:
        """The head row names the last entry the ledger wrote: what lies past it was
        inserted, what is missing before it was deleted."""
        if stored_head.seq > self._head.seq:
            self._deleted(self._head.seq + 1, stored_head.seq)
            return
        if stored_head.seq < self._head.seq:
            for seq, seen in self._recent.items():
                if seq > stored_head.seq:
                    self.problem(
                        Problem(
                            "entry_inserted",
                            f"entry {seq} (transfer {seen.transfer_id}) lies past the journal "
                            f"head, entry {stored_head.seq}: it was inserted",
                            seq,
                            seen.transfer_id,
                        )
                    )
            return
        self.problem(
            Problem(
                "head_mismatch",
                f"the journal head names another entry {stored_head.seq} than the journal "
                "holds: it was rewritten",
                stored_head.seq,
            )
        )

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
