"""Storage: engines for SQLite and PostgreSQL, and the reads and writes of one batch.

Every write transaction starts by locking the single `journal_head` row (SQLite: BEGIN
IMMEDIATE takes the database's write lock). That one lock gives the hash chain a total
order and serializes batches across processes, so every balance read after it is the latest
committed one. Updates are guarded by the balances that were read: if they changed anyway,
the ledger stops instead of writing over someone else's work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect, Engine, Row
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from rollon.ledger.accounts import Account, AccountKind, Balances, LedgerCode
from rollon.ledger.journal import GENESIS, ChainHead, Checkpoint
from rollon.ledger.schema import (
    accounts,
    checkpoints,
    failed_transfers,
    holds,
    journal_head,
    transfers,
)
from rollon.ledger.state_machine import Outcome, Snapshot
from rollon.ledger.transfers import (
    FLAGS_BY_BITS,
    LEDGER_CODES,
    RESULTS,
    TRANSFER_CODES,
    Hold,
    JournalEntry,
    Result,
    Transfer,
    TransferCode,
    TransferFlag,
)
from rollon.ledger.wal_checkpoints import AUTOCHECKPOINT_BACKSTOP_PAGES

AnyRow: TypeAlias = Row[*tuple[Any, ...]]
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Connections kept open for readers. The service reads from a thread pool of 40 (anyio's
# default): a smaller pool makes threads open and close overflow connections per read, each
# paying its connect and PRAGMAs. SQLite's are file handles: keep one per thread, never more.
# PostgreSQL's are server processes: keep fewer, and open the rest only under bursts.
SQLITE_POOL_SIZE = 48
POSTGRES_POOL_SIZE = 20
POSTGRES_MAX_OVERFLOW = 28
POSTGRES_RANDOM_PAGE_COST = 1.1  # the default 4 is for spinning disks; see create_engine
MAX_EXPIRIES_PER_BATCH = 256  # bounded: a backlog of timeouts drains over several batches


class LedgerCorrupted(RuntimeError):
    """The database no longer agrees with what the ledger just read: stop, do not spread it."""


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and point them at psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# The ledger answers once a commit is durable, so its connections never commit without
# waiting for the WAL's flush, whatever the server, database or role says: `off` is
# overruled; `local`, `on` and the settings that also wait for synchronous replicas stand.
_DURABLE_COMMITS = (
    "SELECT set_config('synchronous_commit', 'on', false)"
    " WHERE current_setting('synchronous_commit') = 'off'"
)


def create_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the durability the ledger promises (SQLite: WAL, synchronous=FULL;
    PostgreSQL: commits that wait for the WAL's flush)."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        pool = {"pool_size": POSTGRES_POOL_SIZE, "max_overflow": POSTGRES_MAX_OVERFLOW}
        postgres = sa.create_engine(url, pool_pre_ping=True, **{**pool, **kwargs})

        @event.listens_for(postgres, "connect")
        def _on_connect_postgres(dbapi_connection: Any, _record: Any) -> None:
            # psycopg prepares a statement from its 5th run, and PostgreSQL would then keep
            # one generic plan for it while the connection lives. Made when the tables were
            # small, such a plan scans them whole, and goes on scanning as they grow: each
            # batch's lookup of its ids and of its idempotency keys read the whole journal
            # and every key ever kept. So every run is planned for the tables as they are,
            # and priced for data in memory or on SSD (a random page costs little more than
            # a sequential one), under which lookups by key seek by index.
            with dbapi_connection.cursor() as cursor:  # one round trip: no parameters
                cursor.execute(
                    "SET plan_cache_mode = force_custom_plan;"
                    f" SET random_page_cost = {POSTGRES_RANDOM_PAGE_COST};"
                    f" {_DURABLE_COMMITS}"
                )
            dbapi_connection.commit()

        return postgres
    pool = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": 0}
    engine = sa.create_engine(url, connect_args={"check_same_thread": False}, **{**pool, **kwargs})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # A backstop: beside a ledger's writer, a thread checkpoints (see wal_checkpoints).
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_BACKSTOP_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get("rollon_one_statement"):
            return  # `read_first`: one statement is its own snapshot
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get("rollon_write") else "BEGIN")

    return engine


def open_writer(engine: Engine) -> Connection:
    """A connection whose transactions may write the ledger (on SQLite they BEGIN IMMEDIATE).
    The hot path keeps one across batches: begin each with `connection.begin()`, then call
    `lock_head` first thing."""
    connection = engine.connect()
    connection.execution_options(rollon_write=True)
    return connection


@contextmanager
def _driver_errors(connection: Connection) -> Iterator[None]:
    """The driver's errors, raised as SQLAlchemy's, which the ledger's writer sorts into
    retry, fail or halt."""
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as error:
        raise DBAPIError.instance(None, None, error, dbapi_error) from error


@contextmanager
def driver_cursor(connection: Connection) -> Iterator[Any]:
    """The driver's own cursor, in the connection's transaction: no SQLAlchemy work per
    statement. Its errors are raised as SQLAlchemy's."""
    cursor = connection.connection.cursor()
    try:
        with _driver_errors(connection):
            yield cursor
    finally:
        cursor.close()


