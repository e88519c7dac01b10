"""Merchant tables: directory, payment requests, refunds, reconversions, payout settlements.

Revision ID: 0003_merchants
Revises: 0002_api
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_merchants"
down_revision = "0002_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("trade_name", sa.String(length=200), nullable=False),
        sa.Column("siret", sa.String(length=14), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("postcode", sa.String(length=5), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("name_key", sa.String(length=401), nullable=False),
        sa.Column("city_key", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id"),
        sa.UniqueConstraint("siret"),
    )
    op.create_index("merchants_by_name", "merchants", ["name_key", "id"])
    op.create_index("merchants_by_city", "merchants", ["city_key", "name_key", "id"])
    op.create_index("merchants_by_category", "merchants", ["category", "name_key", "id"])

    op.create_table(
        "payment_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=140), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("issued_at_s", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_s", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.String(length=512), nullable=False),
        sa.Column("payer_account_id", sa.Uuid(), nullable=True),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),
        sa.Column("paid_at_ns", sa.BigInteger(), nullable=True),
        sa.Column("closed_at_ns", sa.BigInteger(), nullable=True),
        sa.Column("refund_reserved", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("amount > 0", name="request_amount_positive"),
        sa.CheckConstraint("kind IN ('dynamic', 'static')", name="request_kind"),
        sa.CheckConstraint(
            "status IN ('open', 'cancelling', 'expiring', 'paid', 'cancelled', 'expired')",
            name="request_status",
        ),
        sa.CheckConstraint(
            "0 <= refunded_amount AND refunded_amount <= refund_reserved "
            "AND refund_reserved <= amount",
            name="refunds_within_payment",
        ),
        sa.CheckConstraint(
            "(status = 'paid') = (transfer_id IS NOT NULL)", name="paid_has_transfer"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transfer_id"),
    )
    op.create_index(
        "payment_requests_by_account", "payment_requests", ["account_id", "created_at_ns"]
    )
    op.create_index("payment_requests_by_expiry", "payment_requests", ["status", "expires_at_s"])

    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("failure", sa.String(length=40), nullable=True),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0", name="refund_amount_positive"),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name="refund_status"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transfer_id"),
    )
    op.create_index("refunds_by_request", "refunds", ["request_id"])

    op.create_table(
        "reconversions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("failure", sa.String(length=40), nullable=True),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("settlement_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("amount > 0 AND fee >= 0 AND net >= 0", name="reconversion_amounts"),
        sa.CheckConstraint("fee + net = amount", name="reconversion_adds_up"),
        sa.CheckConstraint(
            "status IN ('pending', 'due', 'failed', 'settling', 'paid')",
            name="reconversion_status",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("reconversions_by_status", "reconversions", ["status", "created_at_ns"])
    op.create_index("reconversions_by_account", "reconversions", ["account_id", "created_at_ns"])
    op.create_index("reconversions_by_settlement", "reconversions", ["settlement_id"])

    op.create_table(
        "settlements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=35), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("execution_date", sa.Date(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("reconversions", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("closed_at_ns", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("total > 0 AND transfers > 0", name="settlement_not_empty"),
        sa.CheckConstraint("status IN ('prepared', 'paid', 'cancelled')", name="settlement_status"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index("settlements_by_created", "settlements", ["created_at_ns"])
