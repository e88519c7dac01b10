import asyncio
import threading
import time
from uuid import uuid4

import pytest
from sqlalchemy.engine import Engine

from rollon.ledger.service import Ledger
from rollon.merchants.directory import Merchant
from rollon.merchants.notifier import RequestNotifier, TooManyWaiters
from rollon.merchants.requests import RequestStatus
from rollon.merchants.service import Merchants
from rollon.merchants.settings import MerchantSettings
from tests.merchants.conftest import member_with


def test_notify_wakes_waiters_from_another_thread() -> None:
    notifier = RequestNotifier()
    request_id = uuid4()

    async def main() -> tuple[bool, float]:
        started = time.monotonic()
        threading.Timer(0.05, notifier.notify, args=(request_id,)).start()
        woken = await notifier.wait(request_id, 5.0)
        return woken, time.monotonic() - started

    woken, waited_s = asyncio.run(main())
    assert woken and waited_s < 1.0
    assert notifier.waiting == 0


def test_wait_times_out_and_cleans_up() -> None:
    notifier = RequestNotifier()
    assert asyncio.run(notifier.wait(uuid4(), 0.01)) is False
    assert notifier.waiting == 0


def test_waiters_are_bounded() -> None:
    notifier = RequestNotifier(max_waiters=2)

    async def main() -> None:
        waits = [asyncio.create_task(notifier.wait(uuid4(), 1.0)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(TooManyWaiters):
            await notifier.wait(uuid4(), 1.0)
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)

    asyncio.run(main())
    assert notifier.waiting == 0


def test_a_till_learns_of_the_payment_without_reloading(
    ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    request = merchants.requests.create(shop.account_id, 700)
    payer = member_with(ledger, 1_000)

    async def main() -> tuple[RequestStatus, float]:
        started = time.monotonic()
        threading.Timer(0.1, merchants.requests.pay, args=(request.payload, payer)).start()
        seen = await merchants.requests.wait_for_change(request.id, RequestStatus.OPEN, 10)
        return seen.status, time.monotonic() - started

    status, waited_s = asyncio.run(main())
    assert status is RequestStatus.PAID and waited_s < 0.9  # woken, not polled


def test_a_payment_in_another_process_is_seen_by_polling(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    """Two Merchants objects stand for two server processes: no shared notifier."""
    other_process = Merchants(engine, ledger, MerchantSettings())
    request = merchants.requests.create(shop.account_id, 700)
    payer = member_with(ledger, 1_000)

    async def main() -> RequestStatus:
        threading.Timer(0.1, other_process.requests.pay, args=(request.payload, payer)).start()
        seen = await merchants.requests.wait_for_change(request.id, RequestStatus.OPEN, 10)
        return seen.status

    assert asyncio.run(main()) is RequestStatus.PAID


def test_long_poll_returns_at_its_deadline(merchants: Merchants, shop: Merchant) -> None:
    request = merchants.requests.create(shop.account_id, 700)
    started = time.monotonic()
    seen = asyncio.run(merchants.requests.wait_for_change(request.id, RequestStatus.OPEN, 0.3))
    assert seen.status is RequestStatus.OPEN and 0.25 < time.monotonic() - started < 2


def test_changes_stream_until_final(ledger: Ledger, merchants: Merchants, shop: Merchant) -> None:
    request = merchants.requests.create(shop.account_id, 700)
    payer = member_with(ledger, 1_000)

    async def main() -> list[RequestStatus]:
        seen = []
        threading.Timer(0.1, merchants.requests.pay, args=(request.payload, payer)).start()
        async for state in merchants.requests.changes(request.id, 10):
            seen.append(state.status)
            if state.status is RequestStatus.PAID:
                merchants.refunds.refund(request.id, shop.account_id, uuid4())
        return seen

    assert asyncio.run(main()) == [RequestStatus.OPEN, RequestStatus.PAID, RequestStatus.REFUNDED]
