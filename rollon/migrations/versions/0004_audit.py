"""Audit tables: imported bank statements.

Revision ID: 0004_audit
Revises: 0003_merchants
"""

from __future__ import annotations

revision = "0004_audit"
down_revision = "0003_merchants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass
