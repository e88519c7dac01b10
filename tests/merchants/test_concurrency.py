"""The double scan: many payers on one request at the same moment, in threads and in
separate processes. Exactly one payment succeeds; the others get a clear refusal."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from uuid import UUID

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import Engine

from rollon.ledger.service import Ledger
from rollon.merchants.directory import Merchant
from rollon.merchants.errors import MerchantError
from rollon.merchants.requests import RequestStatus
from rollon.merchants.service import Merchants
from tests.merchants.conftest import assert_books_balance, balance, member_with

PAYERS = 6
ROUNDS = 4


def race(calls: list[object]) -> list[str]:
    """Run the calls in threads released together; each one's outcome: "ok" or its code."""
    outcomes: list[str] = ["" for _ in calls]
    barrier = threading.Barrier(len(calls))

    def run(index: int) -> None:
        barrier.wait()
        try:
            calls[index]()  # type: ignore[operator]
            outcomes[index] = "ok"
        except MerchantError as error:
            outcomes[index] = error.code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_payers_exactly_one_succeeds(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    payers = [member_with(ledger, 10_000, f"Payer {i}") for i in range(PAYERS)]
    for _ in range(ROUNDS):
        request = merchants.requests.create(shop.account_id, 1_000)
        outcomes = race([partial(merchants.requests.pay, request.payload, p) for p in payers])
        assert Counter(outcomes) == {"ok": 1, "request_already_paid": PAYERS - 1}
        paid = merchants.requests.get(request.id)
        assert paid.status is RequestStatus.PAID
        assert paid.payer_account_id == payers[outcomes.index("ok")]
    assert balance(engine, shop.account_id) == ROUNDS * 1_000
    assert sum(balance(engine, p) for p in payers) == PAYERS * 10_000 - ROUNDS * 1_000
    assert_books_balance(engine, merchants)


def test_payers_in_one_event_loop_exactly_one_succeeds(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    """As the API pays: coroutines of one loop, poor and rich, each submitting from the loop;
    the refused ones go on in worker threads while the others' batches commit."""
    poor = [member_with(ledger, 10, f"Poor {i}") for i in range(3)]
    rich = [member_with(ledger, 10_000, f"Rich {i}") for i in range(PAYERS)]

    async def outcome(payload: str, payer: UUID) -> str:
        try:
            await merchants.requests.pay_async(payload, payer)
        except MerchantError as error:
            return error.code
        return "ok"

    async def scan_together(payload: str) -> list[str]:
        return await asyncio.gather(*(outcome(payload, p) for p in poor + rich))

    for _ in range(ROUNDS):
        request = merchants.requests.create(shop.account_id, 1_000)
        outcomes = asyncio.run(scan_together(request.payload))
        assert outcomes.count("ok") == 1, outcomes
        assert set(outcomes) <= {"ok", "insufficient_funds", "request_already_paid"}
        paid = merchants.requests.get(request.id)
        assert paid.status is RequestStatus.PAID
        assert paid.payer_account_id == (poor + rich)[outcomes.index("ok")]
        assert paid.payer_account_id in rich
    assert balance(engine, shop.account_id) == ROUNDS * 1_000
    assert sum(balance(engine, p) for p in rich) == PAYERS * 10_000 - ROUNDS * 1_000
    assert all(balance(engine, p) == 10 for p in poor)
    assert_books_balance(engine, merchants)


def test_poor_and_rich_payers_and_a_cancellation_race(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    poor = [member_with(ledger, 10, f"Poor {i}") for i in range(3)]
    rich = [member_with(ledger, 10_000, f"Rich {i}") for i in range(3)]
    for _ in range(ROUNDS):
        request = merchants.requests.create(shop.account_id, 1_000)
        before = balance(engine, shop.account_id)
        calls: list[object] = [
            partial(merchants.requests.pay, request.payload, p) for p in poor + rich
        ]
        calls.append(partial(merchants.requests.cancel, request.id, shop.account_id))
        outcomes = race(calls)
        final = merchants.requests.get(request.id)
        payments = outcomes[:-1]
        assert set(payments[:3]) <= {
            "insufficient_funds",
            "request_already_paid",
            "request_cancelled",
        }
        if final.status is RequestStatus.PAID:
            assert payments.count("ok") == 1 and outcomes[-1] == "request_already_paid"
            assert balance(engine, shop.account_id) == before + 1_000
        else:
            assert final.status is RequestStatus.CANCELLED and outcomes[-1] == "ok"
            assert payments.count("ok") == 0
            assert balance(engine, shop.account_id) == before
    assert all(balance(engine, p) == 10 for p in poor)
    assert_books_balance(engine, merchants)


_PAYER_PROCESS = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from uuid import UUID
    from cryptography.hazmat.primitives import serialization
    from rollon.ledger.service import Ledger
    from rollon.ledger.storage import create_engine
    from rollon.merchants.errors import MerchantError
    from rollon.merchants.service import Merchants
    from rollon.merchants.settings import MerchantSettings

    url, key_file, job_file = sys.argv[1:4]
    job = json.loads(Path(job_file).read_text())
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    engine = create_engine(url)
    ledger = Ledger(engine, signing_key=key)
    merchants = Merchants(engine, ledger, MerchantSettings())
    outcomes = []
    for index, (payload, payer) in enumerate(zip(job["payloads"], job["payers"])):
        time.sleep(max(0.0, job["start_at"] + index * 0.2 - time.time()))
        try:
            merchants.requests.pay(payload, UUID(payer))
            outcomes.append("ok")
        except MerchantError as error:
            outcomes.append(error.code)
    ledger.close()
    print(json.dumps(outcomes))
    """
)


@pytest.mark.slow
def test_two_processes_race_for_the_same_requests(
    db_url: str,
    engine: Engine,
    ledger: Ledger,
    merchants: Merchants,
    shop: Merchant,
    tmp_path: Path,
) -> None:
    assert ledger.signing_key is not None
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(
        ledger.signing_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    requests = [merchants.requests.create(shop.account_id, 500) for _ in range(ROUNDS)]
    processes = 2
    payers = [
        [member_with(ledger, 10_000, f"P{p}-{r}") for r in range(ROUNDS)] for p in range(processes)
    ]
    start_at = time.time() + 2.0  # both processes have started and connected by then
    running = []
    for p in range(processes):
        job = tmp_path / f"job{p}.json"
        job.write_text(
            json.dumps(
                {
                    "payloads": [r.payload for r in requests],
                    "payers": [str(x) for x in payers[p]],
                    "start_at": start_at,
                }
            )
        )
        running.append(
            subprocess.Popen(
                [sys.executable, "-c", _PAYER_PROCESS, db_url, str(key_file), str(job)],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for process in running:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        results.append(json.loads(out))
    for index, request in enumerate(requests):
        outcomes = [results[p][index] for p in range(processes)]
        assert sorted(outcomes) == ["ok", "request_already_paid"], outcomes
        paid = merchants.requests.get(request.id)
        assert paid.status is RequestStatus.PAID
        winner = outcomes.index("ok")
        assert paid.payer_account_id == payers[winner][index]
        loser = payers[1 - winner][index]
        assert balance(engine, loser) == 10_000
    assert balance(engine, shop.account_id) == ROUNDS * 500
    assert_books_balance(engine, merchants)
