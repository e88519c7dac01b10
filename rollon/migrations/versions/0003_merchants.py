"""Merchant tables: directory, payment requests, refunds, reconversions, payouts.

Revision ID: 0003_merchants
Revises: 0002_api
"""

from __future__ import annotations

revision = "0003_merchants"
down_revision = "0002_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass
