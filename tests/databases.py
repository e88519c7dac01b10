"""Fresh, empty databases for tests: a SQLite file, or a private PostgreSQL schema.

PostgreSQL is used when ROLLON_TEST_POSTGRES_URL is set; each database gets a schema of its
own (dropped afterwards), so parallel runs never see each other.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from rollon.ledger.storage import create_engine, normalize_url

POSTGRES_URL = os.environ.get("ROLLON_TEST_POSTGRES_URL", "")


def postgres_schema_url(schema: str) -> str:
    """The test server's URL, with every connection's search_path set to `schema`."""
    url = sa.make_url(normalize_url(POSTGRES_URL))
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


@contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database of this kind ("sqlite" or "postgres"); no schema yet."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'rollon.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("set ROLLON_TEST_POSTGRES_URL to run the PostgreSQL tests")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield postgres_schema_url(schema)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
