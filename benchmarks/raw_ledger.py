"""The raw-driver ceiling of the core suite: plain sqlite3 / psycopg doing the irreducible work
of one ledger batch, in the ledger's own tables (created by the migrations).

Per batch, in one transaction with the ledger's durability (SQLite WAL + synchronous=FULL,
its WAL checkpointed by a thread beside the writer as the ledger's is; PostgreSQL
synchronous_commit on): lock the journal head, read the balances of the accounts
the batch touches, insert one hash-chained row per transfer with the same columns and
values, update those balances, move the head, commit. Balances are read and rows and
balances written with the fastest way each driver has: SQLite reads by an IN list (a little
faster than the ledger's JSON array), inserts and updates by `executemany` (faster than
multi-row VALUES); PostgreSQL reads by one array literal (an IN list of 500 ids took twice
as long, measured 2026-12-07), inserts by COPY and updates in one statement over array
literals (both faster than `executemany` there). Nothing more: no idempotency lookup, no
failed-id lookup, no hold expiry, no validation. That is the ceiling the hot path is compared
with, at the batch size the hot path itself achieved.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Engine

from rollon.ledger.storage import create_engine
from rollon.ledger.transfers import Transfer
from rollon.ledger.wal_checkpoints import AUTOCHECKPOINT_BACKSTOP_PAGES, WalCheckpointer

_COLUMNS = (
    "seq, id, debit_account_id, credit_account_id, amount, ledger, code, flags, pending_id, "
    "timeout_s, expires_at_ns, event_time_ns, memo, timestamp_ns, debit_balance_after, "
    "credit_balance_after, prev_hash, hash"
)
_N_COLUMNS = 18
_ENCODING = struct.Struct(">QQ16s16s16sQ3s")
_READ_IN = "SELECT id, debits_posted, credits_posted FROM accounts WHERE id IN (%s)"
_READ_ANY = "SELECT id, debits_posted, credits_posted FROM accounts WHERE id = ANY(%s::UUID[])"
_UPDATE_AT_ONCE = (
    "UPDATE accounts SET debits_posted = v.d, credits_posted = v.c"
    " FROM unnest(%s::UUID[], %s::BIGINT[], %s::BIGINT[]) AS v(id, d, c) WHERE accounts.id = v.id"
)


def _array_literals(balances: dict[Any, list[int]]) -> tuple[str, str, str]:
    """Ids, debits and credits as PostgreSQL array literals (text the driver sends as is)."""
    return (
        "{" + ",".join(str(i) for i in balances) + "}",
        "{" + ",".join(str(d) for d, _ in balances.values()) + "}",
        "{" + ",".join(str(c) for _, c in balances.values()) + "}",
    )


class RawLedger:
    """One connection of a plain driver, writing batches of transfers as the ledger would."""

    def __init__(
        self,
        connection: Any,
        *,
        placeholder: str,
        uuid_value: Callable[[UUID], Any],
        begin: str | None,
        lock_suffix: str,
        postgres: bool,
        wal_engine: Engine | None = None,
    ) -> None:
        self._connection = connection
        # SQLite: the WAL's checkpoints, beside the writer, and the engine they run on.
        self._wal = (wal_engine, WalCheckpointer(wal_engine)) if wal_engine is not None else None
        self._cursor = connection.cursor()
        self._uuid = uuid_value
        self._begin = begin
        p = placeholder
        self._lock = f"SELECT seq, hash, timestamp_ns FROM journal_head WHERE id = 1{lock_suffix}"
        self._insert = f"INSERT INTO transfers ({_COLUMNS}) VALUES ({', '.join([p] * _N_COLUMNS)})"
        self._update = (
            f"UPDATE accounts SET debits_posted = {p}, credits_posted = {p} WHERE id = {p}"
        )
        self._postgres = postgres
        self._copy = f"COPY transfers ({_COLUMNS}) FROM STDIN"
        self._move_head = (
            f"UPDATE journal_head SET seq = {p}, hash = {p}, timestamp_ns = {p} WHERE id = 1"
        )
        self._placeholder = p

    @classmethod
    def sqlite(cls, path: str) -> RawLedger:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_BACKSTOP_PAGES}")
        return cls(
            connection,
            placeholder="?",
            uuid_value=lambda u: u.hex,  # how SQLAlchemy's Uuid stores it on SQLite
            begin="BEGIN IMMEDIATE",
            lock_suffix="",
            postgres=False,
            wal_engine=create_engine(f"sqlite:///{path}"),
        )

    @classmethod
    def postgres(cls, conninfo: str, search_path: str) -> RawLedger:
        import psycopg

        connection = psycopg.connect(conninfo, options=f"-csearch_path={search_path}")
        connection.execute("SET synchronous_commit = on")
        connection.commit()
        return cls(
            connection,
            placeholder="%s",
            uuid_value=lambda u: u,
            begin=None,  # psycopg opens the transaction itself
            lock_suffix=" FOR UPDATE",
            postgres=True,
        )

    def close(self) -> None:
        self._connection.close()
        if self._wal is not None:
            engine, checkpointer = self._wal
            checkpointer.close()
            engine.dispose()

    def write(self, batch: Sequence[Transfer]) -> None:
        """Write one batch of plain transfers in one durable transaction."""
        cursor, as_db = self._cursor, self._uuid
        if self._begin is not None:
            cursor.execute(self._begin)
        seq, prev, last_ns = cursor.execute(self._lock).fetchone()
        prev = bytes(prev)
        ids = list({as_db(i) for t in batch for i in (t.debit_account_id, t.credit_account_id)})
        if self._postgres:  # one array literal: half the time of an IN list of 500 here
            read, values = _READ_ANY, ("{" + ",".join(map(str, ids)) + "}",)
        else:  # an IN list: a little faster on SQLite than the ledger's JSON array
            read = _READ_IN % ", ".join([self._placeholder] * len(ids))
            values = tuple(ids)
        balances = {
            account_id: [debits, credits]
            for account_id, debits, credits in cursor.execute(read, values)
        }
        rows = []
        now_ns = time.time_ns()
        for t in batch:
            seq += 1
            last_ns = max(now_ns, last_ns + 1)
            debit_id, credit_id = as_db(t.debit_account_id), as_db(t.credit_account_id)
            debit, credit = balances[debit_id], balances[credit_id]
            debit[0] += t.amount
            credit[1] += t.amount
            digest = hashlib.sha256(
                prev
                + _ENCODING.pack(
                    seq,
                    last_ns,
                    t.id.bytes,
                    t.debit_account_id.bytes,
                    t.credit_account_id.bytes,
                    t.amount,
                    t.ledger.value.encode(),
                )
                + t.code.value.encode()
                + t.memo.encode()
            ).digest()
            rows.append(
                (
                    seq,
                    as_db(t.id),
                    debit_id,
                    credit_id,
                    t.amount,
                    t.ledger.value,
                    t.code.value,
                    int(t.flags),
                    None,
                    t.timeout_s,
                    None,
                    t.event_time_ns,
                    t.memo,
                    last_ns,
                    debit[1] - debit[0],
                    credit[1] - credit[0],
                    prev,
                    digest,
                )
            )
            prev = digest
        if self._postgres:
            with cursor.copy(self._copy) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(_UPDATE_AT_ONCE, _array_literals(balances))
        else:
            cursor.executemany(self._insert, rows)
            cursor.executemany(self._update, [(d, c, i) for i, (d, c) in balances.items()])
        cursor.execute(self._move_head, (seq, prev, last_ns))
        self._connection.commit()
