"""Money: strict parsing of user text into centimes, checks of integer amounts, formatting,
and rates in basis points."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollon.ledger.money import (
    MAX_AMOUNT,
    AmountError,
    apply_rate_bps,
    check_amount,
    format_amount,
    parse_amount,
)


@pytest.mark.parametrize(
    ("text", "centimes"),
    [
        ("12,50", 1250),
        ("12.50", 1250),
        ("12", 1200),
        ("12,5", 1250),  # one decimal means tenths
        ("0,01", 1),
        ("0.10", 10),
        ("  7,00 ", 700),  # surrounding blanks from a form are tolerated
        ("007", 700),
        ("92233720368547758,07", MAX_AMOUNT),
    ],
)
def test_parse_amount_accepts_plain_amounts(text: str, centimes: int) -> None:
    assert parse_amount(text) == centimes


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("12,505", "too_many_decimals"),
        ("0.001", "too_many_decimals"),
        ("-5", "amount_must_be_positive"),
        ("-0,50", "amount_must_be_positive"),
        ("0", "amount_must_be_positive"),
        ("0,00", "amount_must_be_positive"),
        ("92233720368547758,08", "amount_too_large"),
        ("100000000000000000000", "amount_too_large"),
        ("", "amount_malformed"),
        ("   ", "amount_malformed"),
        ("abc", "amount_malformed"),
        ("NaN", "amount_malformed"),
        ("nan", "amount_malformed"),
        ("inf", "amount_malformed"),
        ("Infinity", "amount_malformed"),
        ("1e3", "amount_malformed"),
        ("+5", "amount_malformed"),
        ("12,", "amount_malformed"),
        (",50", "amount_malformed"),
        ("1 000", "amount_malformed"),
        ("1.000,50", "amount_malformed"),
        ("12,50 €", "amount_malformed"),
        ("0x10", "amount_malformed"),
        ("\u0661\u0662", "amount_malformed"),  # Arabic-Indic digits
        ("\u09ea,00", "amount_malformed"),  # a Bengali four, which looks like an eight
        ("\uff11\uff12", "amount_malformed"),  # fullwidth digits
    ],
)
def test_parse_amount_refuses_bad_text_with_a_stable_code(text: str, code: str) -> None:
    with pytest.raises(AmountError) as raised:
        parse_amount(text)
    assert raised.value.code == code
    assert str(raised.value)  # a message a person can read


@pytest.mark.parametrize("value", [12.5, 1250.0, math.nan, math.inf, 1250, None, b"12"])
def test_parse_amount_refuses_anything_but_text(value: object) -> None:
    with pytest.raises(AmountError) as raised:
        parse_amount(value)  # type: ignore[arg-type]
    assert raised.value.code == "amount_not_text"


@pytest.mark.parametrize("value", [1, 1250, MAX_AMOUNT])
def test_check_amount_accepts_positive_integers_in_range(value: int) -> None:
    assert check_amount(value) == value


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (12.5, "amount_must_be_integer"),
        (1250.0, "amount_must_be_integer"),
        (math.nan, "amount_must_be_integer"),
        (math.inf, "amount_must_be_integer"),
        (True, "amount_must_be_integer"),
        (False, "amount_must_be_integer"),
        ("1250", "amount_must_be_integer"),
        (None, "amount_must_be_integer"),
        (0, "amount_must_be_positive"),
        (-1, "amount_must_be_positive"),
        (-MAX_AMOUNT, "amount_must_be_positive"),
        (MAX_AMOUNT + 1, "amount_too_large"),
        (2**64, "amount_too_large"),
    ],
)
def test_check_amount_refuses_bad_values_with_a_stable_code(value: object, code: str) -> None:
    with pytest.raises(AmountError) as raised:
        check_amount(value)
    assert raised.value.code == code


def test_amount_error_is_a_value_error() -> None:
    """Callers that only know ValueError still catch it instead of crashing."""
    with pytest.raises(ValueError, match="centime"):
        check_amount(0)


@pytest.mark.parametrize(
    ("centimes", "currency", "text"),
    [
        (1250, "RolloN", "12,50 RolloN"),
        (1, "RolloN", "0,01 RolloN"),
        (0, "RolloN", "0,00 RolloN"),
        (-5, "RolloN", "-0,05 RolloN"),
        (-1250, "RolloN", "-12,50 RolloN"),
        (100_000_00, "RolloN", "100\u202f000,00 RolloN"),
        (123_456_789, "EUR", "1\u202f234\u202f567,89 EUR"),
        (MAX_AMOUNT, "RolloN", "92\u202f233\u202f720\u202f368\u202f547\u202f758,07 RolloN"),
    ],
)
def test_format_amount_french_style(centimes: int, currency: str, text: str) -> None:
    assert format_amount(centimes, currency) == text


def test_format_amount_refuses_what_is_not_centimes() -> None:
    with pytest.raises(AssertionError):
        format_amount(True)
    with pytest.raises(AssertionError):
        format_amount(12.5)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=MAX_AMOUNT))
def test_format_then_parse_gives_the_amount_back(centimes: int) -> None:
    shown = format_amount(centimes, "RolloN")
    typed = shown.removesuffix(" RolloN").replace("\u202f", "")
    assert parse_amount(typed) == centimes


@given(st.integers(min_value=0, max_value=10**20), st.integers(min_value=0, max_value=99))
def test_parse_agrees_with_decimal_arithmetic(units: int, cents: int) -> None:
    text = f"{units},{cents:02d}"
    expected = units * 100 + cents
    if expected == 0:
        with pytest.raises(AmountError):
            parse_amount(text)
    elif expected > MAX_AMOUNT:
        with pytest.raises(AmountError) as raised:
            parse_amount(text)
        assert raised.value.code == "amount_too_large"
    else:
        assert parse_amount(text) == expected


@pytest.mark.parametrize(
    ("amount", "rate_bps", "result"),
    [
        (10_000, 150, 150),
        (1234, 150, 19),  # 18.51 rounds up
        (1230, 150, 18),  # 18.45 rounds down
        (100, 50, 1),  # 0.5 rounds half up
        (1, 4_999, 0),  # 0.4999 rounds down
        (1, 5_000, 1),
        (999, 0, 0),
        (999, 10_000, 999),
        (0, 500, 0),
        (MAX_AMOUNT, 10_000, MAX_AMOUNT),  # exact integers even at the top of the range
    ],
)
def test_apply_rate_bps_rounds_half_up(amount: int, rate_bps: int, result: int) -> None:
    assert apply_rate_bps(amount, rate_bps) == result


@given(st.integers(0, MAX_AMOUNT), st.integers(0, 10_000))
def test_apply_rate_bps_never_exceeds_the_amount(amount: int, rate_bps: int) -> None:
    part = apply_rate_bps(amount, rate_bps)
    assert 0 <= part <= amount
    assert abs(part * 10_000 - amount * rate_bps) <= 5_000  # within half a centime


@pytest.mark.parametrize(("amount", "rate_bps"), [(-1, 100), (100, -1), (100, 10_001)])
def test_apply_rate_bps_refuses_out_of_range_inputs(amount: int, rate_bps: int) -> None:
    with pytest.raises(AssertionError):
        apply_rate_bps(amount, rate_bps)
