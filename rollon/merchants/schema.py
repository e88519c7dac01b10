"""The merchants' tables (SQLAlchemy Core), created by migration 0003_merchants.

Nothing here holds money: balances and transfers live in the ledger and change only
through its hot path. These tables say who the merchants are and what each payment
request, refund and reconversion is for; the ledger's transfer ids are derived from their
ids, so the ledger itself refuses to move money twice for one of them.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_ID = sa.Uuid(as_uuid=True)
_MONEY = sa.BigInteger()

MAX_NAME_LENGTH = 200
MAX_ADDRESS_LENGTH = 200
MAX_CITY_LENGTH = 100
MAX_REFERENCE_LENGTH = 140
MAX_DESCRIPTION_LENGTH = 500
MAX_PAYLOAD_LENGTH = 512

merchants = sa.Table(
    "merchants",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("account_id", _ID, nullable=False, unique=True),
    sa.Column("legal_name", sa.String(MAX_NAME_LENGTH), nullable=False),
    sa.Column("trade_name", sa.String(MAX_NAME_LENGTH), nullable=False),
    sa.Column("siret", sa.String(14), nullable=False, unique=True),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("address", sa.String(MAX_ADDRESS_LENGTH), nullable=False),
    sa.Column("postcode", sa.String(5), nullable=False),
    sa.Column("city", sa.String(MAX_CITY_LENGTH), nullable=False),
    sa.Column("iban", sa.String(34), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    # Folded lower-case forms the directory searches and sorts on.
    sa.Column("name_key", sa.String(2 * MAX_NAME_LENGTH + 1), nullable=False),
    sa.Column("city_key", sa.String(MAX_CITY_LENGTH), nullable=False),
    sa.Index("merchants_by_name", "name_key", "id"),
    sa.Index("merchants_by_city", "city_key", "name_key", "id"),
    sa.Index("merchants_by_category", "category", "name_key", "id"),
)

# One row per payment request; a payment from a merchant's static QR gets a row too, so
# that every payment can be refunded the same way.
payment_requests = sa.Table(
    "payment_requests",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("merchant_id", _ID, nullable=False),
    sa.Column("account_id", _ID, nullable=False),  # the merchant's RLN account
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("amount", _MONEY, nullable=False),
    sa.Column("reference", sa.String(MAX_REFERENCE_LENGTH), nullable=False),
    sa.Column("description", sa.String(MAX_DESCRIPTION_LENGTH), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # Which ledger transfer id a payment uses now: it moves on only after the previous one
    # failed for good in the ledger, so at most one attempt of a request can ever succeed.
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Column("issued_at_s", sa.BigInteger, nullable=False),
    sa.Column("expires_at_s", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.String(MAX_PAYLOAD_LENGTH), nullable=False),
    sa.Column("payer_account_id", _ID, nullable=True),
    sa.Column("transfer_id", _ID, nullable=True, unique=True),  # a request is paid once
    sa.Column("paid_at_ns", sa.BigInteger, nullable=True),
    sa.Column("closed_at_ns", sa.BigInteger, nullable=True),  # cancelled or expired
    sa.Column("refund_reserved", _MONEY, nullable=False, server_default="0"),
    sa.Column("refunded_amount", _MONEY, nullable=False, server_default="0"),
    sa.CheckConstraint("amount > 0", name="request_amount_positive"),
    sa.CheckConstraint("kind IN ('dynamic', 'static')", name="request_kind"),
    sa.CheckConstraint(
        "status IN ('open', 'cancelling', 'expiring', 'paid', 'cancelled', 'expired')",
        name="request_status",
    ),
    sa.CheckConstraint(
        "0 <= refunded_amount AND refunded_amount <= refund_reserved AND refund_reserved <= amount",
        name="refunds_within_payment",
    ),
    sa.CheckConstraint("(status = 'paid') = (transfer_id IS NOT NULL)", name="paid_has_transfer"),
    sa.Index("payment_requests_by_account", "account_id", "created_at_ns"),
    sa.Index("payment_requests_by_expiry", "status", "expires_at_s"),
)

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("request_id", _ID, nullable=False),
    sa.Column("amount", _MONEY, nullable=False),
    sa.Column("transfer_id", _ID, nullable=False, unique=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("failure", sa.String(40), nullable=True),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.CheckConstraint("amount > 0", name="refund_amount_positive"),
    sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name="refund_status"),
    sa.Index("refunds_by_request", "request_id"),
)

reconversions = sa.Table(
    "reconversions",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("merchant_id", _ID, nullable=False),
    sa.Column("account_id", _ID, nullable=False),
    sa.Column("amount", _MONEY, nullable=False),
    sa.Column("fee_bps", sa.Integer, nullable=False),
    sa.Column("fee", _MONEY, nullable=False),
    sa.Column("net", _MONEY, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("failure", sa.String(40), nullable=True),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Column("settlement_id", _ID, nullable=True),
    sa.CheckConstraint("amount > 0 AND fee >= 0 AND net >= 0", name="reconversion_amounts"),
    sa.CheckConstraint("fee + net = amount", name="reconversion_adds_up"),
    sa.CheckConstraint(
        "status IN ('pending', 'due', 'failed', 'settling', 'paid')", name="reconversion_status"
    ),
    sa.Index("reconversions_by_status", "status", "created_at_ns"),
    sa.Index("reconversions_by_account", "account_id", "created_at_ns"),
    sa.Index("reconversions_by_settlement", "settlement_id"),
)

# A payout file (pain.001) and its fate: prepared, then paid (or cancelled if the bank
# refused it, which puts its reconversions back in the queue).
settlements = sa.Table(
    "settlements",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("message_id", sa.String(35), nullable=False, unique=True),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Column("execution_date", sa.Date, nullable=False),
    sa.Column("total", _MONEY, nullable=False),
    sa.Column("transfers", sa.Integer, nullable=False),
    sa.Column("reconversions", sa.Integer, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("closed_at_ns", sa.BigInteger, nullable=True),
    sa.CheckConstraint("total > 0 AND transfers > 0", name="settlement_not_empty"),
    sa.CheckConstraint("status IN ('prepared', 'paid', 'cancelled')", name="settlement_status"),
    sa.Index("settlements_by_created", "created_at_ns"),
)
