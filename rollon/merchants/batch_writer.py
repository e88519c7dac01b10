"""The merchants' small, frequent writes (a new payment request, a payment written down) ride
in the ledger's own batch transactions, as a participant of its hot path.

So a server has one writer: on SQLite, two writers would take turns at the one database
write lock, each waiting out the other's busy back-off; and a payment's record can
share the commit (and the fsync) of the transfers around it. Each write runs in a savepoint
of its own, so one that breaks a constraint (a duplicate id) fails alone, and neither the
other writes nor the batch's transfers notice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from rollon.ledger.service import Ledger
from rollon.ledger.storage import driver_cursor
from rollon.ledger.transfers import Result, Transfer

T = TypeVar("T")
WAIT_TIMEOUT_S = 30.0
_SAVEPOINT = "rollon_merchants_write"


@dataclass(slots=True)
class _Write:
    work: Callable[[Connection, Sequence[Result]], Any]  # given its transfers' results
    result: Any = None
    failure: IntegrityError | None = None
    done: bool = False

    def __reduce__(self) -> tuple[Callable[..., _Write], tuple[Any, ...]]:
        # As plain values (a slots dataclass pickles its state in Python), and once done
        # without its work: the writer may be another process, and the server wants the
        # outcome back, not the request row it was given.
        work = _done if self.done else self.work
        return _Write, (work, self.result, self.failure, self.done)


def _done(connection: Connection, results: Sequence[Result]) -> Any:
    """The work of a write that came back done: it ran already."""
    raise AssertionError("a write that came back done was run again")


@dataclass(frozen=True, slots=True)
class _WithoutResults(Generic[T]):
    """A write that needs no transfers' results."""

    work: Callable[[Connection], T]

    def __call__(self, connection: Connection, _results: Sequence[Result]) -> T:
        return self.work(connection)


def _result_of(ticket: _Write) -> Any:
    """What a committed write returned, or the IntegrityError it raised."""
    if ticket.failure is not None:
        raise ticket.failure
    return ticket.result


class BatchWriter:
    """Runs writes in the ledger's batch transactions; `write` returns once durable.

    The writer may run in another process (see rollon.ledger.writer_process): a write's
    work and what it returns must pickle. Give module-level functions (with
    `functools.partial`) or methods of module-level dataclasses, holding plain values."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in the next batch's transaction (in a savepoint of its own) and return
        its result once committed. An IntegrityError it raises is raised here, its write
        rolled back alone; any other database error fails the batch (StorageUnavailable)."""
        _, result = self.submit([], _WithoutResults(work))
        return result

    def submit(
        self, transfers: Sequence[Transfer], work: Callable[[Connection, Sequence[Result]], T]
    ) -> tuple[list[Result], T]:
        """Submit `transfers` to the ledger and run `work` in the same transaction, once they
        are decided, with their results (so a record of them commits atomically with them).
        Returns the results and what `work` returned; raises as `write` does."""
        results, ticket = self._ledger.submit_joined(
            transfers, SAVEPOINT_WRITES, _Write(work), timeout_s=WAIT_TIMEOUT_S
        )
        return results, _result_of(ticket)

    async def write_async(self, work: Callable[[Connection], T]) -> T:
        """`write` from an event loop: the loop serves others while the batch commits."""
        _, result = await self.submit_async([], _WithoutResults(work))
        return result

    async def submit_async(
        self, transfers: Sequence[Transfer], work: Callable[[Connection, Sequence[Result]], T]
    ) -> tuple[list[Result], T]:
        """`submit` from an event loop, with no thread held while the batch commits."""
        results, ticket = await self._ledger.submit_joined_async(
            transfers, SAVEPOINT_WRITES, _Write(work)
        )
        return results, _result_of(ticket)


class SavepointWrites:
    """The ledger's BatchParticipant that runs the writes, on its writer (thread or process)."""

    def before_decide(self, connection: Connection, tickets: Sequence[_Write]) -> list[bool]:
        """Nothing to read first: no write is ever withdrawn."""
        return [False] * len(tickets)

    def after_decide(
        self, connection: Connection, tickets: Sequence[_Write], results: Sequence[list[Result]]
    ) -> None:
        """Run each write in a savepoint (afresh on a retried attempt). The savepoints are
        the driver's own statements: SQLAlchemy's `begin_nested` costs some 200 µs of the
        writer's time per write, the driver's about 2."""
        with driver_cursor(connection) as cursor:
            for ticket, ticket_results in zip(tickets, results, strict=True):
                ticket.result, ticket.failure = None, None
                cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
                try:
                    ticket.result = ticket.work(connection, ticket_results)
                except IntegrityError as error:
                    cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                    ticket.failure = error
                cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
                ticket.done = True


SAVEPOINT_WRITES = SavepointWrites()
