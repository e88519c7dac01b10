"""The hot routes read their own body, token and key and are served before the app's
middleware and FastAPI's routing (rollon/api/hot_route.py): the same refusals, body limit,
metrics and last-resort answer as through that machinery, and a client that leaves mid-body
is no bug."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rollon.api.hot_route import HotRoutedApp, HotRoutes, hot
from rollon.api.metrics import Metrics, RequestTimer
from rollon.api.middleware import BodyLimit
from rollon.api.problems import ProblemError
from rollon.api.token_store import Role
from tests.api.conftest import Api

pytestmark = pytest.mark.anyio

HOT_ROUTES = ["/v1/transfers", "/v1/payments", "/v1/payment-requests"]
_ROLE = {"/v1/transfers": Role.MEMBER, "/v1/payments": Role.MEMBER}


def _http_post_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """An ASGI scope as uvicorn makes it, for tests that drive an app by hand."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


@pytest.mark.parametrize("path", HOT_ROUTES)
async def test_a_client_gone_mid_body_gets_400_not_a_bug(api: Api, path: str) -> None:
    account_id, _ = await api.holder("merchant" if path.endswith("requests") else "member")
    token = api.token(_ROLE.get(path, Role.MERCHANT), account_id)
    headers = [
        (b"host", b"test"),
        (b"content-type", b"application/json"),
        (b"content-length", b"100"),
        (b"authorization", token["Authorization"].encode()),
    ]
    scope = _http_post_scope(path, headers)
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
class _SmallApp:
    """A `HotRoutedApp` with a hot and a cold route, a middleware that notes what reaches
    it, the service's body limit and request timer, and a count of bugs."""

    def __init__(self) -> None:
        self.app = HotRoutedApp()
        self.reached: list[str] = []
        self.bugs = 0
        self.metrics = Metrics()

        @self.app.post("/hot")
        @hot
        async def hot_endpoint(request: Request) -> Response:
            kind = (await request.body()).decode()
            if kind == "problem":
                raise ProblemError(409, "taken", "Taken", "already taken")
            if kind == "bug":
                raise RuntimeError("a bug")
            if kind == "bug while answering":
                return _BrokenResponse(b"half", status_code=200)
            return Response(b"hot", status_code=201)

        @self.app.post("/cold")
        async def cold_endpoint() -> Response:
            return Response(b"cold")

        @self.app.exception_handler(ProblemError)
        async def on_problem(request: Request, error: Exception) -> Response:
            assert isinstance(error, ProblemError)
            return Response(error.code.encode(), status_code=error.status_code)

        reached = self.reached

        class NoteMiddleware:
            def __init__(self, app: ASGIApp) -> None:
                self.app = app

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                reached.append(scope["path"])
                await self.app(scope, receive, send)

        self.app.add_middleware(NoteMiddleware)
        self.app.hot_routes = HotRoutes(
            [route for route in self.app.routes if isinstance(route, APIRoute)],
            handlers_of=self.app,
            body_limit=BodyLimit(max_body_bytes=100),
            timer=RequestTimer(self.metrics, access_log=False),
            on_error=self._count_bug,
        )

    def _count_bug(self) -> None:
        self.bugs += 1

    async def post(self, path: str, body: bytes) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, content=body)

    def timed(self, status: int) -> float | None:
        return self.metrics.registry.get_sample_value(
            "rollon_http_request_duration_seconds_count",
            {"method": "POST", "route": "/hot", "status": str(status)},
        )


class _BrokenResponse(Response):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("a bug after the answer began")


async def test_hot_routes_are_served_before_the_middleware_and_the_rest_pass_on() -> None:
    small = _SmallApp()
    answer = await small.post("/hot", b"fine")
    assert (answer.status_code, answer.content, small.reached) == (201, b"hot", [])
    assert small.timed(201) == 1
    answer = await small.post("/cold", b"")
    assert (answer.status_code, answer.content, small.reached) == (200, b"cold", ["/cold"])


async def test_hot_routes_answer_errors_with_the_apps_handlers() -> None:
    small = _SmallApp()
    answer = await small.post("/hot", b"problem")
    assert (answer.status_code, answer.content) == (409, b"taken")
    assert (small.timed(409), small.bugs) == (1, 0)


async def test_a_bug_in_a_hot_route_is_a_logged_500_problem(
    caplog: pytest.LogCaptureFixture,
) -> None:
    small = _SmallApp()
    answer = await small.post("/hot", b"bug")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "internal_error"
    assert "a bug" not in answer.text
    assert (small.bugs, small.timed(500)) == (1, 1)
    assert "unhandled error on POST /hot" in caplog.text and "a bug" in caplog.text


async def test_a_bug_once_the_answer_began_is_counted_not_answered_twice() -> None:
    small = _SmallApp()
    body = b"bug while answering"
    scope = _http_post_scope("/hot", [(b"content-length", str(len(body)).encode())])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await small.app(scope, receive, send)
    assert [(m["type"], m.get("status")) for m in sent] == [("http.response.start", 200)]
    assert (small.bugs, small.timed(200)) == (1, 1)


async def test_hot_routes_apply_the_body_limit_before_the_endpoint() -> None:
    small = _SmallApp()
    answer = await small.post("/hot", b"x" * 101)
    assert (answer.status_code, answer.json()["code"]) == (413, "body_too_large")
    assert (small.timed(413), small.reached) == (1, [])
