"""The hot path's writer in a process of its own, for a server whose event loop is busy.

In one process, the writer thread's Python (the state machine, the driver, the batch's
statements) and the event loop answering HTTP requests take turns at one GIL: under the
HTTP benchmark's load the loop used half a core, the writer 0.4, and each of the writer's
database round trips waited for the loop's burst of answers before it could go on. Here the
writer is a child process running the same `GroupCommitter`, and the two work side by side.

- Requests go to the child over a pipe, pickled: from an event loop, every request of one
  loop turn in one message; from a thread, one message each. Answers come back in one
  message per committed batch, read by a thread of this process that wakes each event loop
  once per batch (as `GroupCommitter` does in one process).
- A participant (`BatchParticipant`) crosses once, when first used, and each ticket with its
  request: both must pickle, and the participant's work runs in the child, inside the
  batch's transaction. The ticket comes back as the participant left it, with the results.
- The batch observer runs in this process, on each batch's report.
- On SQLite the write-ahead log is checkpointed by a thread of this process, not the child's.
- `close` commits what is queued: the child sees the pipe close, drains, answers, and exits.
  A child that dies fails every request in flight with `StorageUnavailable` (their batch may
  or may not have committed, so clients retry with their idempotency keys), and so does
  every later submission; `alive` tells health checks.

Children are forked from a forkserver: a clean single-threaded process that imported the
ledger once, so a child starts in milliseconds and inherits none of the server's threads.
The first writer process of a program starts that forkserver, with its `ChildSetup.preload`.
As with any forkserver child, the child imports the program's main module again: a script
that builds a writer process must guard its main code (`if __name__ == "__main__":`), as
`rollon`, uvicorn and pytest do.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import multiprocessing
import pickle
import signal
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from rollon.ledger.hot_path import (
    DEFAULT_CHECKPOINT_EVERY,
    MAX_QUEUED_REQUESTS,
    BatchObserver,
    BatchParticipant,
    BatchReport,
    GroupCommitter,
    LedgerHalted,
    LedgerOverloaded,
    StorageUnavailable,
    check_request_size,
    resolve,
)
from rollon.ledger.state_machine import MAX_BATCH_TRANSFERS
from rollon.ledger.storage import create_engine
from rollon.ledger.transfers import RESULTS, Result, Transfer
from rollon.ledger.wal_checkpoints import WalCheckpointer

log = logging.getLogger(__name__)
_T = TypeVar("_T")

STOP_TIMEOUT_S = 60.0
_PARTICIPANT = "participant"  # (tag, reference, participant)
_REQUEST = "request"  # (tag, number, transfers, participant reference or None, ticket)
_SETTLED = "settled"  # (tag, [(number, (result values, ticket) or error), ...])
_BATCH = "batch"  # (tag, (requests, transfers, result values, duration_s))

# Results cross as their values (see transfers.RESULTS): an enum pickles by class, in Python.
_Outcome = tuple[list[Result], Any] | BaseException  # (results, ticket) or what went wrong
_Sent = tuple[list[str], Any] | BaseException  # the same, results as their values


@dataclass(frozen=True, slots=True)
class ChildSetup:
    """How a writer process starts. `preload`: modules the forkserver imports once, so that
    children unpickle the participants and tickets of those modules without importing them
    each time. `on_start`: called first thing in the child (to set up its logging as the
    server's, say); it must pickle."""

    preload: tuple[str, ...] = ()
    on_start: Callable[[], None] | None = None


@dataclass(slots=True)
class _Waiting:
    """A request in flight: its loop's future, or a thread's concurrent future."""

    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[tuple[list[Result], Any]] | Future[tuple[list[Result], Any]]


class WriterProcess:
    """The ledger's writer in a child process; submits as `GroupCommitter` does."""

    def __init__(
        self,
        engine: Engine,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        observer: BatchObserver | None = None,
        max_queued_requests: int = MAX_QUEUED_REQUESTS,
        setup: ChildSetup = ChildSetup(),
    ) -> None:
        assert checkpoint_every > 0 and max_queued_requests > 0
        url = engine.url
        assert url.get_backend_name() != "sqlite" or url.database not in (None, "", ":memory:"), (
            "a writer process needs a database it can open itself"
        )
        self._observer = observer
        self._max_queued = max_queued_requests
        key = None
        if signing_key is not None:
            key = signing_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, *setup.preload])
        # One-way pipes, as (receiving end, sending end).
        child_requests, self._requests = context.Pipe(duplex=False)
        self._replies, child_replies = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_serve,
            args=(url.render_as_string(hide_password=False), key, checkpoint_every, setup.on_start),
            kwargs={
                "max_queued": max_queued_requests,
                "requests": child_requests,
                "replies": child_replies,
            },
            name="rollon-writer",
            daemon=True,
        )
        self._process.start()
        child_requests.close()  # the child's ends: with them closed here, EOF means it is gone
        child_replies.close()
        self._numbers = itertools.count()
        self._waiting: dict[int, _Waiting] = {}
        self._participants: dict[int, tuple[int, BatchParticipant[Any]]] = {}  # by id()
        self._outbox: list[tuple[Any, ...]] = []
        self._outbox_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stopped: BaseException | None = None
        self.wal_checkpointer = (
            WalCheckpointer(engine) if url.get_backend_name() == "sqlite" else None
        )
        self._reader = threading.Thread(
            target=self._read, name="rollon-writer-replies", daemon=True
        )
        self._reader.start()

    @property
    def alive(self) -> bool:
        """True while the child takes requests."""
        return self._stopped is None and self._process.is_alive()

    @property
    def pid(self) -> int:
        """The child's process id."""
        pid = self._process.pid
        assert pid is not None, "the child was started in __init__"
        return pid

    # -- submitting -------------------------------------------------------------------------
    def submit(self, transfers: Sequence[Transfer], timeout_s: float = 30.0) -> list[Result]:
        """Submit and wait until the batch holding these transfers has committed."""
        future: Future[tuple[list[Result], Any]] = Future()
        self._queue(transfers, None, None, _Waiting(None, future))
        return future.result(timeout=timeout_s)[0]

    async def submit_async(self, transfers: Sequence[Transfer]) -> list[Result]:
        """Submit from an event loop without blocking it."""
        return (await self._submit_from_loop(transfers, None, None))[0]

    def submit_joined(
        self,
        transfers: Sequence[Transfer],
        participant: BatchParticipant[_T],
        ticket: _T,
        timeout_s: float = 30.0,
    ) -> tuple[list[Result], _T]:
        """Submit with a participant; the results, and the ticket as the participant left it
        (a copy: the participant ran in the child)."""
        future: Future[tuple[list[Result], Any]] = Future()
        self._queue(transfers, participant, ticket, _Waiting(None, future))
        results, returned = future.result(timeout=timeout_s)
        return results, returned

    async def submit_joined_async(
        self, transfers: Sequence[Transfer], participant: BatchParticipant[_T], ticket: _T
    ) -> tuple[list[Result], _T]:
        """`submit_joined` from an event loop."""
        results, returned = await self._submit_from_loop(transfers, participant, ticket)
        return results, returned

    async def _submit_from_loop(
        self,
        transfers: Sequence[Transfer],
        participant: BatchParticipant[Any] | None,
        ticket: Any,
    ) -> tuple[list[Result], Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[list[Result], Any]] = loop.create_future()
        if self._queue(transfers, participant, ticket, _Waiting(loop, future)):
            loop.call_soon(self._flush)  # once per loop turn, after its other submissions
        return await future

    def _queue(
        self,
        transfers: Sequence[Transfer],
        participant: BatchParticipant[Any] | None,
        ticket: Any,
        waiting: _Waiting,
    ) -> bool:
        """Put a request in the outbox; True when it is the first since the last flush. A
        thread's request is flushed at once."""
        check_request_size(transfers, joined=participant is not None, most=MAX_BATCH_TRANSFERS)
        if self._stopped is not None:
            raise StorageUnavailable("the ledger's writer process stopped") from self._stopped
        if len(self._waiting) >= self._max_queued:
            raise LedgerOverloaded("too many transfers are waiting; retry shortly")
        number = next(self._numbers)
        self._waiting[number] = waiting
        with self._outbox_lock:
            first = not self._outbox
            reference = None
            if participant is not None:
                reference = self._reference(participant)
            self._outbox.append((_REQUEST, number, tuple(transfers), reference, ticket))
        if waiting.loop is None:
            self._flush()
        return first

    def _reference(self, participant: BatchParticipant[Any]) -> int:
        """The participant's number in the child; sent ahead of its first request."""
        known = self._participants.get(id(participant))
        if known is None:
            known = (len(self._participants), participant)  # kept: its id stays unique
            self._participants[id(participant)] = known
            self._outbox.append((_PARTICIPANT, known[0], participant))
        return known[0]

    def _flush(self) -> None:
        with self._outbox_lock:
            messages, self._outbox = self._outbox, []
        if not messages:
            return
        try:
            data = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
            with self._send_lock:
                self._requests.send_bytes(data)
        except (OSError, ValueError) as error:  # the pipe is closed: the child is gone
            self._fail([m[1] for m in messages if m[0] == _REQUEST], error)

    # -- answers, on the reader thread ------------------------------------------------------
    def _read(self) -> None:
        while True:
            try:
                # From our own child, over a pipe no one else holds.
                tag, payload = pickle.loads(self._replies.recv_bytes())  # noqa: S301
            except (EOFError, OSError):
                break
            if tag == _SETTLED:
                self._settle([(number, _received(outcome)) for number, outcome in payload])
            elif self._observer is not None:
                requests, transfers, values, duration_s = payload
                results = [RESULTS[value] for value in values]
                try:
                    self._observer(BatchReport(requests, transfers, results, duration_s))
                except Exception:  # metrics must never stop the ledger
                    log.exception("the batch observer failed")
        self._stopped = self._stopped or StorageUnavailable("the ledger's writer process stopped")
        if self._waiting:
            log.error("the ledger's writer process stopped with %d requests", len(self._waiting))
        self._fail(list(self._waiting), self._stopped)

    def _settle(self, settled: list[tuple[int, _Outcome]]) -> None:
        by_loop: defaultdict[asyncio.AbstractEventLoop, list[tuple[Any, _Outcome]]]
        by_loop = defaultdict(list)
        for number, outcome in settled:
            waiting = self._waiting.pop(number)
            if waiting.loop is None:
                resolve(waiting.future, outcome)
            else:
                by_loop[waiting.loop].append((waiting.future, outcome))
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, outcomes)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                log.debug("results for a closed event loop dropped")

    def _fail(self, numbers: list[int], error: BaseException) -> None:
        failed = StorageUnavailable(f"the ledger's writer process is unreachable: {error}")
        self._settle([(n, failed) for n in numbers if n in self._waiting])

    def close(self) -> None:
        """Commit what is queued, then stop the child (and the WAL checkpoints)."""
        self._flush()
        self._requests.close()  # the child drains, answers and exits
        self._reader.join(timeout=STOP_TIMEOUT_S)
        self._process.join(timeout=STOP_TIMEOUT_S)
        if self._process.is_alive():
            log.error("the ledger's writer process did not stop; killing it")
            self._process.kill()
            self._process.join()
        self._replies.close()
        if self.wal_checkpointer is not None:
            self.wal_checkpointer.close()


