import threading
from uuid import uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from rollon.ledger.accounts import LedgerCode
from rollon.ledger.service import Ledger
from rollon.ledger.transfers import Result, Transfer, TransferCode
from rollon.merchants.batch_writer import BatchWriter
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
