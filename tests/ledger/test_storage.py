"""Storage on real SQLite and PostgreSQL: durability settings, the snapshot a batch is decided
on, the guarded write that refuses a stale decision, and the schema's last-line checks."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import QueuePool

from rollon.ledger import chart
from rollon.ledger.journal import GENESIS, ChainHead
from rollon.ledger.queries import get_account, get_transfer
from rollon.ledger.schema import accounts, journal_head
from rollon.ledger.service import Ledger, install_chart
from rollon.ledger.state_machine import NS_PER_S, Outcome, execute
from rollon.ledger.storage import (
    SQLITE_POOL_SIZE,
    BatchReads,
    DriverStatement,
    LedgerCorrupted,
    create_engine,
    lock_head,
    lock_head_for_batch,
    normalize_url,
    read_first,
    write_outcome,
    write_transaction,
)
from rollon.ledger.transfers import Result, Transfer, TransferFlag
from rollon.migrations import upgrade
from tests.databases import fresh_database
from tests.ledger.builders import (
    START_NS,
    ManualClock,
    assert_books_sound,
    balance_of,
    member,
    transfer,
)

F = TransferFlag


def test_normalize_url_points_postgres_at_psycopg_3() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_read_first_reads_the_first_row_or_none(engine: Engine) -> None:
    head = sa.select(journal_head.c.seq).where(journal_head.c.id == sa.bindparam("id"))
    assert read_first(engine, head, {"id": 1}) == (0,)
    assert read_first(engine, head, {"id": 2}) is None


def test_read_first_skips_begin_on_sqlite_and_leaves_the_connection_as_it_was(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'reads.db'}", pool_size=1)
    with write_transaction(engine) as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert read_first(engine, sa.select(sa.text("count(*) FROM t")), {}) == (0,)
    assert statements == ["SELECT count(*) FROM t"]
    with write_transaction(engine) as connection:  # the same pooled connection, as before
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert statements[1:] == ["BEGIN IMMEDIATE", "INSERT INTO t VALUES (1)"]
    engine.dispose()


def test_sqlite_keeps_a_connection_per_reader_thread(tmp_path: Path) -> None:
    """Overflow connections would be opened and closed per read, each with its PRAGMAs."""
    engine = create_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    assert isinstance(engine.pool, QueuePool)
    assert (engine.pool.size(), engine.pool._max_overflow) == (SQLITE_POOL_SIZE, 0)
    engine.dispose()


def test_postgres_plans_each_run_for_the_tables_as_they_are(tmp_path: Path) -> None:
    """A plan PostgreSQL kept from when the journal was small would scan it whole, on every
    batch, as it grew. Each run is planned afresh, and a lookup by ids seeks by index."""
    with fresh_database("postgres", tmp_path) as url:
        engine = create_engine(url)
        upgrade(engine)
        install_chart(engine)
        ledger = Ledger(engine)
        try:
            _plans_follow_the_journal(engine, ledger)
        finally:
            ledger.close()
            engine.dispose()


def _plans_follow_the_journal(engine: Engine, ledger: Ledger) -> None:
    source, payee = member(ledger, "Payer", funded=10**9).id, member(ledger, "Payee").id
    with engine.connect() as connection:
        for _ in range(10):  # psycopg prepares it from the 5th run
            assert get_transfer(connection, uuid4()) is None
        for _ in range(60):  # the journal grows from a few rows to some 15,000
            batch = [transfer(source, payee, 1) for _ in range(256)]
            assert set(ledger.submit(batch)) == {Result.OK}
        assert get_transfer(connection, batch[-1].id) is not None
        plans = connection.exec_driver_sql(
            "SELECT sum(generic_plans), sum(custom_plans) FROM pg_prepared_statements"
        ).one()
        assert plans[0] == 0 and plans[1] >= 6, plans
        ids = "{" + ",".join(str(uuid4()) for _ in range(256)) + "}"
        plan = connection.exec_driver_sql(
            f"EXPLAIN SELECT id FROM transfers WHERE id = ANY('{ids}'::uuid[])"
        ).all()
    assert "Seq Scan" not in " ".join(row[0] for row in plan), plan


def test_commits_are_durable(engine: Engine) -> None:
    """SQLite: WAL with synchronous=FULL and a busy timeout; PostgreSQL: synchronous commit."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            busy_timeout_ms = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
            assert busy_timeout_ms is not None and busy_timeout_ms >= 1_000
        else:
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"


