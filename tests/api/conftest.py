"""Fixtures of the API tests: the real app (lifespan, Ledger, writer threads) on each
database, driven through httpx; after each test, the books are verified (hash chain,
balances, invariants) so no test can leave them broken unnoticed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from rollon.api.app import create_app
from rollon.api.settings import Settings
from rollon.api.state import AppState
from rollon.api.token_store import Role, create_token
from rollon.ledger import chart
from rollon.ledger.accounts import LedgerCode
from rollon.ledger.keys import load_signing_key
from rollon.ledger.queries import trial_balance
from rollon.ledger.verify import verify_database
from tests.databases import fresh_database

BASE_URL = "http://rollon.test"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    """The app under test, with shortcuts to set up accounts and tokens."""

    app: FastAPI
    client: httpx.AsyncClient
    admin: dict[str, str]

    @property
    def state(self) -> AppState:
        state = self.app.state.rollon
        assert isinstance(state, AppState)
        return state

    def token(self, role: Role, account_id: UUID | None = None) -> dict[str, str]:
        """Headers with a fresh token of this role (made directly in the database)."""
        _, secret = create_token(self.state.engine, role, account_id, f"test {role}")
        return bearer(secret)

    async def open_account(self, kind: str = "member", name: str = "Test holder") -> UUID:
        answer = await self.client.post(
            "/v1/accounts", json={"kind": kind, "name": name}, headers=self.admin
        )
        assert answer.status_code == 201, answer.text
        return UUID(answer.json()["id"])

    async def issue(self, account_id: UUID, amount: int) -> None:
        answer = await self.client.post(
            "/v1/issuances",
            json={"account_id": str(account_id), "amount": amount, "euro_reference": "test"},
            headers=self.admin,
        )
        assert answer.status_code == 201, answer.text

    async def holder(
        self, kind: str = "member", balance: int = 0, role: Role | None = None
    ) -> tuple[UUID, dict[str, str]]:
        """An account of this kind, with `balance` issued to it, and its owner's token."""
        account_id = await self.open_account(kind, f"{kind} {uuid4().hex[:6]}")
        if balance:
            await self.issue(account_id, balance)
        default_role = {"member": Role.MEMBER, "merchant": Role.MERCHANT}
        return account_id, self.token(role or default_role.get(kind, Role.OPERATOR), account_id)

    async def balance(self, account_id: UUID) -> int:
        answer = await self.client.get(f"/v1/accounts/{account_id}", headers=self.admin)
        assert answer.status_code == 200, answer.text
        balance: int = answer.json()["balance"]
        return balance

    def internal_errors(self) -> float:
        value = self.state.metrics.registry.get_sample_value("rollon_internal_errors_total")
        return value or 0.0


def assert_books_sound(engine: Engine, key_file: Path) -> None:
    """The DESIGN's invariants and the journal's own verification."""
    with engine.connect() as connection:
        books = trial_balance(connection)
    assert books.total(LedgerCode.RLN) == 0
    assert books.total(LedgerCode.EUR) == 0
    balances = {line.account_id: line.balance for line in books.lines}
    assert balances[chart.RESERVE.id] == -balances[chart.ISSUANCE.id]
    assert all(line.balance >= 0 for line in books.lines if line.kind != "system")
    report = verify_database(engine, [load_signing_key(key_file).public_key()])
    assert report.ok, report.problems


def make_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "signing_key_file": tmp_path / "rollon.key",
        "access_log": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


async def started(settings: Settings) -> AsyncIterator[Api]:
    """Run the app's lifespan around an httpx client, and check the books afterwards."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.rollon
        _, admin_secret = create_token(state.engine, Role.ADMIN, None, "test admin")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            api = Api(app=app, client=client, admin=bearer(admin_secret))
            yield api
            assert api.internal_errors() == 0, "a request reached the last-resort handler"
        assert_books_sound(state.engine, settings.signing_key_file)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for running in started(settings):
        yield running


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def module_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """One app per module and database, for many cheap tests that share its data."""
    directory = tmp_path_factory.mktemp("api")
    with fresh_database(request.param, directory) as url:
        async for running in started(make_settings(url, directory)):
            yield running
