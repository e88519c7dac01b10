"""Batch participants on real databases: their rows commit in the batch's own transaction,
they may withdraw requests before the batch is decided, and a failure of theirs leaves
nothing of the batch applied."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from uuid import uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rollon.ledger.hot_path import GroupCommitter, StorageUnavailable
from rollon.ledger.queries import get_transfer
from rollon.ledger.service import Ledger
from rollon.ledger.transfers import Result
from tests.ledger.builders import balance_of, member, transfer

_NOTES = sa.table("participant_notes", sa.column("name"), sa.column("results"))


class Notes:
    """Withdraws the tickets named in `withdraw`; writes a note per ticket it keeps."""

    def __init__(
        self, withdraw: frozenset[str] = frozenset(), table: str = "participant_notes"
    ) -> None:
        self.withdraw = withdraw
        self.table = table
        self.before_calls = 0

    def before_decide(self, connection: Connection, tickets: Sequence[str]) -> list[bool]:
        self.before_calls += 1
        return [ticket in self.withdraw for ticket in tickets]

    def after_decide(
        self, connection: Connection, tickets: Sequence[str], results: Sequence[list[Result]]
    ) -> None:
        rows = [
            {"name": t, "results": ",".join(r.value for r in rs)}
            for t, rs in zip(tickets, results, strict=True)
        ]
        notes = sa.table(self.table, sa.column("name"), sa.column("results"))
        connection.execute(notes.insert(), rows)


@pytest.fixture
def notes_table(engine: Engine) -> Iterator[None]:
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE participant_notes (name TEXT, results TEXT)")
    yield
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE participant_notes")


def _notes(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return {row.name: row.results for row in connection.execute(sa.select(_NOTES))}


@pytest.mark.usefixtures("notes_table")
def test_a_participant_writes_with_the_batch_and_may_withdraw_requests(
    engine: Engine, ledger: Ledger
) -> None:
    payer, payee = member(ledger, "Payer", funded=1_000).id, member(ledger, "Payee").id
    notes = Notes(withdraw=frozenset({"replayed"}))
    committer = ledger.hot_path
    paid, refused, replayed = (transfer(payer, payee, amount) for amount in (600, 600, 1))
    assert committer.submit([paid], joining=(notes, "paid")) == [Result.OK]
    assert committer.submit([refused], joining=(notes, "refused")) == [Result.INSUFFICIENT_FUNDS]
    assert committer.submit([replayed], joining=(notes, "replayed")) == []
    assert committer.submit([], joining=(notes, "rows only")) == []
    assert _notes(engine) == {"paid": "ok", "refused": "insufficient_funds", "rows only": ""}
    assert balance_of(engine, payee) == 600
    with engine.connect() as connection:
        assert get_transfer(connection, replayed.id) is None


def test_only_a_request_joining_a_participant_may_hold_no_transfers(engine: Engine) -> None:
    committer = GroupCommitter(engine)
    try:
        with pytest.raises(ValueError, match="1 to"):
            committer.submit_nowait([])
    finally:
        committer.close()


def test_a_participant_failing_leaves_nothing_of_the_batch(engine: Engine, ledger: Ledger) -> None:
    payer, payee = member(ledger, "Payer", funded=1_000).id, member(ledger, "Payee").id
    broken = Notes(table="no_such_table")  # the database refuses its write
    lost = transfer(payer, payee, 100, transfer_id=uuid4())
    with pytest.raises(StorageUnavailable):
        ledger.hot_path.submit([lost], joining=(broken, "lost"))
    assert broken.before_calls >= 1
    assert ledger.submit([transfer(payer, payee, 1)]) == [Result.OK]  # not halted
    assert balance_of(engine, payee) == 1
    with engine.connect() as connection:
        assert get_transfer(connection, lost.id) is None