@contextmanager
def pipelined(connection: Connection) -> Iterator[None]:
    """On PostgreSQL, statements run in here are sent without waiting for their results,
    which come back together when the first of them is read (psycopg's pipeline mode): a
    batch's first reads then cost one round trip, not one each. Elsewhere, nothing changes.
    Leaving waits for every result."""
    if connection.dialect.name != "postgresql":
        yield
        return
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None, "a connection checked out of its pool"
    with _driver_errors(connection), driver_connection.pipeline():
        yield


class _Sent:
    """A statement of `_Driver`'s, executed on a driver cursor of its own and read later,
    as the driver's tuples (SQLAlchemy's result objects cost more per row than the query).
    In `pipelined`, its result is only waited for when read."""

    def __init__(self, connection: Connection, sql: str, parameters: tuple[Any, ...]) -> None:
        self._connection = connection
        self._cursor = connection.connection.cursor()
        with _driver_errors(connection):
            self._cursor.execute(sql, parameters)

    def rows(self) -> list[Any]:
        """Its rows, as the driver's tuples; the cursor is closed after."""
        try:
            with _driver_errors(self._connection):
                return list(self._cursor.fetchall())
        finally:
            self._cursor.close()


def read_first(engine: Engine, statement: sa.Select[Any], params: dict[str, Any]) -> Any:
    """The first row of one SELECT (None if none). On SQLite it is read without BEGIN: one
    statement sees one consistent snapshot by itself, and each call into SQLite lets go of
    the GIL, which a busy thread then holds for a while. For hot point reads."""
    with engine.connect() as connection:
        connection.execution_options(rollon_one_statement=True)
        return connection.execute(statement, params).first()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that may write the ledger; call `lock_head` first thing inside it."""
    with open_writer(engine) as connection, connection.begin():
        yield connection


# The journal head's one row, its id written into the SQL: the statements that name it run as
# the driver's own SQL (see `_Driver`), which binds nothing but the values it is given.
_THE_HEAD = journal_head.c.id == sa.literal_column("1")
_LOCK_HEAD = (
    sa.select(
        journal_head.c.seq,
        journal_head.c.hash,
        journal_head.c.timestamp_ns,
        # In the same round trip, when the first open hold falls due: a batch then looks for
        # due holds only when there are some, which is seldom.
        sa.select(sa.func.min(holds.c.expires_at_ns)).scalar_subquery(),
    )
    .where(_THE_HEAD)
    .with_for_update()
)


def lock_head(connection: Connection) -> ChainHead:
    """Lock the journal head row: from here until commit, this transaction is the writer."""
    return lock_head_for_batch(connection)[0]


def lock_head_for_batch(connection: Connection) -> tuple[ChainHead, int | None]:
    """`lock_head`, and when the first open hold expires (None when no hold has a timeout).
    Holds are opened and closed only under this lock, so that stays true until commit."""
    return _head_of(_Sent(connection, _driver(connection.dialect).lock_head, ()).rows())


def _head_of(rows: list[Any]) -> tuple[ChainHead, int | None]:
    if not rows:
        raise LedgerCorrupted("the journal head is missing: run `rollon init`")
    ((seq, head_hash, timestamp_ns, next_expiry_ns),) = rows
    return ChainHead(seq=seq, hash=bytes(head_hash), timestamp_ns=timestamp_ns), next_expiry_ns


# -- rows <-> values ------------------------------------------------------------------------
# Enum lookups through transfers' dicts; an unknown value still goes through the class, which
# raises as before.


def _ledger(value: str) -> LedgerCode:
    code = LEDGER_CODES.get(value)
    return code if code is not None else LedgerCode(value)


def _code(value: str) -> TransferCode:
    code = TRANSFER_CODES.get(value)
    return code if code is not None else TransferCode(value)


def _flags(value: int) -> TransferFlag:
    flags = FLAGS_BY_BITS.get(value)
    return flags if flags is not None else TransferFlag(value)


def transfer_from_row(row: AnyRow) -> Transfer:
    return Transfer(
        id=row.id,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount=row.amount,
        ledger=_ledger(row.ledger),
        code=_code(row.code),
        flags=_flags(row.flags),
        pending_id=row.pending_id,
        timeout_s=row.timeout_s,
        memo=row.memo,
        event_time_ns=row.event_time_ns,
    )


def entry_from_row(row: AnyRow) -> JournalEntry:
    return JournalEntry(
        seq=row.seq,
        timestamp_ns=row.timestamp_ns,
        transfer=transfer_from_row(row),
        expires_at_ns=row.expires_at_ns,
        debit_balance_after=row.debit_balance_after,
        credit_balance_after=row.credit_balance_after,
        prev_hash=bytes(row.prev_hash),
        hash=bytes(row.hash),
    )


def entry_to_row(entry: JournalEntry) -> dict[str, Any]:
    return dict(zip(_TRANSFER_COLUMNS, _entry_values(entry, _same), strict=True))


# The order of `_entry_values`, which is the bulk insert's.
_TRANSFER_COLUMNS = (
    "seq",
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "ledger",
    "code",
    "flags",
    "pending_id",
    "timeout_s",
    "expires_at_ns",
    "event_time_ns",
    "memo",
    "timestamp_ns",
    "debit_balance_after",
    "credit_balance_after",
    "prev_hash",
    "hash",
)


def _entry_values(entry: JournalEntry, uuid: Callable[[UUID], Any]) -> tuple[Any, ...]:
    """An entry's column values, its UUIDs through `uuid`. `str` of a StrEnum is its value,
    and costs less than `.value`, a Python-level property."""
    t = entry.transfer
    return (
        entry.seq,
        uuid(t.id),
        uuid(t.debit_account_id),
        uuid(t.credit_account_id),
        t.amount,
        str(t.ledger),
        str(t.code),
        int(t.flags),
        None if t.pending_id is None else uuid(t.pending_id),
        t.timeout_s,
        entry.expires_at_ns,
        t.event_time_ns,
        t.memo,
        entry.timestamp_ns,
        entry.debit_balance_after,
        entry.credit_balance_after,
        entry.prev_hash,
        entry.hash,
    )


def balances_from_row(row: AnyRow) -> Balances:
    return Balances(
        row.id,
        _ledger(row.ledger),
        row.no_overdraft,
        row.closed,
        row.debits_posted,
        row.credits_posted,
        row.debits_pending,
        row.credits_pending,
    )


def account_from_row(row: AnyRow) -> Account:
    return Account(
        id=row.id,
        ledger=_ledger(row.ledger),
        kind=AccountKind(row.kind),
        name=row.name,
        no_overdraft=row.no_overdraft,
        closed=row.closed,
        created_at_ns=row.created_at_ns,
        debits_posted=row.debits_posted,
        credits_posted=row.credits_posted,
        debits_pending=row.debits_pending,
        credits_pending=row.credits_pending,
    )


_BALANCE_COLUMNS = (
    accounts.c.id,
    accounts.c.ledger,
    accounts.c.no_overdraft,
    accounts.c.closed,
    accounts.c.debits_posted,
    accounts.c.credits_posted,
    accounts.c.debits_pending,
    accounts.c.credits_pending,
)


def _resolution(flags: int, code: str) -> Result:
    if flags & TransferFlag.POST_PENDING:
        return Result.PENDING_ALREADY_POSTED
    if code == TransferCode.EXPIRY.value:
        return Result.PENDING_EXPIRED
    return Result.PENDING_ALREADY_VOIDED


# -- sets of ids as one parameter ------------------------------------------------------------
class _IdList(sa.types.TypeDecorator[Collection[UUID]]):
    """Many UUIDs bound as one parameter: a uuid[] array on PostgreSQL, a JSON array of the
    hex text SQLAlchemy's Uuid stores on SQLite."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(sa.Uuid()))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Collection[UUID] | None, dialect: Dialect) -> Any:
        assert value is not None
        if dialect.name == "postgresql":
            return list(value)
        return json.dumps(list(map(_hex, value)))


