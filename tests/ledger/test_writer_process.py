"""The hot path's writer in a child process, on real databases: it commits what the thread
would, participants' rows commit with the batch and their tickets come back, closing commits
what is queued, and a writer that dies fails requests instead of hanging them."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Connection, Engine

from rollon.ledger.hot_path import BatchReport, StorageUnavailable
from rollon.ledger.service import Ledger
from rollon.ledger.transfers import Result
from rollon.ledger.verify import verify_database
from rollon.ledger.writer_process import ChildSetup, WriterProcess
from tests.ledger.builders import balance_of, member, transfer
from tests.ledger.test_hot_path_participants import Notes, _notes, notes_table  # noqa: F401

DEATH_TIMEOUT_S = 10.0


@pytest.fixture
def process_ledger(engine: Engine, signing_key: Ed25519PrivateKey) -> Iterator[Ledger]:
    """A Ledger whose writer runs in a child process."""
    opened = Ledger(
        engine, signing_key=signing_key, checkpoint_every=10, writer_process=ChildSetup()
    )
    assert isinstance(opened.hot_path, WriterProcess)
    yield opened
    opened.close()


def test_the_writer_process_commits_what_the_thread_would(
    engine: Engine, process_ledger: Ledger, signing_key: Ed25519PrivateKey
) -> None:
    ledger = process_ledger
    payer, payee = member(ledger, "Payer", funded=1_000).id, member(ledger, "Payee").id
    assert ledger.submit([transfer(payer, payee, 400)]) == [Result.OK]
    assert ledger.submit([transfer(payer, payee, 700)]) == [Result.INSUFFICIENT_FUNDS]

    async def many() -> list[list[Result]]:
        return await asyncio.gather(
            *(ledger.submit_async([transfer(payer, payee, 1)]) for _ in range(600))
        )

    results = [r for rs in asyncio.run(many()) for r in rs]
    assert results == [Result.OK] * 600
    assert balance_of(engine, payee) == 1_000
    assert balance_of(engine, payer) == 0
    ledger.close()
    report = verify_database(engine, [signing_key.public_key()])
    assert report.ok, report
    assert report.checkpoints_checked > 0  # signed in the child with the server's key


@dataclass
class Stamp:
    """A ticket a participant fills in on the writer's side."""

    name: str
    seen: list[str] = field(default_factory=list)


class Stamper(Notes):
    """Notes that also stamp each ticket with its results: what a caller reads back."""

    def before_decide(self, connection: Connection, tickets: Sequence[Any]) -> list[bool]:
        return super().before_decide(connection, [t.name for t in tickets])

    def after_decide(
        self, connection: Connection, tickets: Sequence[Any], results: Sequence[list[Result]]
    ) -> None:
        super().after_decide(connection, [t.name for t in tickets], results)
        for ticket, ticket_results in zip(tickets, results, strict=True):
            ticket.seen = [r.value for r in ticket_results]


@pytest.mark.usefixtures("notes_table")
def test_a_participant_runs_in_the_writer_and_its_ticket_comes_back(
    engine: Engine, process_ledger: Ledger
) -> None:
    ledger = process_ledger
    payer, payee = member(ledger, "Payer", funded=1_000).id, member(ledger, "Payee").id
    stamper = Stamper(withdraw=frozenset({"replayed"}))
    sent = Stamp("paid")
    results, returned = ledger.submit_joined([transfer(payer, payee, 600)], stamper, sent)
    assert results == [Result.OK]
    assert returned.seen == ["ok"] and sent.seen == []  # a copy came back from the child

    async def joined() -> tuple[list[Result], Stamp]:
        return await ledger.submit_joined_async(
            [transfer(payer, payee, 600)], stamper, Stamp("refused")
        )

    results, returned = asyncio.run(joined())
    assert results == [Result.INSUFFICIENT_FUNDS] and returned.seen == ["insufficient_funds"]
    results, returned = ledger.submit_joined(
        [transfer(payer, payee, 1)], stamper, Stamp("replayed")
    )
    assert results == [] and returned.seen == []  # withdrawn before the batch was decided
    assert _notes(engine) == {"paid": "ok", "refused": "insufficient_funds"}
    assert balance_of(engine, payee) == 600


