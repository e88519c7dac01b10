"""The ledger's pure state machine: given what storage loaded and a batch of transfers, decide
one result per transfer and every balance change. No database, no clock, no I/O.

Storage loads a `Snapshot` under the database's locks, calls `execute`, and writes the
`Outcome` back in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from rollon.ledger.accounts import Balances, LedgerCode
from rollon.ledger.journal import LEDGER_ID_MASK, ChainHead, Recorded, chain, expiry_id
from rollon.ledger.money import MAX_AMOUNT
from rollon.ledger.transfers import (
    STATE_DEPENDENT_FAILURES,
    Hold,
    JournalEntry,
    Result,
    Transfer,
    TransferCode,
    TransferFlag,
)

MAX_BATCH_TRANSFERS = 8_190  # bounded like every queue: storage loads at most this many
MAX_MEMO_BYTES = 512
MAX_TIMEOUT_S = 366 * 24 * 3600  # a hold lasts a year at the most
NS_PER_S = 1_000_000_000
# Flags as plain ints: the hot path tests them as ints, since Flag's operators are Python
# code that costs more than the rest of a transfer's validation.
_LINKED = int(TransferFlag.LINKED)
_PENDING = int(TransferFlag.PENDING)
_POST_PENDING = int(TransferFlag.POST_PENDING)
_VOID_PENDING = int(TransferFlag.VOID_PENDING)
_RESOLVING = _POST_PENDING | _VOID_PENDING
_PHASES = _PENDING | _RESOLVING
# The results every transfer meets, as module constants: an Enum class's attribute lookup
# costs several times a global's.
_OK = Result.OK
_EXISTS = Result.EXISTS


@dataclass(slots=True)
class Snapshot:
    """What the state machine needs to know of the ledger to decide a batch.

    - `accounts`: every account the batch and the expiring holds name (missing = not found).
    - `existing`: committed transfers whose id appears in the batch.
    - `failed`: ids in the batch that failed before for a state-dependent reason.
    - `holds`: open holds the batch refers to, plus holds due to expire at `now_ns`.
    - `resolved`: pending ids the batch refers to that were already posted, voided or expired.
    """

    now_ns: int
    head: ChainHead
    accounts: dict[UUID, Balances]
    existing: dict[UUID, Transfer] = field(default_factory=dict)
    failed: dict[UUID, Result] = field(default_factory=dict)
    holds: dict[UUID, Hold] = field(default_factory=dict)
    resolved: dict[UUID, Result] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """What storage must write: all of it, in one transaction, or none of it."""

    results: list[list[Result]]  # per request, one result per transfer
    entries: list[JournalEntry]
    accounts: dict[UUID, Balances]  # final values of every account the batch changed
    accounts_before: dict[UUID, Balances]  # the same accounts as the snapshot had them
    failures: dict[UUID, Result]  # new state-dependent failures, so the ids stay failed
    holds_opened: list[Hold]
    holds_closed: list[UUID]
    head: ChainHead


class _Batch:
    """Working state for one batch; chains of linked transfers can be rolled back."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.accounts = snapshot.accounts
        self.holds = dict(snapshot.holds)
        self.resolved = dict(snapshot.resolved)
        self.accepted: dict[UUID, Transfer] = {}
        self.failed: dict[UUID, Result] = dict(snapshot.failed)
        self.new_failures: dict[UUID, Result] = {}
        self.recorded: list[Recorded] = []
        self.holds_opened: dict[UUID, Hold] = {}
        self.holds_closed: list[UUID] = []
        # Balances before the batch, for its checks; its keys are the accounts the batch changed.
        self.originals: dict[UUID, Balances] = {}
        self.next_ts = max(snapshot.now_ns, snapshot.head.timestamp_ns + 1)
        # Undo log of the chain in progress: original balances, to restore on failure.
        self._undo: dict[UUID, Balances] = {}
        self._undo_logged = True  # off for a chain that cannot roll back once applied
        self._mark: tuple[int, int, int] = (0, 0, 0)
        self._chain_holds: list[tuple[UUID, Hold | None, Result | None]] = []
        self._chain_accepted: list[UUID] = []

    # -- chains ---------------------------------------------------------------------------
    def begin_chain(self, can_roll_back: bool = True) -> None:
        self._undo = {}
        self._undo_logged = can_roll_back
        self._chain_holds = []
        self._chain_accepted = []
        self._mark = (len(self.recorded), self.next_ts, len(self.holds_closed))

    def rollback_chain(self) -> None:
        for account_id, original in self._undo.items():
            self.accounts[account_id] = original
        n_recorded, next_ts, n_closed = self._mark
        del self.recorded[n_recorded:]
        del self.holds_closed[n_closed:]
        self.next_ts = next_ts
        for pending_id, previous_hold, previous_resolution in reversed(self._chain_holds):
            if previous_hold is None:  # opened by this chain; else closed by it, so reopen it
                self.holds_opened.pop(pending_id, None)
                self.holds.pop(pending_id, None)
            else:
                self.holds[pending_id] = previous_hold
            if previous_resolution is None:
                self.resolved.pop(pending_id, None)
            else:
                self.resolved[pending_id] = previous_resolution
        for transfer_id in self._chain_accepted:
            del self.accepted[transfer_id]

    def _touch(self, account: Balances) -> None:
        """Note an account's balances before the chain and the batch change it."""
        account_id = account.id
        if self._undo_logged and account_id not in self._undo:
            self._undo[account_id] = account.copy()
        if account_id not in self.originals:
            # A copy of its own: the undo copy goes back into play if the chain rolls back.
            self.originals[account_id] = account.copy()

    # -- one transfer ---------------------------------------------------------------------
    def decide(self, t: Transfer) -> Result:
        """Validate and, when valid, apply one transfer. Returns its result."""
        existing = self.snapshot.existing
        previous = self.accepted.get(t.id) or (existing.get(t.id) if existing else None)
        if previous is not None:
            return Result.EXISTS if previous == t else Result.EXISTS_WITH_DIFFERENT_FIELDS
        if t.id.int & LEDGER_ID_MASK == LEDGER_ID_MASK:
            return Result.EXISTS_WITH_DIFFERENT_FIELDS  # the id of an expiry, due or to come
        if self.failed and t.id in self.failed:
            return Result.ID_ALREADY_FAILED
        # Looked up once for both validating and applying: a UUID's hash is Python code.
        debit = self.accounts.get(t.debit_account_id)
        credit = self.accounts.get(t.credit_account_id)
        result = self._validate(t, debit, credit)
        if result is not _OK:
            return result
        assert debit is not None and credit is not None
        self._apply(t, debit, credit)
        self.accepted[t.id] = t
        self._chain_accepted.append(t.id)
        return _OK

    def _validate(self, t: Transfer, debit: Balances | None, credit: Balances | None) -> Result:
        """`debit` and `credit` are the transfer's accounts, None when not found."""
        phase = int(t.flags) & _PHASES
        if phase.bit_count() > 1:
            return Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if t.amount <= 0:
            return Result.AMOUNT_MUST_BE_POSITIVE
        if t.amount > MAX_AMOUNT:
            return Result.AMOUNT_TOO_LARGE
        resolving = phase in (_POST_PENDING, _VOID_PENDING)
        if resolving and t.pending_id is None:
            return Result.PENDING_ID_REQUIRED
        if not resolving and t.pending_id is not None:
            return Result.PENDING_ID_NOT_ALLOWED
        if t.timeout_s != 0 and phase != _PENDING:
            return Result.TIMEOUT_NOT_ALLOWED
        if not 0 <= t.timeout_s <= MAX_TIMEOUT_S:
            return Result.INVALID_TIMEOUT
        if t.event_time_ns is not None and not 0 <= t.event_time_ns <= MAX_AMOUNT:
            return Result.INVALID_EVENT_TIME
        if len(t.memo.encode("utf-8")) > MAX_MEMO_BYTES:
            return Result.MEMO_TOO_LONG
        if t.debit_account_id == t.credit_account_id:
            return Result.SAME_ACCOUNT
        if debit is None or credit is None:
            return Result.ACCOUNT_NOT_FOUND
        if debit.ledger != t.ledger or credit.ledger != t.ledger:
            return Result.LEDGER_MISMATCH
        if phase != _VOID_PENDING and (debit.closed or credit.closed):
            return Result.ACCOUNT_CLOSED
        if resolving:
            return self._validate_resolution(t, phase)
        if debit.no_overdraft and debit.available < t.amount:
            return Result.INSUFFICIENT_FUNDS
        if (
            credit.credits_posted + credit.credits_pending + t.amount > MAX_AMOUNT
            or debit.debits_posted + debit.debits_pending + t.amount > MAX_AMOUNT
        ):
            return Result.OVERFLOW
        return _OK

    def _validate_resolution(self, t: Transfer, phase: int) -> Result:
        assert t.pending_id is not None
        hold = self.holds.get(t.pending_id)
        if hold is None:
            return self.resolved.get(t.pending_id, Result.PENDING_NOT_FOUND)
        pending = hold.transfer
        if (
            pending.debit_account_id != t.debit_account_id
            or pending.credit_account_id != t.credit_account_id
            or pending.ledger != t.ledger
        ):
            return Result.PENDING_MISMATCH
        if t.amount > pending.amount:
            return Result.EXCEEDS_PENDING_AMOUNT
        if phase == _VOID_PENDING and t.amount != pending.amount:
            return Result.PENDING_MISMATCH
        return _OK

    def _apply(self, t: Transfer, debit: Balances, credit: Balances) -> None:
        """Apply a valid transfer to its accounts, `debit` and `credit` as `accounts` holds them."""
        self._touch(debit)
        self._touch(credit)
        timestamp = self.next_ts
        self.next_ts += 1
        expires_at: int | None = None
        flags = int(t.flags)
        if flags & _PENDING:
            debit.debits_pending += t.amount
            credit.credits_pending += t.amount
            if t.timeout_s > 0:
                expires_at = timestamp + t.timeout_s * NS_PER_S
            hold = Hold(transfer=t, expires_at_ns=expires_at)
            self._chain_holds.append((t.id, self.holds.get(t.id), self.resolved.get(t.id)))
            self.holds[t.id] = hold
            self.holds_opened[t.id] = hold
        elif flags & _RESOLVING:
            assert t.pending_id is not None
            held = self.holds[t.pending_id].transfer.amount
            debit.debits_pending -= held
            credit.credits_pending -= held
            if flags & _POST_PENDING:
                debit.debits_posted += t.amount
                credit.credits_posted += t.amount
                resolution = Result.PENDING_ALREADY_POSTED
            elif t.code == TransferCode.EXPIRY:
                resolution = Result.PENDING_EXPIRED
            else:
                resolution = Result.PENDING_ALREADY_VOIDED
            self._chain_holds.append(
                (t.pending_id, self.holds[t.pending_id], self.resolved.get(t.pending_id))
            )
            del self.holds[t.pending_id]
            self.resolved[t.pending_id] = resolution
            self.holds_closed.append(t.pending_id)
        else:
            debit.debits_posted += t.amount
            credit.credits_posted += t.amount
        assert debit.debits_pending >= 0 and credit.credits_pending >= 0
        assert not debit.no_overdraft or debit.available >= 0, "overdraft slipped through"
        self.recorded.append(Recorded(timestamp, t, expires_at, debit.posted, credit.posted))

    # -- expiry ---------------------------------------------------------------------------
    def expire_due_holds(self) -> None:
        """Void every loaded hold whose timeout has passed, before the batch's own transfers."""
        due = sorted(
            (h for h in self.holds.values() if h.expires_at_ns is not None),
            key=lambda h: (h.expires_at_ns, h.transfer.id),
        )
        for hold in due:
            assert hold.expires_at_ns is not None
            if hold.expires_at_ns > self.snapshot.now_ns:
                break
            pending = hold.transfer
            void = Transfer(
                id=expiry_id(pending.id),
                debit_account_id=pending.debit_account_id,
                credit_account_id=pending.credit_account_id,
                amount=pending.amount,
                ledger=pending.ledger,
                code=TransferCode.EXPIRY,
                flags=TransferFlag.VOID_PENDING,
                pending_id=pending.id,
                memo="expired",
            )
            self.begin_chain(can_roll_back=False)
            accounts = self.accounts
            self._apply(void, accounts[void.debit_account_id], accounts[void.credit_account_id])


