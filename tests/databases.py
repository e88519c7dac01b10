"""Fresh databases for tests: a SQLite file, or a private PostgreSQL schema.

PostgreSQL is used when ROLLON_TEST_POSTGRES_URL is set; each database gets a schema of its
own (dropped afterwards), so parallel runs never see each other.

`fresh_database` gives an empty one. `fill_as_migrated` makes an empty one what `migrate`
(the migrations, then the chart of accounts) makes it, without running Alembic for each of
some 570 tests: the first of each kind is migrated, and the others are copies of it. On
SQLite a copy of its file (under a millisecond, against 70 ms); on PostgreSQL the same
statements, recorded as the migration ran them and replayed into the new schema in one
transaction (160 ms, against 220). tests/test_databases.py checks that a copy has the
schema and rows a migration gives.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from rollon.api.bootstrap import prepare_database
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


# (statement, parameters, executemany) as the driver received them
_Recorded = tuple[str, Any, bool]


def migrate(url: str, *, recording: list[_Recorded] | None = None) -> None:
    """What the service does to a new database (`prepare_database`: the migrations, then the
    chart of accounts). `recording` collects the statements, as the driver receives them."""
    engine = create_engine(url)
    if recording is not None:

        @event.listens_for(engine, "before_cursor_execute")
        def record(
            _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool
        ) -> None:
            recording.append((statement, parameters, many))

    try:
        prepare_database(engine)
    finally:
        engine.dispose()


def fill_as_migrated(url: str) -> None:
    """Make the empty database at `url` (from `fresh_database`) what `migrate` makes it."""
    if url.startswith("sqlite"):
        path = Path(sa.make_url(url).database or "")
        assert not path.exists(), "a SQLite database to fill must not exist yet"
        shutil.copyfile(_sqlite_template(), path)
    else:
        _replay(url, _postgres_script())


@functools.cache
def _scratch() -> tempfile.TemporaryDirectory[str]:
    """Where the templates are made; removed when the process exits."""
    return tempfile.TemporaryDirectory(prefix="rollon-templates-")


@functools.cache
def _sqlite_template() -> Path:
    path = Path(_scratch().name) / "migrated.db"
    migrate(f"sqlite:///{path}")  # disposed: the WAL is checkpointed into the file
    return path


@functools.cache
def _postgres_script() -> tuple[_Recorded, ...]:
    script: list[_Recorded] = []
    with fresh_database("postgres", Path(_scratch().name)) as url:
        migrate(url, recording=script)
    return tuple(script)


def _replay(url: str, script: tuple[_Recorded, ...]) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            cursor = connection.connection.cursor()
            for statement, parameters, many in script:
                if many:
                    cursor.executemany(statement, parameters)
                else:
                    cursor.execute(statement, parameters or None)
    finally:
        engine.dispose()
