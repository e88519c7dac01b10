"""A writer process killed with SIGKILL in the middle of a load, on SQLite and PostgreSQL:
after a restart every acknowledged transfer is there, every operation is whole or absent,
verify passes, and the ledger carries on."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rollon.ledger import operations
from rollon.ledger.schema import transfers
from rollon.ledger.service import Ledger
from rollon.ledger.storage import create_engine
from rollon.ledger.transfers import Result
from tests.ledger.builders import assert_books_sound, member, transfer
from tests.ledger.worker_processes import issue_until_killed

ACKS_BEFORE_KILL = 120


def _wait_for_acks(acks: Path, process: multiprocessing.process.BaseProcess) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.is_alive(), "the writer died on its own"
        if acks.exists() and acks.read_text().count("\nA ") >= ACKS_BEFORE_KILL:
            return
        time.sleep(0.02)
    pytest.fail("the writer acknowledged too little in time")


@pytest.mark.slow
def test_sigkill_mid_load_loses_nothing_acknowledged(
    db_url: str, engine: Engine, ledger: Ledger, tmp_path: Path
) -> None:
    members = [member(ledger, f"Member {i}").id for i in range(4)]
    ledger.close()
    acks = tmp_path / "acks.log"
    process = multiprocessing.get_context("spawn").Process(
        target=issue_until_killed, args=(db_url, members, str(acks), 4)
    )
    process.start()
    try:
        _wait_for_acks(acks, process)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)  # batches are in flight: four threads submit
        process.join(timeout=30)
    finally:
        if process.is_alive():
            process.kill()
    assert process.exitcode == -signal.SIGKILL

    intents: dict[UUID, tuple[UUID, int]] = {}
    acknowledged: dict[UUID, str] = {}
    payments: dict[UUID, str] = {}
    payments_sent: set[UUID] = set()
    for line in acks.read_text().splitlines():
        kind, *fields = line.split()
        if kind == "S":
            intents[UUID(fields[0])] = (UUID(fields[1]), int(fields[2]))
        elif kind == "A":
            acknowledged[UUID(fields[0])] = fields[1]
        elif kind == "T":
            payments_sent.add(UUID(fields[0]))
        elif kind == "R":
            payments[UUID(fields[0])] = fields[1]
    assert len(acknowledged) >= ACKS_BEFORE_KILL
    in_flight = len(intents) - len(acknowledged) + len(payments_sent) - len(payments)
    assert in_flight > 0, "killed while requests were in flight"

    restarted_engine = create_engine(db_url)  # a fresh start: new engine, new ledger
    restarted = Ledger(restarted_engine)
    try:
        with restarted_engine.connect() as connection:
            in_journal = set(connection.execute(sa.select(transfers.c.id)).scalars())
        for op, (account, amount) in intents.items():
            legs = operations.issuance(op, account, amount, "crash test", bonus_bps=300)
            present = [leg.id in in_journal for leg in legs]
            assert all(present) or not any(present), f"operation {op} is half-written"
            if acknowledged.get(op) == Result.OK.value:
                assert all(present), f"acknowledged operation {op} is lost"
            elif op in acknowledged:
                assert not any(present), f"refused operation {op} is in the books"
        for payment, result in payments.items():
            assert (payment in in_journal) == (result == Result.OK.value)
        assert_books_sound(restarted_engine)

        # The ledger carries on: retries of what was acknowledged are recognized, and
        # operations whose answer was lost in the crash can be retried safely.
        for op, (account, amount) in intents.items():
            again = restarted.issue(op, account, amount, "crash test", bonus_bps=300)
            assert again.applied, (op, again)
            if acknowledged.get(op) == Result.OK.value:
                assert again.result is Result.EXISTS
        shop = member(restarted, "After the crash")
        assert restarted.submit([transfer(members[0], shop.id, 1)]) in (
            [Result.OK],
            [Result.INSUFFICIENT_FUNDS],
        )
        assert restarted.issue(uuid4(), shop.id, 100, "after").result is Result.OK
    finally:
        restarted.close()
    assert_books_sound(restarted_engine)
    restarted_engine.dispose()
