"""The ledger's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

`accounts` carries running totals; `transfers` is the append-only, hash-chained journal;
`holds` lists open pending transfers; `failed_transfers` remembers refused ids;
`journal_head` is the single row every writer locks first, which gives the chain its total
order across processes; `checkpoints` holds signed chain heads.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_ID = sa.Uuid(as_uuid=True)
_MONEY = sa.BigInteger()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("ledger", sa.String(3), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("no_overdraft", sa.Boolean, nullable=False),
    sa.Column("closed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Column("debits_posted", _MONEY, nullable=False, server_default="0"),
    sa.Column("credits_posted", _MONEY, nullable=False, server_default="0"),
    sa.Column("debits_pending", _MONEY, nullable=False, server_default="0"),
    sa.Column("credits_pending", _MONEY, nullable=False, server_default="0"),
    # The database refuses an overdraft too: the last line of defence if code ever errs.
    sa.CheckConstraint(
        "NOT no_overdraft OR credits_posted - debits_posted - debits_pending >= 0",
        name="no_overdraft",
    ),
    sa.CheckConstraint("debits_pending >= 0 AND credits_pending >= 0", name="pending_positive"),
    sa.CheckConstraint("ledger IN ('RLN', 'EUR')", name="known_ledger"),
)

transfers = sa.Table(
    "transfers",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("id", _ID, nullable=False, unique=True),
    sa.Column("debit_account_id", _ID, nullable=False),
    sa.Column("credit_account_id", _ID, nullable=False),
    sa.Column("amount", _MONEY, nullable=False),
    sa.Column("ledger", sa.String(3), nullable=False),
    sa.Column("code", sa.String(16), nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),
    sa.Column("pending_id", _ID, nullable=True, unique=True),  # a hold is resolved once
    sa.Column("timeout_s", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ns", sa.BigInteger, nullable=True),
    sa.Column("event_time_ns", sa.BigInteger, nullable=True),
    sa.Column("memo", sa.String(512), nullable=False),
    sa.Column("timestamp_ns", sa.BigInteger, nullable=False, unique=True),
    sa.Column("debit_balance_after", _MONEY, nullable=False),
    sa.Column("credit_balance_after", _MONEY, nullable=False),
    sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    sa.CheckConstraint("amount > 0", name="amount_positive"),
    sa.Index("transfers_debit_seq", "debit_account_id", "seq"),
    sa.Index("transfers_credit_seq", "credit_account_id", "seq"),
)

holds = sa.Table(
    "holds",
    metadata,
    sa.Column("transfer_id", _ID, primary_key=True),
    sa.Column("expires_at_ns", sa.BigInteger, nullable=True, index=True),
)

failed_transfers = sa.Table(
    "failed_transfers",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("result", sa.String(40), nullable=False),
    sa.Column("failed_at_ns", sa.BigInteger, nullable=False),
)

journal_head = sa.Table(
    "journal_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    sa.Column("timestamp_ns", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="single_head"),
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    sa.Column("timestamp_ns", sa.BigInteger, nullable=False),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("signature", sa.LargeBinary(64), nullable=False),
)
