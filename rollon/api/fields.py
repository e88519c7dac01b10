"""Field types shared by the API's request and answer models.

`Centimes` is how every amount is typed: a JSON integer, strictly (12.5, "12" and true are
refused with `amount_must_be_integer`), at least 1, at most 2^63-1. Request models derive
from `RequestModel`, which refuses unknown fields (a typo such as `ammount` is an error,
not a silently ignored field).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from rollon.ledger.money import MAX_AMOUNT

NS_PER_S = 1_000_000_000
MAX_MEMO_LENGTH = 120  # characters; 120 x 4 UTF-8 bytes stays within the ledger's 512 bytes

Centimes = Annotated[
    int,
    Field(
        strict=True,
        gt=0,
        le=MAX_AMOUNT,
        description="An amount in centimes, as a JSON integer: 1250 is 12,50 RolloN.",
        examples=[1250],
    ),
]

Memo = Annotated[
    str,
    Field(
        max_length=MAX_MEMO_LENGTH,
        description="A note both sides see in their history.",
        examples=["Thanks for the bread"],
    ),
]


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


def from_ns(timestamp_ns: int) -> datetime:
    """A ledger timestamp (ns since the epoch) as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp_ns / NS_PER_S, UTC)
