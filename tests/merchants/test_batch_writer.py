import pickle
import threading
from functools import partial
from uuid import uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from rollon.ledger.accounts import LedgerCode
from rollon.ledger.service import Ledger
from rollon.ledger.transfers import Result, Transfer, TransferCode
from rollon.merchants.batch_writer import BatchWriter, _Write
from rollon.merchants.schema import settlements
from tests.merchants.conftest import balance, member_with


def _insert(settlement_id: object, message_id: str) -> object:
    def work(connection: Connection) -> str:
        connection.execute(
            settlements.insert().values(
                id=settlement_id,
                message_id=message_id,
                status="prepared",
                created_at_ns=1,
                execution_date=sa.func.current_date(),
                total=1,
                transfers=1,
                reconversions=1,
                document="<x/>",
            )
        )
        return "ok"

    return work


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(settlements)).scalar_one()
        )


def test_a_failing_write_fails_alone(engine: Engine, ledger: Ledger) -> None:
    writer = BatchWriter(ledger)
    results: list[object] = []
    barrier = threading.Barrier(8)

    def write(index: int) -> None:
        barrier.wait()
        message = "dup" if index < 2 else f"m{index}"  # two writers want the same unique id
        try:
            results.append(writer.write(_insert(uuid4(), message)))  # type: ignore[arg-type]
        except IntegrityError:
            results.append("duplicate")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, results)) == ["duplicate"] + ["ok"] * 7
    assert _count(engine) == 7
    with pytest.raises(IntegrityError):
        writer.write(_insert(uuid4(), "m2"))  # type: ignore[arg-type]


def test_writes_share_the_ledgers_batches_without_touching_its_transfers(
    engine: Engine, ledger: Ledger
) -> None:
    writer = BatchWriter(ledger)
    payer = member_with(ledger, 10_000)
    payee = member_with(ledger, 0, "Dominique")
    barrier = threading.Barrier(12)
    outcomes: list[object] = []

    def pay(index: int) -> None:
        barrier.wait()
        transfer = Transfer(
            id=uuid4(),
            debit_account_id=payer,
            credit_account_id=payee,
            amount=100,
            ledger=LedgerCode.RLN,
            code=TransferCode.TRANSFER,
        )
        outcomes.extend(ledger.submit([transfer]))

    def write(index: int) -> None:
        barrier.wait()
        try:
            outcomes.append(writer.write(_insert(uuid4(), "same")))  # type: ignore[arg-type]
        except IntegrityError:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(6)]
    threads += [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, outcomes)) == sorted(["duplicate"] * 5 + ["ok"] + [Result.OK] * 6)
    assert balance(engine, payee) == 600
    assert _count(engine) == 1


def test_a_write_crosses_with_its_work_and_comes_back_with_its_outcome_only() -> None:
    """The writer may be another process: a write pickles out with its work, and back, once
    done, with what the work returned and without the work (its row is the server's)."""
    out = pickle.loads(pickle.dumps(_Write(partial(_row_work, "a row the server holds"))))
    assert out.work(None, []) == "ran with a row the server holds"  # type: ignore[arg-type]
    out.result, out.done = "stored", True
    data = pickle.dumps(out)
    assert b"a row the server holds" not in data
    back = pickle.loads(data)
    assert (back.result, back.failure, back.done) == ("stored", None, True)
    with pytest.raises(AssertionError, match="run again"):
        back.work(None, [])  # type: ignore[arg-type]


def _row_work(row: str, connection: Connection, results: object) -> str:
    return f"ran with {row}"
