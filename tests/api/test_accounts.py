"""Opening and reading accounts."""

from __future__ import annotations

from uuid import uuid4

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.anyio


@pytest.fixture
def api(module_api: Api) -> Api:
    """These tests make their own accounts and tokens: one app per module serves them all."""
    return module_api


@pytest.mark.parametrize("kind", ["member", "merchant", "exchange_point"])
async def test_open_an_account_of_each_kind(api: Api, kind: str) -> None:
    answer = await api.client.post(
        "/v1/accounts", json={"kind": kind, "name": "  Épicerie Léon  "}, headers=api.admin
    )
    assert answer.status_code == 201, answer.text
    opened = answer.json()
    assert opened["kind"] == kind
    assert opened["name"] == "Épicerie Léon"
    assert (opened["balance"], opened["available"], opened["closed"]) == (0, 0, False)
    assert opened["ledger"] == "RLN"
    read = await api.client.get(f"/v1/accounts/{opened['id']}", headers=api.admin)
    assert read.json() == opened


async def test_open_with_a_chosen_id_once(api: Api) -> None:
    chosen = str(uuid4())
    body = {"kind": "member", "name": "Alice", "id": chosen}
    first = await api.client.post("/v1/accounts", json=body, headers=api.admin)
    assert (first.status_code, first.json()["id"]) == (201, chosen)
    again = await api.client.post("/v1/accounts", json=body, headers=api.admin)
    assert (again.status_code, again.json()["code"]) == (409, "account_exists")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "system", "name": "x"}, "validation_failed"),
        ({"kind": "member", "name": ""}, "validation_failed"),
        ({"kind": "member", "name": "   "}, "invalid_name"),
        ({"kind": "member", "name": "x" * 201}, "validation_failed"),
        ({"kind": "member"}, "validation_failed"),
        ({"kind": "member", "name": "x", "balance": 100}, "validation_failed"),
    ],
)
async def test_bad_account_requests(api: Api, body: dict[str, object], code: str) -> None:
    answer = await api.client.post("/v1/accounts", json=body, headers=api.admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == code


async def test_unknown_account_is_404(api: Api) -> None:
    answer = await api.client.get(f"/v1/accounts/{uuid4()}", headers=api.admin)
    assert (answer.status_code, answer.json()["code"]) == (404, "account_not_found")


async def test_malformed_account_id_is_422(api: Api) -> None:
    answer = await api.client.get("/v1/accounts/not-a-uuid", headers=api.admin)
    assert (answer.status_code, answer.json()["code"]) == (422, "validation_failed")
    assert answer.json()["errors"][0]["location"] == ["path", "account_id"]
