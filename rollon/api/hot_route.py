"""The hottest routes (paying at a till) read their own body, token and key.

FastAPI resolves a route's dependencies and parameters generically, and for a payment that
costs more than checking the token and the key themselves. So `POST /v1/transfers`,
`POST /v1/payments` and `POST /v1/payment-requests` take only the `Request`, then:

    @router.post("/things", ..., openapi_extra=hot_route_openapi(ThingIn))
    async def create_thing(request: Request) -> Response:
        principal, body, idempotency = await read_call(request, _GATE, ThingIn)

`read_call` checks the token first (401, 429, 403 as the dependency would), then reads the
body (400, 415, 422 as FastAPI would), then the Idempotency-Key (400 if malformed).

They answer every refusal with the same problem codes as the other routes, and their
OpenAPI operation says what the dependencies would have said: the bearer token, the
Idempotency-Key header and the JSON body.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from rollon.api.auth import BEARER_SECURITY, Principal, RoleGate
from rollon.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, Idempotency, idempotency_of
from rollon.api.problems import ProblemError, not_json

Model = TypeVar("Model", bound=BaseModel)


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
