"""Signed QR payloads in EMVCo merchant-presented mode (MPM).

Common QR readers parse the layout (tag, two-digit length, value); only the Ed25519
signature makes a payload trustworthy, since anyone who edits the amount can recompute the
CRC. The layout, in the order EMVCo requires:

    00 "01"                payload format indicator
    01 "11" | "12"         static (payer types the amount) | dynamic (one payment request)
    26 template            00 "fr.rollon", 01 merchant account id (32 hex digits),
                           02 id of the signing key
    52 "0000"              merchant category code (not used)
    53 "999"               currency (RolloN has no ISO 4217 code; 999 keeps readers from
                           showing euros)
    54 "12.50"             amount, two decimals (dynamic only)
    58 "FR", 59 name, 60 city
    62 template            01 merchant reference, cut to 18 characters (dynamic, if any),
                           50 template: 00 "fr.rollon", 01 request id (dynamic, 32 hex
                           digits), 02 issued (unix s), 03 validity in seconds (dynamic)
    80 template            00 "fr.rollon", 01 Ed25519 signature (Base85)
    63 CRC16-CCITT         over everything before its four hex digits

The signature covers a canonical binary encoding of every field, and a payload is only
accepted if it is exactly the canonical text of the fields it parses to: so changing any
byte, even with a recomputed CRC, is refused. The name and city in a payload are for
generic readers; a payer is shown the name the directory holds for the account.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rollon.ledger.journal import key_id as public_key_id
from rollon.ledger.money import AmountError, check_amount
from rollon.merchants.folding import ascii_fold

GUI = "fr.rollon"
CURRENCY_CODE = "RLN"
CURRENCY_NUMERIC = "999"
COUNTRY = "FR"
CATEGORY_CODE = "0000"
MAX_PAYLOAD_CHARS = 512
MAX_NAME_CHARS = 25  # EMVCo's limits for tags 59 and 60
MAX_CITY_CHARS = 15
MAX_REFERENCE_CHARS = 18  # so that tag 62 stays within 99 characters
MAX_VALIDITY_S = 7 * 24 * 3600
MAX_AMOUNT_CHARS = 13  # EMVCo's limit for tag 54
MAX_PAYLOAD_AMOUNT = 999_999_999_999  # centimes: "9999999999.99" is 13 characters
FALLBACK_NAME = "Commercant RolloN"
FALLBACK_CITY = "Normandie"
_SIGNING_DOMAIN = b"rollon-qr-v1"
_SIGNATURE_CHARS = 80  # Base85 of 64 bytes
_CANONICAL_INT = re.compile(r"^[1-9][0-9]{0,11}$")
_AMOUNT_TEXT = re.compile(r"^(?:0|[1-9][0-9]*)\.[0-9]{2}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


class PayloadKind(StrEnum):
    STATIC = "11"
    DYNAMIC = "12"


class PayloadErrorCode(StrEnum):
    MALFORMED = "payload_malformed"
    TRUNCATED = "payload_truncated"
    BAD_CRC = "payload_bad_crc"
    NOT_ROLLON = "payload_not_rollon"
    WRONG_CURRENCY = "payload_wrong_currency"
    UNKNOWN_KEY = "payload_unknown_key"
    BAD_SIGNATURE = "payload_bad_signature"
    EXPIRED = "payload_expired"


class PayloadError(ValueError):
    """A payload that is refused; `code` says precisely why."""

    def __init__(self, code: PayloadErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class PaymentPayload:
    """What a QR code says. `amount`, `request_id` and `expires_at_s` are set for a dynamic
    payload (one payment request) and None for a merchant's static one."""

    kind: PayloadKind
    merchant_account_id: UUID
    key_id: str
    merchant_name: str
    merchant_city: str
    issued_at_s: int
    amount: int | None = None
    request_id: UUID | None = None
    expires_at_s: int | None = None
    reference: str = ""

    def __post_init__(self) -> None:
        dynamic = self.kind is PayloadKind.DYNAMIC
        assert (self.amount is not None) == dynamic
        assert self.amount is None or 0 < self.amount <= MAX_PAYLOAD_AMOUNT
        assert (self.request_id is not None) == dynamic
        assert (self.expires_at_s is not None) == dynamic
        assert dynamic or not self.reference
        assert _KEY_ID.match(self.key_id)
        assert _is_field_text(self.merchant_name, MAX_NAME_CHARS)
        assert _is_field_text(self.merchant_city, MAX_CITY_CHARS)
        assert self.reference == "" or _is_field_text(self.reference, MAX_REFERENCE_CHARS)
        assert self.issued_at_s > 0
        if self.expires_at_s is not None:
            assert 0 < self.expires_at_s - self.issued_at_s <= MAX_VALIDITY_S


