"""The audit tables: bank statements imported for reconciliation, and their lines.

Audit data, not money: nothing here moves a balance. A statement is stored once (its file's
SHA-256 is unique), so uploading the same file twice answers the stored one.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

bank_statements = sa.Table(
    "bank_statements",
    metadata,
    sa.Column("id", sa.Uuid(as_uuid=True), primary_key=True),
    sa.Column("file_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("source_format", sa.String(16), nullable=False),
    sa.Column("statement_ref", sa.String(500), nullable=False),
    sa.Column("account_iban", sa.String(64), nullable=False),
    sa.Column("opening_balance", sa.BigInteger, nullable=True),
    sa.Column("closing_balance", sa.BigInteger, nullable=True),
    sa.Column("from_date", sa.Date, nullable=False),
    sa.Column("to_date", sa.Date, nullable=False),
    sa.Column("line_count", sa.Integer, nullable=False),
    sa.Column("imported_at_ns", sa.BigInteger, nullable=False),
)

bank_statement_lines = sa.Table(
    "bank_statement_lines",
    metadata,
    sa.Column(
        "statement_id",
        sa.Uuid(as_uuid=True),
        sa.ForeignKey("bank_statements.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("booking_date", sa.Date, nullable=False),
    sa.Column("value_date", sa.Date, nullable=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("reference", sa.String(500), nullable=False),
    sa.Column("counterparty", sa.String(500), nullable=False),
    sa.Column("description", sa.String(1000), nullable=False),
)
