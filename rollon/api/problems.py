"""Errors as RFC 9457 problem details (`application/problem+json`) with a stable `code`.

For route authors:
- raise `ProblemError(status, code, title, detail)` anywhere in a route or dependency; the
  client gets `{"type", "title", "status", "detail", "code", "instance"}` with that status.
- `problem_for_result(result, detail)` turns a ledger `Result` into the right ProblemError
  (every Result has its status in `RESULT_STATUS`; a test checks none is missing).
- declare `responses=PROBLEM_RESPONSES` on a route (or router) so /docs and the OpenAPI
  schema list the problem answers.

Codes that are not ledger results: `malformed_json`, `validation_failed`,
`amount_must_be_integer`, `amount_must_be_positive`, `amount_too_large`, `body_too_large`,
`unsupported_media_type`, `not_found`, `method_not_allowed`, `unauthorized`,
`token_invalid`, `forbidden`, `too_many_failed_logins`, `idempotency_key_reused`,
`invalid_idempotency_key`, `ledger_overloaded`, `storage_unavailable`, `ledger_halted`,
`internal_error` (a bug: logged with its traceback, answered without it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from rollon.ledger.hot_path import LedgerHalted, LedgerOverloaded, StorageUnavailable
from rollon.ledger.transfers import Result

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_S = 1
MAX_REPORTED_FIELD_ERRORS = 20  # a huge invalid body must not make a huge answer


class FieldError(BaseModel):
    """One invalid part of a request."""

    location: list[str | int] = Field(examples=[["body", "amount"]])
    message: str = Field(examples=["Input should be a valid integer"])
    type: str = Field(examples=["int_type"])


class Problem(BaseModel):
    """RFC 9457 problem details. Branch on `code`; the other fields are for people."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:rollon:problem:insufficient_funds",
                    "title": "Insufficient funds",
                    "status": 422,
                    "detail": "the source account cannot pay 1250 centimes",
                    "code": "insufficient_funds",
                    "instance": "/v1/transfers",
                }
            ]
        }
    )

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(StarletteHTTPException):
    """Raise to answer with a problem; `code` is the stable machine-readable reason."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[FieldError] = (),
    ) -> None:
        assert 400 <= status <= 599, status
        super().__init__(status_code=status, detail=detail, headers=dict(headers or {}))
        self.code = code
        self.title = title
        self.errors = list(errors)


def problem_body(
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None,
    errors: Sequence[FieldError] = (),
) -> bytes:
    problem = Problem(
        type=f"urn:rollon:problem:{code}",
        title=title,
        status=status,
        detail=detail,
        code=code,
        instance=instance,
        errors=list(errors) or None,
    )
    return problem.model_dump_json(exclude_none=True).encode()


def problem_response(error: ProblemError, instance: str | None) -> Response:
    body = problem_body(
        error.status_code, error.code, error.title, error.detail, instance, error.errors
    )
    return Response(
        body, status_code=error.status_code, headers=error.headers, media_type=PROBLEM_MEDIA_TYPE
    )


# -- ledger results ---------------------------------------------------------------------------
RESULT_STATUS: dict[Result, int] = {
    Result.EXISTS_WITH_DIFFERENT_FIELDS: 409,
    Result.INSUFFICIENT_FUNDS: 422,
    Result.ACCOUNT_NOT_FOUND: 404,
    Result.ACCOUNT_CLOSED: 409,
    Result.LEDGER_MISMATCH: 422,
    Result.AMOUNT_MUST_BE_POSITIVE: 422,
    Result.AMOUNT_TOO_LARGE: 422,
    Result.SAME_ACCOUNT: 422,
    Result.LINKED_TRANSFER_FAILED: 422,
    Result.LINKED_CHAIN_OPEN: 422,
    Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE: 422,
    Result.PENDING_ID_REQUIRED: 422,
    Result.PENDING_ID_NOT_ALLOWED: 422,
    Result.TIMEOUT_NOT_ALLOWED: 422,
    Result.INVALID_TIMEOUT: 422,
    Result.INVALID_EVENT_TIME: 422,
    Result.MEMO_TOO_LONG: 422,
    Result.PENDING_NOT_FOUND: 404,
    Result.PENDING_EXPIRED: 409,
    Result.PENDING_ALREADY_POSTED: 409,
    Result.PENDING_ALREADY_VOIDED: 409,
    Result.PENDING_MISMATCH: 422,
    Result.EXCEEDS_PENDING_AMOUNT: 422,
    Result.OVERFLOW: 422,
    Result.ID_ALREADY_FAILED: 409,
}
SUCCESSES = frozenset({Result.OK, Result.EXISTS})

_RESULT_TITLES: dict[Result, str] = {
    Result.EXISTS_WITH_DIFFERENT_FIELDS: "Id already used for something else",
    Result.INSUFFICIENT_FUNDS: "Insufficient funds",
    Result.ACCOUNT_NOT_FOUND: "Account not found",
    Result.ACCOUNT_CLOSED: "Account closed",
    Result.ID_ALREADY_FAILED: "Id already failed",
}


def problem_for_result(result: Result, detail: str) -> ProblemError:
    """The problem a client gets for a ledger refusal; its code is the result's own name."""
    assert result not in SUCCESSES, result
    title = _RESULT_TITLES.get(result, result.value.replace("_", " ").capitalize())
    return ProblemError(RESULT_STATUS[result], result.value, title, detail)


