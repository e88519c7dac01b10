"""Many threads and several OS processes, each process with its own Ledger, spending from the
same accounts at once, on SQLite and PostgreSQL: no overdraft, no lost or doubled transfer,
every balance the sum of what was acknowledged, verify passes."""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rollon.ledger.queries import list_accounts
from rollon.ledger.schema import transfers
from rollon.ledger.service import Ledger
from tests.ledger.builders import assert_books_sound, member
from tests.ledger.worker_processes import random_requests, spend_concurrently, spender

PROCESSES = 2
THREADS = 6
REQUESTS_PER_PROCESS = 120
FUNDS = 2_000


@pytest.mark.slow
def test_threads_and_processes_spending_the_same_accounts(
    db_url: str, engine: Engine, ledger: Ledger, tmp_path: Path
) -> None:
    spenders = [member(ledger, f"Spender {i}", funded=FUNDS).id for i in range(4)]
    payees = [member(ledger, f"Payee {i}", funded=0).id for i in range(2)]
    ledger.close()
    with engine.connect() as connection:
        before = {a.id: a.balance for a in list_accounts(connection)}

    context = multiprocessing.get_context("spawn")
    go = context.Event()
    workers = []
    for n in range(PROCESSES):
        ready = context.Event()
        out = tmp_path / f"answers-{n}.txt"
        process = context.Process(
            target=spender,
            args=(db_url, spenders, payees, n, REQUESTS_PER_PROCESS, THREADS, ready, go, str(out)),
        )
        process.start()
        workers.append((process, ready, out))
    try:
        for _, ready, _ in workers:
            assert ready.wait(timeout=60), "a spender process did not start"
        here = Ledger(engine)  # this process is one more service, with threads of its own
        requests = random_requests(random.Random(99), spenders, payees, REQUESTS_PER_PROCESS)
        go.set()
        answers = spend_concurrently(here, requests, THREADS)
        here.close()
        for process, _, _ in workers:
            process.join(timeout=120)
            assert process.exitcode == 0
    finally:
        for process, _, _ in workers:
            if process.is_alive():
                process.kill()
    for _, _, out in workers:
        answers += [tuple(line.split()) for line in out.read_text().splitlines()]  # type: ignore[misc]

    sent = {UUID(i): r for i, r in answers}
    expected_count = sum(
        len(request)
        for seed in [*range(PROCESSES), 99]
        for request in random_requests(random.Random(seed), spenders, payees, REQUESTS_PER_PROCESS)
    )
    assert len(sent) == len(answers) == expected_count, "each transfer answered once"
    results = Counter(sent.values())
    assert results["ok"] > 50 and results["insufficient_funds"] > 0, results

    with engine.connect() as connection:
        in_journal = Counter(
            connection.execute(
                sa.select(transfers.c.id).where(transfers.c.id.in_(list(sent)))
            ).scalars()
        )
        journal = {
            row.id: row
            for row in connection.execute(
                sa.select(
                    transfers.c.id,
                    transfers.c.debit_account_id,
                    transfers.c.credit_account_id,
                    transfers.c.amount,
                ).where(transfers.c.id.in_(list(sent)))
            )
        }
        after = {a.id: a for a in list_accounts(connection)}
    ok = {i for i, r in sent.items() if r == "ok"}
    assert set(in_journal) == ok, "answered ok <=> in the journal"
    assert all(count == 1 for count in in_journal.values())

    expected = dict(before)
    for transfer_id in ok:
        row = journal[transfer_id]
        expected[row.debit_account_id] -= row.amount
        expected[row.credit_account_id] += row.amount
    assert {i: a.balance for i, a in after.items()} == expected, "no lost or doubled update"
    assert all(after[i].available >= 0 for i in spenders + payees)
    assert_books_sound(engine)
