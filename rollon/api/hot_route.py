"""The hottest routes (paying at a till) read their own body, token and key, and are served
before FastAPI's routing.

FastAPI resolves a route's dependencies and parameters generically, and walks its router and
middleware stack for every request; for a payment that costs more than checking the token
and the key themselves. So `POST /v1/transfers`, `POST /v1/payments` and
`POST /v1/payment-requests` take only the `Request`, and are marked `@hot`:

    @router.post("/things", ..., openapi_extra=hot_route_openapi(ThingIn))
    @hot
    async def create_thing(request: Request) -> Response:
        principal, body, idempotency = await read_call(request, _GATE, ThingIn)

`read_call` checks the token first (401, 429, 403 as the dependency would), then reads the
body (400, 415, 422 as FastAPI would), then the Idempotency-Key (400 if malformed).

`HotRoutes`, the innermost of the app's middleware, answers a hot route's requests itself:
it calls the endpoint and turns what it raises into an answer with the app's own exception
handlers. So the request still passes the body limit, the metrics and the last-resort
handler, and gets the same problem codes as through FastAPI; the route stays registered
with FastAPI for the OpenAPI manual, where it declares what the dependencies would have:
the bearer token, the Idempotency-Key header and the JSON body.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rollon.api.auth import BEARER_SECURITY, Principal, RoleGate
from rollon.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, Idempotency, idempotency_of
from rollon.api.problems import ProblemError, not_json

Model = TypeVar("Model", bound=BaseModel)
HotEndpoint = Callable[[Request], Awaitable[Response]]

_HOT_ENDPOINTS: set[HotEndpoint] = set()


def hot(endpoint: HotEndpoint) -> HotEndpoint:
    """Mark a route's endpoint to be served by `HotRoutes` (it takes only the request)."""
    _HOT_ENDPOINTS.add(endpoint)
    return endpoint


class HotRoutes:
    """ASGI middleware serving the `@hot` routes among `routes` itself; everything else goes
    on to the app. A hot endpoint's exceptions are answered by `handlers_of`'s exception
    handlers (the app's), found as Starlette finds them; others propagate."""

    def __init__(self, app: ASGIApp, routes: Iterable[APIRoute], handlers_of: FastAPI) -> None:
        self.app = app
        self._routes = {
            (method, route.path): route
            for route in routes
            if route.endpoint in _HOT_ENDPOINTS
            for method in route.methods or ()
        }
        assert all("{" not in path for _, path in self._routes), "hot paths are exact"
        self._handlers_of = handlers_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http":
            route = self._routes.get((scope["method"], scope["path"]))
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # what routing would have set: the metrics label by it
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as error:
            response = await self._answer(request, error)
        await response(scope, receive, send)

    async def _answer(self, request: Request, error: Exception) -> Response:
        """The app's answer to `error`; raises it again if the app has no handler for it."""
        handlers = self._handlers_of.exception_handlers
        kind = next((k for k in type(error).__mro__ if k in handlers), None)
        if kind is None:
            raise error
        answer = handlers[kind](request, error)
        return await answer if inspect.isawaitable(answer) else answer


def hot_route_openapi(body_model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI a hot route declares for what it reads itself."""
    schema = body_model.model_json_schema()
    assert "$defs" not in schema, "a hot route's body is one flat model"
    return {
        **BEARER_SECURITY,
        "parameters": [IDEMPOTENCY_KEY_PARAMETER],
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
    }


async def json_body(request: Request, model: type[Model]) -> Model:
    """The request's JSON body as `model`: 415 for another media type, 400 for malformed
    JSON, 422 for invalid fields (the app's validation handler words them), 400 when the
    client went away before its body arrived (nobody hears that answer, but it is no bug)."""
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise ProblemError(
            400, "body_incomplete", "Incomplete body", "the connection closed mid-body"
        ) from None
    if raw and not_json(request):
        raise ProblemError(
            415,
            "unsupported_media_type",
            "Unsupported media type",
            "send the body as JSON, with Content-Type: application/json",
        )
    if not raw:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


async def read_call(
    request: Request, gate: RoleGate, model: type[Model]
) -> tuple[Principal, Model, Idempotency]:
    """A hot route's caller, body and idempotency key, checked in that order."""
    principal = await gate.check(request)
    body = await json_body(request, model)
    return principal, body, idempotency_of(request)
