"""Concurrency through HTTP: a real uvicorn server, many clients at once. Payments from one
account never overdraw it, and a burst of retries under one key pays once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
import uvicorn

from rollon.api.app import create_app
from rollon.api.settings import Settings
from rollon.api.token_store import Role, create_token
from rollon.ledger.accounts import AccountKind
from rollon.ledger.queries import get_account
from rollon.ledger.storage import create_engine
from tests.api.conftest import assert_books_sound, make_settings
from tests.api.test_e2e import free_port

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

CLIENTS = 40
PAYMENTS = 120
AMOUNT = 70
BALANCE = 2_000  # room for 28 payments of 70, not 120


@contextmanager
def uvicorn_server(settings: Settings) -> Iterator[str]:
    """The app under a real uvicorn server, in a thread of this process."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-under-test")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()


def _setup(settings: Settings) -> tuple[UUID, UUID, str]:
    """An account holding BALANCE, a destination, and the payer's token."""
    from rollon.api.bootstrap import prepare_database
    from rollon.ledger.service import Ledger

    engine = create_engine(settings.database_url)
    prepare_database(engine)
    ledger = Ledger(engine)
    payer = ledger.open_account(kind=AccountKind.MEMBER, name="Payer")
    payee = ledger.open_account(kind=AccountKind.MERCHANT, name="Shop")
    assert ledger.issue(uuid4(), payer.id, BALANCE, "seed").applied
    ledger.close()
    _, token = create_token(engine, Role.MEMBER, payer.id, "payer")
    engine.dispose()
    return payer.id, payee.id, token


async def test_many_clients_never_overdraw_one_account(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path)
    payer, payee, token = _setup(settings)
    lowest_seen: list[int] = []
    with uvicorn_server(settings) as base:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            headers = {"Authorization": f"Bearer {token}"}
            semaphore = asyncio.Semaphore(CLIENTS)

            async def pay() -> int:
                async with semaphore:
                    answer = await client.post(
                        "/v1/transfers",
                        json={"source_id": str(payer), "destination_id": str(payee),
                              "amount": AMOUNT},
                        headers={**headers, "Idempotency-Key": str(uuid4())},
                    )  # fmt: skip
                    return answer.status_code

            async def watch() -> None:
                while True:
                    answer = await client.get(f"/v1/accounts/{payer}", headers=headers)
                    lowest_seen.append(answer.json()["available"])
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch())
            statuses = Counter(await asyncio.gather(*(pay() for _ in range(PAYMENTS))))
            watcher.cancel()

    paid = BALANCE // AMOUNT
    assert statuses == {201: paid, 422: PAYMENTS - paid}
    assert min(lowest_seen) >= 0
    engine = create_engine(settings.database_url)
    with engine.connect() as connection:
        payer_account = get_account(connection, payer)
        payee_account = get_account(connection, payee)
    assert payer_account is not None and payee_account is not None
    assert payer_account.balance == BALANCE - paid * AMOUNT
    assert payee_account.balance == paid * AMOUNT
    assert_books_sound(engine, settings.signing_key_file)
    engine.dispose()


async def test_a_burst_of_retries_over_tcp_pays_once(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path)
    payer, payee, token = _setup(settings)
    with uvicorn_server(settings) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "one-payment"}
            body = {"source_id": str(payer), "destination_id": str(payee), "amount": 500}
            answers = await asyncio.gather(
                *(client.post("/v1/transfers", json=body, headers=headers) for _ in range(30))
            )
    assert {a.status_code for a in answers} == {201}
    assert len({a.content for a in answers}) == 1
    engine = create_engine(settings.database_url)
    with engine.connect() as connection:
        payee_account = get_account(connection, payee)
    assert payee_account is not None and payee_account.balance == 500
    engine.dispose()
