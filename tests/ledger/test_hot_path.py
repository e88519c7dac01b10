"""The group-commit hot path on real databases: coalescing, bounds, halting when the database
changes under it, giving up cleanly when the database is locked, async submitters."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from rollon.ledger import hot_path
from rollon.ledger.hot_path import (
    BatchReport,
    GroupCommitter,
    LedgerHalted,
    LedgerOverloaded,
    StorageUnavailable,
)
from rollon.ledger.journal import Checkpoint, checkpoint_is_valid
from rollon.ledger.schema import accounts, checkpoints, transfers
from rollon.ledger.service import Ledger
from rollon.ledger.state_machine import MAX_BATCH_TRANSFERS, Outcome, Snapshot, execute
from rollon.ledger.storage import create_engine, normalize_url
from rollon.ledger.transfers import Result, Transfer
from rollon.ledger.verify import verify_database
from tests.ledger.builders import assert_books_sound, balance_of, member, transfer

R = Result


class GatedClock:
    """A clock the writer thread calls inside its transaction: closed, it holds the writer
    there, so a test can fill the queue behind it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self) -> int:
        self.entered.set()
        assert self.gate.wait(timeout=30), "the test never opened the gate"
        return time.time_ns()


@pytest.fixture
def payers(ledger: Ledger) -> tuple[UUID, UUID]:
    return member(ledger, "Payer", funded=1_000_000).id, member(ledger, "Payee").id


def _journal_size(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(transfers)).scalar_one()


def test_concurrent_submitters_are_coalesced_into_batches(engine: Engine) -> None:
    reports: list[BatchReport] = []
    ledger = Ledger(engine, observer=reports.append)
    try:
        sources = [member(ledger, f"Payer {i}", funded=1_000).id for i in range(16)]
        payee = member(ledger, "Shop").id
        reports.clear()
        answers: list[list[Result]] = []

        def spend(source: UUID) -> None:
            for _ in range(10):
                answers.append(ledger.submit([transfer(source, payee, 7)]))

        threads = [threading.Thread(target=spend, args=(s,)) for s in sources]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        ledger.close()
    assert answers == [[R.OK]] * 160
    assert sum(r.transfers for r in reports) == 160
    assert max(r.requests for r in reports) > 1, "no batch coalesced two submitters"
    assert len(reports) < 160
    assert all(r.results.count(R.OK) == r.transfers for r in reports)
    assert balance_of(engine, payee) == 160 * 7
    assert_books_sound(engine)


def test_a_full_queue_refuses_with_overloaded(engine: Engine, payers: tuple[UUID, UUID]) -> None:
    clock = GatedClock()
    committer = GroupCommitter(engine, clock_ns=clock, max_queued_requests=2)
    source, payee = payers
    try:
        first = committer.submit_nowait([transfer(source, payee, 1)])
        assert clock.entered.wait(timeout=10)  # the writer holds `first`, inside its batch
        queued = [committer.submit_nowait([transfer(source, payee, 1)]) for _ in range(2)]
        refused = transfer(source, payee, 1)
        with pytest.raises(LedgerOverloaded):
            committer.submit_nowait([refused])
        clock.gate.set()
        assert [f.result(timeout=10) for f in [first, *queued]] == [[R.OK]] * 3
        assert committer.submit([refused]) == [R.OK]  # room again: the same id goes through
    finally:
        clock.gate.set()
        committer.close()
    assert balance_of(engine, payee) == 4


def test_requests_are_bounded_by_the_batch_size(engine: Engine, payers: tuple[UUID, UUID]) -> None:
    source, payee = payers
    reports: list[BatchReport] = []
    clock = GatedClock()
    committer = GroupCommitter(
        engine, clock_ns=clock, max_batch_transfers=5, observer=reports.append
    )
    try:
        with pytest.raises(ValueError, match="1 to 5"):
            committer.submit_nowait([transfer(source, payee, 1) for _ in range(6)])
        with pytest.raises(ValueError, match="1 to 5"):
            committer.submit_nowait([])
        first = committer.submit_nowait([transfer(source, payee, 1)])
        assert clock.entered.wait(timeout=10)
        pairs = [
            committer.submit_nowait([transfer(source, payee, 1), transfer(source, payee, 1)])
            for _ in range(6)
        ]
        clock.gate.set()
        assert first.result(timeout=10) == [R.OK]
        assert [f.result(timeout=10) for f in pairs] == [[R.OK, R.OK]] * 6
    finally:
        clock.gate.set()
        committer.close()
    assert all(r.transfers <= 5 for r in reports)
    assert [r.requests for r in reports[1:]] == [2, 2, 2]  # 2+2 fit, a third pair would not
    assert balance_of(engine, payee) == 13


def test_the_ledger_refuses_a_request_past_the_largest_batch(ledger: Ledger) -> None:
    too_many = [transfer(UUID(int=1), UUID(int=2), 1)] * (MAX_BATCH_TRANSFERS + 1)
    with pytest.raises(ValueError):
        ledger.submit(too_many)


