"""The hot routes read their own body, token and key and are served before FastAPI's routing
(rollon/api/hot_route.py): the same refusals and metrics as through FastAPI's own machinery,
and a client that leaves mid-body is no bug."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rollon.api.hot_route import HotRoutes, hot
from rollon.api.problems import ProblemError
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


async def test_the_hot_routes_are_timed_by_their_template_and_other_methods_pass_on(
    api: Api,
) -> None:
    account_id, _ = await api.holder("member")
    answer = await api.client.post(
        "/v1/transfers", json={}, headers=api.token(Role.MEMBER, account_id)
    )
    assert answer.status_code == 422
    timed = api.state.metrics.registry.get_sample_value(
        "rollon_http_request_duration_seconds_count",
        {"method": "POST", "route": "/v1/transfers", "status": "422"},
    )
    assert timed == 1
    answer = await api.client.put("/v1/transfers", json={})  # FastAPI's routing answers it
    assert answer.status_code == 405
    assert answer.json()["code"] == "method_not_allowed"


# -- HotRoutes on its own: a small app with one hot and one ordinary route -----------------
def _small_app() -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    reached: list[str] = []

    @app.post("/hot")
    @hot
    async def hot_endpoint(request: Request) -> Response:
        kind = (await request.body()).decode()
        if kind == "problem":
            raise ProblemError(409, "taken", "Taken", "already taken")
        if kind == "bug":
            raise RuntimeError("a bug")
        return Response(b"hot", status_code=201)

    @app.post("/cold")
    async def cold_endpoint() -> Response:
        return Response(b"cold")

    @app.exception_handler(ProblemError)
    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, ProblemError)
        return Response(error.code.encode(), status_code=error.status_code)

    async def downstream(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await app(scope, receive, send)

    routes = [route for route in app.routes if isinstance(route, APIRoute)]
    hot_routes = HotRoutes(downstream, routes=routes, handlers_of=app)
    app.state.hot_routes = hot_routes
    return app, reached


async def _post(app: FastAPI, path: str, body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app.state.hot_routes)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, content=body)


async def test_hot_routes_answer_their_own_requests_and_pass_on_the_rest() -> None:
    app, reached = _small_app()
    answer = await _post(app, "/hot", b"fine")
    assert (answer.status_code, answer.content, reached) == (201, b"hot", [])
    answer = await _post(app, "/cold", b"")
    assert (answer.status_code, answer.content, reached) == (200, b"cold", ["/cold"])


async def test_hot_routes_answer_errors_with_the_apps_handlers_and_raise_the_rest() -> None:
    app, reached = _small_app()
    answer = await _post(app, "/hot", b"problem")
    assert (answer.status_code, answer.content) == (409, b"taken")
    with pytest.raises(RuntimeError, match="a bug"):  # the last-resort middleware's to answer
        await _post(app, "/hot", b"bug")
    assert reached == []
