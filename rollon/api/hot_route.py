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

`HotRoutedApp`, the service's FastAPI app, hands a hot route's requests to `HotRoutes` before
its middleware stack. `HotRoutes` applies the same body limit, request metrics and
last-resort answer as that middleware, calls the endpoint, and turns what it raises into an
answer with the app's own exception handlers: the same problem codes as through FastAPI.
The route stays registered with FastAPI for the OpenAPI manual, where it declares what the
dependencies would have: the bearer token, the Idempotency-Key header and the JSON body.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rollon.api.auth import BEARER_SECURITY, Principal, RoleGate
from rollon.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, Idempotency, idempotency_of
from rollon.api.metrics import RequestTimer
from rollon.api.middleware import BodyLimit, report_bug, send_internal_error
from rollon.api.problems import ProblemError, not_json

Model = TypeVar("Model", bound=BaseModel)
HotEndpoint = Callable[[Request], Awaitable[Response]]

_HOT_ENDPOINTS: set[HotEndpoint] = set()


def hot(endpoint: HotEndpoint) -> HotEndpoint:
    """Mark a route's endpoint to be served by `HotRoutes` (it takes only the request)."""
    _HOT_ENDPOINTS.add(endpoint)
    return endpoint


class HotRoutes:
    """Serves the `@hot` routes among `routes`, doing for them what the app's middleware does
    for the others: the body limit, the request metrics, the app's exception handlers
    (`handlers_of`'s, found as Starlette finds them) and, for any other exception, the last
    resort's logged 500."""

    def __init__(
        self,
        routes: Iterable[APIRoute],
        *,
        handlers_of: FastAPI,
        body_limit: BodyLimit,
        timer: RequestTimer,
        on_error: Callable[[], None],
    ) -> None:
        self._routes = {
            (method, route.path): route
            for route in routes
            if route.endpoint in _HOT_ENDPOINTS
            for method in route.methods or ()
        }
        assert all("{" not in path for _, path in self._routes), "hot paths are exact"
        self._handlers_of = handlers_of
        self._body_limit = body_limit
        self._timer = timer
        self._on_error = on_error

    def route_for(self, scope: Scope) -> APIRoute | None:
        """The hot route this HTTP request is for, if any."""
        return self._routes.get((scope["method"], scope["path"]))

    async def serve(self, route: APIRoute, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request of `route`."""
        started = time.perf_counter()
        scope["route"] = route  # what routing would have set: the metrics label by it
        status = 500
        answering = False
        try:
            admitted = await self._body_limit.admit(scope, receive, send)
            if admitted is None:
                status = 413
                return
            request = Request(scope, admitted, send)
            try:
                response = await route.endpoint(request)
            except Exception as error:
                response = await self._answer(request, error)
            status = response.status_code
            answering = True
            await response(scope, admitted, send)
        except Exception:
            report_bug(scope, self._on_error)
            if not answering:
                await send_internal_error(scope, send)
        finally:
            self._timer.record(scope, status, started)

    async def _answer(self, request: Request, error: Exception) -> Response:
        """The app's answer to `error`; raises it again if the app has no handler for it."""
        handlers = self._handlers_of.exception_handlers
        kind = next((k for k in type(error).__mro__ if k in handlers), None)
        if kind is None:
            raise error
        answer = handlers[kind](request, error)
        return await answer if inspect.isawaitable(answer) else answer


class HotRoutedApp(FastAPI):
    """A FastAPI app that serves its `hot_routes` at its door, before its middleware stack
    and routing: for a payment, the layers of middleware (each wrapping `send`) and
    FastAPI's own cost about a tenth of the event loop's time."""

    hot_routes: HotRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot_routes = self.hot_routes
        # A mounted app (a root_path) goes the usual way: hot paths are matched as written.
        if hot_routes is not None and scope["type"] == "http" and not self.root_path:
            route = hot_routes.route_for(scope)
            if route is not None:
                scope["app"] = self  # as Starlette sets it, for `request.app`
                await hot_routes.serve(route, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


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
