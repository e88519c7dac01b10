import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from rollon.ledger.journal import key_id
from rollon.merchants import payload as p
from rollon.merchants.payload import PayloadError, PayloadErrorCode, PaymentPayload

KEY = Ed25519PrivateKey.generate()
KEY_ID = key_id(KEY.public_key())
KEYS: dict[str, Ed25519PublicKey] = {KEY_ID: KEY.public_key()}
NOW_S = 1_800_000_000
ACCOUNT = uuid.UUID("8f3b4c1e-2d5a-4e6f-9a7b-0c1d2e3f4a5b")
REQUEST = uuid.UUID("1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d")


def dynamic(**changes: object) -> PaymentPayload:
    fields: dict[str, object] = {
        "merchant_account_id": ACCOUNT,
        "key_id": KEY_ID,
        "merchant_name": "Boulangerie du Vieux-Marché",
        "merchant_city": "Rouen",
        "amount": 1250,
        "request_id": REQUEST,
        "issued_at_s": NOW_S,
        "expires_at_s": NOW_S + 300,
        "reference": "Ticket 42",
    }
    fields.update(changes)
    return p.dynamic_payload(**fields)  # type: ignore[arg-type]


SIGNED = p.sign_payload(dynamic(), KEY)


def with_crc(text: str) -> str:
    """Recompute the CRC, as anyone editing a payload can."""
    body = text[:-4]
    return body + f"{p.crc16_ccitt(body.encode('utf-8')):04X}"


def code_of(text: str, now_s: int = NOW_S, keys: dict[str, Ed25519PublicKey] = KEYS) -> str:
    with pytest.raises(PayloadError) as caught:
        p.verify_payload(text, keys, now_s)
    return caught.value.code


def test_dynamic_round_trip() -> None:
    verified = p.verify_payload(SIGNED, KEYS, NOW_S)
    assert verified == dynamic()
    assert verified.amount == 1250
    assert verified.merchant_name == "Boulangerie du Vieux-Marc"  # folded, cut to 25
    assert verified.reference == "Ticket 42"
    assert "5405" + "12.50" in SIGNED  # readers see the amount with two decimals
    assert SIGNED.startswith("000201010212") and SIGNED[-8:-4] == "6304"


def test_static_round_trip() -> None:
    static = p.static_payload(
        merchant_account_id=ACCOUNT,
        key_id=KEY_ID,
        merchant_name="Café de l'Œuvre",
        merchant_city="Caen",
        issued_at_s=NOW_S,
    )
    text = p.sign_payload(static, KEY)
    verified = p.verify_payload(text, KEYS, NOW_S + 10 * 365 * 86400)  # never expires
    assert verified == static
    assert verified.merchant_name == "Cafe de l'OEuvre"
    assert verified.amount is None and verified.request_id is None
    assert text.startswith("000201010211") and "54" + "05" not in text[:60]


def test_longest_fields_fit_emvco_limits() -> None:
    longest = dynamic(
        merchant_name="x" * 200,
        merchant_city="y" * 200,
        reference="z" * 200,
        amount=p.MAX_PAYLOAD_AMOUNT,
        expires_at_s=NOW_S + p.MAX_VALIDITY_S,
    )
    text = p.sign_payload(longest, KEY)
    assert p.verify_payload(text, KEYS, NOW_S) == longest
    assert len(text) <= p.MAX_PAYLOAD_CHARS


def test_crc_matches_the_reference_vector() -> None:
    assert p.crc16_ccitt(b"123456789") == 0x29B1


@pytest.mark.parametrize(("centimes", "text"), [(1, "0.01"), (1250, "12.50"), (100, "1.00")])
def test_amount_text(centimes: int, text: str) -> None:
    assert p.amount_text(centimes) == text
    assert p.amount_centimes(text) == centimes


@given(st.integers(min_value=1, max_value=p.MAX_PAYLOAD_AMOUNT))
def test_amount_text_round_trips(centimes: int) -> None:
    assert p.amount_centimes(p.amount_text(centimes)) == centimes


@pytest.mark.parametrize(
    "text",
    ["12.5", "012.50", "12,50", "-1.00", "0.00", "1e3", " 1.00", "12.500", "", "99999999999.99"],
)
def test_amount_forms_other_than_the_canonical_one_are_refused(text: str) -> None:
    with pytest.raises(PayloadError) as caught:
        p.amount_centimes(text)
    assert caught.value.code is PayloadErrorCode.MALFORMED


def test_tampered_amount_with_recomputed_crc_is_a_bad_signature() -> None:
    tampered = with_crc(SIGNED.replace("540512.50", "540592.50"))
    assert code_of(tampered) == PayloadErrorCode.BAD_SIGNATURE