def _chains(request: Sequence[Transfer]) -> list[Sequence[Transfer]]:
    """Split a request into chains: a linked transfer belongs with the ones after it."""
    if len(request) == 1 and not int(request[0].flags) & _LINKED:
        return [request]  # the usual request: one transfer
    chains: list[Sequence[Transfer]] = []
    start = 0
    for i, t in enumerate(request):
        if not int(t.flags) & _LINKED:
            chains.append(request[start : i + 1])
            start = i + 1
    if start < len(request):
        chains.append(request[start:])  # open chain: its last transfer still says "linked"
    return chains


def execute(snapshot: Snapshot, requests: Sequence[Sequence[Transfer]]) -> Outcome:
    """Decide a batch of requests: one result per transfer, in order, and the writes.

    A batch coalesces the requests of many clients; a chain never crosses from one request
    into the next. Linked transfers succeed or fail together. An id refused for a
    state-dependent reason is remembered as failed. Holds due at `now_ns` expire first.
    The snapshot's account objects are updated in place: the caller hands the snapshot over.
    """
    assert sum(len(r) for r in requests) <= MAX_BATCH_TRANSFERS, "batches are bounded"
    work = _Batch(snapshot)
    work.expire_due_holds()
    results: list[list[Result]] = []
    for request in requests:
        request_results: list[Result] = []
        for chain_ in _chains(request):
            request_results.extend(_decide_chain(work, chain_))
        results.append(request_results)

    entries, head = chain(snapshot.head, work.recorded)
    changed = {account_id: work.accounts[account_id] for account_id in work.originals}
    _assert_double_entry(work.originals, changed)
    opened = [h for h in work.holds_opened.values() if h.transfer.id in work.holds]
    closed = [p for p in work.holds_closed if p not in work.holds_opened]
    return Outcome(
        results=results,
        entries=entries,
        accounts=changed,
        accounts_before=dict(work.originals),  # the same keys as `changed`, in order
        failures=work.new_failures,
        holds_opened=opened,
        holds_closed=closed,
        head=head,
    )


def _decide_chain(work: _Batch, chain_: Sequence[Transfer]) -> list[Result]:
    # Once applied, a lone unlinked transfer stays: its chain needs no undo log.
    work.begin_chain(can_roll_back=len(chain_) > 1 or bool(int(chain_[-1].flags) & _LINKED))
    results: list[Result] = []
    failed_at: int | None = None
    for i, t in enumerate(chain_):
        result = work.decide(t)
        results.append(result)
        if result is not _OK and result is not _EXISTS:
            failed_at = i
            break
    if failed_at is None and int(chain_[-1].flags) & _LINKED:
        failed_at = len(chain_) - 1
        results[failed_at] = Result.LINKED_CHAIN_OPEN
    if failed_at is None:
        return results
    work.rollback_chain()
    own = results[failed_at]
    results = [Result.LINKED_TRANSFER_FAILED] * len(chain_)
    results[failed_at] = own
    if own in STATE_DEPENDENT_FAILURES:
        failing = chain_[failed_at]
        work.failed[failing.id] = own
        work.new_failures[failing.id] = own
    return results


def _assert_double_entry(originals: dict[UUID, Balances], changed: dict[UUID, Balances]) -> None:
    """Checked on every batch: per ledger, what was debited was credited, posted and pending,
    and no limited account went below zero. A ledger that breaks this stops here.
    `changed` has the keys of `originals`, in the same order."""
    posted: dict[LedgerCode, int] = {}
    pending: dict[LedgerCode, int] = {}
    for before, now in zip(originals.values(), changed.values(), strict=True):
        assert now.id == before.id
        assert now.debits_pending >= 0 and now.credits_pending >= 0
        assert not now.no_overdraft or now.available >= 0, f"account {now.id} overdrawn"
        ledger = now.ledger
        posted[ledger] = posted.get(ledger, 0) + (
            (now.debits_posted - before.debits_posted)
            - (now.credits_posted - before.credits_posted)
        )
        pending[ledger] = pending.get(ledger, 0) + (
            (now.debits_pending - before.debits_pending)
            - (now.credits_pending - before.credits_pending)
        )
    unbalanced = {
        (ledger, kind): value
        for kind, drift in (("posted", posted), ("pending", pending))
        for ledger, value in drift.items()
        if value != 0
    }
    assert not unbalanced, f"double entry broken: {unbalanced}"