@pytest.mark.parametrize(
    ("asked", "kept"),
    [("off", "on"), ("local", "local"), ("remote_apply", "remote_apply")],
)
def test_postgres_commits_wait_for_the_flush_whatever_the_server_says(
    asked: str, kept: str, tmp_path: Path
) -> None:
    """A database or role set to commit without waiting would break the ledger's promise:
    `off` is overruled, and what waits as long or longer is kept."""
    with fresh_database("postgres", tmp_path) as url:
        options = sa.make_url(url).query["options"]
        assert isinstance(options, str)
        asking = sa.make_url(url).update_query_dict(
            {"options": f"{options} -csynchronous_commit={asked}"}
        )
        engine = create_engine(asking.render_as_string(hide_password=False))
        try:
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == kept
        finally:
            engine.dispose()


def _decide(
    engine: Engine, requests: list[list[Transfer]], now_ns: int = 10**18
) -> tuple[ChainHead, Outcome]:
    with write_transaction(engine) as connection:
        snapshot = BatchReads(connection, requests).snapshot(connection, requests, now_ns)
        return snapshot.head, execute(snapshot, requests)


def test_snapshot_holds_what_the_batch_names(engine: Engine, ledger: Ledger) -> None:
    payer = member(ledger, "Payer", funded=1_000)
    payee = member(ledger, "Payee")
    done = transfer(payer.id, payee.id, 10)
    pending = transfer(payer.id, payee.id, 20, flags=F.PENDING)
    refused = transfer(payer.id, payee.id, 5_000)
    assert ledger.submit([done]) == [Result.OK]
    assert ledger.submit([pending]) == [Result.OK]
    assert ledger.submit([refused]) == [Result.INSUFFICIENT_FUNDS]
    post = transfer(payer.id, payee.id, 20, flags=F.POST_PENDING, pending_id=pending.id)
    batch = [[done, refused, post, transfer(payer.id, uuid4(), 1)]]
    with write_transaction(engine) as connection:
        snapshot = BatchReads(connection, batch).snapshot(connection, batch, START_NS + 10**12)
    head = snapshot.head
    assert set(snapshot.accounts) == {payer.id, payee.id}
    assert snapshot.accounts[payer.id].available == 1_000 - 10 - 20
    assert snapshot.existing == {done.id: done}
    assert snapshot.failed == {refused.id: Result.INSUFFICIENT_FUNDS}
    assert set(snapshot.holds) == {pending.id}
    assert snapshot.resolved == {}
    assert head.seq > 0 and snapshot.head == head


def test_the_head_lock_tells_when_the_first_open_hold_expires(
    engine: Engine, ledger: Ledger, clock: ManualClock
) -> None:
    """Batches look for due holds only when this says some are due, so it must be exact."""
    payer = member(ledger, "Payer", funded=1_000)
    payee = member(ledger, "Payee")

    def next_expiry_ns() -> int | None:
        with write_transaction(engine) as connection:
            return lock_head_for_batch(connection)[1]

    assert next_expiry_ns() is None
    forever = transfer(payer.id, payee.id, 10, flags=F.PENDING)  # no timeout: never due
    later = transfer(payer.id, payee.id, 20, flags=F.PENDING, timeout_s=600)
    sooner = transfer(payer.id, payee.id, 30, flags=F.PENDING, timeout_s=60)
    assert ledger.submit([forever]) == [Result.OK]
    assert next_expiry_ns() is None
    assert ledger.submit([later, sooner]) == [Result.OK, Result.OK]
    sooner_expires_ns = next_expiry_ns()
    assert sooner_expires_ns is not None and sooner_expires_ns > clock.now_ns + 59 * NS_PER_S
    void = transfer(payer.id, payee.id, 30, flags=F.VOID_PENDING, pending_id=sooner.id)
    assert ledger.submit([void]) == [Result.OK]
    later_expires_ns = next_expiry_ns()
    assert later_expires_ns is not None and later_expires_ns > sooner_expires_ns + 500 * NS_PER_S
    clock.advance_s(601)  # the next batch finds the later hold due, and expires it
    assert ledger.submit([transfer(payer.id, payee.id, 1)]) == [Result.OK]
    assert next_expiry_ns() is None
    with engine.connect() as connection:
        payer_now = get_account(connection, payer.id)
    assert payer_now is not None and payer_now.available == 1_000 - 10 - 1  # `forever` holds
    assert_books_sound(engine)


