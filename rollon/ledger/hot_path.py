"""The hot path: every money movement is submitted here and committed in groups.

Submitters put requests on a bounded queue; one writer thread per process takes whatever
has queued while the previous batch committed (up to `max_batch_transfers`), decides it with
the pure state machine under the journal head lock, and commits it in one transaction. So
one fsync is paid per batch, not per payment. A request's future is resolved only after
the commit returned, i.e. once it is durable.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from rollon.ledger.journal import ChainHead, Checkpoint, sign_checkpoint
from rollon.ledger.state_machine import MAX_BATCH_TRANSFERS, execute
from rollon.ledger.storage import (
    load_snapshot,
    lock_head,
    write_outcome,
    write_transaction,
)
from rollon.ledger.transfers import Result, Transfer

log = logging.getLogger(__name__)

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


@dataclass(slots=True)
class _Request:
    transfers: Sequence[Transfer]
    future: Future[list[Result]]


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
    ) -> None:
        assert 0 < max_batch_transfers <= MAX_BATCH_TRANSFERS
        assert checkpoint_every > 0
        self._engine = engine
        self._signing_key = signing_key
        self._clock_ns = clock_ns
        self._max_batch = max_batch_transfers
        self._checkpoint_every = checkpoint_every
        self._observer = observer
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=max_queued_requests)
        self._carry: _Request | None = None
        self._halted: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rollon-writer", daemon=True)
        self._thread.start()

    # -- submitting -------------------------------------------------------------------------
    def submit_nowait(self, transfers: Sequence[Transfer]) -> Future[list[Result]]:
        """Queue a request; its future gives one result per transfer once durable."""
        if not 0 < len(transfers) <= self._max_batch:
            raise ValueError(f"a request holds 1 to {self._max_batch} transfers")
        if self._halted is not None:
            raise LedgerHalted("the ledger stopped after an inconsistency") from self._halted
        future: Future[list[Result]] = Future()
        try:
            self._queue.put_nowait(_Request(tuple(transfers), future))
        except queue.Full:
            raise LedgerOverloaded("too many transfers are waiting; retry shortly") from None
        return future

    def submit(self, transfers: Sequence[Transfer], timeout_s: float = 30.0) -> list[Result]:
        """Submit and wait until the batch holding these transfers has committed."""
        return self.submit_nowait(transfers).result(timeout=timeout_s)

    async def submit_async(self, transfers: Sequence[Transfer]) -> list[Result]:
        """Submit from an event loop without blocking it."""
        return await asyncio.wrap_future(self.submit_nowait(transfers))

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    # -- the writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            requests, stopping = self._take_batch()
            if requests:
                self._commit(requests)
            if stopping:
                return

    def _take_batch(self) -> tuple[list[_Request], bool]:
        """Block for one request, then take all that queued meanwhile, within the bound."""
        first = self._carry if self._carry is not None else self._queue.get()
        self._carry = None
        if first is None:
            return [], True
        requests, count = [first], len(first.transfers)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return requests, False
            if item is None:
                return requests, True
            if count + len(item.transfers) > self._max_batch:
                self._carry = item
                return requests, False
            requests.append(item)
            count += len(item.transfers)

    def _commit(self, requests: list[_Request]) -> None:
        started = time.perf_counter()
        if self._halted is not None:
            self._fail(requests, LedgerHalted("the ledger stopped after an inconsistency"))
            return
        batch = [r.transfers for r in requests]
        for attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
            try:
                results = self._commit_once(batch)
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
                    request.future.set_result(request_results)
                if self._observer is not None:
                    self._observer(
                        BatchReport(
                            requests=len(requests),
                            transfers=sum(len(r) for r in batch),
                            results=[r for rs in results for r in rs],
                            duration_s=time.perf_counter() - started,
                        )
                    )
                return

    def _commit_once(self, batch: list[Sequence[Transfer]]) -> list[list[Result]]:
        with write_transaction(self._engine) as connection:
            head = lock_head(connection)
            now_ns = self._clock_ns()
            snapshot = load_snapshot(connection, head, batch, now_ns)
            outcome = execute(snapshot, batch)
            write_outcome(connection, head, outcome, now_ns, self._checkpoint(head, outcome.head))
        return outcome.results

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
            request.future.set_exception(error)
