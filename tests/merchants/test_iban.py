import pytest

from rollon.merchants.iban import IbanError, format_iban, iban_from_bban, mod97, validate_iban


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("FR76 3000 6000 0112 3456 7890 189", "FR7630006000011234567890189"),
        ("fr7630006000011234567890189", "FR7630006000011234567890189"),
        ("DE89370400440532013000", "DE89370400440532013000"),
        ("GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432"),
        ("BE68539007547034", "BE68539007547034"),
    ],
)
def test_valid_ibans(text: str, normalised: str) -> None:
    assert validate_iban(text) == normalised


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "iban_malformed"),
        ("FR76-3000-6000", "iban_malformed"),
        ("7630006000011234567890189", "iban_malformed"),
        ("FR7630006000011234567890189É", "iban_malformed"),
        ("US64SVBKUS6S3300958879", "iban_country"),  # not SEPA
        ("FR763000600001123456789018", "iban_length"),
        ("FR763000600001123456789018900", "iban_length"),
        ("FR7630006000011234567890188", "iban_checksum"),
        ("FR7730006000011234567890189", "iban_checksum"),
        ("FR76A0006000011234567890189", "iban_malformed"),  # letter in the bank code
    ],
)
def test_invalid_ibans(text: str, code: str) -> None:
    with pytest.raises(IbanError) as caught:
        validate_iban(text)
    assert caught.value.code == code


def test_swapped_digits_are_caught() -> None:
    good = "FR7630006000011234567890189"
    for i in range(4, len(good) - 1):
        if good[i] != good[i + 1]:
            swapped = good[:i] + good[i + 1] + good[i] + good[i + 2 :]
            with pytest.raises(IbanError):
                validate_iban(swapped)


def test_iban_from_bban_computes_check_digits() -> None:
    assert iban_from_bban("FR", "30006000011234567890189") == "FR7630006000011234567890189"
    assert mod97(iban_from_bban("FR", "20041010050500013M02606")) == 1


def test_format_iban_groups_by_four() -> None:
    assert format_iban("FR7630006000011234567890189") == "FR76 3000 6000 0112 3456 7890 189"
