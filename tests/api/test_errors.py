"""Every kind of bad request gets a problem+json answer with a stable code: never a 500,
never a traceback, never a half-applied change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from rollon.api.problems import RESULT_STATUS, SUCCESSES, problem_for_result
from rollon.ledger.transfers import Result
from rollon.ledger.writer_process import WriterProcess
from tests.api.conftest import Api

pytestmark = pytest.mark.anyio


@pytest.fixture
def api(module_api: Api) -> Api:
    """These tests make their own accounts and tokens: one app per module serves them all."""
    return module_api


def test_every_ledger_result_has_an_http_status() -> None:
    for result in Result:
        if result in SUCCESSES:
            continue
        problem = problem_for_result(result, "detail")
        assert problem.status_code == RESULT_STATUS[result]
        assert problem.code == result.value
        assert 400 <= problem.status_code < 500


async def _pay(api: Api) -> tuple[dict[str, str], dict[str, object]]:
    alice, token = await api.holder(balance=1_000)
    bob, _ = await api.holder()
    return token, {"source_id": str(alice), "destination_id": str(bob), "amount": 100}


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (12.5, "amount_must_be_integer"),
        (12.0, "amount_must_be_integer"),
        ("12", "amount_must_be_integer"),
        ("12,50", "amount_must_be_integer"),
        (True, "amount_must_be_integer"),
        (None, "amount_must_be_integer"),
        ([100], "amount_must_be_integer"),
        (0, "amount_must_be_positive"),
        (-1, "amount_must_be_positive"),
        (2**63, "amount_too_large"),
        (10**30, "amount_too_large"),
    ],
)
async def test_amounts_are_strict_integers(api: Api, amount: object, code: str) -> None:
    token, body = await _pay(api)
    answer = await api.client.post("/v1/transfers", json={**body, "amount": amount}, headers=token)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == code
    assert problem["errors"][0]["location"] == ["body", "amount"]


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"amount": 12', b"not json", b"\xff\xfe", b'{"a":1}{"b":2}', b"[1,]"],
)
async def test_malformed_json_is_400(api: Api, raw: bytes) -> None:
    token, _ = await _pay(api)
    answer = await api.client.post(
        "/v1/transfers", content=raw, headers={**token, "content-type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "malformed_json"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e2", b"1.0e3"])
async def test_non_integer_number_literals_are_refused(api: Api, literal: bytes) -> None:
    token, body = await _pay(api)
    raw = (
        f'{{"source_id": "{body["source_id"]}", "destination_id": "{body["destination_id"]}", '
        '"amount": '
    ).encode()
    answer = await api.client.post(
        "/v1/transfers",
        content=raw + literal + b"}",
        headers={**token, "content-type": "application/json"},
    )
    assert (answer.status_code, answer.json()["code"]) == (422, "amount_must_be_integer")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source_id": "alice"}, "source_id"),
        ({"destination_id": 42}, "destination_id"),
        ({"memo": 7}, "memo"),
        ({"memo": "x" * 121}, "memo"),
        ({"id": "not-a-uuid"}, "id"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_wrong_types_and_unknown_fields_are_422(
    api: Api, change: dict[str, object], field: str
) -> None:
    token, body = await _pay(api)
    answer = await api.client.post("/v1/transfers", json={**body, **change}, headers=token)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "validation_failed"
    assert problem["errors"][0]["location"][-1] == field


@pytest.mark.parametrize("body", [[], "a string", 12, None, {}])
async def test_body_of_the_wrong_shape_is_422(api: Api, body: object) -> None:
    token, _ = await _pay(api)
    answer = await api.client.post("/v1/transfers", json=body, headers=token)
    assert (answer.status_code, answer.json()["code"]) == (422, "validation_failed")


async def test_missing_body_is_422(api: Api) -> None:
    token, _ = await _pay(api)
    answer = await api.client.post("/v1/transfers", headers=token)
    assert (answer.status_code, answer.json()["code"]) == (422, "validation_failed")


async def test_body_that_is_not_json_is_415(api: Api) -> None:
    token, _ = await _pay(api)
    answer = await api.client.post(
        "/v1/transfers", content=b"amount=100", headers={**token, "content-type": "text/plain"}
    )
    assert (answer.status_code, answer.json()["code"]) == (415, "unsupported_media_type")


async def test_oversize_body_is_413_by_content_length(api: Api) -> None:
    token, body = await _pay(api)
    huge = {**body, "memo": "x" * 100_000}
    answer = await api.client.post("/v1/transfers", json=huge, headers=token)
    assert (answer.status_code, answer.json()["code"]) == (413, "body_too_large")


async def test_oversize_chunked_body_is_413(api: Api) -> None:
    token, _ = await _pay(api)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1_000

    answer = await api.client.post(
        "/v1/transfers", content=chunks(), headers={**token, "content-type": "application/json"}
    )
    assert (answer.status_code, answer.json()["code"]) == (413, "body_too_large")


async def test_chunked_body_within_the_limit_is_read(api: Api) -> None:
    token, body = await _pay(api)
    raw = (
        f'{{"source_id": "{body["source_id"]}", "destination_id": "{body["destination_id"]}", '
        '"amount": 100}'
    ).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 10):
            yield raw[start : start + 10]

    answer = await api.client.post(
        "/v1/transfers", content=chunks(), headers={**token, "content-type": "application/json"}
    )
    assert answer.status_code == 201, answer.text


async def test_unknown_route_is_404(api: Api) -> None:
    answer = await api.client.get("/v1/nothing-here")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "not_found"


@pytest.mark.parametrize(("method", "path"), [("PUT", "/v1/transfers"), ("DELETE", "/v1/accounts")])
async def test_wrong_method_is_405(api: Api, method: str, path: str) -> None:
    answer = await api.client.request(method, path, headers=api.admin)
    assert (answer.status_code, answer.json()["code"]) == (405, "method_not_allowed")


@pytest.mark.parametrize("cursor", ["abc", "0", "-3", "99999999999999999999999"])
async def test_bad_history_cursor_is_422(api: Api, cursor: str) -> None:
    alice, token = await api.holder()
    answer = await api.client.get(
        f"/v1/accounts/{alice}/transfers", params={"cursor": cursor}, headers=token
    )
    assert (answer.status_code, answer.json()["code"]) == (422, "validation_failed")


@pytest.mark.parametrize("limit", ["0", "201", "ten"])
async def test_bad_history_limit_is_422(api: Api, limit: str) -> None:
    alice, token = await api.holder()
    answer = await api.client.get(
        f"/v1/accounts/{alice}/transfers", params={"limit": limit}, headers=token
    )
    assert (answer.status_code, answer.json()["code"]) == (422, "validation_failed")


async def test_a_bug_is_a_500_problem_without_traceback(api: Api) -> None:
    async def broken() -> None:
        raise RuntimeError("secret detail of a bug")

    api.app.add_api_route("/v1/test-only-broken", broken)
    answer = await api.client.get("/v1/test-only-broken")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "internal_error"
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert api.internal_errors() == 1
    api.state.metrics.internal_errors._value.set(0)  # the fixture checks no *other* 500 happened


async def test_overloaded_ledger_is_503_with_retry_after(api: Api) -> None:

    token, body = await _pay(api)

    writer = api.state.ledger.hot_path
    assert isinstance(writer, WriterProcess)
    room = writer._max_queued
    writer._max_queued = 0  # the queue is full: the next submission is turned away
    try:
        answer = await api.client.post(
            "/v1/transfers", json=body, headers={**token, "Idempotency-Key": str(uuid4())}
        )
    finally:
        writer._max_queued = room
    assert (answer.status_code, answer.json()["code"]) == (503, "ledger_overloaded")
    assert answer.headers["retry-after"] == "1"
