"""Payment requests, payments by QR payload, refunds, the till's long-poll and events,
through the real app on each database."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import pytest

from rollon.api.token_store import Role
from rollon.merchants import payload as p
from tests.api.conftest import Api
from tests.api.test_merchants import onboard
from tests.merchants.test_qr import decode, png_pixels

pytestmark = pytest.mark.anyio


async def shop(api: Api) -> tuple[UUID, dict[str, str]]:
    merchant, token = await onboard(api)
    return UUID(merchant["account_id"]), token


async def ask(api: Api, token: dict[str, str], amount: int = 1_250, **extra: Any) -> dict[str, Any]:
    answer = await api.client.post(
        "/v1/payment-requests", json={"amount": amount, **extra}, headers=token
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def pay(api: Api, token: dict[str, str], payer: UUID, payload: str, **extra: Any) -> Any:
    return await api.client.post(
        "/v1/payments",
        json={"payload": payload, "source_id": str(payer), **extra},
        headers=token,
    )


def problem(answer: Any, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code


async def test_the_whole_qr_flow(api: Api) -> None:
    account, merchant = await shop(api)
    payer, member = await api.holder(balance=5_000)
    request = await ask(api, merchant, 1_250, reference="Table 4", description="Déjeuner")
    assert request["status"] == "open" and request["payload"].startswith("000201010212")
    preview = await api.client.post(
        "/v1/payments/preview", json={"payload": request["payload"]}, headers=member
    )
    assert preview.json()["merchant_name"] == request["merchant_name"]
    assert preview.json()["amount"] == 1_250 and preview.json()["status"] == "open"

    paid = await pay(api, member, payer, request["payload"], amount=1_250)
    assert paid.status_code == 201, paid.text
    assert paid.json()["result"] == "ok" and paid.json()["status"] == "paid"
    assert paid.json()["merchant_name"] == request["merchant_name"]
    again = await pay(api, member, payer, request["payload"])
    assert again.status_code == 200 and again.json()["result"] == "exists"
    assert await api.balance(payer) == 3_750 and await api.balance(account) == 1_250

    seen = await api.client.get(f"/v1/payment-requests/{request['id']}", headers=merchant)
    assert seen.json()["status"] == "paid" and seen.json()["payer_id"] == str(payer)
    by_payer = await api.client.get(f"/v1/payment-requests/{request['id']}", headers=member)
    assert by_payer.status_code == 200

    refund = await api.client.post(
        f"/v1/payment-requests/{request['id']}/refunds", json={"amount": 250}, headers=merchant
    )
    assert refund.status_code == 201, refund.text
    assert refund.json()["request"]["status"] == "partially_refunded"
    rest = await api.client.post(
        f"/v1/payment-requests/{request['id']}/refunds", json={}, headers=merchant
    )
    assert rest.json()["amount"] == 1_000 and rest.json()["request"]["status"] == "refunded"
    listed = await api.client.get(f"/v1/payment-requests/{request['id']}/refunds", headers=merchant)
    assert [r["amount"] for r in listed.json()] == [250, 1_000]
    assert await api.balance(payer) == 5_000


async def test_request_refusals(api: Api) -> None:
    _, merchant = await shop(api)
    _, member = await api.holder(balance=100)
    for body, code in (
        ({"amount": 0}, "amount_must_be_positive"),
        ({"amount": 1.5}, "amount_must_be_integer"),
        ({"amount": "12"}, "amount_must_be_integer"),
        ({"amount": p.MAX_PAYLOAD_AMOUNT + 1}, "amount_too_large"),
        ({"amount": 100, "expires_in": 0}, "validation_failed"),
        ({"amount": 100, "reference": "x" * 141}, "validation_failed"),
    ):
        answer = await api.client.post("/v1/payment-requests", json=body, headers=merchant)
        problem(answer, 422, code)
    answer = await api.client.post("/v1/payment-requests", json={"amount": 100}, headers=member)
    problem(answer, 403, "forbidden")
    # a merchant token whose account is no merchant of the directory
    stray, _ = await api.holder("merchant")
    answer = await api.client.post(
        "/v1/payment-requests", json={"amount": 100}, headers=api.token(Role.MERCHANT, stray)
    )
    problem(answer, 403, "not_a_merchant")
    problem(
        await api.client.get(f"/v1/payment-requests/{uuid4()}", headers=merchant),
        404,
        "request_not_found",
    )


async def test_payment_refusals(api: Api) -> None:
    account, merchant = await shop(api)
    payer, member = await api.holder(balance=1_000)
    other, other_member = await api.holder(balance=5_000)
    request = await ask(api, merchant, 2_000)
    problem(await pay(api, member, payer, request["payload"]), 422, "insufficient_funds")
    problem(await pay(api, member, payer, request["payload"], amount=1_999), 422, "amount_mismatch")
    problem(await pay(api, member, other, request["payload"]), 403, "forbidden")
    problem(await pay(api, member, payer, request["payload"][:80]), 422, "payload_truncated")
    problem(await pay(api, member, payer, "garbage"), 422, "payload_malformed")
    tampered = request["payload"].replace("540520.00", "540510.00")
    problem(await pay(api, member, payer, tampered), 422, "payload_bad_crc")
    body = tampered[:-4]
    forged = body + f"{p.crc16_ccitt(body.encode()):04X}"
    problem(await pay(api, member, payer, forged), 422, "payload_bad_signature")
    paid = await pay(api, other_member, other, request["payload"])
    assert paid.status_code == 201
    problem(await pay(api, member, payer, request["payload"]), 409, "request_already_paid")
    merchant_token = api.token(Role.MERCHANT, account)
    answer = await api.client.post(
        "/v1/payments",
        json={"payload": request["payload"], "source_id": str(account)},
        headers=merchant_token,
    )
    problem(answer, 403, "forbidden")
    assert await api.balance(payer) == 1_000


async def test_cancel_and_expiry(api: Api) -> None:
    _, merchant = await shop(api)
    other_merchant = (await shop(api))[1]
    payer, member = await api.holder(balance=5_000)
    request = await ask(api, merchant, 500)
    path = f"/v1/payment-requests/{request['id']}"
    problem(
        await api.client.post(f"{path}/cancel", headers=other_merchant), 404, "request_not_found"
    )
    cancelled = await api.client.post(f"{path}/cancel", headers=merchant)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    problem(await pay(api, member, payer, request["payload"]), 409, "request_cancelled")
    short = await ask(api, merchant, 500, expires_in=1)
    await asyncio.sleep(1.1)
    problem(await pay(api, member, payer, short["payload"]), 410, "payload_expired")
    seen = await api.client.get(f"/v1/payment-requests/{short['id']}", headers=merchant)
    assert seen.json()["status"] == "expired"
    problem(
        await api.client.post(f"/v1/payment-requests/{short['id']}/cancel", headers=merchant),
        410,
        "request_expired",
    )
    paid = await ask(api, merchant, 500)
    assert (await pay(api, member, payer, paid["payload"])).status_code == 201
    problem(
        await api.client.post(f"/v1/payment-requests/{paid['id']}/cancel", headers=merchant),
        409,
        "request_already_paid",
    )
    assert await api.balance(payer) == 4_500


async def test_refund_refusals(api: Api) -> None:
    _, merchant = await shop(api)
    _, other_merchant = await shop(api)
    payer, member = await api.holder(balance=5_000)
    request = await ask(api, merchant, 1_000)
    path = f"/v1/payment-requests/{request['id']}/refunds"
    problem(
        await api.client.post(path, json={"amount": 1}, headers=merchant), 409, "request_not_paid"
    )
    await pay(api, member, payer, request["payload"])
    problem(
        await api.client.post(path, json={"amount": 1_001}, headers=merchant),
        409,
        "refund_exceeds_payment",
    )
    problem(
        await api.client.post(path, json={"amount": 0}, headers=merchant),
        422,
        "amount_must_be_positive",
    )
    problem(
        await api.client.post(path, json={"amount": 5}, headers=other_merchant),
        404,
        "request_not_found",
    )
    problem(await api.client.post(path, json={"amount": 5}, headers=member), 403, "forbidden")
    refund_id = str(uuid4())
    first = await api.client.post(path, json={"id": refund_id, "amount": 300}, headers=merchant)
    again = await api.client.post(path, json={"id": refund_id, "amount": 300}, headers=merchant)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["result"] == "exists"
    other = await api.client.post(path, json={"id": refund_id, "amount": 301}, headers=merchant)
    problem(other, 409, "refund_exists")
    assert await api.balance(payer) == 4_300


async def test_static_code_payment(api: Api) -> None:
    account, merchant = await shop(api)
    payer, member = await api.holder(balance=5_000)
    merchant_id = (await api.client.get("/v1/merchants", params={"limit": 100})).json()["items"][0][
        "id"
    ]
    sticker = (
        await api.client.get(f"/v1/merchants/{merchant_id}/static-payload", headers=merchant)
    ).json()["payload"]
    problem(await pay(api, member, payer, sticker), 422, "amount_required")
    payment_id = str(uuid4())
    first = await pay(api, member, payer, sticker, amount=820, id=payment_id)
    assert first.status_code == 201 and first.json()["request"]["static"]
    again = await pay(api, member, payer, sticker, amount=820, id=payment_id)
    assert again.status_code == 200
    assert await api.balance(payer) == 4_180 and await api.balance(account) == 820


async def test_long_poll_returns_when_paid(api: Api) -> None:
    _, merchant = await shop(api)
    payer, member = await api.holder(balance=5_000)
    request = await ask(api, merchant, 700)
    path = f"/v1/payment-requests/{request['id']}"

    async def till() -> Any:
        return await api.client.get(path, params={"wait_s": 10, "status": "open"}, headers=merchant)

    waiting = asyncio.create_task(till())
    await asyncio.sleep(0.2)
    assert not waiting.done()
    assert (await pay(api, member, payer, request["payload"])).status_code == 201
    answer = await asyncio.wait_for(waiting, 5)
    assert answer.json()["status"] == "paid"
    quick = await api.client.get(path, params={"wait_s": 0.2, "status": "paid"}, headers=merchant)
    assert quick.json()["status"] == "paid"
    problem(
        await api.client.get(path, params={"wait_s": 61}, headers=merchant),
        422,
        "validation_failed",
    )


async def test_events_stream_the_status(api: Api) -> None:
    _, merchant = await shop(api)
    payer, member = await api.holder(balance=5_000)
    request = await ask(api, merchant, 700)
    path = f"/v1/payment-requests/{request['id']}/events"

    async def later() -> None:
        await asyncio.sleep(0.2)
        await pay(api, member, payer, request["payload"])
        await asyncio.sleep(0.2)
        await api.client.post(
            f"/v1/payment-requests/{request['id']}/refunds", json={}, headers=merchant
        )

    task = asyncio.create_task(later())
    statuses = []
    async with api.client.stream("GET", path, params={"wait_s": 10}, headers=merchant) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                statuses.append(json.loads(line[6:])["status"])
    await task
    assert statuses == ["open", "paid", "refunded"]
    problem(await api.client.get(path, headers=member), 403, "forbidden")


async def test_qr_images_decode_to_the_payload(api: Api) -> None:
    _, merchant = await shop(api)
    request = await ask(api, merchant, 990)
    path = f"/v1/payment-requests/{request['id']}"
    image = await api.client.get(f"{path}/qr.png", headers=merchant)
    assert image.headers["content-type"] == "image/png"
    assert decode(png_pixels(image.content)) == [request["payload"]]
    svg = await api.client.get(f"{path}/qr.svg", headers=merchant)
    assert svg.headers["content-type"] == "image/svg+xml" and b"<path" in svg.content
    problem(await api.client.get(f"{path}/qr.jpg", headers=merchant), 404, "not_found")


async def test_listing_requests(api: Api) -> None:
    _, merchant = await shop(api)
    made = [await ask(api, merchant, 100 + i) for i in range(3)]
    page = await api.client.get("/v1/payment-requests", params={"limit": 2}, headers=merchant)
    items = page.json()["items"]
    assert [i["id"] for i in items] == [made[2]["id"], made[1]["id"]]
    older = await api.client.get(
        "/v1/payment-requests", params={"before": page.json()["next_cursor"]}, headers=merchant
    )
    assert [i["id"] for i in older.json()["items"]] == [made[0]["id"]]
