"""The hot routes read their own body, token and key (rollon/api/hot_route.py): the same
refusals as FastAPI's own machinery, and a client that leaves mid-body is no bug."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollon.api.token_store import Role
from tests.api.conftest import Api

pytestmark = pytest.mark.anyio

HOT_ROUTES = ["/v1/transfers", "/v1/payments", "/v1/payment-requests"]
_ROLE = {"/v1/transfers": Role.MEMBER, "/v1/payments": Role.MEMBER}


@pytest.mark.parametrize("path", HOT_ROUTES)
async def test_a_client_gone_mid_body_gets_400_not_a_bug(api: Api, path: str) -> None:
    account_id, _ = await api.holder("merchant" if path.endswith("requests") else "member")
    token = api.token(_ROLE.get(path, Role.MERCHANT), account_id)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", b"100"),
            (b"authorization", token["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await api.app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["code"] == "body_incomplete"
    assert api.internal_errors() == 0


@pytest.mark.parametrize("path", HOT_ROUTES)
async def test_the_token_is_checked_before_the_body(api: Api, path: str) -> None:
    answer = await api.client.post(path, content=b"{not json", headers={"Content-Type": "x/y"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthorized"


async def test_the_manual_shows_what_a_hot_route_reads(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    for path in HOT_ROUTES:
        operation = schema["paths"][path]["post"]
        assert operation["security"] == [{"HTTPBearer": []}]
        assert [p["name"] for p in operation["parameters"]] == ["Idempotency-Key"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert "amount" in body["properties"]
