from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from rollon.merchants.schema import metadata


def test_migration_creates_exactly_the_declared_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = [
            d
            for d in compare_metadata(context, metadata)
            if not (
                d[0] == "remove_table"
                or (d[0] == "remove_index" and d[1].table.name not in metadata.tables)
            )
        ]
    assert differences == []
