"""IBANs: normalised, checked by length per country and by their ISO 13616 mod-97 check.

Payouts go by SEPA credit transfer, so only IBANs of SEPA countries are taken. A French
IBAN also has its BBAN's layout checked (bank, branch, account, RIB key).
"""

from __future__ import annotations

import re

# Lengths of the IBANs of SEPA countries (ISO 13616 registry). French overseas departments
# and Monaco use their own prefixes or FR; all are listed here.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27,
    "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "VA": 22,
}  # fmt: skip
_SHAPE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]+$")
_FRENCH_BBAN = re.compile(r"^[0-9]{10}[A-Z0-9]{11}[0-9]{2}$")


class IbanError(ValueError):
    """An IBAN that cannot be right; `code` is stable for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def normalize_iban(text: str) -> str:
    """Upper case, without the spaces of the printed form ("FR76 3000 ...")."""
    return "".join(text.split()).upper()


def mod97(iban: str) -> int:
    """The ISO 7064 mod-97 remainder of an IBAN (country and check digits moved to the end,
    letters as numbers A=10 .. Z=35); 1 for a valid IBAN."""
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97


def validate_iban(text: str) -> str:
    """Return the normalised IBAN, or raise IbanError saying what is wrong with it."""
    iban = normalize_iban(text)
    if not iban.isascii() or _SHAPE.match(iban) is None:
        raise IbanError("iban_malformed", f"{text!r} is not an IBAN such as FR76 3000 ...")
    country = iban[:2]
    expected = IBAN_LENGTHS.get(country)
    if expected is None:
        raise IbanError("iban_country", f"{country} is not a SEPA country")
    if len(iban) != expected:
        raise IbanError("iban_length", f"an IBAN of {country} has {expected} characters")
    if country == "FR" and _FRENCH_BBAN.match(iban[4:]) is None:
        raise IbanError("iban_malformed", f"{iban[4:]} is not a French bank account number")
    if mod97(iban) != 1:
        raise IbanError("iban_checksum", "the IBAN's check digits do not match: a typo?")
    return iban


def iban_from_bban(country: str, bban: str) -> str:
    """Build an IBAN from a country and a domestic account number by computing its check
    digits (for test data and demo merchants)."""
    remainder = mod97(f"{country}00{bban}")
    return validate_iban(f"{country}{98 - remainder:02d}{bban}")


def format_iban(iban: str) -> str:
    """The printed form, in groups of four: FR76 3000 6000 0112 3456 7890 189."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
