"""Bearer tokens: hashed at rest, revocable, checked on every call; failed logins limited."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from rollon.api.login_limiter import FailedLoginLimiter
from rollon.api.schema import api_tokens
from rollon.api.token_store import Role, revoke_token
from tests.api.conftest import Api, bearer, make_settings, started

pytestmark = pytest.mark.anyio


@pytest.fixture
def api(module_api: Api) -> Api:
    """These tests make their own accounts and tokens: one app per module serves them all."""
    return module_api


async def test_token_is_shown_once_and_stored_only_as_a_hash(api: Api) -> None:
    alice, _ = await api.holder()
    answer = await api.client.post(
        "/v1/tokens",
        json={"role": "member", "account_id": str(alice), "name": "Alice's phone"},
        headers=api.admin,
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    secret = created["token"]
    assert secret.startswith("rln_") and len(secret) >= 40
    with api.state.engine.connect() as connection:
        rows = connection.execute(sa.select(api_tokens)).all()
    assert not any(secret in str(tuple(row)) for row in rows)
    (row,) = [r for r in rows if str(r.id) == created["id"]]
    assert bytes(row.secret_sha256) == hashlib.sha256(secret.encode()).digest()
    me = await api.client.get("/v1/tokens/self", headers=bearer(secret))
    assert me.json() == {
        "token_id": created["id"],
        "role": "member",
        "account_id": str(alice),
        "name": "Alice's phone",
    }


async def test_tokens_are_random(api: Api) -> None:
    secrets = {
        (
            await api.client.post(
                "/v1/tokens", json={"role": "auditor", "name": "a"}, headers=api.admin
            )
        ).json()["token"]
        for _ in range(5)
    }
    assert len(secrets) == 5


@pytest.mark.parametrize(
    ("role", "account", "status", "code"),
    [
        ("member", None, 422, "account_required"),
        ("admin", "member", 422, "account_not_allowed"),
        ("auditor", "member", 422, "account_not_allowed"),
        ("merchant", "member", 422, "account_kind_mismatch"),
        ("operator", "member", 422, "account_kind_mismatch"),
        ("member", "unknown", 404, "account_not_found"),
        ("root", None, 422, "validation_failed"),
    ],
)
async def test_token_requests_that_make_no_sense(
    api: Api, role: str, account: str | None, status: int, code: str
) -> None:
    body: dict[str, object] = {"role": role, "name": "x"}
    if account == "member":
        body["account_id"] = str(await api.open_account())
    elif account == "unknown":
        body["account_id"] = str(uuid4())
    answer = await api.client.post("/v1/tokens", json=body, headers=api.admin)
    assert (answer.status_code, answer.json()["code"]) == (status, code)


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer-rln_x", "Token rln_abc"],
)
async def test_missing_or_malformed_authorization_is_401(api: Api, authorization: str) -> None:
    answer = await api.client.get("/v1/tokens/self", headers={"Authorization": authorization})
    assert (answer.status_code, answer.json()["code"]) == (401, "unauthorized")
    assert answer.headers["www-authenticate"] == 'Bearer realm="rollon"'


@pytest.mark.parametrize("secret", ["rln_wrong", "wrong", "rln_" + "x" * 500])
async def test_unknown_token_is_401(api: Api, secret: str) -> None:
    answer = await api.client.get("/v1/tokens/self", headers=bearer(secret))
    assert (answer.status_code, answer.json()["code"]) == (401, "token_invalid")


async def test_revoked_token_stops_working_at_once(api: Api) -> None:
    created = (
        await api.client.post(
            "/v1/tokens", json={"role": "auditor", "name": "a"}, headers=api.admin
        )
    ).json()
    token = bearer(created["token"])
    assert (await api.client.get("/v1/tokens/self", headers=token)).status_code == 200
    revoked = await api.client.delete(f"/v1/tokens/{created['id']}", headers=api.admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    answer = await api.client.get("/v1/tokens/self", headers=token)
    assert (answer.status_code, answer.json()["code"]) == (401, "token_invalid")
    again = await api.client.delete(f"/v1/tokens/{created['id']}", headers=api.admin)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_a_token_may_revoke_itself(api: Api) -> None:
    _, token = await api.holder()
    me = (await api.client.get("/v1/tokens/self", headers=token)).json()
    answer = await api.client.delete(f"/v1/tokens/{me['token_id']}", headers=token)
    assert answer.status_code == 200
    assert (await api.client.get("/v1/tokens/self", headers=token)).status_code == 401


async def test_revoking_an_unknown_token_is_404(api: Api) -> None:
    answer = await api.client.delete(f"/v1/tokens/{uuid4()}", headers=api.admin)
    assert (answer.status_code, answer.json()["code"]) == (404, "token_not_found")


async def test_revocation_elsewhere_takes_effect_within_the_cache_time(
    db_url: str, tmp_path: Path
) -> None:
    async for api in started(make_settings(db_url, tmp_path, token_cache_ttl_s=0.2)):
        created = (
            await api.client.post(
                "/v1/tokens", json={"role": "auditor", "name": "a"}, headers=api.admin
            )
        ).json()
        token = bearer(created["token"])
        assert (await api.client.get("/v1/tokens/self", headers=token)).status_code == 200
        # As `rollon token revoke` or another server process would: straight in the database.
        revoke_token(api.state.engine, UUID(created["id"]))
        await asyncio.sleep(0.3)
        assert (await api.client.get("/v1/tokens/self", headers=token)).status_code == 401


async def test_failed_logins_are_rate_limited_per_address(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, login_failures_allowed=3, login_failure_window_s=0.5)
    async for api in started(settings):
        good = api.token(Role.AUDITOR)
        for _ in range(3):
            answer = await api.client.get("/v1/tokens/self", headers=bearer("rln_guess"))
            assert answer.status_code == 401
        limited = await api.client.get("/v1/tokens/self", headers=bearer("rln_guess"))
        assert (limited.status_code, limited.json()["code"]) == (429, "too_many_failed_logins")
        assert int(limited.headers["retry-after"]) >= 1
        # Even a valid token waits: a guesser must not learn which guess was right.
        assert (await api.client.get("/v1/tokens/self", headers=good)).status_code == 429
        # No token at all is not a failed login, and public endpoints stay open.
        assert (await api.client.get("/v1/healthz")).status_code == 200
        await asyncio.sleep(0.6)
        assert (await api.client.get("/v1/tokens/self", headers=good)).status_code == 200
        failures = api.state.metrics.registry.get_sample_value("rollon_failed_logins_total")
        assert failures == 3


def test_limiter_counts_within_a_sliding_window() -> None:
    now = [0.0]
    limiter = FailedLoginLimiter(2, 10.0, clock_s=lambda: now[0])
    limiter.record_failure("a")
    now[0] = 5.0
    limiter.record_failure("a")
    assert limiter.retry_after_s("a") == pytest.approx(5.0)
    assert limiter.retry_after_s("b") is None
    now[0] = 10.5  # the first failure left the window
    assert limiter.retry_after_s("a") is None
    limiter.record_failure("a")
    assert limiter.retry_after_s("a") == pytest.approx(4.5)


def test_limiter_memory_is_bounded() -> None:
    limiter = FailedLoginLimiter(3, 60.0, max_clients=100)
    for n in range(10_000):
        limiter.record_failure(f"10.0.{n // 256}.{n % 256}")
        limiter.record_failure("attacker")
    assert limiter.tracked_clients <= 100
    assert limiter.retry_after_s("attacker") is not None  # the busiest stays tracked