def test_close_commits_what_is_queued(engine: Engine, payers: tuple[UUID, UUID]) -> None:
    source, payee = payers
    clock = GatedClock()
    committer = GroupCommitter(engine, clock_ns=clock)
    futures = [committer.submit_nowait([transfer(source, payee, 1)])]
    assert clock.entered.wait(timeout=10)
    futures += [committer.submit_nowait([transfer(source, payee, 1)]) for _ in range(5)]
    clock.gate.set()
    committer.close()
    assert all(f.done() and f.result() == [R.OK] for f in futures)
    assert balance_of(engine, payee) == 6


def test_async_submitters_share_batches(engine: Engine) -> None:
    reports: list[BatchReport] = []
    ledger = Ledger(engine, observer=reports.append)
    try:
        source = member(ledger, "Payer", funded=10_000).id
        payee = member(ledger, "Payee").id
        reports.clear()

        async def pay_many() -> list[list[Result]]:
            return await asyncio.gather(
                *(ledger.submit_async([transfer(source, payee, 3)]) for _ in range(50))
            )

        assert asyncio.run(pay_many()) == [[R.OK]] * 50
    finally:
        ledger.close()
    assert max(r.requests for r in reports) > 1
    assert balance_of(engine, payee) == 150


def test_a_cancelled_async_submitter_does_not_withdraw_its_transfer(engine: Engine) -> None:
    clock = GatedClock()
    committer = GroupCommitter(engine, clock_ns=clock)
    ledger = Ledger(engine)
    try:
        source = member(ledger, "Payer", funded=100).id
        payee = member(ledger, "Payee").id
    finally:
        ledger.close()

    async def give_up_waiting() -> list[Result]:
        waiting = asyncio.ensure_future(committer.submit_async([transfer(source, payee, 7)]))
        await asyncio.to_thread(clock.entered.wait, 10)  # the writer holds its batch
        waiting.cancel()
        clock.gate.set()
        # A later submission in the same loop is answered: the doorbell skips the cancelled.
        return await committer.submit_async([transfer(source, payee, 1)])

    try:
        assert asyncio.run(give_up_waiting()) == [R.OK]
    finally:
        committer.close()
    assert balance_of(engine, payee) == 8


def test_submitters_in_several_event_loops_each_get_their_results(engine: Engine) -> None:
    ledger = Ledger(engine)
    try:
        source = member(ledger, "Payer", funded=10_000).id
        payee = member(ledger, "Payee").id

        async def pay(count: int) -> list[list[Result]]:
            return await asyncio.gather(
                *(ledger.submit_async([transfer(source, payee, 1)]) for _ in range(count))
            )

        answers: list[list[list[Result]]] = [[] for _ in range(4)]

        def loop(index: int) -> None:
            answers[index] = asyncio.run(pay(25))

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        ledger.close()
    assert answers == [[[R.OK]] * 25] * 4
    assert balance_of(engine, payee) == 100


def test_checkpoints_are_signed_as_the_chain_crosses_each_multiple(
    ledger: Ledger, engine: Engine, signing_key: Ed25519PrivateKey, payers: tuple[UUID, UUID]
) -> None:
    """The `ledger` fixture signs every 10 entries."""
    source, payee = payers
    for _ in range(25):
        assert ledger.submit([transfer(source, payee, 1)]) == [R.OK]
    with engine.connect() as connection:
        rows = connection.execute(sa.select(checkpoints).order_by(checkpoints.c.seq)).all()
    assert [row.seq for row in rows] == [10, 20]
    report = verify_database(engine, [signing_key.public_key()])
    assert report.ok and report.checkpoints_checked == 2
    assert all(
        checkpoint_is_valid(
            signing_key.public_key(),
            Checkpoint(r.seq, bytes(r.hash), r.timestamp_ns, r.key_id, bytes(r.signature)),
        )
        for r in rows
    )


