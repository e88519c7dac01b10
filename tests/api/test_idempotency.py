"""Idempotency-Key: the first answer again for the same request, 409 for another one, kept
in the database across restarts, and never a second payment under concurrency."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from uuid import uuid4

import pytest

from rollon.api.idempotency import REPLAYED_HEADER, KeptAnswer, KeptInBatch, _Answering
from rollon.api.problems import ProblemError, problem_for_result
from rollon.api.routes.transfers import _TransferAnswer
from tests.api.conftest import Api, bearer, make_settings, started

pytestmark = pytest.mark.anyio


@pytest.fixture
def api(module_api: Api) -> Api:
    """These tests make their own accounts and tokens: one app per module serves them all."""
    return module_api


async def _setup(api: Api, balance: int = 10_000) -> tuple[dict[str, str], dict[str, object]]:
    alice, token = await api.holder(balance=balance)
    bob, _ = await api.holder()
    return token, {"source_id": str(alice), "destination_id": str(bob), "amount": 300}


async def test_same_key_same_body_gets_the_first_answer(api: Api) -> None:
    token, body = await _setup(api)
    headers = {**token, "Idempotency-Key": "pay-bread-1"}
    first = await api.client.post("/v1/transfers", json=body, headers=headers)
    again = await api.client.post("/v1/transfers", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    assert REPLAYED_HEADER.lower() not in first.headers
    assert again.headers[REPLAYED_HEADER] == "true"
    assert await api.balance(body["destination_id"]) == 300  # type: ignore[arg-type]


async def test_same_key_other_body_is_409(api: Api) -> None:
    token, body = await _setup(api)
    headers = {**token, "Idempotency-Key": "k"}
    assert (await api.client.post("/v1/transfers", json=body, headers=headers)).is_success
    other = await api.client.post("/v1/transfers", json={**body, "amount": 301}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    with_id = {**body, "id": str(uuid4())}
    other = await api.client.post("/v1/transfers", json=with_id, headers=headers)
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    assert await api.balance(body["destination_id"]) == 300  # type: ignore[arg-type]


async def test_same_key_on_another_endpoint_is_409(api: Api) -> None:
    token, body = await _setup(api)
    headers = {**api.admin, "Idempotency-Key": "shared"}
    issuance = {"account_id": body["source_id"], "amount": 1, "euro_reference": "r"}
    assert (await api.client.post("/v1/issuances", json=issuance, headers=headers)).is_success
    # Keys belong to one token: the member's "shared" key is its own.
    member = {**token, "Idempotency-Key": "shared"}
    assert (await api.client.post("/v1/transfers", json=body, headers=member)).is_success


async def test_a_refusal_is_kept_and_replayed(api: Api) -> None:
    token, body = await _setup(api, balance=100)
    headers = {**token, "Idempotency-Key": "too-much"}
    first = await api.client.post("/v1/transfers", json=body, headers=headers)
    assert (first.status_code, first.json()["code"]) == (422, "insufficient_funds")
    await api.issue(body["source_id"], 1_000)  # type: ignore[arg-type]
    again = await api.client.post("/v1/transfers", json=body, headers=headers)
    assert again.status_code == 422
    assert again.content == first.content
    assert again.headers["content-type"] == "application/problem+json"
    assert again.headers[REPLAYED_HEADER] == "true"
    assert await api.balance(body["destination_id"]) == 0  # type: ignore[arg-type]


async def test_validation_errors_are_not_kept(api: Api) -> None:
    token, body = await _setup(api)
    headers = {**token, "Idempotency-Key": "fix-and-retry"}
    bad = await api.client.post("/v1/transfers", json={**body, "amount": 1.5}, headers=headers)
    assert bad.status_code == 422
    good = await api.client.post("/v1/transfers", json=body, headers=headers)
    assert good.status_code == 201


async def test_the_key_alone_makes_the_transfer_id(api: Api) -> None:
    token, body = await _setup(api)
    headers = {**token, "Idempotency-Key": "derived"}
    first = await api.client.post("/v1/transfers", json=body, headers=headers)
    again = await api.client.post("/v1/transfers", json=body, headers=headers)
    assert first.json()["id"] == again.json()["id"]


@pytest.mark.parametrize("key", [b"", b"x" * 256, "clé".encode(), b"tab\there"])
async def test_invalid_keys_are_400(api: Api, key: bytes) -> None:
    token, body = await _setup(api)
    headers = {k.encode(): v.encode() for k, v in token.items()}
    headers[b"Idempotency-Key"] = key
    answer = await api.client.post("/v1/transfers", json=body, headers=headers)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_idempotency_key")


async def test_concurrent_retries_pay_once_and_agree(api: Api) -> None:
    token, body = await _setup(api)
    headers = {**token, "Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(api.client.post("/v1/transfers", json=body, headers=headers) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.content for a in answers}) == 1
    assert await api.balance(body["destination_id"]) == 300  # type: ignore[arg-type]


async def test_concurrent_different_bodies_under_one_key_move_money_once(api: Api) -> None:
    token, body = await _setup(api)
    headers = {**token, "Idempotency-Key": "race"}
    bodies = [{**body, "amount": 300 + n} for n in range(10)]
    answers = await asyncio.gather(
        *(api.client.post("/v1/transfers", json=b, headers=headers) for b in bodies)
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 9
    received = await api.balance(body["destination_id"])  # type: ignore[arg-type]
    winner = next(a for a in answers if a.status_code == 201).json()
    assert received == winner["amount"]


async def test_keys_survive_a_restart(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path)
    async for api in started(settings):
        token, body = await _setup(api)
        headers = {**token, "Idempotency-Key": "before-restart"}
        first = await api.client.post("/v1/transfers", json=body, headers=headers)
        assert first.status_code == 201
    async for api in started(settings):
        again = await api.client.post("/v1/transfers", json=body, headers=headers)
        assert again.status_code == 201
        assert again.content == first.content
        assert again.headers[REPLAYED_HEADER] == "true"
        other = await api.client.post("/v1/transfers", json={**body, "amount": 1}, headers=headers)
        assert other.status_code == 409
        assert await api.balance(body["destination_id"]) == 300  # type: ignore[arg-type]


async def test_issuance_key_makes_the_operation_id(api: Api) -> None:
    alice, _ = await api.holder()
    body = {"account_id": str(alice), "amount": 500, "euro_reference": "till-7"}
    headers = {**api.admin, "Idempotency-Key": "issue-7"}
    first = await api.client.post("/v1/issuances", json=body, headers=headers)
    again = await api.client.post("/v1/issuances", json=body, headers=headers)
    assert first.content == again.content
    assert await api.balance(alice) == 500
    # Another token's same key is another operation.
    other_admin = bearer(
        (
            await api.client.post(
                "/v1/tokens", json={"role": "admin", "name": "second admin"}, headers=api.admin
            )
        ).json()["token"]
    )
    third = await api.client.post(
        "/v1/issuances", json=body, headers={**other_admin, "Idempotency-Key": "issue-7"}
    )
    assert third.json()["id"] != first.json()["id"]
    assert await api.balance(alice) == 1_000


def test_a_keyed_ticket_crosses_to_the_writer_process_and_back_whole() -> None:
    """A keyed payment's ticket is pickled to the ledger's writer process and back: what it
    carries out (key, fingerprint, how to answer) and what it brings back (the answer kept,
    whose it is, or the refusal) must survive."""
    from rollon.ledger.accounts import LedgerCode
    from rollon.ledger.transfers import Result, Transfer, TransferCode

    transfer = Transfer(uuid4(), uuid4(), uuid4(), 1_250, LedgerCode.RLN, TransferCode.TRANSFER)
    answer_of = _Answering(None, _TransferAnswer(transfer), "/v1/transfers")
    sent = KeptInBatch((uuid4(), "pay-bread-1"), b"\x01" * 32, answer_of)
    out = pickle.loads(pickle.dumps(sent))
    assert (out.identity, out.request_sha256) == (sent.identity, sent.request_sha256)
    assert out.answer_of([Result.OK]) == answer_of([Result.OK])  # the same 201, byte for byte
    out.kept, out.kept_own = KeptAnswer(out.request_sha256, out.answer_of([Result.OK])), True
    out.failure = problem_for_result(Result.INSUFFICIENT_FUNDS, "cannot pay")
    back = pickle.loads(pickle.dumps(out))
    assert (back.kept, back.kept_own) == (out.kept, True)
    assert isinstance(back.failure, ProblemError)
    assert (back.failure.status_code, back.failure.code) == (422, "insufficient_funds")
    # Settled, it comes back without its answerer and the transfer in it (which pickles its
    # id as bytes; the answer's JSON names it as text).
    assert transfer.id.bytes in pickle.dumps(sent)
    assert transfer.id.bytes not in pickle.dumps(out)
    with pytest.raises(AssertionError, match="asked again"):
        back.answer_of([Result.OK])