def test_tampered_amount_without_crc_fix_is_a_bad_crc() -> None:
    assert code_of(SIGNED.replace("540512.50", "540592.50")) == PayloadErrorCode.BAD_CRC


def test_tampered_merchant_is_a_bad_signature() -> None:
    other = uuid.uuid4().hex
    tampered = with_crc(SIGNED.replace(ACCOUNT.hex, other))
    assert code_of(tampered) == PayloadErrorCode.BAD_SIGNATURE


def test_tampered_expiry_is_a_bad_signature() -> None:
    tampered = with_crc(SIGNED.replace("0303300", "0303900"))
    assert tampered != SIGNED
    assert code_of(tampered) == PayloadErrorCode.BAD_SIGNATURE


def test_forged_payload_is_a_bad_signature() -> None:
    forger = Ed25519PrivateKey.generate()
    payload = dynamic()
    forged = p._assemble(payload, forger.sign(p.signing_message(payload)))
    assert code_of(forged) == PayloadErrorCode.BAD_SIGNATURE


def test_expired_payload() -> None:
    assert code_of(SIGNED, now_s=NOW_S + 300) == PayloadErrorCode.EXPIRED
    assert p.verify_payload(SIGNED, KEYS, NOW_S + 299).request_id == REQUEST


def test_unknown_key() -> None:
    assert code_of(SIGNED, keys={}) == PayloadErrorCode.UNKNOWN_KEY


def test_wrong_currency() -> None:
    euro = with_crc(SIGNED.replace("5303999", "5303978"))
    assert code_of(euro) == PayloadErrorCode.WRONG_CURRENCY


def test_other_schemes_payload_is_not_rollon() -> None:
    account = p.tlv("00", "com.example.pay") + p.tlv("01", "12345")
    body = "000201010212" + p.tlv("26", account) + "52040000530397854041.005802FR"
    body += p.tlv("59", "Shop") + p.tlv("60", "Paris") + "6304"
    assert code_of(with_crc(body + "0000")) == PayloadErrorCode.NOT_ROLLON


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        SIGNED.replace("Rouen", "Rouën"),  # not ASCII
        "x" * (p.MAX_PAYLOAD_CHARS + 1),
        with_crc(SIGNED.replace(ACCOUNT.hex, ACCOUNT.hex.upper())),  # one id, two spellings
        with_crc(SIGNED[:-8] + "9902ab" + SIGNED[-8:]),  # an extra tag
        with_crc(SIGNED.replace("000201", "000202", 1)),  # unknown format
        with_crc(SIGNED.replace("010212", "010213", 1)),
    ],
)
def test_malformed_payloads(text: str) -> None:
    assert code_of(text) == PayloadErrorCode.MALFORMED


def test_every_prefix_is_truncated() -> None:
    for length in range(1, len(SIGNED)):
        assert code_of(SIGNED[:length]) == PayloadErrorCode.TRUNCATED, length


_CHARS = st.characters(min_codepoint=1, max_codepoint=0x2FF)


@settings(max_examples=400)
@given(position=st.integers(min_value=0, max_value=len(SIGNED) - 1), char=_CHARS, fix=st.booleans())
def test_any_changed_character_is_refused(position: int, char: str, fix: bool) -> None:
    if char == SIGNED[position]:
        char = chr(ord(char) + 1)
    changed = SIGNED[:position] + char + SIGNED[position + 1 :]
    if fix and position < len(SIGNED) - 4:
        changed = with_crc(changed)  # the attacker recomputes the checksum too
    with pytest.raises(PayloadError):
        p.verify_payload(changed, KEYS, NOW_S)


@settings(max_examples=200)
@given(
    position=st.integers(min_value=0, max_value=len(SIGNED) - 5),
    inserted=st.text(_CHARS, max_size=3),
    deleted=st.integers(min_value=0, max_value=3),
)
def test_any_insertion_or_deletion_is_refused(position: int, inserted: str, deleted: int) -> None:
    changed = SIGNED[:position] + inserted + SIGNED[position + deleted :]
    if changed == SIGNED:
        return
    with pytest.raises(PayloadError):
        p.verify_payload(with_crc(changed), KEYS, NOW_S)


@settings(max_examples=50)
@given(
    amount=st.integers(min_value=1, max_value=p.MAX_PAYLOAD_AMOUNT),
    name=st.text(max_size=60),
    reference=st.text(max_size=40),
    validity_s=st.integers(min_value=1, max_value=p.MAX_VALIDITY_S),
)
def test_any_request_round_trips(amount: int, name: str, reference: str, validity_s: int) -> None:
    payload = dynamic(
        amount=amount, merchant_name=name, reference=reference, expires_at_s=NOW_S + validity_s
    )
    assert p.verify_payload(p.sign_payload(payload, KEY), KEYS, NOW_S) == payload