def _received(outcome: _Sent) -> _Outcome:
    if isinstance(outcome, BaseException):
        return outcome
    values, ticket = outcome
    return [RESULTS[value] for value in values], ticket


def _deliver(outcomes: list[tuple[Any, _Outcome]]) -> None:
    for future, outcome in outcomes:
        resolve(future, outcome)


# -- the child --------------------------------------------------------------------------------
class _PipeDoorbell:
    """Collects a batch's outcomes in the child; ringing sends them back in one message."""

    def __init__(self, send: Callable[[tuple[str, Any]], None]) -> None:
        self._send = send
        self._settled: list[tuple[int, _Sent]] = []

    def add(self, key: tuple[int, Any], outcome: list[Result] | BaseException) -> None:
        number, ticket = key
        if isinstance(outcome, BaseException):
            self._settled.append((number, outcome))
        else:
            self._settled.append((number, ([result.value for result in outcome], ticket)))

    def ring(self) -> None:
        settled, self._settled = self._settled, []
        self._send((_SETTLED, settled))


def _report_values(report: BatchReport) -> tuple[int, int, list[str], float]:
    values = [result.value for result in report.results]
    return report.requests, report.transfers, values, report.duration_s


def _serve(
    url: str,
    signing_key: bytes | None,
    checkpoint_every: int,
    on_start: Callable[[], None] | None,
    *,
    max_queued: int,
    requests: Pipe,
    replies: Pipe,
) -> None:
    """The child's main: take requests off the pipe until it closes, then drain and exit."""
    # The parent stops the child by closing the pipe, after its own shutdown: a Ctrl-C or a
    # SIGTERM sent to the whole process group must not cut the queue short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if on_start is not None:
        on_start()
    send_lock = threading.Lock()

    def send(message: tuple[str, Any]) -> None:
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a ticket that does not pickle: a bug of its participant
            log.exception("an answer of the ledger's writer could not be sent back")
            if message[0] != _SETTLED:
                return
            error = RuntimeError("the writer's answer could not be sent back")
            data = pickle.dumps((_SETTLED, [(number, error) for number, _ in message[1]]))
        with send_lock:
            try:
                replies.send_bytes(data)
            except OSError:  # the parent is gone; the queue still commits, then we stop
                log.warning("the ledger's writer lost its parent")

    engine = create_engine(url)
    key = None if signing_key is None else Ed25519PrivateKey.from_private_bytes(signing_key)
    committer = GroupCommitter(
        engine,
        signing_key=key,
        checkpoint_every=checkpoint_every,
        max_queued_requests=max_queued,
        observer=lambda report: send((_BATCH, _report_values(report))),
        checkpoint_wal=False,  # the parent's thread does it
    )
    doorbell = _PipeDoorbell(send)
    participants: dict[int, BatchParticipant[Any]] = {}
    gc.freeze()  # what start-up built lives as long as the process: keep it out of scans
    try:
        while True:
            try:
                messages = pickle.loads(requests.recv_bytes())  # noqa: S301  (from the parent)
            except EOFError:
                return
            for message in messages:
                if message[0] == _PARTICIPANT:
                    participants[message[1]] = message[2]
                    continue
                _, number, transfers, reference, ticket = message
                joining = None if reference is None else (participants[reference], ticket)
                try:
                    committer.submit_ringing(transfers, doorbell, (number, ticket), joining)
                except (ValueError, LedgerHalted, LedgerOverloaded) as error:
                    send((_SETTLED, [(number, error)]))
    finally:
        committer.close()
        engine.dispose()
        replies.close()