def _is_field_text(text: str, max_chars: int) -> bool:
    # Printable ASCII is exactly " " to "~"; str's own checks run in C.
    return 0 < len(text) <= max_chars and text.isascii() and text.isprintable()


@functools.lru_cache(maxsize=4_096)  # merchants' names and cities, folded once each
def field_text(text: str, max_chars: int, fallback: str = "") -> str:
    """Free text as a payload field: folded to ASCII, cut to EMVCo's length."""
    folded = ascii_fold(text)[:max_chars].strip()
    return folded or fallback


def dynamic_payload(
    *,
    merchant_account_id: UUID,
    key_id: str,
    merchant_name: str,
    merchant_city: str,
    amount: int,
    request_id: UUID,
    issued_at_s: int,
    expires_at_s: int,
    reference: str = "",
) -> PaymentPayload:
    """The payload of one payment request; names and reference are folded to fit."""
    return PaymentPayload(
        kind=PayloadKind.DYNAMIC,
        merchant_account_id=merchant_account_id,
        key_id=key_id,
        merchant_name=field_text(merchant_name, MAX_NAME_CHARS, FALLBACK_NAME),
        merchant_city=field_text(merchant_city, MAX_CITY_CHARS, FALLBACK_CITY),
        issued_at_s=issued_at_s,
        amount=check_amount(amount),
        request_id=request_id,
        expires_at_s=expires_at_s,
        reference=field_text(reference, MAX_REFERENCE_CHARS),
    )


def static_payload(
    *,
    merchant_account_id: UUID,
    key_id: str,
    merchant_name: str,
    merchant_city: str,
    issued_at_s: int,
) -> PaymentPayload:
    """A merchant's static payload, for a sticker at a counter: the payer types the amount."""
    return PaymentPayload(
        kind=PayloadKind.STATIC,
        merchant_account_id=merchant_account_id,
        key_id=key_id,
        merchant_name=field_text(merchant_name, MAX_NAME_CHARS, FALLBACK_NAME),
        merchant_city=field_text(merchant_city, MAX_CITY_CHARS, FALLBACK_CITY),
        issued_at_s=issued_at_s,
    )


# -- amounts ------------------------------------------------------------------------------
def amount_text(centimes: int) -> str:
    """Centimes as EMVCo writes amounts: 1250 -> "12.50" (integers only, no float)."""
    assert check_amount(centimes) <= MAX_PAYLOAD_AMOUNT
    units, cents = divmod(centimes, 100)
    return f"{units}.{cents:02d}"


def amount_centimes(text: str) -> int:
    """EMVCo's "12.50" back to 1250; only the exact form `amount_text` writes is taken."""
    if len(text) > MAX_AMOUNT_CHARS or _AMOUNT_TEXT.match(text) is None:
        raise PayloadError(PayloadErrorCode.MALFORMED, f"{text!r} is not an amount like 12.50")
    units, cents = text.split(".")
    try:
        return check_amount(int(units) * 100 + int(cents))
    except AmountError as error:
        raise PayloadError(PayloadErrorCode.MALFORMED, str(error)) from None


