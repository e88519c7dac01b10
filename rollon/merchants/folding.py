"""Folding free text to the plain ASCII that QR readers and banks accept.

EMVCo payloads and SEPA files both expect a restricted Latin set: "Crêperie Œnologie" must
travel as "Creperie OEnologie", not be refused and not carry bytes a reader shows as garbage.
"""

from __future__ import annotations

import re
import unicodedata

# Letters that NFKD does not decompose into a base letter plus accents.
_LIGATURES = str.maketrans(
    {"Œ": "OE", "œ": "oe", "Æ": "AE", "æ": "ae", "ß": "ss", "Ø": "O", "ø": "o", "Ł": "L", "ł": "l"}
)
_SPACES = re.compile(r"\s+")


def ascii_fold(text: str) -> str:
    """Drop accents, spell ligatures out, drop anything else outside printable ASCII, and
    collapse runs of white space."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    kept = "".join(c for c in decomposed if " " <= c <= "~" or c.isspace())
    return _SPACES.sub(" ", kept).strip()


def search_key(text: str) -> str:
    """The form names are compared in: folded, lower case, punctuation as single spaces."""
    folded = ascii_fold(text).lower()
    return _SPACES.sub(" ", re.sub(r"[^a-z0-9]+", " ", folded)).strip()