# -- handlers ---------------------------------------------------------------------------------
_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("body_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}

_AMOUNT_ERRORS = {
    "int_type": "amount_must_be_integer",
    "int_parsing": "amount_must_be_integer",
    "int_from_float": "amount_must_be_integer",
    "greater_than": "amount_must_be_positive",
    "greater_than_equal": "amount_must_be_positive",
    "less_than_equal": "amount_too_large",
}


def _is_amount(location: Sequence[Any]) -> bool:
    name = location[-1] if location else ""
    return isinstance(name, str) and (name == "amount" or name.endswith("_amount"))


def validation_problem(errors: Sequence[Any]) -> ProblemError:
    """Classify pydantic's errors: malformed JSON (400), a bad amount (422 with the amount's
    own code), or any other invalid field (422 validation_failed)."""
    details = [
        FieldError(
            location=[str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
            message=str(e.get("msg", "")),
            type=str(e.get("type", "")),
        )
        for e in errors[:MAX_REPORTED_FIELD_ERRORS]
    ]
    if any(e.type == "json_invalid" for e in details):
        return ProblemError(
            400, "malformed_json", "Malformed JSON", "the body is not valid JSON", errors=details
        )
    for e in details:
        code = _AMOUNT_ERRORS.get(e.type)
        if code is not None and _is_amount(e.location):
            detail = {
                "amount_must_be_integer": "amounts are whole numbers of centimes, as JSON "
                "integers (1250 = 12,50 RolloN): no decimals, no strings",
                "amount_must_be_positive": "an amount is at least one centime",
                "amount_too_large": "the amount is larger than any account can hold",
            }[code]
            return ProblemError(422, code, "Invalid amount", detail, errors=details)
    first = details[0] if details else None
    where = ".".join(str(p) for p in first.location) if first else "request"
    detail = f"{where}: {first.message}" if first else "the request is invalid"
    return ProblemError(422, "validation_failed", "Invalid request", detail, errors=details)


_UNAVAILABLE: dict[type[Exception], tuple[str, str]] = {
    LedgerOverloaded: ("ledger_overloaded", "too many payments are waiting; retry"),
    StorageUnavailable: ("storage_unavailable", "the database did not commit; retry"),
    LedgerHalted: ("ledger_halted", "the ledger stopped after an inconsistency"),
}


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path. (The router alone names only the first
    route whose path matched, and routes often share a path: GET and POST /v1/merchants.)"""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method, "fastapi": {}}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def not_json(request: Request) -> bool:
    """True when the request names a body type that is not JSON."""
    content_type = request.headers.get("content-type")
    if not content_type:
        return False
    media_type = content_type.split(";")[0].strip().lower()
    return not (media_type == "application/json" or media_type.endswith("+json"))


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error the app can raise answer as problem+json."""

    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, ProblemError)
        return problem_response(error, request.url.path)

    async def on_http(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        code, title = _HTTP_CODES.get(error.status_code, (f"http_{error.status_code}", "Error"))
        detail = error.detail if isinstance(error.detail, str) else title
        if error.status_code == 404 and detail == "Not Found":
            detail = f"no such resource: {request.url.path}"
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
            headers["Allow"] = ", ".join(_allowed_methods(request))
        problem = ProblemError(error.status_code, code, title, detail, headers=headers)
        return problem_response(problem, request.url.path)

    async def on_validation(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = error.errors()
        if not_json(request) and any(tuple(e.get("loc", ())) == ("body",) for e in errors):
            problem = ProblemError(
                415,
                "unsupported_media_type",
                "Unsupported media type",
                "send the body as JSON, with Content-Type: application/json",
            )
            return problem_response(problem, request.url.path)
        return problem_response(validation_problem(errors), request.url.path)

    async def on_unavailable(request: Request, error: Exception) -> Response:
        code, detail = _UNAVAILABLE[type(error)]
        log.warning("answering 503 %s: %s", code, error)
        problem = ProblemError(
            503,
            code,
            "Service unavailable",
            detail,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
        return problem_response(problem, request.url.path)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    for unavailable in _UNAVAILABLE:
        app.add_exception_handler(unavailable, on_unavailable)


def internal_error_body(instance: str) -> bytes:
    """The answer to a bug: no traceback, no exception text (it may hold secrets)."""
    return problem_body(
        500,
        "internal_error",
        "Internal error",
        "the service failed unexpectedly; the error is logged",
        instance,
    )


# -- OpenAPI --------------------------------------------------------------------------------
def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("Malformed JSON or header (`malformed_json`, `invalid_idempotency_key`)"),
    401: _problem("Missing, unknown or revoked bearer token (`unauthorized`, `token_invalid`)"),
    403: _problem("The token's role or account may not do this (`forbidden`)"),
    413: _problem("Body larger than the limit (`body_too_large`)"),
    415: _problem("Body is not JSON (`unsupported_media_type`)"),
    422: _problem("Invalid field (`validation_failed`, `amount_must_be_integer`, …)"),
    429: _problem("Too many failed logins from this address (`too_many_failed_logins`)"),
    503: _problem("Ledger overloaded or database unavailable: retry (`ledger_overloaded`, …)"),
}


def problem_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Move problem answers (status >= 400) from application/json to application/problem+json
    in a generated OpenAPI schema, since that is the media type they are sent with."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    return schema
