"""The ledger's tables: accounts, the journal, holds, failed ids, journal head, checkpoints.

Revision ID: 0001_ledger
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ledger", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("no_overdraft", sa.Boolean(), nullable=False),
        sa.Column("closed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("ledger IN ('RLN', 'EUR')", name="known_ledger"),
        sa.CheckConstraint(
            "NOT no_overdraft OR credits_posted - debits_posted - debits_pending >= 0",
            name="no_overdraft",
        ),
        sa.CheckConstraint("debits_pending >= 0 AND credits_pending >= 0", name="pending_positive"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("timestamp_ns", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "failed_transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("result", sa.String(length=40), nullable=False),
        sa.Column("failed_at_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "holds",
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at_ns", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("transfer_id"),
    )
    op.create_index(op.f("ix_holds_expires_at_ns"), "holds", ["expires_at_ns"], unique=False)
    op.create_table(
        "journal_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("timestamp_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="single_head"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "transfers",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("debit_account_id", sa.Uuid(), nullable=False),
        sa.Column("credit_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("ledger", sa.String(length=3), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("pending_id", sa.Uuid(), nullable=True),
        sa.Column("timeout_s", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ns", sa.BigInteger(), nullable=True),
        sa.Column("event_time_ns", sa.BigInteger(), nullable=True),
        sa.Column("memo", sa.String(length=512), nullable=False),
        sa.Column("timestamp_ns", sa.BigInteger(), nullable=False),
        sa.Column("debit_balance_after", sa.BigInteger(), nullable=False),
        sa.Column("credit_balance_after", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
        sa.UniqueConstraint("pending_id"),
        sa.UniqueConstraint("timestamp_ns"),
    )
    op.create_index("transfers_credit_seq", "transfers", ["credit_account_id", "seq"], unique=False)
    op.create_index("transfers_debit_seq", "transfers", ["debit_account_id", "seq"], unique=False)