class _InIds(ColumnElement[Any]):
    """`column IN (ids)` where `ids` is one parameter, whatever their number.

    A batch looks up hundreds of ids at a time. As one IN list they would make a new
    statement text each time: SQLAlchemy renders and binds every element, and neither the
    drivers nor PostgreSQL can reuse a parsed or prepared statement. Rendered per dialect
    below; its type is left null so that SQLite does not compare it with 1.
    """

    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's own declaration style)
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]
    type = sa.types.NullType()

    def __init__(self, column: sa.ColumnElement[UUID], name: str) -> None:
        self.column = column
        self.ids = sa.bindparam(name, type_=_IdList())


@compiles(_InIds)
def _in_ids_with_json(element: _InIds, compiler: SQLCompiler, **kw: Any) -> str:
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"{column} IN (SELECT value FROM json_each({ids}))"  # noqa: S608 (compiled SQL)


@compiles(_InIds, "postgresql")
def _in_ids_with_array(element: _InIds, compiler: SQLCompiler, **kw: Any) -> str:
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"{column} = ANY({ids})"


# -- one batch ------------------------------------------------------------------------------
# Built once: building a statement per batch costs more than running it.
_EXISTING = sa.select(transfers).where(_InIds(transfers.c.id, "ids"))
# Which ids of a batch are committed already (result NULL) or failed before: one query, as
# usually none is; committed ones are then read in full.
_KNOWN = sa.union_all(
    sa.select(transfers.c.id, sa.null().label("result")).where(_InIds(transfers.c.id, "ids")),
    sa.select(failed_transfers.c.id, failed_transfers.c.result).where(
        _InIds(failed_transfers.c.id, "ids")
    ),
)
_HELD = sa.select(transfers, holds.c.expires_at_ns.label("hold_expires_at_ns")).join(
    holds, holds.c.transfer_id == transfers.c.id
)
_DUE_HOLDS = (
    _HELD.where(holds.c.expires_at_ns <= sa.bindparam("now_ns"))
    .order_by(holds.c.expires_at_ns)
    .limit(MAX_EXPIRIES_PER_BATCH)
)
_HOLDS_OF = _HELD.where(_InIds(holds.c.transfer_id, "ids"))
_RESOLUTIONS = sa.select(transfers.c.pending_id, transfers.c.flags, transfers.c.code).where(
    _InIds(transfers.c.pending_id, "ids")
)
_BALANCES = sa.select(*_BALANCE_COLUMNS).where(_InIds(accounts.c.id, "ids"))
_CLOSE_HOLDS = holds.delete().where(_InIds(holds.c.transfer_id, "ids"))


