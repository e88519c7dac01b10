"""Reconversions and payout settlements through the real app."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import xmlschema

from rollon.api.token_store import Role
from rollon.ledger import chart
from rollon.merchants.sepa import SCHEMA_PATH
from tests.api.conftest import Api
from tests.api.test_merchants import onboard
from tests.merchants.conftest import FUND_IBAN

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def fund_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLON_FUND_IBAN", FUND_IBAN)


def problem(answer: Any, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code


async def earning_shop(api: Api, takings: int) -> tuple[UUID, dict[str, str]]:
    merchant, token = await onboard(api)
    account = UUID(merchant["account_id"])
    payer, member = await api.holder(balance=takings)
    request = (
        await api.client.post("/v1/payment-requests", json={"amount": takings}, headers=token)
    ).json()
    paid = await api.client.post(
        "/v1/payments",
        json={"payload": request["payload"], "source_id": str(payer)},
        headers=member,
    )
    assert paid.status_code == 201, paid.text
    return account, token


async def test_reconversion_then_settlement(api: Api) -> None:
    account, token = await earning_shop(api, 10_000)
    answer = await api.client.post("/v1/reconversions", json={"amount": 10_000}, headers=token)
    assert answer.status_code == 201, answer.text
    assert (answer.json()["fee"], answer.json()["net"], answer.json()["status"]) == (
        300,
        9_700,
        "due",
    )
    assert await api.balance(account) == 0
    listed = await api.client.get("/v1/reconversions", headers=token)
    assert [r["amount"] for r in listed.json()] == [10_000]

    owed = await api.client.get("/v1/payouts", headers=api.admin)
    assert owed.json()["owed"] == 9_700
    settlement = await api.client.post("/v1/payouts/settlements", json={}, headers=api.admin)
    assert settlement.status_code == 201, settlement.text
    body = settlement.json()
    assert (body["total"], body["transfers"], body["status"]) == (9_700, 1, "prepared")
    document = await api.client.get(body["document_url"], headers=api.admin)
    assert document.headers["content-type"].startswith("application/xml")
    assert xmlschema.XMLSchema(str(SCHEMA_PATH)).is_valid(document.text)

    paid = await api.client.post(f"/v1/payouts/settlements/{body['id']}/paid", headers=api.admin)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    assert await api.balance(chart.PAYOUTS_DUE.id) == 0
    assert (await api.client.get("/v1/payouts", headers=api.admin)).json()["owed"] == 0
    problem(
        await api.client.post(f"/v1/payouts/settlements/{body['id']}/cancel", headers=api.admin),
        409,
        "settlement_paid",
    )


async def test_reconversion_refusals_and_retries(api: Api) -> None:
    account, token = await earning_shop(api, 1_000)
    problem(
        await api.client.post("/v1/reconversions", json={"amount": 1_001}, headers=token),
        422,
        "insufficient_funds",
    )
    problem(
        await api.client.post("/v1/reconversions", json={"amount": 0}, headers=token),
        422,
        "amount_must_be_positive",
    )
    _, member = await api.holder(balance=100)
    problem(
        await api.client.post("/v1/reconversions", json={"amount": 10}, headers=member),
        403,
        "forbidden",
    )
    body = {"id": str(uuid4()), "amount": 400}
    first = await api.client.post("/v1/reconversions", json=body, headers=token)
    again = await api.client.post("/v1/reconversions", json=body, headers=token)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["result"] == "exists"
    problem(
        await api.client.post("/v1/reconversions", json={**body, "amount": 401}, headers=token),
        409,
        "reconversion_exists",
    )
    assert await api.balance(account) == 600


async def test_settlement_refusals(api: Api) -> None:
    problem(
        await api.client.post("/v1/payouts/settlements", json={}, headers=api.admin),
        409,
        "nothing_to_settle",
    )
    _, token = await earning_shop(api, 1_000)
    await api.client.post("/v1/reconversions", json={"amount": 1_000}, headers=token)
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    problem(
        await api.client.post(
            "/v1/payouts/settlements", json={"execution_date": yesterday}, headers=api.admin
        ),
        422,
        "invalid_execution_date",
    )
    problem(
        await api.client.post("/v1/payouts/settlements", json={}, headers=token), 403, "forbidden"
    )
    unknown = uuid4()
    problem(
        await api.client.get(f"/v1/payouts/settlements/{unknown}", headers=api.admin),
        404,
        "settlement_not_found",
    )
    problem(
        await api.client.post(f"/v1/payouts/settlements/{unknown}/paid", headers=api.admin),
        404,
        "settlement_not_found",
    )
    made = (await api.client.post("/v1/payouts/settlements", json={}, headers=api.admin)).json()
    cancelled = await api.client.post(
        f"/v1/payouts/settlements/{made['id']}/cancel", headers=api.admin
    )
    assert cancelled.json()["status"] == "cancelled"
    problem(
        await api.client.post(f"/v1/payouts/settlements/{made['id']}/paid", headers=api.admin),
        409,
        "settlement_cancelled",
    )
    auditor_view = await api.client.get(
        f"/v1/payouts/settlements/{made['id']}", headers=api.token(Role.AUDITOR)
    )
    assert auditor_view.status_code == 200
