"""The merchant directory and the public keys through the real app."""

from __future__ import annotations

from itertools import count
from typing import Any
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rollon.api.token_store import Role
from rollon.ledger.journal import key_id
from rollon.ledger.keys import load_public_key_pem
from tests.api.conftest import Api
from tests.merchants.conftest import make_iban, make_siret

pytestmark = pytest.mark.anyio
_serial = count(500)


def merchant_body(**changes: Any) -> dict[str, Any]:
    n = next(_serial)
    body = {
        "name": f"Le Fournil {n}",
        "legal_name": f"SARL Fournil {n}",
        "siret": make_siret(n),
        "category": "bakery",
        "address": f"{n} rue Saint-Romain",
        "postcode": "76000",
        "city": "Rouen",
        "iban": make_iban(n),
    }
    body.update(changes)
    return body


async def onboard(api: Api, **changes: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A merchant onboarded by the admin, and a token of that merchant."""
    answer = await api.client.post(
        "/v1/merchants", json=merchant_body(**changes), headers=api.admin
    )
    assert answer.status_code == 201, answer.text
    merchant = answer.json()
    return merchant, api.token(Role.MERCHANT, UUID(merchant["account_id"]))


async def test_onboarding_and_the_public_directory(api: Api) -> None:
    merchant, _ = await onboard(api, name="Épicerie Saint-Sever", category="grocery")
    assert merchant["iban"].startswith("FR") and " " in merchant["iban"]
    assert await api.balance(UUID(merchant["account_id"])) == 0
    await onboard(api, name="Café du Port", category="cafe_bar", city="Le Havre")
    found = await api.client.get("/v1/merchants", params={"city": "rouen"})
    assert found.status_code == 200
    (item,) = found.json()["items"]
    assert item["name"] == "Épicerie Saint-Sever" and item["iban"] is None  # public: no IBAN
    by_name = await api.client.get("/v1/merchants", params={"name": "port"})
    assert [m["name"] for m in by_name.json()["items"]] == ["Café du Port"]
    by_category = await api.client.get("/v1/merchants", params={"category": "cafe_bar"})
    assert len(by_category.json()["items"]) == 1
    one = await api.client.get(f"/v1/merchants/{merchant['id']}")
    assert one.json()["name"] == "Épicerie Saint-Sever"


async def test_directory_pages(api: Api) -> None:
    for _ in range(5):
        await onboard(api)
    first = (await api.client.get("/v1/merchants", params={"limit": 3})).json()
    second = (
        await api.client.get("/v1/merchants", params={"limit": 3, "cursor": first["next_cursor"]})
    ).json()
    ids = [m["id"] for m in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 5 and second["next_cursor"] is None


async def test_onboarding_is_idempotent(api: Api) -> None:
    body = merchant_body(id=str(uuid4()))
    first = await api.client.post("/v1/merchants", json=body, headers=api.admin)
    again = await api.client.post("/v1/merchants", json=body, headers=api.admin)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    keyed = merchant_body()
    headers = {**api.admin, "Idempotency-Key": "onboard-1"}
    one = await api.client.post("/v1/merchants", json=keyed, headers=headers)
    two = await api.client.post("/v1/merchants", json=keyed, headers=headers)
    assert one.json() == two.json() and two.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"siret": "12345"}, 422, "siret_malformed"),
        ({"siret": "73282932000075"}, 422, "siret_checksum"),
        ({"iban": "FR7630006000011234567890188"}, 422, "iban_checksum"),
        ({"iban": "US64SVBKUS6S3300958879"}, 422, "iban_country"),
        ({"postcode": "ABCDE"}, 422, "invalid_postcode"),
        ({"name": " "}, 422, "invalid_name"),
        ({"category": "casino"}, 422, "validation_failed"),
        ({"colour": "blue"}, 422, "validation_failed"),
    ],
)
async def test_bad_onboarding_is_a_problem(
    api: Api, changes: dict[str, Any], status: int, code: str
) -> None:
    answer = await api.client.post(
        "/v1/merchants", json=merchant_body(**changes), headers=api.admin
    )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code


async def test_onboarding_refusals(api: Api) -> None:
    body = merchant_body()
    assert (await api.client.post("/v1/merchants", json=body, headers=api.admin)).status_code == 201
    again = await api.client.post(
        "/v1/merchants", json={**body, "name": "Other"}, headers=api.admin
    )
    assert (again.status_code, again.json()["code"]) == (409, "siret_exists")
    _, member = await api.holder()
    forbidden = await api.client.post("/v1/merchants", json=merchant_body(), headers=member)
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden")
    anonymous = await api.client.post("/v1/merchants", json=merchant_body())
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": "garbage"}, "invalid_cursor"),
        ({"name": "!!"}, "invalid_search"),
        ({"limit": 0}, "validation_failed"),
        ({"category": "casino"}, "validation_failed"),
    ],
)
async def test_bad_searches_are_problems(api: Api, params: dict[str, Any], code: str) -> None:
    answer = await api.client.get("/v1/merchants", params=params)
    assert (answer.status_code, answer.json()["code"]) == (422, code)


async def test_unknown_merchant(api: Api) -> None:
    answer = await api.client.get(f"/v1/merchants/{uuid4()}")
    assert (answer.status_code, answer.json()["code"]) == (404, "merchant_not_found")


async def test_static_code_is_for_the_merchant_and_admins(api: Api) -> None:
    merchant, token = await onboard(api)
    _, other_token = await onboard(api)
    path = f"/v1/merchants/{merchant['id']}/static-payload"
    mine = await api.client.get(path, headers=token)
    assert mine.status_code == 200 and mine.json()["payload"].startswith("000201010211")
    assert (await api.client.get(path, headers=api.admin)).json() == mine.json()
    assert (await api.client.get(path, headers=other_token)).status_code == 403
    svg = await api.client.get(f"/v1/merchants/{merchant['id']}/static-qr.svg", headers=token)
    assert svg.headers["content-type"] == "image/svg+xml" and svg.content.startswith(b"<svg")
    png = await api.client.get(f"/v1/merchants/{merchant['id']}/static-qr.png", headers=token)
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    gif = await api.client.get(f"/v1/merchants/{merchant['id']}/static-qr.gif", headers=token)
    assert gif.status_code == 404


async def test_keys_verify_payloads(api: Api) -> None:
    answer = await api.client.get("/v1/keys")
    assert answer.status_code == 200
    (key,) = answer.json()["keys"]
    public = load_public_key_pem(key["public_key_pem"])
    assert isinstance(public, Ed25519PublicKey)
    assert key["key_id"] == key_id(public) and key["current"]
    assert set(key["uses"]) == {"qr_payload", "journal_checkpoint"}