_GUARDED_BALANCE_UPDATE = (
    accounts.update()
    .where(
        accounts.c.id == sa.bindparam("b_id"),
        accounts.c.debits_posted == sa.bindparam("old_dp"),
        accounts.c.credits_posted == sa.bindparam("old_cp"),
        accounts.c.debits_pending == sa.bindparam("old_dq"),
        accounts.c.credits_pending == sa.bindparam("old_cq"),
    )
    .values(
        debits_posted=sa.bindparam("new_dp"),
        credits_posted=sa.bindparam("new_cp"),
        debits_pending=sa.bindparam("new_dq"),
        credits_pending=sa.bindparam("new_cq"),
    )
)
# The order of `_update_balances`' rows: the compiled SQL takes SET's parameters first.
_GUARDED_BALANCE_PARAMETERS = (
    "new_dp",
    "new_cp",
    "new_dq",
    "new_cq",
    "b_id",
    "old_dp",
    "old_cp",
    "old_dq",
    "old_cq",
)
_MOVE_HEAD = (
    journal_head.update()
    .where(_THE_HEAD, journal_head.c.seq == sa.bindparam("before_seq"))
    .values(
        seq=sa.bindparam("new_seq"),
        hash=sa.bindparam("new_hash"),
        timestamp_ns=sa.bindparam("new_timestamp_ns"),
    )
)


def _same(value: UUID) -> UUID:
    return value


def _hex(value: UUID) -> str:
    """`value.hex`, without the property's call: a batch formats some two thousand ids."""
    return value.int.to_bytes(16).hex()


class _Driver:
    """The statements every batch runs, as the driver's own SQL for one dialect, and how their
    values are bound.

    SQLAlchemy processes each parameter of each row it executes and each column of each row
    it returns (UUIDs to and from hex text on SQLite, bytes wrapped in the driver's Binary),
    and at the hundreds of rows a batch reads and writes that costs more than the database's
    own work. So these statements are compiled once per dialect, and run on the driver's own
    cursor (`driver_cursor`: same transaction, errors raised as SQLAlchemy's) with plain
    tuples of values the driver binds in C: bytes as they are (both drivers bind a blob), and
    a UUID as its hex text. That is how SQLAlchemy's Uuid stores it on SQLite; on PostgreSQL
    the compiled statements cast each UUID parameter (`::UUID`, `::UUID[]`), and psycopg
    adapts a UUID object in Python code but sends text as it is. PostgreSQL takes the
    journal's rows by COPY (`copy_entries`), SQLite by `executemany` (`insert_entries`).
    """

    def __init__(self, dialect: Dialect) -> None:
        self.native_uuid = dialect.supports_native_uuid
        positional = _positional(dialect)
        self.lock_head = _driver_sql(_LOCK_HEAD, positional, ())
        self.known = _driver_sql(_KNOWN, positional, ("ids", "ids"))
        self.balances = _driver_sql(_BALANCES, positional, ("ids",))
        self.insert_entries = _driver_sql(transfers.insert(), positional, _TRANSFER_COLUMNS)
        # PostgreSQL takes the journal's rows by COPY: psycopg's executemany dumps every
        # parameter of every row in Python (about 40 µs a row here), COPY about 8.
        self.copy_entries: str | None = None
        if dialect.name == "postgresql":
            self.copy_entries = f"COPY transfers ({', '.join(_TRANSFER_COLUMNS)}) FROM STDIN"
        self.update_balances = _driver_sql(
            _GUARDED_BALANCE_UPDATE, positional, _GUARDED_BALANCE_PARAMETERS
        )
        self.move_head = _driver_sql(
            _MOVE_HEAD, positional, ("new_seq", "new_hash", "new_timestamp_ns", "before_seq")
        )

    def id_list(self, ids: Collection[UUID]) -> tuple[str, Callable[[Any], UUID]]:
        """`ids` as the one parameter `_InIds` binds (a JSON array on SQLite, an array
        literal on PostgreSQL, both of hex text), and how to turn an id a row returns back
        into its UUID (on SQLite, by looking up its hex text rather than parsing it)."""
        hexes = list(map(_hex, ids))
        if self.native_uuid:  # psycopg returns UUIDs, parsed in C
            return "{" + ",".join(hexes) + "}", _same
        return json.dumps(hexes), dict(zip(hexes, ids, strict=True)).__getitem__


def _positional(dialect: Dialect) -> Dialect:
    """The dialect, or its twin with a positional paramstyle: tuples of parameters need one
    (psycopg's default is named)."""
    if dialect.positional:
        return dialect
    assert isinstance(dialect, DefaultDialect)
    return type(dialect)(paramstyle="format")


def _driver_sql(statement: ClauseElement, dialect: Dialect, parameters: Sequence[str]) -> str:
    """The statement's SQL for `dialect`, checked to take `parameters` in this order."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    assert compiled.positiontup == list(parameters), compiled.positiontup
    return compiled.string


_DialectKind: TypeAlias = tuple[type, str, bool]
_DRIVERS: dict[_DialectKind, _Driver] = {}


def _dialect_kind(dialect: Dialect) -> _DialectKind:
    """What compiled SQL depends on: the dialect's class, parameter style and native UUIDs."""
    return (type(dialect), dialect.paramstyle, dialect.supports_native_uuid)


def _driver(dialect: Dialect) -> _Driver:
    """One `_Driver` per kind of dialect, not per engine."""
    key = _dialect_kind(dialect)
    driver = _DRIVERS.get(key)
    if driver is None:
        driver = _DRIVERS[key] = _Driver(dialect)
    return driver


class DriverStatement:
    """One small statement that a layer above runs often inside the hot path's batches (a
    payment request's row, its payment's record), run as the driver's own SQL.

    For a one-row statement, `Connection.execute` costs some 40 µs of Python (SQLAlchemy
    finds the compiled form in its cache, processes each parameter, sets up a result); the
    driver's cursor a few. Compiled once per kind of dialect. Values are given by bind name;
    the statement's literals keep their compiled values; a UUID is bound as SQLAlchemy's Uuid
    stores it (hex text on SQLite, the UUID itself where the database has the type). Only
    for values the driver binds as they are: integers, text, None and UUIDs.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: dict[_DialectKind, tuple[str, tuple[str, ...], dict[str, Any]]] = {}

    def run(self, connection: Connection, values: Mapping[str, Any]) -> int:
        """Execute in the connection's transaction; the number of rows it touched. Errors
        are raised as SQLAlchemy's (a broken constraint as IntegrityError)."""
        dialect = connection.dialect
        kind = _dialect_kind(dialect)
        compiled = self._compiled.get(kind)
        if compiled is None:
            compiled = self._compiled[kind] = self._compile(dialect)
        sql, names, literals = compiled
        native_uuid = dialect.supports_native_uuid
        bound = tuple(
            _hex(value) if isinstance(value, UUID) and not native_uuid else value
            for value in (literals[n] if n in literals else values[n] for n in names)
        )
        with driver_cursor(connection) as cursor:
            cursor.execute(sql, bound)
            rowcount: int = cursor.rowcount
            return rowcount

    def _compile(self, dialect: Dialect) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        compiled = self._statement.compile(dialect=_positional(dialect))
        assert isinstance(compiled, SQLCompiler) and compiled.positiontup is not None
        names = tuple(compiled.positiontup)
        binds = compiled.binds
        literals = {name: binds[name].value for name in names if not binds[name].required}
        return compiled.string, names, literals


