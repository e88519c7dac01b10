"""What every page shares: the language switch and its catalogue, error pages in words
(never a stack trace), security headers, static files."""

from __future__ import annotations

import re
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from rollon.api.app import create_app
from rollon.api.settings import Settings
from rollon.api.token_store import Role, create_token
from rollon.api.web import i18n
from rollon.api.web.i18n import CATALOGUE
from rollon.ledger.accounts import AccountKind
from tests.api.conftest import BASE_URL
from tests.api.web.conftest import Site, csrf_of, words

pytestmark = pytest.mark.anyio

WEB = Path(i18n.__file__).parent
KEY_CALL = re.compile(r"""\bt(?:\.error)?\(\s*["']([a-z_.]+)["']""")
KEY_LITERAL = re.compile(r"""["']([a-z_]+\.[a-z_.]+)["']""")  # a key handed to a helper


def keys_used() -> set[str]:
    """Every literal catalogue key in the templates and the modules."""
    found = set()
    for path in [*WEB.glob("templates/*.html"), *WEB.glob("*.py")]:
        if path.name == "i18n.py":  # the catalogue itself
            continue
        text = path.read_text()
        found |= set(KEY_CALL.findall(text))
        if path.suffix == ".py":
            found |= {key for key in KEY_LITERAL.findall(text) if key in CATALOGUE}
    return found


# Keys the pages build from a value (a role, a status, a service's error code).
BUILT_PREFIXES = (
    "role.",
    "kind.",
    "wallet.code.",
    "status.",
    "category.",
    "reconversion.status.",
    "settlement.status.",
    "audit.format.",
    "system.",
    "explain.",
    "report.",
    "error.",
)


def test_every_key_used_is_in_the_catalogue_in_both_languages() -> None:
    used = keys_used()
    assert len(used) > 100
    missing = sorted(key for key in used if key not in CATALOGUE and not key.endswith("."))
    assert not missing, missing
    for key, (french, english) in CATALOGUE.items():
        assert french.strip() and english.strip(), key
        placeholders = set(re.findall(r"{(\w+)}", french))
        assert placeholders == set(re.findall(r"{(\w+)}", english)), key


def test_the_catalogue_holds_no_unused_words() -> None:
    used = keys_used()
    unused = sorted(k for k in CATALOGUE if k not in used and not k.startswith(BUILT_PREFIXES))
    assert not unused, unused


def test_every_value_a_template_builds_a_key_from_has_its_words() -> None:
    from rollon.api.token_store import Role
    from rollon.ledger.accounts import AccountKind
    from rollon.ledger.audit.exports import ExportFormat
    from rollon.ledger.transfers import TransferCode
    from rollon.merchants.directory import Category
    from rollon.merchants.reconversions import ReconversionStatus, SettlementStatus
    from rollon.merchants.requests import RequestStatus

    for prefix, values in [
        ("role.", Role),
        ("kind.", AccountKind),
        ("wallet.code.", TransferCode),
        ("status.", RequestStatus),
        ("category.", Category),
        ("reconversion.status.", ReconversionStatus),
        ("settlement.status.", SettlementStatus),
        ("audit.format.", ExportFormat),
    ]:
        for value in values:
            assert prefix + value.value in CATALOGUE, prefix + value.value


async def test_french_by_default_english_on_request_and_kept(site: Site) -> None:
    french = await site.client.get("/directory")
    assert '<html lang="fr">' in french.text and "Où payer en RolloN" in words(french)
    english = await site.client.get("/directory?lang=en")
    assert '<html lang="en">' in english.text and "Where to pay in RolloN" in english.text
    assert "rollon_lang=en" in english.headers["set-cookie"]
    kept = await site.client.get("/sign-in")
    assert "Paste the token the association gave you" in kept.text
    unknown = await site.client.get("/sign-in?lang=de")
    assert '<html lang="en">' in unknown.text, "an unknown language changes nothing"
    back = await site.client.get("/?lang=fr")
    assert "Bienvenue" in back.text


async def test_errors_are_pages_in_the_visitors_language(site: Site) -> None:
    alice = site.account(AccountKind.MEMBER, "Alice")
    await site.sign_in(site.token(Role.MEMBER, alice))
    site.client.cookies.set("rollon_lang", "en")
    for path, status, expected in [
        ("/admin", 403, "Your account does not give access to this page."),
        ("/till/requests/not-a-uuid", 403, "Your account does not give access to this page."),
        ("/wallet?before=minus-one", 404, "This page does not exist."),
    ]:
        answer = await site.client.get(path)
        assert answer.status_code == status, path
        assert answer.headers["content-type"].startswith("text/html")
        assert expected in words(answer)
        assert "Traceback" not in answer.text


async def test_pages_carry_security_headers(site: Site) -> None:
    answer = await site.client.get("/sign-in")
    headers = answer.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert "<script>" not in answer.text and " style=" not in answer.text, "CSP: no inline code"


async def test_static_files_are_versioned_and_cached(site: Site) -> None:
    page = await site.client.get("/sign-in")
    link = re.search(r'href="(/static/rollon\.css\?v=([0-9a-f]+))"', page.text)
    assert link is not None
    css = await site.client.get(link.group(1))
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "max-age" in css.headers["cache-control"]
    again = await site.client.get(link.group(1), headers={"If-None-Match": css.headers["etag"]})
    assert again.status_code == 304
    assert (await site.client.get("/static/../app.py")).status_code == 404
    assert (await site.client.get("/static/secret.key")).status_code == 404


async def test_a_bug_is_a_page_in_words_logged_and_counted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rollon.api.web import wallet

    def broken(*args: object) -> None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(wallet, "history_page", broken)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.rollon
        account = state.ledger.open_account(kind=AccountKind.MEMBER, name="Alice")
        _, token = create_token(state.engine, Role.MEMBER, account.id, "alice")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            form = await client.get("/sign-in")
            await client.post("/sign-in", data={"csrf_token": csrf_of(form.text), "token": token})
            answer = await client.get("/wallet")
        assert answer.status_code == 500
        assert "Le service a rencontré une erreur inattendue" in words(answer)
        assert "hunter2" not in answer.text and "Traceback" not in answer.text
        errors = state.metrics.registry.get_sample_value("rollon_internal_errors_total")
        assert errors == 1


async def test_a_signed_in_visitor_going_home_lands_on_their_page(site: Site) -> None:
    alice = site.account(AccountKind.MEMBER, "Alice")
    assert "Bienvenue" in words(await site.client.get("/"))
    await site.sign_in(site.token(Role.MEMBER, alice))
    home = await site.client.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/wallet"
    again = await site.client.get("/sign-in?next=/wallet/send")
    assert again.headers["location"] == "/wallet/send"
    assert str(uuid4()) not in home.text
