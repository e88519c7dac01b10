"""Liveness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from rollon.api.app import create_app
from rollon.ledger.writer_process import WriterProcess
from tests.api.conftest import BASE_URL, Api, make_settings

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["/v1/healthz", "/healthz"])
async def test_healthz_checks_the_database(api: Api, path: str) -> None:
    answer = await api.client.get(path)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok"}


async def test_healthz_and_payments_say_503_when_the_ledger_writer_is_gone(api: Api) -> None:
    alice, token = await api.holder(balance=1_000)
    bob, _ = await api.holder()
    writer = api.state.ledger.hot_path
    assert isinstance(writer, WriterProcess)
    os.kill(writer.pid, signal.SIGKILL)
    for _ in range(1_000):
        if not writer.alive:
            break
        await asyncio.sleep(0.01)
    answer = await api.client.get("/healthz")
    assert (answer.status_code, answer.json()["code"]) == (503, "ledger_unavailable")
    body = {"source_id": str(alice), "destination_id": str(bob), "amount": 10}
    answer = await api.client.post("/v1/transfers", json=body, headers=token)
    assert (answer.status_code, answer.json()["code"]) == (503, "storage_unavailable")
    assert answer.headers["retry-after"] == "1"


async def test_healthz_says_503_when_the_database_is_gone(tmp_path: Path) -> None:
    database = tmp_path / "gone.db"
    app = create_app(make_settings(f"sqlite:///{database}", tmp_path))
    async with app.router.lifespan_context(app):
        # A directory where the file was: the service can no longer open its database.
        app.state.rollon.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        database.mkdir()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            answer = await client.get("/v1/healthz")
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "database_unavailable"
        database.rmdir()


@pytest.mark.parametrize("path", ["/v1/metrics", "/metrics"])
async def test_metrics_count_requests_transfers_batches_and_refusals(api: Api, path: str) -> None:
    alice, token = await api.holder(balance=1_000)
    bob, _ = await api.holder()
    ok = {"source_id": str(alice), "destination_id": str(bob), "amount": 10}
    assert (await api.client.post("/v1/transfers", json=ok, headers=token)).status_code == 201
    too_much = {**ok, "amount": 5_000}
    assert (await api.client.post("/v1/transfers", json=too_much, headers=token)).status_code == 422

    # The ledger reports a batch right after answering it: give the report a moment.
    for _ in range(100):
        answer = await api.client.get(path)
        if 'code="insufficient_funds"} 1.0' in answer.text:
            break
        await asyncio.sleep(0.01)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    # Issuance legs (2) and the payment were committed; one transfer was refused.
    assert "rollon_transfers_committed_total 3.0" in text
    assert 'rollon_transfers_rejected_total{code="insufficient_funds"} 1.0' in text, text
    assert "rollon_batch_transfers_count" in text
    assert "rollon_batch_requests_bucket" in text
    assert (
        'rollon_http_request_duration_seconds_count{method="POST",route="/v1/transfers",'
        'status="201"} 1.0'
    ) in text
    assert 'route="/v1/accounts",status="201"' in text


async def test_metrics_show_the_sqlite_wal_and_its_backlog(api: Api) -> None:
    alice, token = await api.holder(balance=1_000)
    bob, _ = await api.holder()
    body = {"source_id": str(alice), "destination_id": str(bob), "amount": 10}
    assert (await api.client.post("/v1/transfers", json=body, headers=token)).status_code == 201
    checkpointer = api.state.ledger.hot_path.wal_checkpointer
    text = (await api.client.get("/metrics")).text
    if api.state.engine.dialect.name != "sqlite":
        assert checkpointer is None
        assert "rollon_sqlite_wal" not in text
        return
    assert checkpointer is not None
    for _ in range(500):  # the checkpointer's next tick, at most 50 ms away
        if (last := checkpointer.last) is not None and last.wal_frames > 0:
            break
        await asyncio.sleep(0.01)
    assert last is not None and last.wal_frames > 0
    text = (await api.client.get("/metrics")).text
    frames = _gauge(text, "rollon_sqlite_wal_frames")
    backlog = _gauge(text, "rollon_sqlite_wal_backlog_frames")
    assert frames > 0  # nothing wrote since: the WAL is not restarted
    assert 0 <= backlog <= frames


def _gauge(text: str, name: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


async def test_unknown_paths_share_one_metrics_label(api: Api) -> None:
    for n in range(3):
        await api.client.get(f"/nowhere/{n}")
    text = (await api.client.get("/metrics")).text
    assert 'route="unmatched",status="404"} 3.0' in text
    assert "/nowhere/1" not in text


async def test_unknown_methods_share_one_metrics_label(api: Api) -> None:
    """A client chooses its method token: each new one must not grow a label value."""
    for method in ("BREW", "WHEN", "BREW"):
        answer = await api.client.request(method, "/v1/transfers")
        assert answer.status_code == 405
    text = (await api.client.get("/metrics")).text
    assert 'method="OTHER",route="/v1/transfers",status="405"} 3.0' in text, text
    assert "BREW" not in text
