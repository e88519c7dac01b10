import threading
from uuid import uuid4

import pytest
from sqlalchemy.engine import Engine

from rollon.ledger.service import Ledger
from rollon.ledger.transfers import Result
from rollon.merchants.directory import Merchant
from rollon.merchants.errors import MerchantError, Refusal
from rollon.merchants.refunds import RefundStatus, refund_transfer_id
from rollon.merchants.requests import PaymentRequest, RequestStatus
from rollon.merchants.service import Merchants
from tests.merchants.conftest import application, assert_books_balance, balance, member_with


def refused(call: object, *args: object, **kwargs: object) -> MerchantError:
    with pytest.raises(MerchantError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


def paid_request(
    merchants: Merchants, ledger: Ledger, shop: Merchant, amount: int = 1_000
) -> PaymentRequest:
    payer = member_with(ledger, 5_000)
    request = merchants.requests.create(shop.account_id, amount, reference="Repas")
    return merchants.requests.pay(request.payload, payer).request


def test_partial_then_total_refund(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    request = paid_request(merchants, ledger, shop)
    payer = request.payer_account_id
    assert payer is not None
    first = merchants.refunds.refund(request.id, shop.account_id, uuid4(), 300)
    assert first.refund.status is RefundStatus.DONE and not first.replayed
    assert first.request.status is RequestStatus.PARTIALLY_REFUNDED
    assert first.request.refunded_amount == 300
    assert balance(engine, payer) == 4_300 and balance(engine, shop.account_id) == 700
    rest = merchants.refunds.refund(request.id, shop.account_id, uuid4())  # all that is left
    assert rest.refund.amount == 700
    assert rest.request.status is RequestStatus.REFUNDED
    assert balance(engine, payer) == 5_000 and balance(engine, shop.account_id) == 0
    assert len(merchants.refunds.list_for_request(request.id, shop.account_id)) == 2
    error = refused(merchants.refunds.refund, request.id, shop.account_id, uuid4(), 1)
    assert error.code == "refund_exceeds_payment"
    error = refused(merchants.refunds.refund, request.id, shop.account_id, uuid4())
    assert error.code == "refund_exceeds_payment"
    assert_books_balance(engine, merchants)


def test_refunds_never_pass_what_was_paid(
    ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    request = paid_request(merchants, ledger, shop)
    merchants.refunds.refund(request.id, shop.account_id, uuid4(), 600)
    error = refused(merchants.refunds.refund, request.id, shop.account_id, uuid4(), 401)
    assert error.code == "refund_exceeds_payment" and error.refusal is Refusal.CONFLICT
    assert merchants.requests.get(request.id).refunded_amount == 600


def test_a_refund_is_idempotent(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    request = paid_request(merchants, ledger, shop)
    refund_id = uuid4()
    first = merchants.refunds.refund(request.id, shop.account_id, refund_id, 250)
    again = merchants.refunds.refund(request.id, shop.account_id, refund_id, 250)
    assert again.replayed and again.refund == first.refund
    assert merchants.refunds.refund(request.id, shop.account_id, refund_id).refund == first.refund
    assert merchants.requests.get(request.id).refunded_amount == 250
    assert balance(engine, shop.account_id) == 750
    error = refused(merchants.refunds.refund, request.id, shop.account_id, refund_id, 260)
    assert error.code == "refund_exists" and error.refusal is Refusal.CONFLICT


def test_only_the_merchant_refunds_only_paid_requests(
    ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    open_request = merchants.requests.create(shop.account_id, 500)
    error = refused(merchants.refunds.refund, open_request.id, shop.account_id, uuid4(), 100)
    assert error.code == "request_not_paid"
    request = paid_request(merchants, ledger, shop)
    other = merchants.directory.onboard(application())
    assert refused(merchants.refunds.refund, request.id, other.account_id, uuid4(), 1).code == (
        "request_not_found"
    )
    assert refused(merchants.refunds.refund, uuid4(), shop.account_id, uuid4(), 1).code == (
        "request_not_found"
    )
    for amount, code in ((0, "amount_must_be_positive"), (-3, "amount_must_be_positive")):
        assert (
            refused(merchants.refunds.refund, request.id, shop.account_id, uuid4(), amount).code
            == code
        )


def test_a_refund_the_merchant_cannot_afford_releases_its_reservation(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    request = paid_request(merchants, ledger, shop)
    merchants.reconversions.reconvert(shop.account_id, 900, uuid4())  # spends the takings
    refund_id = uuid4()
    error = refused(merchants.refunds.refund, request.id, shop.account_id, refund_id, 500)
    assert error.code == "insufficient_funds" and error.result is Result.INSUFFICIENT_FUNDS
    # the refund stays failed (its ledger id too) and the payment can still be refunded
    again = refused(merchants.refunds.refund, request.id, shop.account_id, refund_id, 500)
    assert again.code == "insufficient_funds"
    assert merchants.requests.get(request.id).status is RequestStatus.PAID
    done = merchants.refunds.refund(request.id, shop.account_id, uuid4(), 100)
    assert done.request.refunded_amount == 100
    assert_books_balance(engine, merchants)


def test_a_refund_left_halfway_is_finished_by_its_retry(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    """The process died after reserving the refund, before asking the ledger."""
    request = paid_request(merchants, ledger, shop)
    refund_id = uuid4()
    reserved = merchants.refunds._reserve(request, refund_id, 400)
    assert reserved is not None and reserved.transfer_id == refund_transfer_id(refund_id)
    assert merchants.requests.get(request.id).refunded_amount == 0
    outcome = merchants.refunds.refund(request.id, shop.account_id, refund_id, 400)
    assert outcome.refund.status is RefundStatus.DONE and outcome.request.refunded_amount == 400
    assert balance(engine, shop.account_id) == 600
    assert_books_balance(engine, merchants)


def test_racing_refunds_stay_within_the_payment(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    request = paid_request(merchants, ledger, shop)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def refund() -> None:
        barrier.wait()
        try:
            merchants.refunds.refund(request.id, shop.account_id, uuid4(), 400)
            outcomes.append("ok")
        except MerchantError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=refund) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "ok", "refund_exceeds_payment", "refund_exceeds_payment"]
    assert merchants.requests.get(request.id).refunded_amount == 800
    assert balance(engine, shop.account_id) == 200
    assert_books_balance(engine, merchants)