def test_batch_reports_reach_the_observer_in_this_process(
    engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    reports: list[BatchReport] = []
    ledger = Ledger(
        engine, signing_key=signing_key, writer_process=ChildSetup(), observer=reports.append
    )
    try:
        payer, payee = member(ledger, "Payer", funded=100).id, member(ledger, "Payee").id
        ledger.submit([transfer(payer, payee, 60)])
        ledger.submit([transfer(payer, payee, 60)])
    finally:
        ledger.close()
    results = [r for report in reports for r in report.results]
    assert results[-2:] == [Result.OK, Result.INSUFFICIENT_FUNDS]
    assert sum(report.transfers for report in reports) == len(results)


def test_closing_commits_what_is_queued(engine: Engine, process_ledger: Ledger) -> None:
    ledger = process_ledger
    payer, payee = member(ledger, "Payer", funded=10_000).id, member(ledger, "Payee").id

    async def submit_then_close() -> list[list[Result]]:
        pending = [
            asyncio.ensure_future(ledger.submit_async([transfer(payer, payee, 1)]))
            for _ in range(300)
        ]
        await asyncio.sleep(0)  # they are queued, maybe not yet sent
        ledger.close()  # blocks this loop: the answers wait for it to run again
        return await asyncio.gather(*pending)

    assert asyncio.run(submit_then_close()) == [[Result.OK]] * 300
    assert balance_of(engine, payee) == 300


def test_a_writer_that_dies_fails_requests_and_says_so(
    engine: Engine, process_ledger: Ledger
) -> None:
    ledger = process_ledger
    writer = ledger.hot_path
    assert isinstance(writer, WriterProcess)
    payer, payee = member(ledger, "Payer", funded=100).id, member(ledger, "Payee").id
    assert ledger.submit([transfer(payer, payee, 1)]) == [Result.OK]
    assert writer.alive
    os.kill(writer.pid, signal.SIGKILL)
    deadline = time.monotonic() + DEATH_TIMEOUT_S
    while writer.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not writer.alive
    with pytest.raises(StorageUnavailable, match="writer process"):
        ledger.submit([transfer(payer, payee, 1)])
    assert balance_of(engine, payee) == 1


@dataclass
class Unpicklable:
    """A ticket its participant spoils: what it holds cannot cross back to the parent."""

    name: str
    spoiled: Any = None


class Spoiler(Notes):
    def before_decide(self, connection: Connection, tickets: Sequence[Any]) -> list[bool]:
        return [False] * len(tickets)

    def after_decide(
        self, connection: Connection, tickets: Sequence[Any], results: Sequence[list[Result]]
    ) -> None:
        for ticket in tickets:
            ticket.spoiled = lambda: None  # a bug of the participant's


def test_an_answer_that_cannot_come_back_is_an_error_not_a_hang(
    engine: Engine, process_ledger: Ledger
) -> None:
    ledger = process_ledger
    payer, payee = member(ledger, "Payer", funded=100).id, member(ledger, "Payee").id
    with pytest.raises(RuntimeError, match="could not be sent back"):
        ledger.submit_joined([transfer(payer, payee, 1)], Spoiler(), Unpicklable("x"))
    assert ledger.submit([transfer(payer, payee, 2)]) == [Result.OK]  # the writer goes on
    assert balance_of(engine, payee) == 3  # the spoiled request's transfer committed


def test_a_database_only_this_process_can_open_is_refused() -> None:
    engine = sa.create_engine("sqlite://")
    with pytest.raises(AssertionError, match="open itself"):
        Ledger(engine, writer_process=ChildSetup())


def _mark_started(path: Path) -> None:
    path.write_text(str(os.getpid()))


def test_the_child_runs_its_setup_first(engine: Engine, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    setup = ChildSetup(on_start=partial(_mark_started, marker))
    ledger = Ledger(engine, writer_process=setup)
    try:
        writer = ledger.hot_path
        assert isinstance(writer, WriterProcess)
        payer, payee = member(ledger, "Payer", funded=10).id, member(ledger, "Payee").id
        assert ledger.submit([transfer(payer, payee, 1)]) == [Result.OK]
        assert marker.read_text() == str(writer.pid)  # in the child, not here
    finally:
        ledger.close()