class BatchReads:
    """What a batch reads first, sent at once: the head lock, then which of the requests'
    transfer ids are known, then their accounts' balances. In `pipelined` that is one round
    trip on PostgreSQL, shared with the first read of whoever reads next (a participant).

    Read for every request given, even those a participant then withdraws: reading a few
    more rows costs less than another round trip. All of it is read after the lock, so it
    is the latest committed until the batch commits."""

    def __init__(self, connection: Connection, requests: Sequence[Sequence[Transfer]]) -> None:
        driver = _driver(connection.dialect)
        self._driver = driver
        self._lock = _Sent(connection, driver.lock_head, ())
        batch = [t for request in requests for t in request]
        ids, self._id_of_transfer = driver.id_list({t.id for t in batch})
        self._known = _Sent(connection, driver.known, (ids, ids))
        self._account_ids = _accounts_of(batch)
        account_ids, self._id_of_account = driver.id_list(self._account_ids)
        self._balances = _Sent(connection, driver.balances, (account_ids,))
        self._head: tuple[ChainHead, int | None] | None = None

    def head(self) -> tuple[ChainHead, int | None]:
        """What `lock_head_for_batch` returns: the locked head, and when the first open hold
        expires."""
        if self._head is None:
            self._head = _head_of(self._lock.rows())
        return self._head

    def snapshot(
        self, connection: Connection, requests: Sequence[Sequence[Transfer]], now_ns: int
    ) -> Snapshot:
        """Everything the state machine needs to decide `requests` (those given at first, or
        fewer), reading the rest (transfers sent again, holds) only when there is some."""
        head, next_expiry_ns = self.head()
        known = self._known.rows()
        loaded = self._balances.rows()
        batch = [t for request in requests for t in request]
        batch_ids = {t.id for t in batch}
        committed: list[UUID] = []
        failed: dict[UUID, Result] = {}
        for row_id, result in known:
            transfer_id = self._id_of_transfer(row_id)
            if transfer_id not in batch_ids:  # a withdrawn request's
                continue
            if result is None:
                committed.append(transfer_id)
            else:
                failed[transfer_id] = RESULTS.get(result) or Result(result)
        existing = {}
        if committed:
            existing = {
                row.id: transfer_from_row(row)
                for row in connection.execute(_EXISTING, {"ids": committed})
            }
        pending_ids = list({t.pending_id for t in batch if t.pending_id is not None})
        hold_rows = []
        if next_expiry_ns is not None and next_expiry_ns <= now_ns:
            hold_rows = list(connection.execute(_DUE_HOLDS, {"now_ns": now_ns}))
        resolved: dict[UUID, Result] = {}
        if pending_ids:
            hold_rows += connection.execute(_HOLDS_OF, {"ids": pending_ids})
            resolved = {
                row.pending_id: _resolution(row.flags, row.code)
                for row in connection.execute(_RESOLUTIONS, {"ids": pending_ids})
            }
        open_holds = {
            row.id: Hold(transfer=transfer_from_row(row), expires_at_ns=row.hold_expires_at_ns)
            for row in hold_rows
        }
        needed = _accounts_of(batch + [hold.transfer for hold in open_holds.values()])
        balances = _balances_of(loaded, self._id_of_account)
        unread = needed - self._account_ids  # a hold's accounts that no transfer names
        if unread:
            balances.update(_load_balances(connection, self._driver, unread))
        return Snapshot(
            now_ns=now_ns,
            head=head,
            accounts={i: b for i, b in balances.items() if i in needed},
            existing=existing,
            failed=failed,
            holds=open_holds,
            resolved=resolved,
        )


def _accounts_of(batch: Sequence[Transfer]) -> set[UUID]:
    return {t.debit_account_id for t in batch} | {t.credit_account_id for t in batch}


def _load_balances(
    connection: Connection, driver: _Driver, account_ids: Collection[UUID]
) -> dict[UUID, Balances]:
    ids, id_of = driver.id_list(account_ids)
    return _balances_of(_Sent(connection, driver.balances, (ids,)).rows(), id_of)


def _balances_of(rows: list[Any], id_of: Callable[[Any], UUID]) -> dict[UUID, Balances]:
    loaded = {}
    for row_id, ledger, no_overdraft, closed, dp, cp, dq, cq in rows:
        account_id = id_of(row_id)
        # bool(): SQLite returns its booleans as 0 and 1.
        loaded[account_id] = Balances(
            account_id, _ledger(ledger), bool(no_overdraft), bool(closed), dp, cp, dq, cq
        )
    return loaded


def write_outcome(
    connection: Connection,
    before: ChainHead,
    outcome: Outcome,
    now_ns: int,
    checkpoint: Checkpoint | None = None,
) -> None:
    """Write a decided batch. Raises LedgerCorrupted if the database moved under the lock."""
    driver = _driver(connection.dialect)
    if outcome.entries:
        rows = [_entry_values(e, _hex) for e in outcome.entries]
        with driver_cursor(connection) as cursor:
            if driver.copy_entries is None:
                cursor.executemany(driver.insert_entries, rows)
            else:
                with cursor.copy(driver.copy_entries) as copy:
                    for row in rows:
                        copy.write_row(row)
    if outcome.failures:
        connection.execute(
            failed_transfers.insert(),
            [
                {"id": i, "result": r.value, "failed_at_ns": now_ns}
                for i, r in outcome.failures.items()
            ],
        )
    if outcome.holds_opened:
        connection.execute(
            holds.insert(),
            [
                {"transfer_id": h.transfer.id, "expires_at_ns": h.expires_at_ns}
                for h in outcome.holds_opened
            ],
        )
    if outcome.holds_closed:
        connection.execute(_CLOSE_HOLDS, {"ids": outcome.holds_closed})
    if outcome.accounts:
        _update_balances(connection, driver, outcome)
    if outcome.head != before:
        head = outcome.head
        with driver_cursor(connection) as cursor:
            cursor.execute(driver.move_head, (head.seq, head.hash, head.timestamp_ns, before.seq))
            moved = cursor.rowcount
        if moved != 1:
            raise LedgerCorrupted("the journal head moved while this writer held its lock")
    if checkpoint is not None:
        insert_checkpoint(connection, checkpoint)


