"""The association's pages through httpx: accounts with their sign-in token, tokens made and
revoked, issuance (by an admin and by an exchange point), onboarding merchants, and
settling reconversions with a SEPA file."""

from __future__ import annotations

import re
from datetime import date, timedelta
from uuid import UUID

import pytest

from rollon.api.token_store import Role
from rollon.ledger.accounts import AccountKind
from rollon.merchants.sepa import validate_pain001
from tests.api.web.conftest import Site, csrf_of, words
from tests.api.web.test_wallet import field_errors, hidden
from tests.merchants.conftest import FUND_IBAN, make_iban, make_siret

pytestmark = pytest.mark.anyio


async def signed_in_admin(site: Site) -> str:
    await site.sign_in(site.token(Role.ADMIN, name="Association"))
    return csrf_of((await site.client.get("/admin")).text)


async def test_opening_an_account_gives_its_holder_a_token_to_sign_in_with(site: Site) -> None:
    csrf = await signed_in_admin(site)
    answer = await site.client.post(
        "/admin/accounts",
        data={"csrf_token": csrf, "kind": "member", "name": "Chloé Lefèvre", "with_token": "1"},
    )
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store", "a secret is never cached"
    account_id = UUID(re.findall(r"data-account-id>([^<]+)<", answer.text)[0])
    token = re.findall(r"data-token>([^<]+)<", answer.text)[0]
    assert "Compte ouvert pour Chloé Lefèvre." in words(answer)
    shown_again = await site.client.get("/admin")
    assert token not in shown_again.text, "a token is shown once"

    signed = await site.sign_in(token)
    assert signed.headers["location"] == "/wallet"
    assert str(account_id) in (await site.client.get("/wallet")).text


async def test_bad_account_and_token_forms_say_why(site: Site) -> None:
    csrf = await signed_in_admin(site)
    for data, expected in [
        ({"kind": "system", "name": "x"}, "Choix invalide."),
        ({"kind": "member", "name": ""}, "Ce champ est obligatoire."),
        ({"kind": "member", "name": "x" * 201}, "Ce texte est trop long"),
    ]:
        answer = await site.client.post("/admin/accounts", data={"csrf_token": csrf, **data})
        assert answer.status_code == 422
        assert any(expected in e for e in field_errors(words(answer))), data
    shop = site.account(AccountKind.MERCHANT, "Boutique")
    for data, expected in [
        ({"role": "member", "name": "x"}, "Ce rôle demande un numéro de compte."),
        ({"role": "auditor", "name": "x", "account_id": str(shop)}, "Ce rôle n'agit pour aucun"),
        ({"role": "member", "name": "x", "account_id": str(shop)}, "pas du type que ce rôle"),
        ({"role": "member", "name": "x", "account_id": "nope"}, "Ce n'est pas un numéro"),
        ({"role": "king", "name": "x"}, "Choix invalide."),
    ]:
        answer = await site.client.post("/admin/tokens", data={"csrf_token": csrf, **data})
        assert answer.status_code == 422
        assert any(expected in e for e in field_errors(words(answer))), (data, words(answer))


async def test_a_revoked_token_no_longer_signs_in(site: Site) -> None:
    csrf = await signed_in_admin(site)
    made = await site.client.post(
        "/admin/tokens", data={"csrf_token": csrf, "role": "auditor", "name": "Cabinet Dupont"}
    )
    token = re.findall(r"data-token>([^<]+)<", made.text)[0]
    listed = await site.client.get("/admin?q=Cabinet")
    token_ids = re.findall(r'data-token-id="([^"]+)"', listed.text)
    assert len(token_ids) == 1
    answer = await site.client.post(
        f"/admin/tokens/{token_ids[0]}/revoke", data={"csrf_token": csrf}
    )
    assert answer.status_code == 303
    page = await site.client.get(answer.headers["location"])
    assert "Le jeton « Cabinet Dupont » est révoqué." in words(page)
    unknown = await site.client.post(
        "/admin/tokens/00000000-0000-0000-0000-000000000001/revoke", data={"csrf_token": csrf}
    )
    assert unknown.status_code == 404
    assert "Aucun jeton ne porte ce numéro." in words(unknown)
    assert (await site.sign_in(token)).status_code == 401


async def test_issuing_against_euros_once_per_form(site: Site) -> None:
    await signed_in_admin(site)
    alice = site.account(AccountKind.MEMBER, "Alice Martin")
    form = await site.client.get("/admin/issue")
    data = {
        "csrf_token": csrf_of(form.text),
        "form_id": hidden(form.text, "form_id"),
        "account_id": str(alice),
        "amount": "20",
        "euro_reference": "comptoir-rouen-000123",
    }
    first = await site.client.post("/admin/issue", data=data)
    again = await site.client.post("/admin/issue", data=data)
    assert first.status_code == again.status_code == 303
    assert site.balance(alice) == 2_000
    done = await site.client.get(first.headers["location"])
    assert "20,00 RolloN émis pour Alice Martin." in words(done)


async def test_bad_issuances_say_why_and_issue_nothing(site: Site) -> None:
    await signed_in_admin(site)
    counter = site.account(AccountKind.EXCHANGE_POINT, "Comptoir")
    alice = site.account(AccountKind.MEMBER, "Alice")
    form = await site.client.get("/admin/issue")
    base = {"csrf_token": csrf_of(form.text), "form_id": hidden(form.text, "form_id")}
    for data, expected in [
        ({"account_id": str(counter), "amount": "5", "euro_reference": "r"}, "adhérents et"),
        (
            {
                "account_id": "00000000-0000-0000-0000-0000000000aa",
                "amount": "5",
                "euro_reference": "r",
            },
            "Aucun compte ne porte ce numéro.",
        ),
        ({"account_id": str(alice), "amount": "5,555", "euro_reference": "r"}, "Deux chiffres"),
        ({"account_id": str(alice), "amount": "5", "euro_reference": ""}, "obligatoire"),
    ]:
        answer = await site.client.post("/admin/issue", data={**base, **data})
        assert answer.status_code == 422
        assert any(expected in e for e in field_errors(words(answer))), (data, words(answer))
    assert site.balance(alice) == 0


