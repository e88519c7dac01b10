"""Signing in and out, the session cookie, and CSRF: through the real app with httpx."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import httpx
import pytest

from rollon.api.settings import Settings
from rollon.api.token_store import Role
from rollon.api.web.session import (
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    read_session,
    session_cookie,
)
from rollon.api.web.sign_in import safe_next
from rollon.ledger.accounts import AccountKind
from tests.api.conftest import make_settings
from tests.api.web.conftest import Site, csrf_of, words

pytestmark = pytest.mark.anyio


async def test_sign_in_sets_an_http_only_lax_cookie_and_goes_to_the_role_page(site: Site) -> None:
    alice = site.account(AccountKind.MEMBER, "Alice", balance=1_000)
    answer = await site.sign_in(site.token(Role.MEMBER, alice))
    assert answer.status_code == 303
    assert answer.headers["location"] == "/wallet"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    page = await site.client.get("/wallet")
    assert page.status_code == 200
    assert "10,00 RolloN" in words(page)


@pytest.mark.parametrize(
    ("role", "home"),
    [(Role.ADMIN, "/admin"), (Role.AUDITOR, "/audit"), (Role.MERCHANT, "/till")],
)
async def test_each_role_lands_on_its_page(site: Site, role: Role, home: str) -> None:
    account = None
    if role is Role.MERCHANT:
        account = site.account(AccountKind.MERCHANT, "Boulangerie")
    answer = await site.sign_in(site.token(role, account))
    assert answer.headers["location"] == home


async def test_unknown_token_is_refused_in_words(site: Site) -> None:
    answer = await site.sign_in("rln_" + "x" * 43)
    assert answer.status_code == 401
    assert "Ce jeton est inconnu ou a été révoqué." in words(answer)
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert "rln_xxx" not in words(answer), "a typed secret is never echoed back"


async def test_empty_token_is_refused_in_words(site: Site) -> None:
    answer = await site.sign_in("")
    assert answer.status_code == 422
    assert "Ce champ est obligatoire." in words(answer)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path, login_failures_allowed=3)


async def test_too_many_failed_sign_ins_are_slowed_down(site: Site) -> None:
    for _ in range(3):
        assert (await site.sign_in("rln_wrong")).status_code == 401
    answer = await site.sign_in("rln_wrong")
    assert answer.status_code == 429
    assert "Trop d'essais de connexion" in words(answer)


async def test_a_page_asks_to_sign_in_and_comes_back_after(site: Site) -> None:
    answer = await site.client.get("/wallet?before=5")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Fwallet%3Fbefore%3D5"
    alice = site.account(AccountKind.MEMBER, "Alice")
    form = await site.client.get(answer.headers["location"])
    signed = await site.client.post(
        "/sign-in",
        data={
            "csrf_token": csrf_of(form.text),
            "token": site.token(Role.MEMBER, alice),
            "next": "/wallet?before=5",
        },
    )
    assert signed.headers["location"] == "/wallet?before=5"


@pytest.mark.parametrize(
    "target",
    ["//evil.example/x", "https://evil.example/", "/\\evil.example", "wallet", "/sign-out", ""],
)
def test_sign_in_never_redirects_off_site(target: str) -> None:
    assert safe_next(target) is None


async def test_sign_out_clears_the_session(site: Site) -> None:
    alice = site.account(AccountKind.MEMBER, "Alice")
    await site.sign_in(site.token(Role.MEMBER, alice))
    wallet = await site.client.get("/wallet")
    token = csrf_of(wallet.text)
    out = await site.client.post("/sign-out", data={"csrf_token": token})
    assert out.status_code == 303
    assert out.headers["location"] == "/sign-in?out=1"
    assert SESSION_COOKIE not in site.client.cookies
    page = await site.client.get("/sign-in?out=1")
    assert "Vous êtes déconnecté." in words(page)
    assert (await site.client.get("/wallet")).status_code == 303


async def test_revoking_a_token_ends_its_page_sessions(site: Site) -> None:
    from rollon.api.token_store import revoke_token

    alice = site.account(AccountKind.MEMBER, "Alice")
    token = site.token(Role.MEMBER, alice, name="alice phone")
    await site.sign_in(token)
    assert (await site.client.get("/wallet")).status_code == 200
    from rollon.api.token_store import find_token

    with site.state.engine.connect() as connection:
        record = find_token(connection, token)
    assert record is not None
    revoke_token(site.state.engine, record.id)
    site.state.authenticator.forget_all()
    answer = await site.client.get("/wallet")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Fwallet&ended=1"
    ended = await site.client.get(answer.headers["location"])
    assert "Votre session a pris fin" in words(ended)


async def test_a_forged_or_edited_cookie_is_no_session(site: Site) -> None:
    alice = site.account(AccountKind.MEMBER, "Alice")
    token = site.token(Role.MEMBER, alice)
    await site.sign_in(token)
    good = site.client.cookies[SESSION_COOKIE]
    issued, mac, secret = good.split(".", 2)
    for forged in (
        f"{int(issued) + 3600}.{mac}.{secret}",  # stretched lifetime
        f"{issued}.{mac}.{secret[:-1]}{'B' if secret.endswith('A') else 'A'}",  # another token
        secret,  # the bare token, unsigned
        "garbage",
    ):
        site.client.cookies.set(SESSION_COOKIE, forged)
        assert (await site.client.get("/wallet")).status_code == 303, forged


def test_a_session_ends_after_its_lifetime() -> None:
    key = b"k" * 32
    cookie = session_cookie(key, "rln_secret", 1_000_000)
    assert read_session(key, cookie, clock_s=lambda: 1_000_000 + SESSION_MAX_AGE_S) is not None
    assert read_session(key, cookie, clock_s=lambda: 1_000_001 + SESSION_MAX_AGE_S) is None
    assert read_session(key, cookie, clock_s=lambda: 999_000) is None  # from the future
    assert read_session(b"x" * 32, cookie, clock_s=lambda: 1_000_000) is None


# -- CSRF ----------------------------------------------------------------------------------
async def _member_with_form(site: Site) -> tuple[str, str]:
    alice = site.account(AccountKind.MEMBER, "Alice", balance=5_000)
    bob = site.account(AccountKind.MEMBER, "Bob")
    await site.sign_in(site.token(Role.MEMBER, alice))
    form = await site.client.get("/wallet/send")
    return csrf_of(form.text), str(bob)


async def test_a_post_without_the_form_token_is_refused_and_moves_nothing(site: Site) -> None:
    _, bob = await _member_with_form(site)
    form = await site.client.get("/wallet/send")
    form_id = form.text.split('name="form_id" value="')[1].split('"')[0]
    fields = {"to": bob, "amount": "10", "memo": "", "form_id": form_id}
    for token in (None, "", "forged-token", "A" * 22):
        data = fields if token is None else {**fields, "csrf_token": token}
        answer = await site.client.post("/wallet/send", data=data)
        assert answer.status_code == 403
        assert "Le formulaire a expiré ou ne vient pas de ce site." in words(answer)
        assert answer.headers["content-type"].startswith("text/html")
    assert site.balance(UUID(bob)) == 0


async def test_a_post_from_another_site_is_refused(site: Site) -> None:
    token, _ = await _member_with_form(site)
    answer = await site.client.post(
        "/sign-out", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 403
    assert (await site.client.get("/wallet")).status_code == 200, "still signed in"


async def test_the_form_token_of_another_session_is_refused(site: Site, settings: Settings) -> None:
    token, _ = await _member_with_form(site)
    other = httpx.AsyncClient(transport=site.client._transport, base_url=str(site.client.base_url))
    async with other:
        carol = site.account(AccountKind.MEMBER, "Carol")
        form = await other.get("/sign-in")
        await other.post(
            "/sign-in",
            data={"csrf_token": csrf_of(form.text), "token": site.token(Role.MEMBER, carol)},
        )
        answer = await other.post("/sign-out", data={"csrf_token": token})
        assert answer.status_code == 403


async def test_the_sign_in_form_needs_its_own_token(site: Site) -> None:
    alice = site.account(AccountKind.MEMBER, "Alice")
    answer = await site.client.post("/sign-in", data={"token": site.token(Role.MEMBER, alice)})
    assert answer.status_code == 403
    assert SESSION_COOKIE not in site.client.cookies
