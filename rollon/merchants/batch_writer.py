"""Group commit for the merchants' own small, frequent writes (a new payment request, a
payment written down), as the ledger's hot path does for transfers: one writer thread takes
every write queued meanwhile and commits them in one transaction, so a commit's fsync is
paid once per batch, not once per request. A write that fails (a duplicate id) fails alone:
the batch is then run again with a savepoint around each write.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from rollon.ledger.hot_path import LedgerOverloaded, StorageUnavailable
from rollon.ledger.storage import write_transaction

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BATCH_WRITES = 256
MAX_QUEUED_WRITES = 10_000
MAX_COMMIT_ATTEMPTS = 5
RETRY_BACKOFF_MS = 10
WAIT_TIMEOUT_S = 30.0
IDLE_EXIT_S = 5.0


@dataclass(slots=True)
class _Write:
    work: Callable[[Connection], Any]
    future: Future[Any]


class BatchWriter:
    """Runs writes in shared transactions; `write` returns once its batch is durable."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = MAX_BATCH_WRITES,
        max_queued: int = MAX_QUEUED_WRITES,
        idle_exit_s: float = IDLE_EXIT_S,
    ) -> None:
        assert 0 < max_batch <= MAX_BATCH_WRITES and idle_exit_s > 0
        self._engine = engine
        self._max_batch = max_batch
        self._idle_exit_s = idle_exit_s
        self._queue: queue.Queue[_Write | None] = queue.Queue(maxsize=max_queued)
        # The thread starts with the first write and ends when idle, so an idle service
        # (or a test that forgets `close`) holds no thread.
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in the next batch's transaction (in a savepoint of its own) and return
        its result once committed; its exception is raised here, and rolled back alone."""
        future: Future[T] = Future()
        with self._lock:
            try:
                self._queue.put_nowait(_Write(work, future))
            except queue.Full:
                raise LedgerOverloaded("too many merchant writes are waiting; retry") from None
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="rollon-merchants", daemon=True
                )
                self._thread.start()
        return future.result(timeout=WAIT_TIMEOUT_S)

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        with self._lock:
            thread = self._thread
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._idle_exit_s)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if first is None:
                with self._lock:
                    self._thread = None
                return
            batch, stopping = [first], False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)
            if stopping:
                with self._lock:
                    self._thread = None
                return

    def _commit(self, batch: list[_Write]) -> None:
        for attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
            try:
                outcomes = self._commit_once(batch)
            except OperationalError as error:  # lock timeouts, lost connections: retry
                if attempt == MAX_COMMIT_ATTEMPTS:
                    self._fail(batch, StorageUnavailable(str(error.orig)))
                    return
                log.warning("merchant writes attempt %d failed, retrying: %s", attempt, error.orig)
                time.sleep(RETRY_BACKOFF_MS * attempt / 1000)
            except Exception as error:
                log.exception("merchant writes failed")
                self._fail(batch, StorageUnavailable(repr(error)))
                return
            else:
                for item, (result, failure) in zip(batch, outcomes, strict=True):
                    if failure is None:
                        item.future.set_result(result)
                    else:
                        item.future.set_exception(failure)
                return

    def _commit_once(self, batch: list[_Write]) -> list[tuple[Any, BaseException | None]]:
        # Optimistic first: the whole batch as it is. Only when a write fails is the batch
        # run again with a savepoint per write, so the failure stays with its own write.
        try:
            with write_transaction(self._engine) as connection:
                return [(item.work(connection), None) for item in batch]
        except OperationalError:
            raise
        except Exception:
            return self._isolated(batch)

    def _isolated(self, batch: list[_Write]) -> list[tuple[Any, BaseException | None]]:
        outcomes: list[tuple[Any, BaseException | None]] = []
        with write_transaction(self._engine) as connection:
            for item in batch:
                savepoint = connection.begin_nested()
                try:
                    result = item.work(connection)
                except OperationalError:
                    raise  # the whole transaction is in doubt: retry the batch
                except Exception as error:
                    savepoint.rollback()
                    outcomes.append((None, error))
                else:
                    savepoint.commit()
                    outcomes.append((result, None))
        return outcomes

    @staticmethod
    def _fail(batch: list[_Write], error: BaseException) -> None:
        for item in batch:
            item.future.set_exception(error)