def test_a_stale_decision_is_refused_by_the_guarded_write(engine: Engine, ledger: Ledger) -> None:
    payer = member(ledger, "Payer", funded=1_000)
    payee = member(ledger, "Payee")
    ledger.close()  # this test is the only writer from here on
    head, outcome = _decide(engine, [[transfer(payer.id, payee.id, 900)]])
    # Meanwhile the payer's balance changes (here: by plain SQL, as a second writer would).
    with engine.begin() as connection:
        connection.execute(
            accounts.update().where(accounts.c.id == payer.id).values(debits_posted=500)
        )
    stale = pytest.raises(LedgerCorrupted, match="changed under")
    with stale, write_transaction(engine) as connection:
        assert lock_head(connection) == head
        write_outcome(connection, head, outcome, 10**18)
    assert balance_of(engine, payee.id) == 0, "nothing of the stale batch was written"


def test_a_decision_on_a_stale_head_is_refused(engine: Engine, ledger: Ledger) -> None:
    """Another writer appended meanwhile: the journal's unique seq refuses the batch."""
    payer = member(ledger, "Payer", funded=1_000)
    payee = member(ledger, "Payee")
    head, outcome = _decide(engine, [[transfer(payer.id, payee.id, 10)]])
    assert ledger.submit([transfer(payer.id, payee.id, 1)]) == [Result.OK]  # moves the head
    ledger.close()
    with pytest.raises(IntegrityError), write_transaction(engine) as connection:
        lock_head(connection)
        write_outcome(connection, head, outcome, 10**18)
    assert balance_of(engine, payee.id) == 1
    assert_books_sound(engine)


def test_a_head_moved_by_someone_else_is_refused(engine: Engine, ledger: Ledger) -> None:
    payer = member(ledger, "Payer", funded=1_000)
    payee = member(ledger, "Payee")
    ledger.close()
    head, outcome = _decide(engine, [[transfer(payer.id, payee.id, 10)]])
    with engine.begin() as connection:
        connection.execute(journal_head.update().values(seq=head.seq + 7))
    with (
        pytest.raises(LedgerCorrupted, match="head moved"),
        write_transaction(engine) as connection,
    ):
        write_outcome(connection, head, outcome, 10**18)
    assert balance_of(engine, payee.id) == 0


