"""API tables: tokens, idempotency keys, login attempts.

Revision ID: 0002_api
Revises: 0001_ledger
"""

from __future__ import annotations

revision = "0002_api"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass
