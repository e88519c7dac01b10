"""The hot path: every money movement is submitted here and committed in groups.

Submitters put requests on a bounded queue; one writer thread per process takes whatever
has queued while the previous batch committed (up to `max_batch_transfers`), decides it with
the pure state machine under the journal head lock, and commits it in one transaction. So
one fsync is paid per batch, not per payment. A request's future is resolved only after
the commit returned, i.e. once it is durable. (A server runs this writer in a child process
of its own, fed over a pipe: see writer_process. Both are a `HotPath`.)

A request may join a `BatchParticipant` with a ticket of its own: code of a layer above (the
API's idempotency keys) whose rows must commit atomically with the request's transfers. The
writer calls each participant once per batch, with the tickets of all its requests, inside
the batch's transaction: before deciding (it may withdraw requests it answers from what it
stored earlier) and after (it writes its rows, knowing each request's results). So the
caller needs one hand-off and the batch one commit, and a participant reads and writes for
the whole batch in a few statements. The ledger knows nothing of what a participant stores.

Handing results back costs per request, so it is kept lean: the writer takes the whole
queue under one lock, and wakes each event loop once per batch (not once per awaiting
coroutine, as `asyncio.wrap_future` would).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from rollon.ledger.journal import ChainHead, Checkpoint, sign_checkpoint
from rollon.ledger.state_machine import MAX_BATCH_TRANSFERS, execute
from rollon.ledger.storage import BatchReads, open_writer, pipelined, write_outcome
from rollon.ledger.transfers import Result, Transfer
from rollon.ledger.wal_checkpoints import WalCheckpointer

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_In = TypeVar("_In", contravariant=True)

MAX_QUEUED_REQUESTS = 10_000
MAX_COMMIT_ATTEMPTS = 5
RETRY_BACKOFF_MS = 20
DEFAULT_CHECKPOINT_EVERY = 1_000


class LedgerHalted(RuntimeError):
    """The ledger found its own state inconsistent and stopped taking writes."""


class LedgerOverloaded(RuntimeError):
    """The submission queue is full: the caller should retry later."""


class StorageUnavailable(RuntimeError):
    """The database could not commit the batch; nothing of it was applied."""


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What one committed batch did, for metrics."""

    requests: int
    transfers: int
    results: Sequence[Result]
    duration_s: float


BatchObserver = Callable[[BatchReport], None]


Ticket = TypeVar("Ticket", contravariant=True)


class BatchParticipant(Protocol[Ticket]):
    """Rows of a layer above that commit in the same transaction as requests' transfers.

    Each request joining it brings a ticket (what the participant needs to know of it). Both
    methods run on the writer thread inside the batch's write transaction, once per batch
    with the tickets in submission order, and again on a retried attempt (so they must start
    afresh each time). A database error they raise fails or retries the whole batch like the
    ledger's own; any other exception halts the ledger, so they must not raise for anything
    but the database. On PostgreSQL, `before_decide` runs in the batch's pipeline (see
    storage.pipelined): read through the driver's cursor (storage.driver_cursor), as
    SQLAlchemy's results want their rows as soon as the statement is sent."""

    def before_decide(self, connection: Connection, tickets: Sequence[Ticket]) -> list[bool]:
        """Called before the batch is decided: one flag per ticket, True to withdraw that
        request (its transfers are not submitted, its future gives no results)."""
        ...

    def after_decide(
        self, connection: Connection, tickets: Sequence[Ticket], results: Sequence[list[Result]]
    ) -> None:
        """Called after the batch was decided and written, for the requests not withdrawn,
        with each one's results."""
        ...


class HotPath(Protocol):
    """What the ledger submits through: a `GroupCommitter` in this process, or one in a
    process of its own (`writer_process.WriterProcess`)."""

    wal_checkpointer: WalCheckpointer | None

    def submit(self, transfers: Sequence[Transfer], timeout_s: float = 30.0) -> list[Result]: ...

    async def submit_async(self, transfers: Sequence[Transfer]) -> list[Result]: ...

    def submit_joined(
        self,
        transfers: Sequence[Transfer],
        participant: BatchParticipant[_T],
        ticket: _T,
        timeout_s: float = 30.0,
    ) -> tuple[list[Result], _T]: ...

    async def submit_joined_async(
        self, transfers: Sequence[Transfer], participant: BatchParticipant[_T], ticket: _T
    ) -> tuple[list[Result], _T]: ...

    @property
    def alive(self) -> bool: ...

    def close(self) -> None: ...


class Settable(Protocol[_In]):
    """What takes a submitter's outcome: an asyncio or concurrent Future, or a `_Ringing`
    doorbell's entry."""

    def set_result(self, result: _In, /) -> None: ...

    def set_exception(self, error: BaseException, /) -> None: ...


# Where a request's results go, from the writer thread: a concurrent Future a thread waits
# on, or a `_Ringing` doorbell's entry.
_Outcome = Settable[list[Result]]


@dataclass(slots=True)
class _Request:
    transfers: Sequence[Transfer]
    outcome: _Outcome
    participant: BatchParticipant[Any] | None = None
    ticket: object = None


class _Inbox:
    """The bounded queue of requests. Submitters add one at a time; the writer takes all that
    fit in a batch, leaving the rest (in order) for the next batch.

    The writer holds the lock only to swap the whole queue out (and to put back what did not
    fit), never while it walks the requests: a submitter that found the lock taken would give
    up the GIL, and wait for the busy writer to give it back."""

    def __init__(self, max_requests: int) -> None:
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._requests: deque[_Request | None] = deque()  # None: stop once this is reached
        self._out = 0  # requests the writer swapped out and may put back: still queued
        self._max_requests = max_requests

    def put(self, request: _Request) -> None:
        with self._lock:
            if len(self._requests) + self._out >= self._max_requests:
                raise LedgerOverloaded("too many transfers are waiting; retry shortly")
            self._requests.append(request)
            if len(self._requests) == 1:  # the writer waits only on an empty queue
                self._not_empty.notify()

    def put_stop(self) -> None:
        with self._lock:
            self._requests.append(None)
            self._not_empty.notify()

    def take(self, max_transfers: int) -> tuple[list[_Request], bool]:
        """Block for one request, then take all that queued meanwhile, within the bound.
        Returns the requests, and whether the writer must stop after them."""
        with self._lock:
            while not self._requests:
                self._not_empty.wait()
            pending, self._requests = self._requests, deque()
            self._out = len(pending)
        taken: list[_Request] = []
        stopping = False
        count = 0
        while pending:
            request = pending[0]
            if request is None:
                pending.popleft()
                stopping = True
                break
            if taken and count + len(request.transfers) > max_transfers:
                break
            pending.popleft()
            taken.append(request)
            count += len(request.transfers)
        with self._lock:
            # What did not fit came before anything queued since: it goes back in front.
            self._requests.extendleft(reversed(pending))
            self._out = 0
        return taken, stopping


class Doorbell(Protocol):
    """Where the outcomes of many requests go: the writer adds each request's outcome under
    the key it was submitted with, then rings once the whole batch is settled. So a batch
    costs each doorbell one wake-up, however many of its requests it holds."""

    def add(self, key: Any, outcome: list[Result] | BaseException) -> None: ...

    def ring(self) -> None: ...


_Waiter = asyncio.Future[list[Result]]