# -- halting -------------------------------------------------------------------------------------
@contextmanager
def tamper_trigger(engine: Engine) -> Iterator[None]:
    """A trigger that, whenever a transfer row is inserted, adds a centime to its credit
    account: the database changes a balance behind the ledger's back, after the batch was
    decided and before the guarded update of the balances."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as connection:
        if sqlite:
            connection.exec_driver_sql(
                "CREATE TRIGGER tamper AFTER INSERT ON transfers BEGIN "
                "UPDATE accounts SET credits_posted = credits_posted + 1 "
                "WHERE id = NEW.credit_account_id; END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "UPDATE accounts SET credits_posted = credits_posted + 1 "
                "WHERE id = NEW.credit_account_id; RETURN NEW; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER tamper AFTER INSERT ON transfers "
                "FOR EACH ROW EXECUTE FUNCTION tamper()"
            )
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER tamper" + ("" if sqlite else " ON transfers"))


def test_an_async_submitter_gets_the_batchs_failure(engine: Engine) -> None:
    ledger = Ledger(engine)
    try:
        source = member(ledger, "Payer", funded=100).id
        payee = member(ledger, "Payee").id

        async def pay() -> list[Result]:
            return await ledger.submit_async([transfer(source, payee, 1)])

        with tamper_trigger(engine), pytest.raises(LedgerHalted):
            asyncio.run(pay())
        with pytest.raises(LedgerHalted):  # and it stays stopped
            asyncio.run(pay())
    finally:
        ledger.close()
    assert balance_of(engine, payee) == 0


def _halts_then_refuses(committer: GroupCommitter, t: Transfer) -> None:
    with pytest.raises(LedgerHalted):
        committer.submit([t])
    with pytest.raises(LedgerHalted):
        committer.submit_nowait([t])


def test_the_ledger_halts_when_balances_change_under_it(
    engine: Engine, payers: tuple[UUID, UUID]
) -> None:
    source, payee = payers
    size_before = _journal_size(engine)
    first = Ledger(engine)
    try:
        with tamper_trigger(engine):
            _halts_then_refuses(first.hot_path, transfer(source, payee, 5))
        # The trigger is gone, but a halted ledger does not guess: it stays halted.
        _halts_then_refuses(first.hot_path, transfer(source, payee, 6))
    finally:
        first.close()
    assert _journal_size(engine) == size_before, "the halted batch was rolled back"
    assert balance_of(engine, payee) == 0
    assert_books_sound(engine)  # nothing half-written
    second = Ledger(engine)
    try:
        assert second.submit([transfer(source, payee, 5)]) == [R.OK]
    finally:
        second.close()
    assert_books_sound(engine)


def test_a_second_connection_editing_a_balance_mid_batch(
    db_url: str, engine: Engine, payers: tuple[UUID, UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Just after the writer decided a batch, before it writes it, another connection edits
    the payer's balance. PostgreSQL lets it commit (only the head row is locked): the guarded
    update sees it and the ledger halts. SQLite has one writer at a time: the edit cannot get
    in before the batch commits."""
    source, payee = payers
    ledger = Ledger(engine)
    other = _impatient_engine(db_url)
    attempted = threading.Event()
    locked_out: list[OperationalError] = []

    def decide_then_edit(snapshot: Snapshot, batch: Sequence[Sequence[Transfer]]) -> Outcome:
        outcome = execute(snapshot, batch)
        if not attempted.is_set():
            attempted.set()
            try:
                with other.begin() as connection:
                    connection.execute(
                        accounts.update()
                        .where(accounts.c.id == source)
                        .values(credits_posted=accounts.c.credits_posted + 100)
                    )
            except OperationalError as error:
                locked_out.append(error)
        return outcome

    # The writer's own step, wrapped: the state machine and the database are the real ones.
    monkeypatch.setattr(hot_path, "execute", decide_then_edit)
    try:
        if engine.dialect.name == "sqlite":
            assert ledger.submit([transfer(source, payee, 5)]) == [R.OK]
        else:
            _halts_then_refuses(ledger.hot_path, transfer(source, payee, 5))
        assert attempted.is_set()
    finally:
        ledger.close()
        other.dispose()
    if engine.dialect.name == "sqlite":
        assert locked_out, "SQLite let a second writer in during a batch"
        assert balance_of(engine, payee) == 5
        assert_books_sound(engine)
        return
    assert not locked_out
    assert balance_of(engine, payee) == 0
    report = verify_database(engine, [])
    assert not report.ok  # the edit itself is a tampering verify must see
    assert {p.account_id for p in report.problems if p.kind == "balance_mismatch"} == {source}


# -- a locked database -----------------------------------------------------------------------------
def _impatient_engine(db_url: str) -> Engine:
    """An engine on the same database that gives up waiting for a lock after 50 ms."""
    if db_url.startswith("sqlite"):
        impatient = create_engine(db_url)

        @event.listens_for(impatient, "connect")
        def _short_timeout(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout=50")

        return impatient
    url = sa.make_url(normalize_url(db_url))
    options = f"{url.query.get('options', '')} -c lock_timeout=50".strip()
    return create_engine(url.update_query_dict({"options": options}).render_as_string(False))


def test_a_locked_database_gives_storage_unavailable_not_a_halt(
    db_url: str, engine: Engine, payers: tuple[UUID, UUID]
) -> None:
    source, payee = payers
    impatient = _impatient_engine(db_url)
    committer = GroupCommitter(impatient)
    blocker = engine.connect()
    try:
        blocker.execution_options(rollon_write=True)
        with blocker.begin():
            blocker.execute(
                sa.text("SELECT seq FROM journal_head WHERE id = 1 FOR UPDATE")
                if engine.dialect.name != "sqlite"
                else sa.text("UPDATE journal_head SET seq = seq WHERE id = 1")
            )
            with pytest.raises(StorageUnavailable):
                committer.submit([transfer(source, payee, 5)])
        # The lock is gone: the same ledger carries on, nothing of the failed batch applied.
        assert committer.submit([transfer(source, payee, 7)]) == [R.OK]
    finally:
        blocker.close()
        committer.close()
        impatient.dispose()
    assert balance_of(engine, payee) == 7
    assert_books_sound(engine)
