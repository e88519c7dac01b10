"""POST /v1/transfers through the real app: payments, refusals as problems, history."""

from __future__ import annotations

from uuid import uuid4

import pytest

from rollon.api.token_store import Role
from tests.api.conftest import Api

pytestmark = pytest.mark.anyio


@pytest.fixture
def api(module_api: Api) -> Api:
    """These tests make their own accounts and tokens: one app per module serves them all."""
    return module_api


async def test_member_pays_merchant_and_both_see_it(api: Api) -> None:
    alice, alice_token = await api.holder(balance=10_000)
    shop, shop_token = await api.holder("merchant")
    transfer_id = uuid4()
    answer = await api.client.post(
        "/v1/transfers",
        json={
            "id": str(transfer_id),
            "source_id": str(alice),
            "destination_id": str(shop),
            "amount": 1_250,
            "memo": "Pain et croissants",
        },
        headers=alice_token,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json() == {
        "id": str(transfer_id),
        "source_id": str(alice),
        "destination_id": str(shop),
        "amount": 1_250,
        "memo": "Pain et croissants",
        "result": "ok",
    }
    assert await api.balance(alice) == 8_750
    assert await api.balance(shop) == 1_250

    history = (await api.client.get(f"/v1/accounts/{shop}/transfers", headers=shop_token)).json()
    (entry,) = history["items"]
    assert entry["id"] == str(transfer_id)
    assert entry["direction"] == "in"
    assert entry["counterparty_id"] == str(alice)
    assert entry["balance_after"] == 1_250
    assert history["next_cursor"] is None


async def test_same_id_again_is_answered_exists_and_pays_once(api: Api) -> None:
    alice, token = await api.holder(balance=5_000)
    bob, _ = await api.holder()
    body = {"id": str(uuid4()), "source_id": str(alice), "destination_id": str(bob), "amount": 100}
    first = await api.client.post("/v1/transfers", json=body, headers=token)
    again = await api.client.post("/v1/transfers", json=body, headers=token)
    assert (first.status_code, first.json()["result"]) == (201, "ok")
    assert (again.status_code, again.json()["result"]) == (200, "exists")
    assert await api.balance(bob) == 100

    other = await api.client.post("/v1/transfers", json={**body, "amount": 99}, headers=token)
    assert other.status_code == 409
    assert other.json()["code"] == "exists_with_different_fields"


@pytest.mark.parametrize(
    ("amount_key", "status", "code"),
    [
        ("too_much", 422, "insufficient_funds"),
        ("unknown_destination", 404, "account_not_found"),
        ("to_self", 422, "same_account"),
    ],
)
async def test_ledger_refusals_are_problems(
    api: Api, amount_key: str, status: int, code: str
) -> None:
    alice, token = await api.holder(balance=1_000)
    bob, _ = await api.holder()
    body = {"source_id": str(alice), "destination_id": str(bob), "amount": 500}
    if amount_key == "too_much":
        body["amount"] = 1_001
    elif amount_key == "unknown_destination":
        body["destination_id"] = str(uuid4())
    else:
        body["destination_id"] = str(alice)
    answer = await api.client.post("/v1/transfers", json=body, headers=token)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["type"] == f"urn:rollon:problem:{code}"
    assert problem["instance"] == "/v1/transfers"
    assert await api.balance(alice) == 1_000


async def test_a_refused_id_stays_refused(api: Api) -> None:
    alice, token = await api.holder(balance=100)
    bob, _ = await api.holder()
    body = {"id": str(uuid4()), "source_id": str(alice), "destination_id": str(bob), "amount": 150}
    refused = await api.client.post("/v1/transfers", json=body, headers=token)
    assert refused.json()["code"] == "insufficient_funds"
    await api.issue(alice, 100)
    retried = await api.client.post("/v1/transfers", json=body, headers=token)
    assert retried.status_code == 409
    assert retried.json()["code"] == "id_already_failed"
    assert await api.balance(bob) == 0


async def test_closed_destination_is_refused(api: Api) -> None:
    alice, token = await api.holder(balance=100)
    bob, _ = await api.holder()
    api.state.ledger.close_account(bob)
    body = {"source_id": str(alice), "destination_id": str(bob), "amount": 10}
    answer = await api.client.post("/v1/transfers", json=body, headers=token)
    assert (answer.status_code, answer.json()["code"]) == (409, "account_closed")


async def test_merchant_pays_only_merchants(api: Api) -> None:
    shop, shop_token = await api.holder("merchant")
    supplier, _ = await api.holder("merchant")
    member, _ = await api.holder()
    await api.issue(shop, 1_000)
    to_supplier = {"source_id": str(shop), "destination_id": str(supplier), "amount": 400}
    answer = await api.client.post("/v1/transfers", json=to_supplier, headers=shop_token)
    assert answer.status_code == 201
    to_member = {**to_supplier, "destination_id": str(member)}
    answer = await api.client.post("/v1/transfers", json=to_member, headers=shop_token)
    assert (answer.status_code, answer.json()["code"]) == (403, "destination_not_allowed")


async def test_system_accounts_are_never_a_destination(api: Api) -> None:
    from rollon.ledger import chart

    alice, token = await api.holder(balance=1_000)
    for system in (chart.ISSUANCE, chart.FEES):
        body = {"source_id": str(alice), "destination_id": str(system.id), "amount": 10}
        answer = await api.client.post("/v1/transfers", json=body, headers=token)
        assert (answer.status_code, answer.json()["code"]) == (403, "destination_not_allowed")
    assert await api.balance(alice) == 1_000


async def test_nobody_pays_from_an_account_not_their_own(api: Api) -> None:
    alice, _ = await api.holder(balance=1_000)
    mallory, mallory_token = await api.holder()
    body = {"source_id": str(alice), "destination_id": str(mallory), "amount": 10}
    answer = await api.client.post("/v1/transfers", json=body, headers=mallory_token)
    assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
    answer = await api.client.post("/v1/transfers", json=body, headers=api.token(Role.ADMIN))
    assert answer.status_code == 403
    assert await api.balance(alice) == 1_000


async def test_history_pages_newest_first_with_a_cursor(api: Api) -> None:
    alice, token = await api.holder(balance=10_000)
    bob, _ = await api.holder()
    for amount in range(1, 8):
        body = {"source_id": str(alice), "destination_id": str(bob), "amount": amount}
        assert (await api.client.post("/v1/transfers", json=body, headers=token)).is_success
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, int] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = await api.client.get(f"/v1/accounts/{alice}/transfers", params=params, headers=token)
        assert page.status_code == 200
        body = page.json()
        seen += [item["amount"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # 7 payments out, then the issuance in (newest first), in pages of 3, 3 and 2.
    assert seen == [7, 6, 5, 4, 3, 2, 1, 10_000]
    assert pages == 3


async def test_history_of_an_unknown_account_is_404(api: Api) -> None:
    answer = await api.client.get(f"/v1/accounts/{uuid4()}/transfers", headers=api.admin)
    assert (answer.status_code, answer.json()["code"]) == (404, "account_not_found")
