"""The member's pages through httpx: balance and history, sending to a member, paying a
QR payload (with the merchant's name from the directory), and each refusal in words."""

from __future__ import annotations

import re
from uuid import UUID, uuid4

import pytest

from rollon.api.token_store import Role
from rollon.ledger.accounts import AccountKind
from rollon.merchants.payload import crc16_ccitt
from tests.api.web.conftest import Site, csrf_of, words

pytestmark = pytest.mark.anyio

common_next_page_link = ">Page suivante<"


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match is not None, f"no hidden field {name}"
    return match.group(1)


def field_errors(html: str) -> list[str]:
    return re.findall(r'class="field-error"[^>]*>([^<]*)<', html)


def with_crc(payload: str) -> str:
    """A payload edited by someone who recomputes the checksum (anyone can)."""
    body = payload[:-4]
    return body + f"{crc16_ccitt(body.encode('ascii')):04X}"


async def signed_in_member(site: Site, balance: int = 5_000) -> UUID:
    alice = site.account(AccountKind.MEMBER, "Alice Martin", balance=balance)
    await site.sign_in(site.token(Role.MEMBER, alice))
    return alice


async def test_wallet_shows_balance_and_history_newest_first(site: Site) -> None:
    alice = await signed_in_member(site)
    bob = site.account(AccountKind.MEMBER, "Bob Durand")
    page = await site.client.get("/wallet/send")
    fields = {"csrf_token": csrf_of(page.text), "form_id": hidden(page.text, "form_id")}
    await site.client.post(
        "/wallet/send", data={**fields, "to": str(bob), "amount": "3,20", "memo": "Merci"}
    )
    wallet = words(await site.client.get("/wallet"))
    assert "46,80 RolloN" in wallet
    assert wallet.index("Virement · Bob Durand") < wallet.index("Change en RolloN")
    assert "Merci" in wallet and "\u22123,20 RolloN" in wallet
    assert str(alice) in wallet


async def test_history_pages_with_a_cursor(site: Site) -> None:
    alice = await signed_in_member(site, balance=0)
    for _ in range(25):
        assert site.state.ledger.issue(uuid4(), alice, 100, "x").applied
    first = (await site.client.get("/wallet")).text
    assert first.count('class="sum in"') == 20
    cursor = re.search(r'href="/wallet\?before=(\d+)">Page suivante', first)
    assert cursor is not None
    second = (await site.client.get(f"/wallet?before={cursor.group(1)}")).text
    assert second.count('class="sum in"') == 5
    assert common_next_page_link not in second


async def test_sending_asks_to_confirm_the_ledger_name_then_moves_once(site: Site) -> None:
    alice = await signed_in_member(site)
    bob = site.account(AccountKind.MEMBER, "Bob Durand")
    form = await site.client.get("/wallet/send")
    fields = {
        "csrf_token": csrf_of(form.text),
        "form_id": hidden(form.text, "form_id"),
        "to": str(bob).replace("-", ""),
        "amount": "12,50",
        "memo": "Pain",
    }
    check = await site.client.post("/wallet/send/check", data=fields)
    assert check.status_code == 200
    assert "Bob Durand" in words(check)
    assert site.balance(bob) == 0, "checking moves nothing"
    first = await site.client.post("/wallet/send", data=fields)
    again = await site.client.post("/wallet/send", data=fields)  # a double tap
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert site.balance(bob) == 1_250 and site.balance(alice) == 3_750
    done = await site.client.get(first.headers["location"])
    assert "12,50 RolloN envoyés à Bob Durand." in words(done)


BAD_SENDS = [
    ("", "5", "Ce champ est obligatoire."),
    ("not-an-account", "5", "Ce n'est pas un numéro de compte"),
    ("00000000-0000-0000-0000-00000000beef", "5", "Aucun compte ne porte ce numéro."),
    ("SELF", "5", "Vous ne pouvez pas vous envoyer de l'argent à vous-même."),
    ("SHOP", "5", "Ce compte n'est pas celui d'un adhérent"),
    ("BOB", "12,505", "Deux chiffres après la virgule au plus."),
    ("BOB", "-3", "Le montant doit être d'au moins 0,01."),
    ("BOB", "0", "Le montant doit être d'au moins 0,01."),
    ("BOB", "douze", "Ce n'est pas un montant : écrivez par exemple 12,50."),
    ("BOB", "", "Ce champ est obligatoire."),
]


async def test_a_bad_send_form_is_shown_again_with_the_reason(site: Site) -> None:
    alice = await signed_in_member(site)
    bob = site.account(AccountKind.MEMBER, "Bob Durand")
    shop = site.account(AccountKind.MERCHANT, "Boutique")
    form = await site.client.get("/wallet/send")
    for to, amount, expected in BAD_SENDS:
        data = {
            "csrf_token": csrf_of(form.text),
            "form_id": hidden(form.text, "form_id"),
            "to": {"SELF": str(alice), "SHOP": str(shop), "BOB": str(bob)}.get(to, to),
            "amount": amount,
        }
        for path in ("/wallet/send/check", "/wallet/send"):
            answer = await site.client.post(path, data=data)
            assert answer.status_code == 422, (to, amount)
            errors = field_errors(words(answer))
            assert any(expected in e for e in errors), (to, amount, errors)
            assert f'value="{amount}"' in answer.text, "the visitor's input is kept"
    assert site.balance(alice) == 5_000


