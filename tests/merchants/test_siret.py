import pytest

from rollon.merchants.siret import SiretError, luhn_valid, validate_siret


@pytest.mark.parametrize(
    "text",
    [
        "73282932000074",
        "732 829 320 00074",  # as printed on invoices
        "55208131766522",
        "35600000000048",  # La Poste's head office: passes Luhn
        "35600000049837",  # a La Poste establishment: digit sum divisible by 5, not Luhn
    ],
)
def test_valid_sirets(text: str) -> None:
    assert validate_siret(text) == "".join(text.split())


def test_la_poste_establishment_fails_luhn_but_is_accepted() -> None:
    assert not luhn_valid("35600000049837")
    assert validate_siret("35600000049837") == "35600000049837"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "siret_malformed"),
        ("7328293200007", "siret_malformed"),  # 13 digits
        ("732829320000745", "siret_malformed"),  # 15 digits
        ("7328293200007A", "siret_malformed"),
        ("".join(chr(0xFF10 + int(d)) for d in "73282932000074"), "siret_malformed"),
        ("73282932000075", "siret_checksum"),  # last digit changed
        ("12345678900017", "siren_checksum"),  # SIREN itself is wrong
        ("35600000049838", "siret_checksum"),  # La Poste, sum not divisible by 5
    ],
)
def test_invalid_sirets(text: str, code: str) -> None:
    with pytest.raises(SiretError) as caught:
        validate_siret(text)
    assert caught.value.code == code


def test_every_single_digit_change_is_caught() -> None:
    good = "73282932000074"
    for position in range(len(good)):
        for digit in "0123456789":
            if digit == good[position]:
                continue
            changed = good[:position] + digit + good[position + 1 :]
            with pytest.raises(SiretError):
                validate_siret(changed)
