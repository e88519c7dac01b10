"""Money is an integer number of centimes; this module parses and formats it.

Parsing is strict on purpose: an amount typed at a till or sent by a client must mean exactly
one number of centimes, or be refused with a reason.
"""

from __future__ import annotations

import re

MAX_AMOUNT = 2**63 - 1  # what a signed 64-bit column holds; no balance may pass it
CENTIMES_PER_UNIT = 100

# ASCII digits only: \d also takes other scripts' digits, some of which look like other
# numbers (Bengali four looks like an eight).
_AMOUNT_TEXT = re.compile(r"^(?P<units>\d+)(?:[.,](?P<cents>\d{1,2}))?$", re.ASCII)


class AmountError(ValueError):
    """An amount that cannot be used: the message says why, in words a user understands."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_amount(text: str) -> int:
    """Parse "12,50", "12.50" or "12" into centimes (1250). Refuses anything ambiguous.

    Refused: empty text, signs, exponents, NaN/infinity, more than two decimals, zero (an
    amount is always a movement), and values past 2^63-1 centimes.
    """
    if not isinstance(text, str):
        raise AmountError("amount_not_text", "an amount must be given as text, not a number")
    cleaned = text.strip()
    match = _AMOUNT_TEXT.match(cleaned)
    if match is None:
        if re.match(r"^\d+[.,]\d{3,}$", cleaned, re.ASCII):
            raise AmountError("too_many_decimals", f"{text!r} has more than two decimals")
        if cleaned.startswith("-"):
            raise AmountError("amount_must_be_positive", f"{text!r} is negative")
        raise AmountError("amount_malformed", f"{text!r} is not an amount such as 12,50")
    cents_text = match.group("cents") or "0"
    cents = int(cents_text) * (10 if len(cents_text) == 1 else 1)
    value = int(match.group("units")) * CENTIMES_PER_UNIT + cents
    return check_amount(value)


def check_amount(value: object) -> int:
    """Check that a value given in centimes is a usable amount: an int, positive, in range."""
    # bool is an int subclass; True is not one centime.
    if isinstance(value, bool) or not isinstance(value, int):
        raise AmountError(
            "amount_must_be_integer", "an amount is a whole number of centimes (1250 = 12,50)"
        )
    if value <= 0:
        raise AmountError("amount_must_be_positive", "an amount must be at least one centime")
    if value > MAX_AMOUNT:
        raise AmountError("amount_too_large", f"an amount may not exceed {MAX_AMOUNT} centimes")
    return value


def format_amount(centimes: int, currency: str = "RolloN") -> str:
    """Format centimes for people, French style: 1250 -> "12,50 RolloN", -5 -> "-0,05 RolloN"."""
    assert isinstance(centimes, int) and not isinstance(centimes, bool)
    sign = "-" if centimes < 0 else ""
    units, cents = divmod(abs(centimes), CENTIMES_PER_UNIT)
    grouped = f"{units:,}".replace(",", "\u202f")  # narrow no-break space groups thousands
    return f"{sign}{grouped},{cents:02d} {currency}"


def apply_rate_bps(amount: int, rate_bps: int) -> int:
    """Amount times a rate in basis points (100 bps = 1 %), rounded half up, in integers only."""
    assert amount >= 0 and 0 <= rate_bps <= 10_000
    return (amount * rate_bps + 5_000) // 10_000
