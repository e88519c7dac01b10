"""Storage: engines for SQLite and PostgreSQL, and the reads and writes of one batch.

Every write transaction starts by locking the single `journal_head` row (SQLite: BEGIN
IMMEDIATE takes the database's write lock). That one lock gives the hash chain a total
order and serializes batches across processes, so every balance read after it is the latest
committed one. Updates are guarded by the balances that were read: if they changed anyway,
the ledger stops instead of writing over someone else's work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, Row

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
    Hold,
    JournalEntry,
    Result,
    Transfer,
    TransferCode,
    TransferFlag,
)

AnyRow: TypeAlias = Row[*tuple[Any, ...]]
SQLITE_BUSY_TIMEOUT_MS = 10_000
MAX_EXPIRIES_PER_BATCH = 256  # bounded: a backlog of timeouts drains over several batches


class LedgerCorrupted(RuntimeError):
    """The database no longer agrees with what the ledger just read: stop, do not spread it."""


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and point them at psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the durability the ledger promises (SQLite: WAL, synchronous=FULL)."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, **kwargs)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get("rollon_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that may write the ledger; call `lock_head` first thing inside it."""
    with engine.connect() as connection:
        connection.execution_options(rollon_write=True)
        with connection.begin():
            yield connection


def lock_head(connection: Connection) -> ChainHead:
    """Lock the journal head row: from here until commit, this transaction is the writer."""
    row = connection.execute(
        sa.select(journal_head.c.seq, journal_head.c.hash, journal_head.c.timestamp_ns)
        .where(journal_head.c.id == 1)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise LedgerCorrupted("the journal head is missing: run `rollon init`")
    return ChainHead(seq=row.seq, hash=bytes(row.hash), timestamp_ns=row.timestamp_ns)


# -- rows <-> values ------------------------------------------------------------------------
def transfer_from_row(row: AnyRow) -> Transfer:
    return Transfer(
        id=row.id,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount=row.amount,
        ledger=LedgerCode(row.ledger),
        code=TransferCode(row.code),
        flags=TransferFlag(row.flags),
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
    t = entry.transfer
    return {
        "seq": entry.seq,
        "id": t.id,
        "debit_account_id": t.debit_account_id,
        "credit_account_id": t.credit_account_id,
        "amount": t.amount,
        "ledger": t.ledger.value,
        "code": t.code.value,
        "flags": int(t.flags),
        "pending_id": t.pending_id,
        "timeout_s": t.timeout_s,
        "expires_at_ns": entry.expires_at_ns,
        "event_time_ns": t.event_time_ns,
        "memo": t.memo,
        "timestamp_ns": entry.timestamp_ns,
        "debit_balance_after": entry.debit_balance_after,
        "credit_balance_after": entry.credit_balance_after,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def balances_from_row(row: AnyRow) -> Balances:
    return Balances(
        id=row.id,
        ledger=LedgerCode(row.ledger),
        no_overdraft=row.no_overdraft,
        closed=row.closed,
        debits_posted=row.debits_posted,
        credits_posted=row.credits_posted,
        debits_pending=row.debits_pending,
        credits_pending=row.credits_pending,
    )


def account_from_row(row: AnyRow) -> Account:
    return Account(
        id=row.id,
        ledger=LedgerCode(row.ledger),
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


# -- one batch ------------------------------------------------------------------------------
def load_snapshot(
    connection: Connection, head: ChainHead, requests: Sequence[Sequence[Transfer]], now_ns: int
) -> Snapshot:
    """Read, under the head lock, everything the state machine needs to decide `requests`."""
    batch = [t for request in requests for t in request]
    ids = list({t.id for t in batch})
    existing = {
        row.id: transfer_from_row(row)
        for row in connection.execute(sa.select(transfers).where(transfers.c.id.in_(ids)))
    }
    failed = {
        row.id: Result(row.result)
        for row in connection.execute(
            sa.select(failed_transfers.c.id, failed_transfers.c.result).where(
                failed_transfers.c.id.in_(ids)
            )
        )
    }
    held = sa.select(transfers, holds.c.expires_at_ns.label("hold_expires_at_ns")).join(
        holds, holds.c.transfer_id == transfers.c.id
    )
    pending_ids = list({t.pending_id for t in batch if t.pending_id is not None})
    hold_rows = list(
        connection.execute(
            held.where(holds.c.expires_at_ns <= now_ns)
            .order_by(holds.c.expires_at_ns)
            .limit(MAX_EXPIRIES_PER_BATCH)
        )
    )
    resolved: dict[UUID, Result] = {}
    if pending_ids:
        hold_rows += connection.execute(held.where(holds.c.transfer_id.in_(pending_ids)))
        resolved = {
            row.pending_id: _resolution(row.flags, row.code)
            for row in connection.execute(
                sa.select(transfers.c.pending_id, transfers.c.flags, transfers.c.code).where(
                    transfers.c.pending_id.in_(pending_ids)
                )
            )
        }
    open_holds = {
        row.id: Hold(transfer=transfer_from_row(row), expires_at_ns=row.hold_expires_at_ns)
        for row in hold_rows
    }
    account_ids = {t.debit_account_id for t in batch} | {t.credit_account_id for t in batch}
    for hold in open_holds.values():
        account_ids.add(hold.transfer.debit_account_id)
        account_ids.add(hold.transfer.credit_account_id)
    loaded = {
        row.id: balances_from_row(row)
        for row in connection.execute(
            sa.select(*_BALANCE_COLUMNS).where(accounts.c.id.in_(list(account_ids)))
        )
    }
    return Snapshot(
        now_ns=now_ns,
        head=head,
        accounts=loaded,
        existing=existing,
        failed=failed,
        holds=open_holds,
        resolved=resolved,
    )


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


def write_outcome(
    connection: Connection,
    before: ChainHead,
    outcome: Outcome,
    now_ns: int,
    checkpoint: Checkpoint | None = None,
) -> None:
    """Write a decided batch. Raises LedgerCorrupted if the database moved under the lock."""
    if outcome.entries:
        connection.execute(transfers.insert(), [entry_to_row(e) for e in outcome.entries])
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
        connection.execute(holds.delete().where(holds.c.transfer_id.in_(outcome.holds_closed)))
    if outcome.accounts:
        _update_balances(connection, outcome)
    if outcome.head != before:
        updated = connection.execute(
            journal_head.update()
            .where(journal_head.c.id == 1, journal_head.c.seq == before.seq)
            .values(
                seq=outcome.head.seq,
                hash=outcome.head.hash,
                timestamp_ns=outcome.head.timestamp_ns,
            )
        )
        if updated.rowcount != 1:
            raise LedgerCorrupted("the journal head moved while this writer held its lock")
    if checkpoint is not None:
        insert_checkpoint(connection, checkpoint)


def _update_balances(connection: Connection, outcome: Outcome) -> None:
    params = []
    for account_id, new in outcome.accounts.items():
        old = outcome.accounts_before[account_id]
        params.append(
            {
                "b_id": account_id,
                "old_dp": old.debits_posted,
                "old_cp": old.credits_posted,
                "old_dq": old.debits_pending,
                "old_cq": old.credits_pending,
                "new_dp": new.debits_posted,
                "new_cp": new.credits_posted,
                "new_dq": new.debits_pending,
                "new_cq": new.credits_pending,
            }
        )
    updated = connection.execute(_GUARDED_BALANCE_UPDATE, params)
    if updated.rowcount != len(params):
        raise LedgerCorrupted(
            f"{len(params) - updated.rowcount} account balances changed under the head lock"
        )


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
