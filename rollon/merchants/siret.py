"""SIRET numbers: the 14-digit identifier of a French business establishment.

A SIRET is the 9-digit SIREN of the business followed by a 5-digit establishment number,
and both carry a Luhn check. La Poste is the known exception: its establishments share the
SIREN 356 000 000 and their SIRETs are checked by a sum of digits divisible by 5 instead.
"""

from __future__ import annotations

LA_POSTE_SIREN = "356000000"
SIRET_LENGTH = 14
SIREN_LENGTH = 9


class SiretError(ValueError):
    """A SIRET that cannot be right; `code` is stable for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def luhn_valid(digits: str) -> bool:
    """Luhn's check over a string of digits: every second digit from the right is doubled."""
    assert digits.isascii() and digits.isdigit()
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def normalize_siret(text: str) -> str:
    """The SIRET as 14 digits, with the spaces people type ("123 456 789 00012") removed."""
    return "".join(text.split())


def validate_siret(text: str) -> str:
    """Return the normalised SIRET, or raise SiretError saying what is wrong with it."""
    siret = normalize_siret(text)
    if len(siret) != SIRET_LENGTH or not (siret.isascii() and siret.isdigit()):
        raise SiretError("siret_malformed", f"a SIRET has {SIRET_LENGTH} digits, not {text!r}")
    siren = siret[:SIREN_LENGTH]
    if siren == LA_POSTE_SIREN:
        # La Poste's head office passes Luhn; its other establishments use the sum rule.
        if luhn_valid(siret) or sum(int(c) for c in siret) % 5 == 0:
            return siret
        raise SiretError("siret_checksum", f"{siret} fails La Poste's check (sum of digits)")
    if not luhn_valid(siren):
        raise SiretError("siren_checksum", f"the SIREN {siren} of {siret} fails its Luhn check")
    if not luhn_valid(siret):
        raise SiretError("siret_checksum", f"{siret} fails its Luhn check")
    return siret
