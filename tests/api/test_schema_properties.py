"""Property-based run of schemathesis against the app's own OpenAPI schema: generated valid
and invalid requests on every operation; no 5xx, answers as documented (status, media type,
body schema), invalid data refused. A bounded number of examples keeps it under a minute."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from rollon.api.app import create_app
from rollon.api.bootstrap import prepare_database
from rollon.api.token_store import Role, create_token
from rollon.ledger.accounts import AccountKind
from rollon.ledger.keys import load_or_create_signing_key
from rollon.ledger.service import Ledger
from rollon.ledger.storage import create_engine
from tests.api.conftest import assert_books_sound, make_settings
from tests.databases import fresh_database

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 8

# Operations of other areas left out until their answers are fully documented, with what is
# missing. Remove an entry once its owner fixed it: the run then covers it too.
NOT_YET_CONFORMING = {
    "GET /v1/merchants/{merchant_id}": "merchants: 404 merchant_not_found not documented",
}


@dataclass
class Seeded:
    url: str
    directory: Path
    admin: str
    member: str


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    directory = tmp_path_factory.mktemp("schema")
    with fresh_database(request.param, directory) as url:
        engine = create_engine(url)
        prepare_database(engine)
        key = load_or_create_signing_key(directory / "rollon.key")
        ledger = Ledger(engine, signing_key=key)
        alice = ledger.open_account(kind=AccountKind.MEMBER, name="Alice")
        ledger.issue(uuid4(), alice.id, 1_000_000, "seed")
        ledger.close()
        _, admin = create_token(engine, Role.ADMIN, None, "schemathesis admin")
        _, member = create_token(engine, Role.MEMBER, alice.id, "schemathesis member")
        yield Seeded(url, directory, admin, member)
        assert_books_sound(engine, directory / "rollon.key")
        engine.dispose()


@pytest.fixture(scope="module")
def api_schema(seeded: Seeded) -> schemathesis.BaseSchema:
    app = create_app(make_settings(seeded.url, seeded.directory))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema").exclude(name=list(NOT_YET_CONFORMING))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], seeded: Seeded
) -> None:
    token = seeded.member if case.operation.path == "/v1/transfers" else seeded.admin
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        # Business rules (funds, which role takes an account) refuse some schema-valid
        # requests with 4xx, by design; every other check applies.
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