# -- CRC and TLV ----------------------------------------------------------------------------
def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF), as EMVCo specifies; that is
    binascii's CRC-CCITT started at 0xFFFF."""
    return binascii.crc_hqx(data, 0xFFFF)


def tlv(tag: str, value: str) -> str:
    """One data object: two-digit tag, two-digit length, value."""
    assert len(tag) == 2 and tag.isdigit()
    assert 0 < len(value) <= 99, f"tag {tag} holds 1 to 99 characters"
    return f"{tag}{len(value):02d}{value}"


def _split(text: str, *, top_level: bool) -> list[tuple[str, str]]:
    """Cut text into (tag, value) pairs; a short tail means the text was truncated."""
    items: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        header = text[position : position + 4]
        if len(header) < 4:
            raise _truncated_or_malformed(top_level, "a data object's header is cut short")
        if not header.isdigit():
            raise PayloadError(PayloadErrorCode.MALFORMED, f"bad data object header {header!r}")
        length = int(header[2:])
        value = text[position + 4 : position + 4 + length]
        if len(value) < length:
            raise _truncated_or_malformed(top_level, f"tag {header[:2]} is cut short")
        items.append((header[:2], value))
        position += 4 + length
    return items


def _truncated_or_malformed(top_level: bool, message: str) -> PayloadError:
    # Inside a template the outer length is intact, so a short tail is a bad template.
    code = PayloadErrorCode.TRUNCATED if top_level else PayloadErrorCode.MALFORMED
    return PayloadError(code, message)


def _template(value: str) -> dict[str, str]:
    items = _split(value, top_level=False)
    fields = dict(items)
    if len(fields) != len(items):
        raise PayloadError(PayloadErrorCode.MALFORMED, "a tag appears twice in a template")
    return fields


# -- encoding ---------------------------------------------------------------------------------
def signing_message(payload: PaymentPayload) -> bytes:
    """The canonical bytes the signature covers: every field, fixed-width or length-prefixed."""
    fixed = struct.pack(
        ">2s16sQ3sQQ16s",
        payload.kind.value.encode("ascii"),
        payload.merchant_account_id.bytes,
        payload.amount or 0,
        CURRENCY_CODE.encode("ascii"),
        payload.issued_at_s,
        payload.expires_at_s or 0,
        payload.request_id.bytes if payload.request_id is not None else bytes(16),
    )
    texts = (
        payload.key_id,
        payload.merchant_name,
        payload.merchant_city,
        payload.reference,
        CURRENCY_NUMERIC,
        COUNTRY,
        CATEGORY_CODE,
    )
    prefixed = b"".join(struct.pack(">B", len(t)) + t.encode("ascii") for t in texts)
    return _SIGNING_DOMAIN + fixed + prefixed


def _body(payload: PaymentPayload) -> str:
    """Every data object before the signature."""
    account = tlv("00", GUI) + tlv("01", payload.merchant_account_id.hex)
    account += tlv("02", payload.key_id)
    request = tlv("00", GUI)
    if payload.request_id is not None:
        request += tlv("01", payload.request_id.hex)
    request += tlv("02", str(payload.issued_at_s))
    if payload.expires_at_s is not None:
        request += tlv("03", str(payload.expires_at_s - payload.issued_at_s))
    additional = (tlv("01", payload.reference) if payload.reference else "") + tlv("50", request)
    parts = [
        tlv("00", "01"),
        tlv("01", payload.kind.value),
        tlv("26", account),
        tlv("52", CATEGORY_CODE),
        tlv("53", CURRENCY_NUMERIC),
    ]
    if payload.amount is not None:
        parts.append(tlv("54", amount_text(payload.amount)))
    parts += [
        tlv("58", COUNTRY),
        tlv("59", payload.merchant_name),
        tlv("60", payload.merchant_city),
        tlv("62", additional),
    ]
    return "".join(parts)


