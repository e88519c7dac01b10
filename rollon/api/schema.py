"""The API's own tables (SQLAlchemy Core): bearer tokens and idempotency keys.

Created by migration 0002_api. Nothing here holds money: balances live in the ledger's
tables and change only through its hot path.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_ID = sa.Uuid(as_uuid=True)

MAX_TOKEN_NAME_LENGTH = 200
MAX_IDEMPOTENCY_KEY_LENGTH = 255

# A token is stored as the SHA-256 of its secret only: a database leak does not leak tokens.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("secret_sha256", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("account_id", _ID, nullable=True),
    sa.Column("name", sa.String(MAX_TOKEN_NAME_LENGTH), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Column("revoked_at_ns", sa.BigInteger, nullable=True),
    sa.CheckConstraint(
        "role IN ('admin', 'operator', 'merchant', 'member', 'auditor')", name="known_role"
    ),
)

# The first answer to a money-moving POST, kept per (token, key) so a retry gets it again,
# even after a restart.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("token_id", _ID, primary_key=True),
    sa.Column("key", sa.String(MAX_IDEMPOTENCY_KEY_LENGTH), primary_key=True),
    sa.Column("request_sha256", sa.LargeBinary(32), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("media_type", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Index("idempotency_keys_created", "created_at_ns"),
)
