"""The merchant's pages through httpx: creating a request (its QR code and payload), the
long-poll the till waits on, cancelling, the day's payments, refunds and reconversion."""

from __future__ import annotations

import re
from uuid import UUID, uuid4

import pytest

from rollon.api.token_store import Role
from rollon.ledger.accounts import AccountKind
from rollon.merchants.directory import Merchant
from tests.api.web.conftest import Site, csrf_of, words
from tests.api.web.test_wallet import field_errors, hidden

pytestmark = pytest.mark.anyio


async def signed_in_shop(site: Site) -> Merchant:
    shop = site.merchant("Boulangerie du Vieux-Marché")
    await site.sign_in(site.token(Role.MERCHANT, shop.account_id))
    return shop


async def new_request(site: Site, amount: str, reference: str = "") -> UUID:
    form = await site.client.get("/till")
    answer = await site.client.post(
        "/till/requests",
        data={
            "csrf_token": csrf_of(form.text),
            "form_id": hidden(form.text, "form_id"),
            "amount": amount,
            "reference": reference,
        },
    )
    assert answer.status_code == 303, words(answer)
    match = re.fullmatch(r"/till/requests/([0-9a-f-]{36})", answer.headers["location"])
    assert match is not None
    return UUID(match.group(1))


async def test_a_request_shows_its_qr_code_and_turns_paid(site: Site) -> None:
    shop = await signed_in_shop(site)
    alice = site.account(AccountKind.MEMBER, "Alice", balance=5_000)
    request_id = await new_request(site, "12,50", "Table 4")
    page = await site.client.get(f"/till/requests/{request_id}")
    assert page.status_code == 200
    text = words(page)
    assert "12,50 RolloN" in text and "Table 4" in text and "En attente du paiement…" in text
    payload = re.search(r"data-payload[^>]*>([^\n]+)</textarea>", words(page))
    assert payload is not None
    qr = await site.client.get(f"/till/requests/{request_id}/qr.svg")
    assert qr.headers["content-type"] == "image/svg+xml"
    assert qr.text.lstrip().startswith("<?xml") or "<svg" in qr.text

    status = await site.client.get(f"/till/requests/{request_id}/status")
    assert status.json() == {
        "status": "open",
        "label": "En attente du paiement…",
        "paid": False,
        "closed": False,
    }
    site.merchants.requests.pay(payload.group(1), alice)
    status = await site.client.get(f"/till/requests/{request_id}/status?known=open")
    assert status.json()["status"] == "paid" and status.json()["label"] == "Payé"
    assert status.json()["paid"] is True
    assert site.balance(shop.account_id) == 1_250
    paid_page = words(await site.client.get(f"/till/requests/{request_id}"))
    assert "Payé" in paid_page and "data-payload" not in paid_page


async def test_the_same_form_twice_is_one_request(site: Site) -> None:
    await signed_in_shop(site)
    form = await site.client.get("/till")
    data = {
        "csrf_token": csrf_of(form.text),
        "form_id": hidden(form.text, "form_id"),
        "amount": "3",
    }
    first = await site.client.post("/till/requests", data=data)
    second = await site.client.post("/till/requests", data=data)
    assert first.headers["location"] == second.headers["location"]


async def test_bad_request_forms_say_why(site: Site) -> None:
    await signed_in_shop(site)
    form = await site.client.get("/till")
    for amount, reference, expected in [
        ("", "", "Ce champ est obligatoire."),
        ("1,234", "", "Deux chiffres après la virgule au plus."),
        ("5", "x" * 200, "Ce texte est trop long"),
    ]:
        answer = await site.client.post(
            "/till/requests",
            data={
                "csrf_token": csrf_of(form.text),
                "form_id": hidden(form.text, "form_id"),
                "amount": amount,
                "reference": reference,
            },
        )
        assert answer.status_code == 422
        assert any(expected in e for e in field_errors(words(answer))), field_errors(words(answer))


