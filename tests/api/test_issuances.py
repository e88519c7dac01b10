"""POST /v1/issuances: RolloN against euros, with the bonus on change, all or nothing."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid4

import pytest

from rollon.api.token_store import Role
from rollon.ledger import chart
from rollon.ledger.queries import get_account
from tests.api.conftest import Api, make_settings, started

pytestmark = pytest.mark.anyio


@pytest.fixture
def api(module_api: Api) -> Api:
    """These tests make their own accounts and tokens: one app per module serves them all."""
    return module_api


def _euro_side(api: Api) -> tuple[int, int]:
    with api.state.engine.connect() as connection:
        reserve = get_account(connection, chart.RESERVE.id)
        grants = get_account(connection, chart.GRANTS.id)
    assert reserve is not None and grants is not None
    return reserve.balance, grants.balance


async def test_operator_issues_to_a_member(api: Api) -> None:
    alice, _ = await api.holder()
    counter, operator = await api.holder("exchange_point", role=Role.OPERATOR)
    reserve_before, grants_before = _euro_side(api)
    operation_id = str(uuid4())
    answer = await api.client.post(
        "/v1/issuances",
        json={
            "id": operation_id,
            "account_id": str(alice),
            "amount": 5_000,
            "euro_reference": "ticket-42",
        },
        headers=operator,
    )
    assert answer.status_code == 201, answer.text
    issued = answer.json()
    assert issued["id"] == operation_id
    assert (issued["amount"], issued["bonus"], issued["result"]) == (5_000, 0, "ok")
    assert issued["exchange_point_id"] == str(counter)
    assert await api.balance(alice) == 5_000
    assert _euro_side(api) == (reserve_before + 5_000, grants_before)
    assert await api.balance(counter) == 0
    # The journal shows the RolloN passing through the counter that took the euros.
    history = await api.client.get(f"/v1/accounts/{counter}/transfers", headers=operator)
    directions = sorted(item["direction"] for item in history.json()["items"])
    assert directions == ["in", "out"]


async def test_operator_issues_only_through_its_own_exchange_point(api: Api) -> None:
    alice, _ = await api.holder()
    _, operator = await api.holder("exchange_point", role=Role.OPERATOR)
    other_counter, _ = await api.holder("exchange_point", role=Role.OPERATOR)
    body = {
        "account_id": str(alice),
        "amount": 100,
        "euro_reference": "r",
        "exchange_point_id": str(other_counter),
    }
    answer = await api.client.post("/v1/issuances", json=body, headers=operator)
    assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
    assert await api.balance(alice) == 0


async def test_admin_names_an_exchange_point_or_none(api: Api) -> None:
    alice, _ = await api.holder()
    counter, _ = await api.holder("exchange_point", role=Role.OPERATOR)
    body = {"account_id": str(alice), "amount": 100, "euro_reference": "r"}
    plain = await api.client.post("/v1/issuances", json=body, headers=api.admin)
    assert plain.json()["exchange_point_id"] is None
    through = {**body, "exchange_point_id": str(counter)}
    answer = await api.client.post("/v1/issuances", json=through, headers=api.admin)
    assert answer.json()["exchange_point_id"] == str(counter)
    not_a_counter = {**body, "exchange_point_id": str(alice)}
    answer = await api.client.post("/v1/issuances", json=not_a_counter, headers=api.admin)
    assert (answer.status_code, answer.json()["code"]) == (422, "exchange_point_not_found")
    assert await api.balance(alice) == 200


async def test_bonus_on_change_is_funded_by_grants(db_url: str, tmp_path: Path) -> None:
    async for api in started(make_settings(db_url, tmp_path, bonus_bps=500)):
        alice, _ = await api.holder()
        answer = await api.client.post(
            "/v1/issuances",
            json={"account_id": str(alice), "amount": 2_000, "euro_reference": "r"},
            headers=api.admin,
        )
        assert answer.status_code == 201
        assert answer.json()["bonus"] == 100
        assert len(answer.json()["transfer_ids"]) == 4
        assert await api.balance(alice) == 2_100
        assert _euro_side(api) == (2_100, -100)


async def test_issuing_twice_with_the_same_id_issues_once(api: Api) -> None:
    alice, _ = await api.holder()
    body = {"id": str(uuid4()), "account_id": str(alice), "amount": 700, "euro_reference": "r"}
    first = await api.client.post("/v1/issuances", json=body, headers=api.admin)
    again = await api.client.post("/v1/issuances", json=body, headers=api.admin)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["result"] == "exists"
    assert await api.balance(alice) == 700
    changed = await api.client.post(
        "/v1/issuances", json={**body, "amount": 701}, headers=api.admin
    )
    assert (changed.status_code, changed.json()["code"]) == (409, "exists_with_different_fields")


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [
        ("unknown", 404, "account_not_found"),
        ("exchange_point", 422, "account_kind_not_allowed"),
        ("system", 422, "account_kind_not_allowed"),
    ],
)
async def test_issuance_refusals(api: Api, target: str, status: int, code: str) -> None:
    before = _euro_side(api)
    account: UUID
    if target == "unknown":
        account = uuid4()
    elif target == "system":
        account = chart.FEES.id
    else:
        account, _ = await api.holder("exchange_point", role=Role.OPERATOR)
    body = {"account_id": str(account), "amount": 100, "euro_reference": "r"}
    answer = await api.client.post("/v1/issuances", json=body, headers=api.admin)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert _euro_side(api) == before


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("amount", 12.5, "amount_must_be_integer"),
        ("amount", "1250", "amount_must_be_integer"),
        ("amount", 0, "amount_must_be_positive"),
        ("amount", -5, "amount_must_be_positive"),
        ("amount", 2**63, "amount_too_large"),
        ("euro_reference", "", "validation_failed"),
        ("euro_reference", "x" * 101, "validation_failed"),
    ],
)
async def test_bad_issuance_fields(api: Api, field: str, value: object, code: str) -> None:
    alice, _ = await api.holder()
    body: dict[str, object] = {"account_id": str(alice), "amount": 100, "euro_reference": "r"}
    body[field] = value
    answer = await api.client.post("/v1/issuances", json=body, headers=api.admin)
    assert (answer.status_code, answer.json()["code"]) == (422, code)
    assert await api.balance(alice) == 0
