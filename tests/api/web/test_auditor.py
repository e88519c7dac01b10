"""The auditors' pages through httpx: trial balance and coverage (now and in the past),
verification, every export format downloaded, the monthly report and its chart, bank
statements imported and reconciled."""

from __future__ import annotations

import re
import time
from datetime import datetime
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from rollon.api.token_store import Role
from rollon.ledger.accounts import AccountKind
from tests.api.web.conftest import Site, csrf_of, words

pytestmark = pytest.mark.anyio


async def test_trial_balance_and_coverage_now_and_before(site: Site) -> None:
    before = datetime.now(ZoneInfo("Europe/Paris")).strftime("%Y-%m-%dT%H:%M")
    time.sleep(0.01)
    site.account(AccountKind.MEMBER, "Alice", balance=4_200)
    await site.sign_in(site.token(Role.AUDITOR))
    now = await site.client.get("/audit")
    text = words(now)
    assert 'data-coverage="ok"' in now.text
    assert "Total du registre RLN" in text and "Total du registre EUR" in text
    assert re.findall(r"data-total>([^<]+)<", text) == ["0,00 RolloN", "0,00 €"]
    assert "adhérent (1)" in text and "42,00 RolloN" in text
    # A minute earlier the member's account did not exist yet.
    earlier = words(await site.client.get("/audit", params={"at": before[:-2] + "00"}))
    assert "adhérent (1)" not in earlier
    bad = await site.client.get("/audit", params={"at": "yesterday"})
    assert bad.status_code == 422
    assert "Ce n'est pas une date avec une heure." in words(bad)


async def test_verify_reports_that_all_holds(site: Site) -> None:
    site.account(AccountKind.MEMBER, "Alice", balance=100)
    await site.sign_in(site.token(Role.AUDITOR))
    page = await site.client.get("/audit")
    answer = await site.client.post("/audit/verify", data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 200
    assert 'data-verify="ok"' in answer.text
    assert "Tout est conforme : 2 écritures" in words(answer)


@pytest.mark.parametrize(
    ("fmt", "first_line"),
    [
        ("csv", "seq,"),
        ("fec", "JournalCode\t"),
        ("beancount", ""),
        ("journal", '{"'),
    ],
)
async def test_every_export_downloads(site: Site, fmt: str, first_line: str) -> None:
    site.account(AccountKind.MEMBER, "Alice", balance=1_234)
    await site.sign_in(site.token(Role.ADMIN))
    answer = await site.client.get("/audit/export", params={"format": fmt})
    assert answer.status_code == 200
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith(f'attachment; filename="rollon-{fmt}-')
    assert answer.text.startswith(first_line)
    assert "1234" in answer.text or "12,34" in answer.text or "12.34" in answer.text


async def test_bad_export_requests_say_why(site: Site) -> None:
    await site.sign_in(site.token(Role.AUDITOR))
    for params, expected in [
        ({"format": "xls"}, "Choix invalide."),
        ({"format": "csv", "from": "2025-03-01", "to": "2025-02-01"}, "doit suivre son début"),
        ({"format": "csv", "from": "1er mars"}, "Ce n'est pas une date (AAAA-MM-JJ)."),
        ({"format": "journal", "from": "2025-03-01"}, "Le journal complet ne se découpe pas"),
    ]:
        answer = await site.client.get("/audit/export", params=params)
        assert answer.status_code == 422, params
        assert answer.headers["content-type"].startswith("text/html")
        assert expected in words(answer), (
            params,
            re.findall(r"field-error[^>]*>([^<]*)", words(answer)),
        )


async def test_monthly_report_and_its_chart(site: Site) -> None:
    site.account(AccountKind.MEMBER, "Alice", balance=4_200)
    await site.sign_in(site.token(Role.AUDITOR))
    month = datetime.now(ZoneInfo("Europe/Paris")).strftime("%Y-%m")
    page = await site.client.get("/audit/report", params={"month": month})
    assert page.status_code == 200
    assert "RolloN émis" in words(page) and "42,00 RolloN" in words(page)
    chart = await site.client.get("/audit/report/chart.svg", params={"month": month})
    assert chart.headers["content-type"] == "image/svg+xml"
    assert "<svg" in chart.text
    bad = await site.client.get("/audit/report", params={"month": "2025-13"})
    assert bad.status_code == 422 and "Ce n'est pas un mois (AAAA-MM)." in words(bad)
    assert (await site.client.get("/audit/report/chart.svg?month=x")).status_code == 404


async def test_a_bank_statement_is_imported_and_reconciled(site: Site) -> None:
    alice = site.account(AccountKind.MEMBER, "Alice", balance=0)
    result = site.state.ledger.issue(uuid4(), alice, 5_000, "DEP-0001")
    assert result.applied
    await site.sign_in(site.token(Role.AUDITOR))
    page = await site.client.get("/audit/statements")
    csrf = csrf_of(page.text)
    today = datetime.now(ZoneInfo("Europe/Paris")).date().isoformat()
    statement = f"booking_date;amount;reference\n{today};50,00;DEP-0001\n".encode()
    answer = await site.client.post(
        "/audit/statements",
        data={"csrf_token": csrf},
        files={"file": ("releve.csv", statement, "text/csv")},
    )
    assert answer.status_code == 303, words(answer)
    shown = await site.client.get(answer.headers["location"])
    assert 'data-reconciled="yes"' in shown.text, words(shown)
    listed = await site.client.get("/audit/statements")
    assert "CSV" in listed.text

    broken = await site.client.post(
        "/audit/statements",
        data={"csrf_token": csrf},
        files={"file": ("releve.csv", b"date;amount\n2025-01-01;abc\n", "text/csv")},
    )
    assert broken.status_code == 422
    assert "Montant illisible." in words(broken) or "line" in words(broken).lower()
    empty = await site.client.post(
        "/audit/statements",
        data={"csrf_token": csrf},
        files={"file": ("vide.csv", b"", "text/csv")},
    )
    assert empty.status_code == 422
    unknown = await site.client.get(f"/audit/statements/{uuid4()}")
    assert unknown.status_code == 404 and "Ce relevé est inconnu." in words(unknown)


async def test_members_and_merchants_see_no_audit_page(site: Site) -> None:
    alice = site.account(AccountKind.MEMBER, "Alice")
    await site.sign_in(site.token(Role.MEMBER, alice))
    for path in ("/audit", "/audit/export?format=csv", "/audit/report", "/audit/statements"):
        answer = await site.client.get(path)
        assert answer.status_code == 403, path
        assert "Votre compte ne donne pas accès à cette page." in words(answer)