# PostgreSQL: every account of the batch in one statement, each column of the rows one array
# literal ('{1,2,3}': text psycopg passes as it is; it adapts list elements one by one in
# Python). Columns in the order of `_GUARDED_BALANCE_PARAMETERS`.
_PG_GUARDED_BALANCE_UPDATE = (
    "UPDATE accounts SET debits_posted = v.new_dp, credits_posted = v.new_cp,"
    " debits_pending = v.new_dq, credits_pending = v.new_cq"
    " FROM unnest(%s::BIGINT[], %s::BIGINT[], %s::BIGINT[], %s::BIGINT[], %s::UUID[],"
    " %s::BIGINT[], %s::BIGINT[], %s::BIGINT[], %s::BIGINT[])"
    " AS v(new_dp, new_cp, new_dq, new_cq, id, old_dp, old_cp, old_dq, old_cq)"
    " WHERE accounts.id = v.id AND accounts.debits_posted = v.old_dp"
    " AND accounts.credits_posted = v.old_cp AND accounts.debits_pending = v.old_dq"
    " AND accounts.credits_pending = v.old_cq"
)


def _totals_literals(accounts: Sequence[Balances]) -> tuple[str, str, str, str]:
    """The accounts' four totals, each column as a PostgreSQL array literal ('{1,2,3}').
    Formatted with one '%d' format over the whole column: half the time of a join of str()."""
    marks = "{" + ("%d," * len(accounts))[:-1] + "}"
    return (
        marks % tuple([b.debits_posted for b in accounts]),
        marks % tuple([b.credits_posted for b in accounts]),
        marks % tuple([b.debits_pending for b in accounts]),
        marks % tuple([b.credits_pending for b in accounts]),
    )


def _update_balances(connection: Connection, driver: _Driver, outcome: Outcome) -> None:
    """The guarded update of every account the batch touched: an account whose stored
    totals are not the ones read under the lock is not updated, and the count shows it. Were
    `accounts` and `accounts_before` ever out of step, that same guard would halt the batch."""
    new = list(outcome.accounts.values())
    old = list(outcome.accounts_before.values())  # the same accounts, in the same order
    hexes = [_hex(account.id) for account in new]
    with driver_cursor(connection) as cursor:
        if driver.native_uuid:  # PostgreSQL: one statement over the rows' columns
            ids = "{" + ",".join(hexes) + "}"
            columns = (*_totals_literals(new), ids, *_totals_literals(old))
            cursor.execute(_PG_GUARDED_BALANCE_UPDATE, columns)
        else:
            rows = [
                (
                    n.debits_posted,
                    n.credits_posted,
                    n.debits_pending,
                    n.credits_pending,
                    account_hex,
                    o.debits_posted,
                    o.credits_posted,
                    o.debits_pending,
                    o.credits_pending,
                )
                for n, account_hex, o in zip(new, hexes, old, strict=True)
            ]
            cursor.executemany(driver.update_balances, rows)
        updated: int = cursor.rowcount
    if updated != len(new):
        raise LedgerCorrupted(f"{len(new) - updated} account balances changed under the head lock")


def insert_checkpoint(connection: Connection, checkpoint: Checkpoint) -> None:
    connection.execute(
        checkpoints.insert().values(
            seq=checkpoint.seq,
            hash=checkpoint.hash,
            timestamp_ns=checkpoint.timestamp_ns,
            key_id=checkpoint.key_id,
            signature=checkpoint.signature,
        )
    )


def initialize_head(connection: Connection) -> None:
    """Create the journal head if the journal is new; leave it alone otherwise."""
    exists = connection.execute(sa.select(journal_head.c.id)).first()
    if exists is None:
        connection.execute(
            journal_head.insert().values(
                id=1, seq=GENESIS.seq, hash=GENESIS.hash, timestamp_ns=GENESIS.timestamp_ns
            )
        )
