"""Fixtures of the web page tests: the app driven in-process through httpx (pages as a
browser without JavaScript sees them), a real uvicorn server on a free port, and headless
Chromium (Debian's, through Playwright) for the browser tests.

Browser tests are marked `browser`; they skip only when Chromium cannot be found outside CI
(in CI, a missing Chromium fails them)."""

from __future__ import annotations

import html
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.requests import Request

from rollon.api.app import create_app
from rollon.api.merchant_services import merchants_of
from rollon.api.settings import Settings
from rollon.api.state import AppState
from rollon.api.token_store import Role, create_token
from rollon.ledger.accounts import AccountKind
from rollon.merchants.directory import Merchant
from rollon.merchants.service import Merchants
from tests.api.conftest import BASE_URL, assert_books_sound
from tests.merchants.conftest import application

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
SHOTS_DIR = Path(os.environ.get("ROLLON_SHOTS_DIR", "/tmp/rollon-shots"))
IN_CI = os.environ.get("CI", "").lower() == "true"
CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


def words(answer: httpx.Response) -> str:
    """A page's text as people read it (entities such as &#39; turned back)."""
    return html.unescape(answer.text)


def csrf_of(html: str) -> str:
    match = CSRF_PATTERN.search(html)
    assert match is not None, "the page has no form token"
    return match.group(1)


@dataclass
class Books:
    """Direct access to the running service, to set up what a test needs."""

    app: FastAPI

    @property
    def state(self) -> AppState:
        state = self.app.state.rollon
        assert isinstance(state, AppState)
        return state

    def token(self, role: Role, account_id: UUID | None = None, name: str = "") -> str:
        _, secret = create_token(self.state.engine, role, account_id, name or f"test {role}")
        return secret

    def account(self, kind: AccountKind, name: str, balance: int = 0) -> UUID:
        account = self.state.ledger.open_account(kind=kind, name=name)
        if balance:
            result = self.state.ledger.issue(uuid4(), account.id, balance, "test euros")
            assert result.applied, result
        return account.id

    def balance(self, account_id: UUID) -> int:
        from rollon.ledger.queries import get_account

        with self.state.engine.connect() as connection:
            account = get_account(connection, account_id)
        assert account is not None
        return account.balance

    @property
    def merchants(self) -> Merchants:
        """The app's own merchants services (the instance its routes and pages use)."""
        return merchants_of(Request({"type": "http", "app": self.app}))

    def merchant(self, trade_name: str, city: str = "Rouen") -> Merchant:
        """An onboarded merchant (with its account), in the public directory."""
        return self.merchants.directory.onboard(application(trade_name=trade_name, city=city))

    def internal_errors(self) -> float:
        value = self.state.metrics.registry.get_sample_value("rollon_internal_errors_total")
        return value or 0.0


@dataclass
class Site(Books):
    """The app in-process, with an httpx client that keeps cookies like a browser."""

    client: httpx.AsyncClient

    async def sign_in(self, token: str) -> httpx.Response:
        """Sign in with `token`, as a browser that had no session before."""
        self.client.cookies.clear()
        form = await self.client.get("/sign-in")
        return await self.client.post(
            "/sign-in", data={"csrf_token": csrf_of(form.text), "token": token}
        )


@pytest.fixture
async def site(settings: Settings) -> AsyncIterator[Site]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            running = Site(app=app, client=client)
            yield running
            assert running.internal_errors() == 0, "a page failed with an internal error"
        assert_books_sound(running.state.engine, settings.signing_key_file)


# -- a real server -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LiveServer(Books):
    base_url: str


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """The service under uvicorn on a free port, in a thread of the test process."""
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline_s = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        assert time.monotonic() < deadline_s, "the server took too long to start"
        time.sleep(0.02)
    live = LiveServer(app=app, base_url=f"http://127.0.0.1:{config.port}")
    try:
        yield live
        assert live.internal_errors() == 0, "a page failed with an internal error"
        assert_books_sound(live.state.engine, settings.signing_key_file)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


# -- the browser -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, launched once per module: Playwright's sync API keeps an event
    loop of its own running meanwhile, which the async (anyio) tests must not meet."""
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def shot(page: Any, name: str) -> None:
    """A phone-sized screenshot of the whole page, to look at."""
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS_DIR / f"{name}.png"), full_page=True)