class _LoopDoorbell:
    """Hands outcomes over to one event loop's waiters, waking the loop once per batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._finished: deque[tuple[_Waiter, list[Result] | BaseException]] = deque()

    def add(self, key: _Waiter, outcome: list[Result] | BaseException) -> None:
        self._finished.append((key, outcome))

    def ring(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("results for a closed event loop dropped")

    def _deliver(self) -> None:
        # Runs in the loop. deque pops are atomic, and the writer rings after every add, so an
        # outcome added while this drains is delivered now or at the next ring.
        while self._finished:
            resolve(*self._finished.popleft())


@dataclass(slots=True)
class _Ringing:
    """A request whose outcome goes to a doorbell: the writer adds it there, and rings the
    doorbell once the whole batch is settled. No concurrent Future in between: making one
    (a Condition and its lock) cost more than the rest of the hand-off."""

    doorbell: Doorbell
    key: Any
    to_ring: set[Doorbell]  # the writer's own

    def set_result(self, results: list[Result]) -> None:
        self.doorbell.add(self.key, results)
        self.to_ring.add(self.doorbell)

    def set_exception(self, error: BaseException) -> None:
        self.doorbell.add(self.key, error)
        self.to_ring.add(self.doorbell)


class GroupCommitter:
    """Coalesces concurrent submissions into one transaction per batch."""

    def __init__(
        self,
        engine: Engine,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        max_batch_transfers: int = MAX_BATCH_TRANSFERS,
        max_queued_requests: int = MAX_QUEUED_REQUESTS,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        observer: BatchObserver | None = None,
        checkpoint_wal: bool = True,
    ) -> None:
        """`checkpoint_wal`: on SQLite, checkpoint the write-ahead log beside the writer (see
        wal_checkpoints); False when another thread of the database's does it already."""
        assert 0 < max_batch_transfers <= MAX_BATCH_TRANSFERS
        assert checkpoint_every > 0
        self._engine = engine
        self._signing_key = signing_key
        self._clock_ns = clock_ns
        self._max_batch = max_batch_transfers
        self._checkpoint_every = checkpoint_every
        self._observer = observer
        self._inbox = _Inbox(max_queued_requests)
        self._halted: BaseException | None = None
        self._doorbells: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopDoorbell]
        self._doorbells = weakref.WeakKeyDictionary()
        self._doorbells_lock = threading.Lock()
        self._last_doorbell: _LoopDoorbell | None = None
        self._to_ring: set[Doorbell] = set()  # the writer's own: doorbells to ring this batch
        self._connection: Connection | None = None  # the writer's own, kept across batches
        # SQLite's WAL is checkpointed beside the writer, not in its commits.
        on_sqlite = engine.dialect.name == "sqlite"
        self.wal_checkpointer = WalCheckpointer(engine) if on_sqlite and checkpoint_wal else None
        self._thread = threading.Thread(target=self._run, name="rollon-writer", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the writer thread runs."""
        return self._thread.is_alive()

    # -- submitting -------------------------------------------------------------------------
    def submit_nowait(
        self,
        transfers: Sequence[Transfer],
        joining: tuple[BatchParticipant[_T], _T] | None = None,
    ) -> Future[list[Result]]:
        """Queue a request; its future gives one result per transfer once durable (none when
        its participant withdrew it). `joining` is a participant and this request's ticket.
        Only a request joining a participant may hold no transfers: it then commits just the
        participant's rows."""
        future: Future[list[Result]] = Future()
        self._queue(transfers, future, joining)
        return future

    def submit(
        self,
        transfers: Sequence[Transfer],
        timeout_s: float = 30.0,
        joining: tuple[BatchParticipant[_T], _T] | None = None,
    ) -> list[Result]:
        """Submit and wait until the batch holding these transfers has committed."""
        return self.submit_nowait(transfers, joining).result(timeout=timeout_s)

    async def submit_async(
        self,
        transfers: Sequence[Transfer],
        joining: tuple[BatchParticipant[_T], _T] | None = None,
    ) -> list[Result]:
        """Submit from an event loop without blocking it. Cancelling the caller does not
        withdraw the transfers: they commit (or not) with their batch."""
        loop = asyncio.get_running_loop()
        waiter: _Waiter = loop.create_future()
        self._queue(transfers, _Ringing(self._doorbell(loop), waiter, self._to_ring), joining)
        return await waiter

    def submit_joined(
        self,
        transfers: Sequence[Transfer],
        participant: BatchParticipant[_T],
        ticket: _T,
        timeout_s: float = 30.0,
    ) -> tuple[list[Result], _T]:
        """Submit with a participant; the results, and the ticket as the participant left it."""
        return self.submit(transfers, timeout_s, (participant, ticket)), ticket

    async def submit_joined_async(
        self, transfers: Sequence[Transfer], participant: BatchParticipant[_T], ticket: _T
    ) -> tuple[list[Result], _T]:
        """`submit_joined` from an event loop."""
        return await self.submit_async(transfers, (participant, ticket)), ticket

    def submit_ringing(
        self,
        transfers: Sequence[Transfer],
        doorbell: Doorbell,
        key: Any,
        joining: tuple[BatchParticipant[_T], _T] | None = None,
    ) -> None:
        """Queue a request whose outcome the writer adds to `doorbell` under `key`, ringing
        it once the request's batch is settled (for a writer in another process, one message
        back per batch: see writer_process)."""
        self._queue(transfers, _Ringing(doorbell, key, self._to_ring), joining)

    def _queue(
        self,
        transfers: Sequence[Transfer],
        outcome: _Outcome,
        joining: tuple[BatchParticipant[_T], _T] | None,
    ) -> None:
        check_request_size(transfers, joined=joining is not None, most=self._max_batch)
        if self._halted is not None:
            raise LedgerHalted("the ledger stopped after an inconsistency") from self._halted
        participant, ticket = joining if joining is not None else (None, None)
        self._inbox.put(_Request(tuple(transfers), outcome, participant, ticket))

    def _doorbell(self, loop: asyncio.AbstractEventLoop) -> _LoopDoorbell:
        last = self._last_doorbell  # usually the one loop of the process: skip the lookup
        if last is not None and last.loop is loop:
            return last
        doorbell = self._doorbells.get(loop)
        if doorbell is None:
            with self._doorbells_lock:
                doorbell = self._doorbells.setdefault(loop, _LoopDoorbell(loop))
        self._last_doorbell = doorbell
        return doorbell

    def close(self) -> None:
        """Commit what is queued, then stop the writer (and its WAL checkpoints)."""
        if self._thread.is_alive():
            self._inbox.put_stop()
            self._thread.join()
        if self.wal_checkpointer is not None:
            self.wal_checkpointer.close()

    # -- the writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                requests, stopping = self._inbox.take(self._max_batch)
                if requests:
                    self._commit(requests)
                    self._ring_doorbells()  # after a failure; a success rang already
                if stopping:
                    return
        finally:
            self._drop_connection()

    def _ring_doorbells(self) -> None:
        for doorbell in self._to_ring:
            doorbell.ring()
        self._to_ring.clear()

    def _commit(self, requests: list[_Request]) -> None:
        started = time.perf_counter()
        if self._halted is not None:
            self._fail(requests, LedgerHalted("the ledger stopped after an inconsistency"))
            return
        for attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
            try:
                results = self._commit_once(requests)
            except OperationalError as error:  # lock timeouts, lost connections: retry
                if attempt == MAX_COMMIT_ATTEMPTS:
                    self._fail(requests, StorageUnavailable(str(error.orig)))
                    return
                log.warning("commit attempt %d failed, retrying: %s", attempt, error.orig)
                time.sleep(RETRY_BACKOFF_MS * attempt / 1000)
            except IntegrityError as error:  # the schema's own checks refused: a bug
                self._halt(requests, error)
                return
            except DBAPIError as error:
                log.error("batch refused by the database: %s", error.orig)
                self._fail(requests, StorageUnavailable(str(error.orig)))
                return
            except Exception as error:
                # An invariant broke (AssertionError, LedgerCorrupted) or a bug: stop rather
                # than guess what was written.
                self._halt(requests, error)
                return
            else:
                for request, request_results in zip(requests, results, strict=True):
                    resolve(request.outcome, request_results)
                self._ring_doorbells()
                if self._observer is not None:
                    report = BatchReport(
                        requests=len(requests),
                        transfers=sum(len(rs) for rs in results),
                        results=[r for rs in results for r in rs],
                        duration_s=time.perf_counter() - started,
                    )
                    try:
                        self._observer(report)
                    except Exception:  # metrics must never stop the ledger
                        log.exception("the batch observer failed")
                return

    def _commit_once(self, requests: list[_Request]) -> list[list[Result]]:
        # One connection across batches: a pool checkout per batch costs a round trip on
        # PostgreSQL (its pre-ping) and more Python than a small batch's own statements.
        if self._connection is None:
            self._connection = open_writer(self._engine)
        connection = self._connection
        try:
            with connection.begin():
                joined = _by_participant(requests)
                withdrawn: set[int] = set()
                with pipelined(connection):  # the lock and the first reads: one round trip
                    reads = BatchReads(connection, [r.transfers for r in requests])
                    # Sent after the lock: what a participant reads is the latest committed.
                    for participant, members in joined:
                        tickets = [r.ticket for r in members]
                        flags = participant.before_decide(connection, tickets)
                        withdrawn.update(
                            id(r) for r, flag in zip(members, flags, strict=True) if flag
                        )
                    head = reads.head()[0]
                submitted = [r for r in requests if id(r) not in withdrawn]
                batch = [r.transfers for r in submitted]
                now_ns = self._clock_ns()
                snapshot = reads.snapshot(connection, batch, now_ns)
                outcome = execute(snapshot, batch)
                checkpoint = self._checkpoint(head, outcome.head)
                write_outcome(connection, head, outcome, now_ns, checkpoint)
                results = outcome.results  # the usual batch: no participant, none withdrawn
                if joined:
                    decided = dict(zip(map(id, submitted), outcome.results, strict=True))
                    results = [decided.get(id(r), []) for r in requests]
                    for participant, members in joined:
                        staying = [r for r in members if id(r) not in withdrawn]
                        if staying:
                            tickets = [r.ticket for r in staying]
                            staying_results = [decided[id(r)] for r in staying]
                            participant.after_decide(connection, tickets, staying_results)
        except BaseException:
            self._drop_connection()  # it may be broken: the next attempt takes a fresh one
            raise
        return results

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _checkpoint(self, before: ChainHead, after: ChainHead) -> Checkpoint | None:
        """Sign the head whenever the chain crosses a multiple of `checkpoint_every`."""
        if self._signing_key is None:
            return None
        if after.seq // self._checkpoint_every == before.seq // self._checkpoint_every:
            return None
        return sign_checkpoint(self._signing_key, after)

    def _halt(self, requests: list[_Request], error: BaseException) -> None:
        log.critical("ledger halted: %r", error)
        self._halted = error
        self._fail(requests, LedgerHalted(str(error)))

    @staticmethod
    def _fail(requests: list[_Request], error: BaseException) -> None:
        for request in requests:
            resolve(request.outcome, error)


def _by_participant(
    requests: list[_Request],
) -> list[tuple[BatchParticipant[Any], list[_Request]]]:
    """The requests joining each participant, in submission order."""
    groups: dict[int, tuple[BatchParticipant[Any], list[_Request]]] = {}
    for request in requests:
        if request.participant is not None:
            groups.setdefault(id(request.participant), (request.participant, []))[1].append(request)
    return list(groups.values())


def check_request_size(transfers: Sequence[Transfer], *, joined: bool, most: int) -> None:
    """ValueError unless a request holds 1 to `most` transfers; a request joining a
    participant may hold none (it then commits just the participant's rows)."""
    least = 0 if joined else 1
    if not least <= len(transfers) <= most:
        raise ValueError(f"a request holds {least} to {most} transfers")


def resolve(to: Settable[_T], outcome: _T | BaseException) -> None:
    """Give a submitter its outcome, unless it stopped waiting: a future it cancelled stays
    cancelled (its transfers stand regardless)."""
    try:
        if isinstance(outcome, BaseException):
            to.set_exception(outcome)
        else:
            to.set_result(outcome)
    except (InvalidStateError, asyncio.InvalidStateError):
        log.debug("a submitter cancelled its future; its transfers stand")