async def test_sending_more_than_the_balance_is_refused_in_words(site: Site) -> None:
    alice = await signed_in_member(site, balance=1_000)
    bob = site.account(AccountKind.MEMBER, "Bob Durand")
    form = await site.client.get("/wallet/send")
    data = {
        "csrf_token": csrf_of(form.text),
        "form_id": hidden(form.text, "form_id"),
        "to": str(bob),
        "amount": "10,01",
    }
    answer = await site.client.post("/wallet/send", data=data)
    assert answer.status_code == 422
    assert "Solde insuffisant pour ce montant." in field_errors(words(answer))
    assert hidden(answer.text, "form_id") != data["form_id"], "a refused id is not reused"
    assert site.balance(alice) == 1_000


# -- paying a QR code ------------------------------------------------------------------------
async def test_paying_a_payload_shows_the_directory_name_then_pays_once(site: Site) -> None:
    alice = await signed_in_member(site)
    shop = site.merchant("Boulangerie du Vieux-Marché")
    request = site.merchants.requests.create(shop.account_id, 1_250, reference="Table 4")
    page = await site.client.get("/wallet/pay")
    data = {"csrf_token": csrf_of(page.text), "payload": request.payload}
    check = await site.client.post("/wallet/pay/check", data=data)
    assert check.status_code == 200
    text = words(check)
    assert "Boulangerie du Vieux-Marché" in text and "Payer 12,50 RolloN" in text
    assert site.balance(alice) == 5_000
    data["form_id"] = hidden(check.text, "form_id")
    paid = await site.client.post("/wallet/pay", data=data)
    assert paid.status_code == 303
    again = await site.client.post("/wallet/pay", data=data)
    assert again.status_code == 422
    assert "Cette demande de paiement est déjà payée." in words(again)
    assert site.balance(alice) == 3_750 and site.balance(shop.account_id) == 1_250
    done = await site.client.get(paid.headers["location"])
    assert "Paiement de 12,50 RolloN à Boulangerie du Vieux-Marché effectué." in words(done)


async def test_a_swapped_sticker_names_its_real_beneficiary(site: Site) -> None:
    await signed_in_member(site)
    site.merchant("Boulangerie du Vieux-Marché")
    crook = site.merchant("Arnaques & Cie")
    # The crook's own valid payload, whatever name a generic reader shows.
    request = site.merchants.requests.create(crook.account_id, 5_000)
    page = await site.client.get("/wallet/pay")
    check = await site.client.post(
        "/wallet/pay/check", data={"csrf_token": csrf_of(page.text), "payload": request.payload}
    )
    assert "Arnaques &amp; Cie" in check.text
    assert "Vieux-Marché" not in words(check)


async def test_a_static_qr_asks_the_payer_for_the_amount(site: Site) -> None:
    alice = await signed_in_member(site)
    shop = site.merchant("Marché bio")
    payload = site.merchants.requests.static_payload(shop.account_id)
    page = await site.client.get("/wallet/pay")
    data = {"csrf_token": csrf_of(page.text), "payload": payload}
    check = await site.client.post("/wallet/pay/check", data=data)
    assert "Montant à payer" in words(check)
    data["form_id"] = hidden(check.text, "form_id")
    refused = await site.client.post("/wallet/pay", data={**data, "amount": "abc"})
    assert refused.status_code == 422
    paid = await site.client.post("/wallet/pay", data={**data, "amount": "7,30"})
    assert paid.status_code == 303
    again = await site.client.post("/wallet/pay", data={**data, "amount": "7,30"})
    assert again.status_code == 303, "the same form again is the same payment"
    assert site.balance(alice) == 5_000 - 730


async def test_a_bad_payload_is_refused_in_words_and_nothing_moves(site: Site) -> None:
    alice = await signed_in_member(site)
    shop = site.merchant("Boulangerie")
    payload = site.merchants.requests.create(shop.account_id, 1_250).payload
    edited = payload.replace("540512.50", "540513.50")
    assert edited != payload
    cases = [
        (with_crc(edited), "ne payez pas"),  # amount changed, checksum recomputed
        (edited, "abîmé"),  # amount changed, checksum left
        (payload[: len(payload) // 2], "incomplet"),
        ("hello", "Ce n'est pas un code QR RolloN lisible."),
        ("", "Ce champ est obligatoire."),
    ]
    page = await site.client.get("/wallet/pay")
    for bad, expected in cases:
        data = {"csrf_token": csrf_of(page.text), "payload": bad, "form_id": str(alice)}
        for path in ("/wallet/pay/check", "/wallet/pay"):
            answer = await site.client.post(path, data=data)
            assert answer.status_code == 422
            errors = " ".join(field_errors(words(answer)))
            assert expected in errors, (bad, errors)
    assert site.balance(alice) == 5_000


async def test_paying_without_the_funds_is_refused_in_words(site: Site) -> None:
    alice = await signed_in_member(site, balance=100)
    shop = site.merchant("Boulangerie")
    payload = site.merchants.requests.create(shop.account_id, 1_250).payload
    page = await site.client.get("/wallet/pay")
    data = {"csrf_token": csrf_of(page.text), "payload": payload}
    check = await site.client.post("/wallet/pay/check", data=data)
    data["form_id"] = hidden(check.text, "form_id")
    answer = await site.client.post("/wallet/pay", data=data)
    assert answer.status_code == 422
    assert "Solde insuffisant pour ce montant." in words(answer)
    assert site.balance(alice) == 100


async def test_other_roles_cannot_use_the_wallet(site: Site) -> None:
    shop = site.merchant("Boulangerie")
    await site.sign_in(site.token(Role.MERCHANT, shop.account_id))
    answer = await site.client.get("/wallet")
    assert answer.status_code == 403
    assert "Votre compte ne donne pas accès à cette page." in words(answer)
