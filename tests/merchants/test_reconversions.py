from datetime import date, timedelta
from uuid import uuid4

import pytest
import xmlschema
from sqlalchemy.engine import Engine

from rollon.ledger import chart
from rollon.ledger.service import Ledger
from rollon.merchants.directory import Merchant
from rollon.merchants.errors import MerchantError, Refusal
from rollon.merchants.reconversions import ReconversionStatus, SettlementStatus
from rollon.merchants.sepa import SCHEMA_PATH
from rollon.merchants.service import Merchants
from rollon.merchants.settings import MerchantSettings
from tests.merchants.conftest import application, assert_books_balance, balance, member_with

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}


def refused(call: object, *args: object, **kwargs: object) -> MerchantError:
    with pytest.raises(MerchantError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


def earn(merchants: Merchants, ledger: Ledger, shop: Merchant, amount: int) -> None:
    payer = member_with(ledger, amount)
    request = merchants.requests.create(shop.account_id, amount)
    merchants.requests.pay(request.payload, payer)


def test_reconversion_answers_fee_and_net(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    earn(merchants, ledger, shop, 10_000)
    reconversion = merchants.reconversions.reconvert(shop.account_id, 10_000, uuid4())
    assert (reconversion.fee, reconversion.net, reconversion.fee_bps) == (300, 9_700, 300)
    assert reconversion.status is ReconversionStatus.DUE
    assert balance(engine, shop.account_id) == 0
    assert balance(engine, chart.PAYOUTS_DUE.id) == 9_700
    assert balance(engine, chart.REVENUE.id) == 300
    assert merchants.reconversions.owed() == 9_700
    assert_books_balance(engine, merchants)


def test_a_reconversion_is_idempotent(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    earn(merchants, ledger, shop, 5_000)
    reconversion_id = uuid4()
    first = merchants.reconversions.reconvert(shop.account_id, 2_000, reconversion_id)
    assert merchants.reconversions.reconvert(shop.account_id, 2_000, reconversion_id) == first
    assert balance(engine, shop.account_id) == 3_000
    error = refused(merchants.reconversions.reconvert, shop.account_id, 2_500, reconversion_id)
    assert error.code == "reconversion_exists" and error.refusal is Refusal.CONFLICT


def test_refused_reconversions_move_nothing(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    earn(merchants, ledger, shop, 1_000)
    reconversion_id = uuid4()
    error = refused(merchants.reconversions.reconvert, shop.account_id, 1_001, reconversion_id)
    assert error.code == "insufficient_funds"
    failed = merchants.reconversions.get(reconversion_id)
    assert failed is not None and failed.status is ReconversionStatus.FAILED
    assert (
        refused(merchants.reconversions.reconvert, shop.account_id, 1_001, reconversion_id).code
        == "insufficient_funds"
    )
    assert refused(merchants.reconversions.reconvert, shop.account_id, 0, uuid4()).code == (
        "amount_must_be_positive"
    )
    member = member_with(ledger, 1_000)
    error = refused(merchants.reconversions.reconvert, member, 100, uuid4())
    assert error.code == "not_a_merchant" and error.refusal is Refusal.FORBIDDEN
    assert balance(engine, shop.account_id) == 1_000
    assert_books_balance(engine, merchants)


def test_a_reconversion_left_halfway_is_finished_by_its_retry(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    """The ledger took the reconversion, then the process died before writing it down."""
    earn(merchants, ledger, shop, 1_000)
    reconversion_id = uuid4()
    outcome, _ = ledger.reconvert(reconversion_id, shop.account_id, 1_000, 300)
    assert outcome.applied
    done = merchants.reconversions.reconvert(shop.account_id, 1_000, reconversion_id)
    assert done.status is ReconversionStatus.DUE and done.net == 970
    assert_books_balance(engine, merchants)


def test_settlement_produces_a_valid_payout_file_then_is_paid(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    bakery = shop
    cafe = merchants.directory.onboard(application(trade_name="Café Rollon", legal_name="Café SAS"))
    for merchant, amounts in ((bakery, [4_000, 6_000]), (cafe, [2_500])):
        for amount in amounts:
            earn(merchants, ledger, merchant, amount)
            merchants.reconversions.reconvert(merchant.account_id, amount, uuid4())
    settlement_id = uuid4()
    tomorrow = date.today() + timedelta(days=1)
    settlement = merchants.reconversions.prepare_settlement(settlement_id, tomorrow)
    assert settlement.status is SettlementStatus.PREPARED
    assert (settlement.total, settlement.transfers, settlement.reconversions) == (12_125, 2, 3)
    assert merchants.reconversions.prepare_settlement(settlement_id, tomorrow) == settlement

    schema = xmlschema.XMLSchema(str(SCHEMA_PATH))
    assert schema.is_valid(settlement.document)
    document = schema.to_dict(settlement.document)
    info = document["CstmrCdtTrfInitn"]["PmtInf"][0]
    paid = {
        t["CdtrAcct"]["Id"]["IBAN"]: str(t["Amt"]["InstdAmt"]["$"]) for t in info["CdtTrfTxInf"]
    }
    assert paid == {bakery.iban: "97.00", cafe.iban: "24.25"}
    assert info["DbtrAcct"]["Id"]["IBAN"] == merchants.settings.fund_iban
    assert info["ReqdExctnDt"] == tomorrow.isoformat()

    # everything due is in this file: nothing is left for another
    error = refused(merchants.reconversions.prepare_settlement, uuid4(), tomorrow)
    assert error.code == "nothing_to_settle"
    assert merchants.reconversions.owed() == 12_125  # still owed until the bank pays
    assert_books_balance(engine, merchants)

    done = merchants.reconversions.mark_paid(settlement_id)
    assert done.status is SettlementStatus.PAID
    assert merchants.reconversions.mark_paid(settlement_id).status is SettlementStatus.PAID
    assert balance(engine, chart.PAYOUTS_DUE.id) == 0
    assert merchants.reconversions.owed() == 0
    assert {r.status for r in merchants.reconversions.list_for_merchant(bakery.account_id)} == {
        ReconversionStatus.PAID
    }
    assert merchants.reconversions.list_settlements()[0].id == settlement_id
    error = refused(merchants.reconversions.cancel_settlement, settlement_id)
    assert error.code == "settlement_paid"
    assert_books_balance(engine, merchants)


def test_a_cancelled_settlement_returns_its_payouts_to_the_queue(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    earn(merchants, ledger, shop, 3_000)
    merchants.reconversions.reconvert(shop.account_id, 3_000, uuid4())
    first = merchants.reconversions.prepare_settlement(uuid4(), date.today())
    cancelled = merchants.reconversions.cancel_settlement(first.id)
    assert cancelled.status is SettlementStatus.CANCELLED
    assert merchants.reconversions.cancel_settlement(first.id).status is SettlementStatus.CANCELLED
    error = refused(merchants.reconversions.mark_paid, first.id)
    assert error.code == "settlement_cancelled"
    second = merchants.reconversions.prepare_settlement(uuid4(), date.today())
    assert second.total == first.total == 2_910
    merchants.reconversions.mark_paid(second.id)
    assert balance(engine, chart.PAYOUTS_DUE.id) == 0
    assert_books_balance(engine, merchants)


def test_settlement_refusals(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    error = refused(merchants.reconversions.prepare_settlement, uuid4(), date.today())
    assert error.code == "nothing_to_settle"
    earn(merchants, ledger, shop, 1_000)
    merchants.reconversions.reconvert(shop.account_id, 1_000, uuid4())
    yesterday = date.today() - timedelta(days=1)
    error = refused(merchants.reconversions.prepare_settlement, uuid4(), yesterday)
    assert error.code == "invalid_execution_date"
    assert refused(merchants.reconversions.mark_paid, uuid4()).code == "settlement_not_found"
    no_fund = Merchants(engine, ledger, MerchantSettings())
    error = refused(no_fund.reconversions.prepare_settlement, uuid4(), date.today())
    assert error.code == "fund_iban_missing"


def test_a_full_fee_reconversion_owes_nothing(
    engine: Engine, ledger: Ledger, shop: Merchant
) -> None:
    greedy = Merchants(engine, ledger, MerchantSettings(reconversion_fee_bps=10_000))
    earn(greedy, ledger, shop, 500)
    reconversion = greedy.reconversions.reconvert(shop.account_id, 500, uuid4())
    assert (reconversion.fee, reconversion.net) == (500, 0)
    assert reconversion.status is ReconversionStatus.PAID
    assert_books_balance(engine, greedy)