async def test_cancelling_a_request_closes_it(site: Site) -> None:
    await signed_in_shop(site)
    request_id = await new_request(site, "8")
    page = await site.client.get(f"/till/requests/{request_id}")
    answer = await site.client.post(
        f"/till/requests/{request_id}/cancel", data={"csrf_token": csrf_of(page.text)}
    )
    assert answer.status_code == 303
    status = await site.client.get(f"/till/requests/{request_id}/status?known=open")
    assert status.json()["status"] == "cancelled" and status.json()["closed"] is True
    assert "annulé" in words(await site.client.get(f"/till/requests/{request_id}"))


async def test_another_merchants_request_is_not_found(site: Site) -> None:
    other = site.merchant("Concurrent")
    theirs = site.merchants.requests.create(other.account_id, 500)
    await signed_in_shop(site)
    for path in (
        f"/till/requests/{theirs.id}",
        f"/till/requests/{theirs.id}/qr.svg",
        f"/till/requests/{theirs.id}/status",
        f"/till/payments/{theirs.id}/refund",
        f"/till/requests/{uuid4()}",
    ):
        answer = await site.client.get(path)
        assert answer.status_code == 404, path
        assert "Cette demande de paiement est inconnue." in words(answer)
    bad = await site.client.get("/till/requests/not-a-uuid")
    assert bad.status_code == 404 and "Cette page n'existe pas." in words(bad)


async def test_the_days_payments_their_total_and_refunds(site: Site) -> None:
    shop = await signed_in_shop(site)
    alice = site.account(AccountKind.MEMBER, "Alice", balance=10_000)
    requests = site.merchants.requests
    paid = [requests.create(shop.account_id, amount) for amount in (1_000, 250)]
    for request in paid:
        requests.pay(request.payload, alice)
    requests.create(shop.account_id, 9_999)  # open: not a payment
    day = words(await site.client.get("/till/payments"))
    assert "12,50 RolloN" in day  # the total
    assert "99,99" not in day

    form = await site.client.get(f"/till/payments/{paid[0].id}/refund")
    assert "Vous pouvez rembourser jusqu'à 10,00 RolloN." in words(form)
    data = {"csrf_token": csrf_of(form.text), "form_id": hidden(form.text, "form_id")}
    too_much = await site.client.post(
        f"/till/payments/{paid[0].id}/refund", data={**data, "amount": "10,01"}
    )
    assert too_much.status_code == 422
    assert "On ne peut pas rembourser plus que ce qui a été payé." in words(too_much)
    done = await site.client.post(
        f"/till/payments/{paid[0].id}/refund", data={**data, "amount": "4"}
    )
    assert done.status_code == 303
    again = await site.client.post(
        f"/till/payments/{paid[0].id}/refund", data={**data, "amount": "4"}
    )
    assert again.status_code == 303, "the same form again is the same refund"
    assert site.balance(alice) == 10_000 - 1_250 + 400
    after = words(await site.client.get(done.headers["location"]))
    assert "4,00 RolloN remboursés." in after and "remboursé en partie" in after


async def test_reconversion_reports_fee_and_net(site: Site) -> None:
    shop = await signed_in_shop(site)
    alice = site.account(AccountKind.MEMBER, "Alice", balance=10_000)
    requests = site.merchants.requests
    requests.pay(requests.create(shop.account_id, 5_000).payload, alice)
    page = await site.client.get("/till/reconversion")
    assert "Commission : 3,00 %." in words(page)
    data = {"csrf_token": csrf_of(page.text), "form_id": hidden(page.text, "form_id")}
    refused = await site.client.post("/till/reconversion", data={**data, "amount": "50,01"})
    assert refused.status_code == 422
    assert "Solde insuffisant pour ce montant." in words(refused)
    form = await site.client.get("/till/reconversion")
    data["form_id"] = hidden(form.text, "form_id")
    done = await site.client.post("/till/reconversion", data={**data, "amount": "40"})
    assert done.status_code == 303
    text = words(await site.client.get(done.headers["location"]))
    assert "commission 1,20 €, 38,80 € vous seront virés." in text
    assert site.balance(shop.account_id) == 1_000
