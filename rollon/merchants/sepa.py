"""SEPA Credit Transfer initiation files (ISO 20022 pain.001.001.03) for merchant payouts.

The association's bank takes one file per settlement: one credit transfer per merchant, in
euros, from the guarantee fund's account to the merchant's IBAN. Every file is checked
against the official XML schema before it is handed out: a file the bank would refuse
must not leave the service. The schema ships next to this module (ISO 20022 publishes it
for free use; this copy comes from the MIT-licensed sepaxml package).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import xmlschema

from rollon.merchants.folding import ascii_fold
from rollon.merchants.iban import IbanError, validate_iban

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"
SCHEMA_PATH = Path(__file__).with_name("pain.001.001.03.xsd")
MAX_TRANSFERS_PER_FILE = 1_000
MAX_TRANSFER_CENTIMES = 99_999_999_999  # EPC's limit: 999 999 999,99 EUR
MAX_NAME_CHARS = 70
MAX_REMITTANCE_CHARS = 140
MAX_ID_CHARS = 35
# The EPC's Latin character set for SEPA: anything else is replaced by a space.
_SEPA_TEXT_OUT = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]")
_SEPA_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-?:().,'+]|/(?!/))*(?<!/)$")
_BIC = re.compile(r"^[A-Z]{6}[A-Z2-9][A-NP-Z0-9](?:[A-Z0-9]{3})?$")


class SepaError(ValueError):
    """A payout file that cannot be made or is not valid; `code` is stable for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Debtor:
    """Who pays: the association, from the guarantee fund's bank account."""

    name: str
    iban: str
    bic: str | None = None


@dataclass(frozen=True, slots=True)
class CreditTransfer:
    """One payout: `amount` euro cents to `creditor_iban`."""

    end_to_end_id: str
    amount: int
    creditor_name: str
    creditor_iban: str
    remittance: str


def sepa_text(text: str, max_chars: int) -> str:
    """Free text in the EPC's character set, cut to `max_chars`."""
    cleaned = " ".join(_SEPA_TEXT_OUT.sub(" ", ascii_fold(text)).split())
    return cleaned[:max_chars].strip()


def euros(cents: int) -> str:
    """Euro cents as the file writes them: 1250 -> "12.50" (integers only)."""
    assert isinstance(cents, int) and cents >= 0
    units, rest = divmod(cents, 100)
    return f"{units}.{rest:02d}"


def _check_id(value: str, what: str) -> str:
    if not 0 < len(value) <= MAX_ID_CHARS or _SEPA_ID.match(value) is None:
        raise SepaError("sepa_bad_id", f"{what} {value!r} is not a SEPA identifier")
    return value


def _iban(text: str) -> str:
    try:
        return validate_iban(text)
    except IbanError as error:
        raise SepaError(error.code, str(error)) from None


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NAMESPACE}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def credit_transfer_file(
    *,
    message_id: str,
    created_at: datetime,
    execution_date: date,
    debtor: Debtor,
    transfers: list[CreditTransfer],
) -> bytes:
    """A pain.001.001.03 document paying `transfers` from `debtor`'s account, validated
    against the schema. Raises SepaError for input no bank would take."""
    if not 0 < len(transfers) <= MAX_TRANSFERS_PER_FILE:
        raise SepaError("sepa_no_transfers", f"a file holds 1 to {MAX_TRANSFERS_PER_FILE}")
    _check_id(message_id, "message id")
    debtor_name = sepa_text(debtor.name, MAX_NAME_CHARS)
    if not debtor_name:
        raise SepaError("sepa_bad_name", "the debtor needs a name in Latin letters")
    debtor_iban = _iban(debtor.iban)
    if debtor.bic is not None and _BIC.match(debtor.bic) is None:
        raise SepaError("sepa_bad_bic", f"{debtor.bic!r} is not a BIC")
    for transfer in transfers:
        _check_id(transfer.end_to_end_id, "end-to-end id")
        if not 0 < transfer.amount <= MAX_TRANSFER_CENTIMES:
            raise SepaError("sepa_bad_amount", f"{transfer.amount} cents is not payable")
        _iban(transfer.creditor_iban)
        if not sepa_text(transfer.creditor_name, MAX_NAME_CHARS):
            raise SepaError("sepa_bad_name", f"{transfer.creditor_name!r} has no Latin name")
    if len({t.end_to_end_id for t in transfers}) != len(transfers):
        raise SepaError("sepa_bad_id", "end-to-end ids must be unique in a file")
    total = sum(t.amount for t in transfers)
    count = str(len(transfers))

    ET.register_namespace("", NAMESPACE)
    document = ET.Element(f"{{{NAMESPACE}}}Document")
    initiation = _sub(document, "CstmrCdtTrfInitn")
    header = _sub(initiation, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    _sub(header, "NbOfTxs", count)
    _sub(header, "CtrlSum", euros(total))
    _sub(_sub(header, "InitgPty"), "Nm", debtor_name)
    info = _sub(initiation, "PmtInf")
    _sub(info, "PmtInfId", message_id)
    _sub(info, "PmtMtd", "TRF")
    _sub(info, "BtchBookg", "true")
    _sub(info, "NbOfTxs", count)
    _sub(info, "CtrlSum", euros(total))
    _sub(_sub(_sub(info, "PmtTpInf"), "SvcLvl"), "Cd", "SEPA")
    _sub(info, "ReqdExctnDt", execution_date.isoformat())
    _sub(_sub(info, "Dbtr"), "Nm", debtor_name)
    debtor_account = _sub(info, "DbtrAcct")
    _sub(_sub(debtor_account, "Id"), "IBAN", debtor_iban)
    _sub(debtor_account, "Ccy", "EUR")
    institution = _sub(_sub(info, "DbtrAgt"), "FinInstnId")
    if debtor.bic is not None:
        _sub(institution, "BIC", debtor.bic)
    else:
        _sub(_sub(institution, "Othr"), "Id", "NOTPROVIDED")  # EPC's IBAN-only convention
    _sub(info, "ChrgBr", "SLEV")
    for transfer in transfers:
        item = _sub(info, "CdtTrfTxInf")
        _sub(_sub(item, "PmtId"), "EndToEndId", transfer.end_to_end_id)
        _sub(_sub(item, "Amt"), "InstdAmt", euros(transfer.amount), Ccy="EUR")
        _sub(_sub(item, "Cdtr"), "Nm", sepa_text(transfer.creditor_name, MAX_NAME_CHARS))
        _sub(_sub(_sub(item, "CdtrAcct"), "Id"), "IBAN", _iban(transfer.creditor_iban))
        remittance = sepa_text(transfer.remittance, MAX_REMITTANCE_CHARS)
        if remittance:
            _sub(_sub(item, "RmtInf"), "Ustrd", remittance)
    xml: bytes = ET.tostring(document, encoding="utf-8", xml_declaration=True)
    validate_pain001(xml)
    return xml


@cache
def _schema() -> Any:
    return xmlschema.XMLSchema(str(SCHEMA_PATH))


def validate_pain001(xml: bytes) -> None:
    """Check a document against the pain.001.001.03 schema; SepaError says where it fails."""
    try:
        _schema().validate(xml.decode("utf-8"))
    except (xmlschema.XMLSchemaException, ET.ParseError, UnicodeDecodeError) as error:
        raise SepaError("sepa_invalid", f"not a valid pain.001.001.03 file: {error}") from None