async def test_an_exchange_point_issues_through_its_counter(site: Site) -> None:
    counter = site.account(AccountKind.EXCHANGE_POINT, "Comptoir de Rouen")
    alice = site.account(AccountKind.MEMBER, "Alice Martin")
    signed = await site.sign_in(site.token(Role.OPERATOR, counter))
    assert signed.headers["location"] == "/admin/issue"
    assert (await site.client.get("/admin")).status_code == 403, "operators only issue"
    form = await site.client.get("/admin/issue")
    answer = await site.client.post(
        "/admin/issue",
        data={
            "csrf_token": csrf_of(form.text),
            "form_id": hidden(form.text, "form_id"),
            "account_id": str(alice),
            "amount": "15",
            "euro_reference": "caisse 12",
        },
    )
    assert answer.status_code == 303
    assert "15,00 RolloN émis pour Alice Martin." in words(
        await site.client.get(answer.headers["location"])
    )
    assert site.balance(alice) == 1_500 and site.balance(counter) == 0


async def test_onboarding_a_merchant(site: Site) -> None:
    await signed_in_admin(site)
    form = await site.client.get("/admin/merchants/new")
    data = {
        "csrf_token": csrf_of(form.text),
        "form_id": hidden(form.text, "form_id"),
        "trade_name": "Ferme du Bocage",
        "legal_name": "EARL du Bocage",
        "siret": make_siret(4242),
        "category": "farm_producer",
        "address": "1 chemin creux",
        "postcode": "14000",
        "city": "Caen",
        "iban": make_iban(4242),
        "with_token": "1",
    }
    for change, expected in [
        ({"siret": "123"}, "Un SIRET a 14 chiffres."),
        ({"siret": "12345678901234"}, "clé de contrôle est fausse"),
        ({"iban": "FR7630006000011234567890180"}, "Cet IBAN n'existe pas"),
        ({"category": "casino"}, "Choix invalide."),
        ({"city": ""}, "Ce champ est obligatoire."),
    ]:
        answer = await site.client.post("/admin/merchants", data={**data, **change})
        assert answer.status_code == 422
        assert any(expected in e for e in field_errors(words(answer))), (change, words(answer))
    done = await site.client.post("/admin/merchants", data=data)
    assert done.status_code == 200
    assert "Ferme du Bocage est inscrit" in words(done)
    token = re.findall(r"data-token>([^<]+)<", done.text)[0]
    found = await site.client.get("/directory?city=caen&category=farm_producer")
    assert "Ferme du Bocage" in words(found)
    assert (await site.sign_in(token)).headers["location"] == "/till"


async def test_settling_reconversions_with_a_sepa_file(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLON_FUND_IBAN", FUND_IBAN)
    shop = site.merchant("Boulangerie")
    alice = site.account(AccountKind.MEMBER, "Alice", balance=10_000)
    requests = site.merchants.requests
    requests.pay(requests.create(shop.account_id, 5_000).payload, alice)
    site.merchants.reconversions.reconvert(shop.account_id, 4_000, UUID(int=7))
    await signed_in_admin(site)
    page = await site.client.get("/admin/settlements")
    assert "Dû aux commerçants pour leurs reconversions : 38,80 €." in words(page)
    data = {"csrf_token": csrf_of(page.text), "form_id": hidden(page.text, "form_id")}
    yesterday = (date.today() - timedelta(days=2)).isoformat()
    past = await site.client.post("/admin/settlements", data={**data, "execution_date": yesterday})
    assert past.status_code == 422
    assert "La date d'exécution ne peut pas être passée." in words(past)
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    made = await site.client.post("/admin/settlements", data={**data, "execution_date": tomorrow})
    assert made.status_code == 303
    listed = await site.client.get(made.headers["location"])
    assert "Fichier prêt : 1 virements pour 38,80 €." in words(listed)
    link = re.findall(r'href="(/admin/settlements/[^"]+/pain001\.xml)"', listed.text)[0]
    document = await site.client.get(link)
    assert document.headers["content-disposition"].startswith("attachment;")
    validate_pain001(document.content)
    assert b"38.80" in document.content
    settlement_id = link.split("/")[3]
    paid = await site.client.post(
        f"/admin/settlements/{settlement_id}/paid", data={"csrf_token": data["csrf_token"]}
    )
    assert paid.status_code == 303
    assert "Virements enregistrés comme faits." in words(
        await site.client.get(paid.headers["location"])
    )
    nothing = await site.client.post(
        "/admin/settlements",
        data={**data, "form_id": str(UUID(int=9)), "execution_date": tomorrow},
    )
    assert "Aucune reconversion n'attend de virement." in words(nothing)


async def test_without_the_funds_iban_no_file_is_made(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLON_FUND_IBAN", raising=False)
    await signed_in_admin(site)
    page = await site.client.get("/admin/settlements")
    answer = await site.client.post(
        "/admin/settlements",
        data={
            "csrf_token": csrf_of(page.text),
            "form_id": hidden(page.text, "form_id"),
            "execution_date": (date.today() + timedelta(days=1)).isoformat(),
        },
    )
    assert answer.status_code == 422
    assert "ROLLON_FUND_IBAN" in words(answer)
