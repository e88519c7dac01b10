"""The test databases `fill_as_migrated` makes are the ones the migrations make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from rollon.ledger.storage import create_engine
from tests.databases import fill_as_migrated, fresh_database, migrate

# The rows a new database holds: the chart of accounts, the journal head, the revision.
_ROWS = (
    "SELECT * FROM accounts ORDER BY id",
    "SELECT * FROM journal_head",
    "SELECT * FROM alembic_version",
)
_SQLITE_SCHEMA = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
# PostgreSQL: every column, index and constraint of the schema on the search path.
_POSTGRES_SCHEMA = (
    "SELECT table_name, column_name, data_type, is_nullable, column_default"
    " FROM information_schema.columns WHERE table_schema = current_schema()"
    " ORDER BY table_name, column_name",
    "SELECT tablename, indexname, replace(indexdef, current_schema() || '.', '')"
    " FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname",
    "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)"
    " FROM pg_constraint WHERE connamespace = current_schema()::regnamespace"
    " ORDER BY conname",
)


def _contents(url: str) -> list[list[tuple[Any, ...]]]:
    schema = (_SQLITE_SCHEMA,) if url.startswith("sqlite") else _POSTGRES_SCHEMA
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [
                [tuple(row) for row in connection.exec_driver_sql(query)]
                for query in (*schema, *_ROWS)
            ]
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_filled_database_is_a_migrated_one(kind: str, tmp_path: Path) -> None:
    (tmp_path / "migrated").mkdir()
    (tmp_path / "filled").mkdir()
    with (
        fresh_database(kind, tmp_path / "migrated") as migrated,
        fresh_database(kind, tmp_path / "filled") as filled,
    ):
        migrate(migrated)
        fill_as_migrated(filled)
        expected = _contents(migrated)
        assert all(expected), "every query finds something in a migrated database"
        assert _contents(filled) == expected


def test_only_an_empty_sqlite_database_is_filled(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rollon.db'}"
    fill_as_migrated(url)
    with pytest.raises(AssertionError, match="must not exist"):
        fill_as_migrated(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM accounts")) > 0
    engine.dispose()