def _assemble(payload: PaymentPayload, signature: bytes) -> str:
    signed = tlv("80", tlv("00", GUI) + tlv("01", base64.b85encode(signature).decode("ascii")))
    text = _body(payload) + signed + "6304"
    return text + f"{crc16_ccitt(text.encode('ascii')):04X}"


def sign_payload(payload: PaymentPayload, key: Ed25519PrivateKey) -> str:
    """The QR text of a payload, signed with the service's key."""
    assert public_key_id(key.public_key()) == payload.key_id, "payload names another key"
    text = _assemble(payload, key.sign(signing_message(payload)))
    assert len(text) <= MAX_PAYLOAD_CHARS
    return text


# -- decoding ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ParsedPayload:
    """A payload whose layout and CRC are right; its signature is not checked yet."""

    payload: PaymentPayload
    signature: bytes


def parse_payload(text: str) -> ParsedPayload:
    """Parse the QR text; raises PayloadError (malformed, truncated, bad_crc, not_rollon,
    wrong_currency). Does not verify the signature: see `verify_payload`."""
    if not isinstance(text, str) or not text:
        raise PayloadError(PayloadErrorCode.MALFORMED, "a payload is non-empty text")
    if len(text) > MAX_PAYLOAD_CHARS:
        raise PayloadError(PayloadErrorCode.MALFORMED, f"a payload has at most {MAX_PAYLOAD_CHARS}")
    if not (text.isascii() and text.isprintable()):
        raise PayloadError(PayloadErrorCode.MALFORMED, "a payload is printable ASCII only")
    items = _split(text, top_level=True)
    if items[-1][0] != "63":
        raise PayloadError(PayloadErrorCode.TRUNCATED, "the payload ends before its CRC")
    if len(items[-1][1]) != 4:
        raise PayloadError(PayloadErrorCode.MALFORMED, "the CRC has four hex digits")
    expected_crc = f"{crc16_ccitt(text[:-4].encode('ascii')):04X}"
    if items[-1][1] != expected_crc:
        raise PayloadError(PayloadErrorCode.BAD_CRC, "the CRC does not match: a misread code?")
    fields = dict(items)
    if len(fields) != len(items):
        raise PayloadError(PayloadErrorCode.MALFORMED, "a tag appears twice")
    parsed = _fields(fields)
    if _assemble(parsed.payload, parsed.signature) != text:
        # One meaning, one text: so a changed byte can never keep a valid signature.
        raise PayloadError(PayloadErrorCode.MALFORMED, "the payload is not in canonical form")
    return parsed


def _fields(fields: Mapping[str, str]) -> ParsedPayload:
    if fields.get("00") != "01":
        raise PayloadError(PayloadErrorCode.MALFORMED, "unknown payload format (tag 00)")
    account = _rollon_template(fields, range(26, 52))
    if account is None:
        raise PayloadError(PayloadErrorCode.NOT_ROLLON, "this QR code is not a RolloN payment")
    if fields.get("53") != CURRENCY_NUMERIC:
        raise PayloadError(PayloadErrorCode.WRONG_CURRENCY, "this QR code is not in RolloN")
    try:
        kind = PayloadKind(fields.get("01", ""))
    except ValueError:
        raise PayloadError(PayloadErrorCode.MALFORMED, "tag 01 is 11 or 12") from None
    additional = _template(_required(fields, "62"))
    request = _rollon_template(additional, range(50, 100))
    signed = _rollon_template(fields, range(80, 100))
    if request is None or signed is None:
        raise PayloadError(PayloadErrorCode.MALFORMED, "RolloN templates are missing")
    dynamic = kind is PayloadKind.DYNAMIC
    issued_at_s = _canonical_int(_required(request, "02"))
    expires_at_s = issued_at_s + _canonical_int(_required(request, "03")) if dynamic else None
    key = _required(account, "02")
    name = _required(fields, "59")
    city = _required(fields, "60")
    reference = additional.get("01", "")
    if (
        _KEY_ID.match(key) is None
        or not _is_field_text(name, MAX_NAME_CHARS)
        or not _is_field_text(city, MAX_CITY_CHARS)
        or (reference and not _is_field_text(reference, MAX_REFERENCE_CHARS))
        or (expires_at_s is not None and expires_at_s - issued_at_s > MAX_VALIDITY_S)
        or (reference and not dynamic)
    ):
        raise PayloadError(PayloadErrorCode.MALFORMED, "a field is out of its bounds")
    payload = PaymentPayload(
        kind=kind,
        merchant_account_id=_canonical_uuid(_required(account, "01")),
        key_id=key,
        merchant_name=name,
        merchant_city=city,
        issued_at_s=issued_at_s,
        amount=amount_centimes(_required(fields, "54")) if dynamic else None,
        request_id=_canonical_uuid(_required(request, "01")) if dynamic else None,
        expires_at_s=expires_at_s,
        reference=reference,
    )
    return ParsedPayload(payload=payload, signature=_signature(_required(signed, "01")))