def test_a_missing_head_is_reported(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(journal_head.delete())
    with pytest.raises(LedgerCorrupted, match="init"), write_transaction(engine) as connection:
        lock_head(connection)


@pytest.mark.parametrize(
    "values",
    [
        {"debits_posted": 1},  # a member below zero
        {"debits_pending": 1},  # money held that is not there
        {"credits_pending": -1},
    ],
    ids=lambda values: next(iter(values)),
)
def test_the_schema_refuses_an_overdraft_even_if_code_erred(
    engine: Engine, ledger: Ledger, values: dict[str, int]
) -> None:
    shop = member(ledger, "Shop")
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(accounts.update().where(accounts.c.id == shop.id).values(**values))


def test_the_schema_refuses_a_second_resolution_of_a_hold(engine: Engine, ledger: Ledger) -> None:
    """pending_id is unique in the journal: two writers can never both post one hold."""
    payer = member(ledger, "Payer", funded=100)
    pending = transfer(payer.id, chart.FEES.id, 50, flags=F.PENDING)
    assert ledger.submit([pending]) == [Result.OK]
    post = transfer(payer.id, chart.FEES.id, 50, flags=F.POST_PENDING, pending_id=pending.id)
    assert ledger.submit([post]) == [Result.OK]
    with engine.connect() as connection:
        row = (
            connection.execute(
                sa.text("SELECT * FROM transfers WHERE id = :id"), {"id": _bind(engine, post.id)}
            )
            .mappings()
            .one()
        )
    duplicate = dict(row) | {"seq": row["seq"] + 1000, "id": _bind(engine, uuid4())}
    duplicate["timestamp_ns"] = row["timestamp_ns"] + 10**12
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            sa.text(
                f"INSERT INTO transfers ({', '.join(duplicate)}) "
                f"VALUES ({', '.join(':' + k for k in duplicate)})"
            ),
            duplicate,
        )


def _bind(engine: Engine, value: UUID) -> object:
    """A UUID as the table stores it, for plain SQL (SQLite keeps 32 hex digits)."""
    return value.hex if engine.dialect.name == "sqlite" else value


def test_a_fresh_database_starts_at_genesis(engine: Engine) -> None:
    with write_transaction(engine) as connection:
        assert lock_head(connection) == GENESIS


# -- statements run as the driver's own SQL ---------------------------------------------------
_notes = sa.Table(
    "driver_statement_notes",
    sa.MetaData(),
    sa.Column("id", sa.Uuid(as_uuid=True), primary_key=True),
    sa.Column("owner_id", sa.Uuid(as_uuid=True), nullable=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
)
_ADD_NOTE = DriverStatement(
    _notes.insert()
    .values({name: sa.bindparam(name) for name in ("id", "owner_id", "amount")})
    .values(status="open")
)
_CLOSE_NOTE = DriverStatement(
    _notes.update()
    .where(_notes.c.id == sa.bindparam("b_id"), _notes.c.status == "open")
    .values(status="closed", amount=sa.bindparam("b_amount"))
)


def test_a_driver_statement_binds_as_sqlalchemy_reads(engine: Engine) -> None:
    """UUIDs (given or None), integers and the statement's own literals land as SQLAlchemy
    reads them back; the row count is the driver's."""
    _notes.create(engine)
    first, second, owner = uuid4(), uuid4(), uuid4()
    with engine.begin() as connection:
        assert _ADD_NOTE.run(connection, {"id": first, "owner_id": owner, "amount": 2**62}) == 1
        assert _ADD_NOTE.run(connection, {"id": second, "owner_id": None, "amount": 5}) == 1
        assert _CLOSE_NOTE.run(connection, {"b_id": second, "b_amount": 7}) == 1
        assert _CLOSE_NOTE.run(connection, {"b_id": second, "b_amount": 9}) == 0  # closed
    with engine.connect() as connection:
        rows = set(connection.execute(sa.select(_notes)).all())
    assert rows == {(first, owner, 2**62, "open"), (second, None, 7, "closed")}


def test_a_driver_statement_raises_sqlalchemys_errors_and_applies_nothing(
    engine: Engine,
) -> None:
    _notes.create(engine)
    taken = uuid4()
    with engine.begin() as connection:
        _ADD_NOTE.run(connection, {"id": taken, "owner_id": None, "amount": 1})
    with pytest.raises(IntegrityError), engine.begin() as connection:
        _ADD_NOTE.run(connection, {"id": uuid4(), "owner_id": None, "amount": 2})
        _ADD_NOTE.run(connection, {"id": taken, "owner_id": None, "amount": 3})
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(_notes)).scalar() == 1
    with pytest.raises(KeyError), engine.begin() as connection:
        _CLOSE_NOTE.run(connection, {"b_id": taken})  # a value missing: refused before SQL
