"""Fixtures shared by every test: a fresh database per test, on SQLite and on PostgreSQL.

PostgreSQL tests run when ROLLON_TEST_POSTGRES_URL is set. In CI (CI=true) a missing or
unreachable PostgreSQL fails the run instead of skipping: both databases are the contract.
Each PostgreSQL test gets a schema of its own, so parallel runs never see each other.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rollon.ledger.service import install_chart
from rollon.ledger.storage import create_engine, normalize_url
from rollon.migrations import upgrade

POSTGRES_URL = os.environ.get("ROLLON_TEST_POSTGRES_URL", "")
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and not POSTGRES_URL:
        raise pytest.UsageError("CI=true but ROLLON_TEST_POSTGRES_URL is not set")


def _postgres_schema_url(schema: str) -> str:
    """The test server's URL, with every connection's search_path set to `schema`."""
    url = sa.make_url(normalize_url(POSTGRES_URL))
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of each kind; the schema is not created yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rollon.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("set ROLLON_TEST_POSTGRES_URL to run the PostgreSQL tests")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield _postgres_schema_url(schema)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database with the chart of accounts installed."""
    engine = create_engine(db_url)
    upgrade(engine)
    install_chart(engine)
    yield engine
    engine.dispose()