def _rollon_template(fields: Mapping[str, str], tags: range) -> dict[str, str] | None:
    """The first template among `tags` whose globally unique identifier is RolloN's."""
    for tag in tags:
        value = fields.get(f"{tag:02d}")
        if value is not None:
            template = _template(value)
            if template.get("00") == GUI:
                return template
    return None


def _required(fields: Mapping[str, str], tag: str) -> str:
    value = fields.get(tag)
    if value is None:
        raise PayloadError(PayloadErrorCode.MALFORMED, f"tag {tag} is missing")
    return value


def _canonical_int(text: str) -> int:
    if _CANONICAL_INT.match(text) is None:
        raise PayloadError(PayloadErrorCode.MALFORMED, f"{text!r} is not a positive integer")
    return int(text)


def _canonical_uuid(text: str) -> UUID:
    try:
        value = UUID(hex=text)
    except ValueError:
        raise PayloadError(PayloadErrorCode.MALFORMED, f"{text!r} is not an id") from None
    if value.hex != text:
        raise PayloadError(PayloadErrorCode.MALFORMED, f"{text!r} is not a canonical id")
    return value


def _signature(text: str) -> bytes:
    if len(text) != _SIGNATURE_CHARS:
        raise PayloadError(PayloadErrorCode.MALFORMED, "the signature has the wrong length")
    try:
        signature = base64.b85decode(text)
    except (ValueError, binascii.Error):
        raise PayloadError(PayloadErrorCode.MALFORMED, "the signature is not Base85") from None
    if len(signature) != 64 or base64.b85encode(signature).decode("ascii") != text:
        raise PayloadError(PayloadErrorCode.MALFORMED, "the signature is not canonical")
    return signature


def verify_payload(text: str, keys: Mapping[str, Ed25519PublicKey], now_s: int) -> PaymentPayload:
    """Parse and verify a payload: known key, valid signature, not expired at `now_s`.

    Raises PayloadError with a precise code; a payload returned here is one the service
    signed and that is still valid. It can still have been paid: that is the ledger's
    business (each request is consumed once).
    """
    parsed = parse_payload(text)
    payload = parsed.payload
    key = keys.get(payload.key_id)
    if key is None:
        raise PayloadError(
            PayloadErrorCode.UNKNOWN_KEY, f"no known key {payload.key_id} signed this payload"
        )
    try:
        key.verify(parsed.signature, signing_message(payload))
    except InvalidSignature:
        raise PayloadError(
            PayloadErrorCode.BAD_SIGNATURE, "the signature does not match: forged or altered"
        ) from None
    if payload.expires_at_s is not None and now_s >= payload.expires_at_s:
        raise PayloadError(PayloadErrorCode.EXPIRED, "this payment request has expired")
    return payload
