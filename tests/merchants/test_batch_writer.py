import threading
import time
from uuid import uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from rollon.merchants.batch_writer import BatchWriter
from rollon.merchants.schema import settlements


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


def test_a_failing_write_fails_alone(engine: Engine) -> None:
    writer = BatchWriter(engine)
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
    writer.close()
    assert sorted(map(str, results)) == ["duplicate"] + ["ok"] * 7
    assert _count(engine) == 7


def test_the_writer_thread_leaves_when_idle_and_comes_back(engine: Engine) -> None:
    writer = BatchWriter(engine, idle_exit_s=0.05)
    assert writer.write(_insert(uuid4(), "a")) == "ok"  # type: ignore[arg-type]
    time.sleep(0.3)
    assert not any(
        t.name == "rollon-merchants" and t.is_alive()
        for t in threading.enumerate()
        if t is writer._thread
    )
    assert writer._thread is None
    assert writer.write(_insert(uuid4(), "b")) == "ok"  # type: ignore[arg-type]
    writer.close()
    assert _count(engine) == 2
    with pytest.raises(IntegrityError):
        BatchWriter(engine).write(_insert(uuid4(), "a"))  # type: ignore[arg-type]
