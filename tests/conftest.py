"""Fixtures shared by every test: a fresh database per test, on SQLite and on PostgreSQL.

PostgreSQL tests run when ROLLON_TEST_POSTGRES_URL is set. In CI (CI=true) a missing or
unreachable PostgreSQL fails the run instead of skipping: both databases are the contract.
Each PostgreSQL test gets a schema of its own, so parallel runs never see each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from rollon.ledger.storage import create_engine
from tests.databases import POSTGRES_URL, fill_as_migrated, fresh_database

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and not POSTGRES_URL:
        raise pytest.UsageError("CI=true but ROLLON_TEST_POSTGRES_URL is not set")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of each kind; the schema is not created yet."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database with the chart of accounts installed."""
    fill_as_migrated(db_url)
    engine = create_engine(db_url)
    yield engine
    engine.dispose()
