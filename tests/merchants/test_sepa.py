from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import xmlschema

from rollon.merchants.iban import iban_from_bban
from rollon.merchants.sepa import (
    SCHEMA_PATH,
    CreditTransfer,
    Debtor,
    SepaError,
    credit_transfer_file,
    euros,
    sepa_text,
    validate_pain001,
)

DEBTOR = Debtor(name="Association Rollon — fonds de garantie", iban="FR7630006000011234567890189")
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}


def transfers(count: int) -> list[CreditTransfer]:
    return [
        CreditTransfer(
            end_to_end_id=f"RLN-{i:08d}",
            amount=1_000 + i,
            creditor_name=f"Crêperie Œnologie n°{i} & fils",
            creditor_iban=iban_from_bban("FR", f"3000400003{i:011d}03"[:23]),
            remittance=f"Reconversion RolloN {i}",
        )
        for i in range(count)
    ]


def build(items: list[CreditTransfer], debtor: Debtor = DEBTOR) -> bytes:
    return credit_transfer_file(
        message_id="RLN-SETTLE-0001",
        created_at=datetime(2025, 5, 1, 9, 30, tzinfo=UTC),
        execution_date=date(2025, 5, 2),
        debtor=debtor,
        transfers=items,
    )


def test_file_is_valid_against_the_official_schema() -> None:
    xml = build(transfers(3))
    schema = xmlschema.XMLSchema(str(SCHEMA_PATH))  # independent of the module's own check
    assert schema.is_valid(xml.decode())
    document = schema.to_dict(xml.decode())
    header = document["CstmrCdtTrfInitn"]["GrpHdr"]
    assert header["NbOfTxs"] == "3"
    assert header["CtrlSum"] == Decimal("30.03")
    items = document["CstmrCdtTrfInitn"]["PmtInf"][0]["CdtTrfTxInf"]
    assert [i["Amt"]["InstdAmt"]["$"] for i in items] == [
        Decimal("10.00"),
        Decimal("10.01"),
        Decimal("10.02"),
    ]
    assert items[0]["Cdtr"]["Nm"] == "Creperie OEnologie n0 fils"


def test_file_with_a_bic_and_many_transfers_is_valid() -> None:
    xml = build(transfers(250), Debtor(DEBTOR.name, DEBTOR.iban, bic="AGRIFRPP882"))
    validate_pain001(xml)
    assert xml.count(b"<CdtTrfTxInf>") == 250


def test_euros_are_written_from_integers() -> None:
    assert [euros(c) for c in (0, 1, 1250, 100_000)] == ["0.00", "0.01", "12.50", "1000.00"]


def test_sepa_text_keeps_the_epc_character_set() -> None:
    assert sepa_text("Crêpes & Cidre — Caen_14 <Ltd>", 70) == "Crepes Cidre Caen 14 Ltd"
    assert sepa_text("x" * 200, 70) == "x" * 70


def test_schema_check_catches_a_broken_file() -> None:
    xml = build(transfers(1)).replace(b"<PmtMtd>TRF</PmtMtd>", b"<PmtMtd>CHK2</PmtMtd>")
    with pytest.raises(SepaError) as caught:
        validate_pain001(xml)
    assert caught.value.code == "sepa_invalid"
    with pytest.raises(SepaError):
        validate_pain001(b"<not xml")


@pytest.mark.parametrize(
    ("items", "debtor", "code"),
    [
        ([], DEBTOR, "sepa_no_transfers"),
        (transfers(1)[:1] * 2, DEBTOR, "sepa_bad_id"),  # same end-to-end id twice
        ([CreditTransfer("bad id!", 100, "A", DEBTOR.iban, "")], DEBTOR, "sepa_bad_id"),
        ([CreditTransfer("E2E", 0, "A", DEBTOR.iban, "")], DEBTOR, "sepa_bad_amount"),
        ([CreditTransfer("E2E", 100, "東京", DEBTOR.iban, "")], DEBTOR, "sepa_bad_name"),
        ([CreditTransfer("E2E", 100, "A", "FR761234", "")], DEBTOR, "iban_length"),
        (transfers(1), Debtor("Rollon", "FR7630006000011234567890188"), "iban_checksum"),
        (transfers(1), Debtor("Rollon", DEBTOR.iban, bic="nope"), "sepa_bad_bic"),
    ],
)
def test_refusals(items: list[CreditTransfer], debtor: Debtor, code: str) -> None:
    with pytest.raises(SepaError) as caught:
        build(items, debtor)
    assert caught.value.code == code
