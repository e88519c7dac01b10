"""The authorization matrix: every endpoint, every role (and no token), exactly as allowed.

A member moves only its own money, an operator only issues, an auditor only reads, a
merchant only touches its own account; an admin runs the association but spends nobody's
money.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest

from rollon.api.app import create_app
from rollon.api.token_store import Role, create_token
from tests.api.conftest import Api, make_settings

pytestmark = pytest.mark.anyio

CALLERS = ("anonymous", "admin", "operator", "merchant", "member", "other_member", "auditor")


@dataclass
class World:
    api: Api
    alice: UUID  # the member
    shop: UUID  # the merchant
    counter: UUID  # the operator's exchange point
    headers: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
async def world(module_api: Api) -> World:
    """Accounts and one token per caller, made once per app."""
    api = module_api
    alice, member = await api.holder(balance=1_000_000)
    _, other_member = await api.holder(balance=1_000)
    shop, merchant = await api.holder("merchant")
    counter, operator = await api.holder("exchange_point", role=Role.OPERATOR)
    headers = {
        "anonymous": {},
        "admin": api.admin,
        "operator": operator,
        "merchant": merchant,
        "member": member,
        "other_member": other_member,
        "auditor": api.token(Role.AUDITOR),
    }
    return World(api, alice, shop, counter, headers)


Call = Callable[[World, dict[str, str]], Awaitable[httpx.Response]]


def _victim_token(w: World) -> UUID:
    record, _ = create_token(w.api.state.engine, Role.AUDITOR, None, "to revoke")
    return record.id


ENDPOINTS: dict[str, tuple[Call, int, frozenset[str]]] = {
    # name: (call, status when allowed, callers allowed)
    "POST /v1/tokens": (
        lambda w, h: w.api.client.post(
            "/v1/tokens", json={"role": "auditor", "name": "new auditor"}, headers=h
        ),
        201,
        frozenset({"admin"}),
    ),
    "DELETE /v1/tokens/{other}": (
        lambda w, h: w.api.client.delete(f"/v1/tokens/{_victim_token(w)}", headers=h),
        200,
        frozenset({"admin"}),
    ),
    "GET /v1/tokens/self": (
        lambda w, h: w.api.client.get("/v1/tokens/self", headers=h),
        200,
        frozenset(CALLERS) - {"anonymous"},
    ),
    "POST /v1/accounts": (
        lambda w, h: w.api.client.post(
            "/v1/accounts", json={"kind": "member", "name": "New member"}, headers=h
        ),
        201,
        frozenset({"admin"}),
    ),
    "GET /v1/accounts/{member}": (
        lambda w, h: w.api.client.get(f"/v1/accounts/{w.alice}", headers=h),
        200,
        frozenset({"admin", "auditor", "member"}),
    ),
    "GET /v1/accounts/{member}/transfers": (
        lambda w, h: w.api.client.get(f"/v1/accounts/{w.alice}/transfers", headers=h),
        200,
        frozenset({"admin", "auditor", "member"}),
    ),
    "GET /v1/accounts/{merchant}": (
        lambda w, h: w.api.client.get(f"/v1/accounts/{w.shop}", headers=h),
        200,
        frozenset({"admin", "auditor", "merchant"}),
    ),
    "GET /v1/accounts/{merchant}/transfers": (
        lambda w, h: w.api.client.get(f"/v1/accounts/{w.shop}/transfers", headers=h),
        200,
        frozenset({"admin", "auditor", "merchant"}),
    ),
    "GET /v1/accounts/{exchange_point}": (
        lambda w, h: w.api.client.get(f"/v1/accounts/{w.counter}", headers=h),
        200,
        frozenset({"admin", "auditor", "operator"}),
    ),
    "POST /v1/issuances": (
        lambda w, h: w.api.client.post(
            "/v1/issuances",
            json={"account_id": str(w.alice), "amount": 100, "euro_reference": "matrix"},
            headers=h,
        ),
        201,
        frozenset({"admin", "operator"}),
    ),
    "POST /v1/transfers from the member": (
        lambda w, h: w.api.client.post(
            "/v1/transfers",
            json={"source_id": str(w.alice), "destination_id": str(w.shop), "amount": 1},
            headers={**h, "Idempotency-Key": str(uuid4())},
        ),
        201,
        frozenset({"member"}),
    ),
    "GET /v1/healthz": (
        lambda w, h: w.api.client.get("/v1/healthz", headers=h),
        200,
        frozenset(CALLERS),
    ),
    "GET /v1/metrics": (
        lambda w, h: w.api.client.get("/v1/metrics", headers=h),
        200,
        frozenset(CALLERS),
    ),
}


MATRIX_TAGS = {"tokens", "accounts", "issuances", "transfers", "health"}


def test_the_matrix_covers_every_route_of_its_resources(tmp_path: Path) -> None:
    app = create_app(make_settings("sqlite://", tmp_path))
    documented = {
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
        if MATRIX_TAGS & set(operation.get("tags", ()))
    }
    covered = {name.split(" from ")[0] for name in ENDPOINTS}
    covered_paths = {
        name.replace("{other}", "{token_id}")
        .replace("{member}", "{account_id}")
        .replace("{merchant}", "{account_id}")
        .replace("{exchange_point}", "{account_id}")
        for name in covered
    }
    assert documented <= covered_paths, documented - covered_paths


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_matrix(world: World, endpoint: str, caller: str) -> None:
    call, allowed_status, allowed = ENDPOINTS[endpoint]
    answer = await call(world, world.headers[caller])
    if caller in allowed:
        assert answer.status_code == allowed_status, answer.text
    elif caller == "anonymous":
        assert (answer.status_code, answer.json()["code"]) == (401, "unauthorized")
        assert answer.headers["www-authenticate"].startswith("Bearer")
    else:
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "forbidden"
