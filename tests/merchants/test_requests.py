import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event
from sqlalchemy.engine import Engine

from rollon.ledger.accounts import LedgerCode
from rollon.ledger.service import Ledger
from rollon.ledger.transfers import Result, Transfer, TransferCode
from rollon.merchants import payload as p
from rollon.merchants.directory import Merchant
from rollon.merchants.errors import MerchantError, Refusal
from rollon.merchants.requests import (
    MAX_PAY_ROUNDS,
    Payment,
    PaymentRequest,
    RequestStatus,
    attempt_transfer_id,
)
from rollon.merchants.schema import payment_requests
from rollon.merchants.service import Merchants
from tests.merchants.conftest import (
    Clock,
    application,
    assert_books_balance,
    balance,
    member_with,
)

Pay = Callable[..., Payment]


@pytest.fixture(params=["in_a_thread", "in_an_event_loop", "in_another_process"])
def pay(
    request: pytest.FixtureRequest,
    engine: Engine,
    ledger: Ledger,
    merchants: Merchants,
    clock: Clock,
) -> Pay:
    """Paying as a worker thread does (`pay`) and as the API's event loop does (`pay_async`),
    in the process that made the request; and as another service process on the same
    database does, which signed none of the payloads, so each payment goes the full way
    (signature checked, row read first)."""
    if request.param == "in_a_thread":
        return merchants.requests.pay
    if request.param == "in_another_process":
        return another_process(engine, ledger, merchants, clock).requests.pay

    def pay_in_an_event_loop(*args: Any, **kwargs: Any) -> Payment:
        return asyncio.run(merchants.requests.pay_async(*args, **kwargs))

    return pay_in_an_event_loop


def another_process(
    engine: Engine, ledger: Ledger, merchants: Merchants, clock: Clock
) -> Merchants:
    """The merchants services of a second process: its own memory, the same key and database."""
    return Merchants(engine, ledger, merchants.settings, keyring=merchants.keyring, clock_ns=clock)


def refused(call: object, *args: object, **kwargs: object) -> MerchantError:
    with pytest.raises(MerchantError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


# -- creating ---------------------------------------------------------------------------------
def test_a_new_request_is_open_with_a_signed_payload(merchants: Merchants, shop: Merchant) -> None:
    request = merchants.requests.create(
        shop.account_id, 1250, reference="Table 4", description="2 cafés, 1 far breton"
    )
    assert request.status is RequestStatus.OPEN
    assert (request.amount, request.reference, request.merchant_name) == (
        1250,
        "Table 4",
        shop.trade_name,
    )
    payload = merchants.requests.verify(request.payload)
    assert payload.request_id == request.id
    assert payload.amount == 1250 and payload.merchant_account_id == shop.account_id
    assert payload.expires_at_s == request.expires_at_s == payload.issued_at_s + 300
    assert merchants.requests.get(request.id) == request


def test_creating_from_an_event_loop(merchants: Merchants, shop: Merchant) -> None:
    """`create_async`, as the API creates: the same request, the same retry and conflicts."""

    def create(*args: Any, **kwargs: Any) -> PaymentRequest:
        return asyncio.run(merchants.requests.create_async(*args, **kwargs))

    request_id = uuid4()
    first = create(shop.account_id, 500, reference="A", request_id=request_id)
    assert first.id == request_id and first.status is RequestStatus.OPEN
    assert merchants.requests.verify(first.payload).amount == 500
    assert merchants.requests.get(request_id) == first
    assert create(shop.account_id, 500, reference="A", request_id=request_id) == first
    error = refused(create, shop.account_id, 600, request_id=request_id)
    assert error.code == "request_exists" and error.refusal is Refusal.CONFLICT
    assert refused(create, shop.account_id, 0).code == "amount_must_be_positive"
    assert merchants.requests.get(request_id).amount == 500


def test_creating_again_with_the_same_id_is_a_retry(merchants: Merchants, shop: Merchant) -> None:
    request_id = uuid4()
    first = merchants.requests.create(shop.account_id, 500, reference="A", request_id=request_id)
    assert (
        merchants.requests.create(shop.account_id, 500, reference="A", request_id=request_id)
        == first
    )
    error = refused(merchants.requests.create, shop.account_id, 600, request_id=request_id)
    assert error.code == "request_exists" and error.refusal is Refusal.CONFLICT


@pytest.mark.parametrize(
    ("amount", "changes", "code"),
    [
        (0, {}, "amount_must_be_positive"),
        (-5, {}, "amount_must_be_positive"),
        (p.MAX_PAYLOAD_AMOUNT + 1, {}, "amount_too_large"),
        (12.5, {}, "amount_must_be_integer"),
        (100, {"reference": "x" * 141}, "invalid_reference"),
        (100, {"description": "x" * 501}, "invalid_description"),
        (100, {"expires_in_s": 0}, "invalid_expiry"),
        (100, {"expires_in_s": p.MAX_VALIDITY_S + 1}, "invalid_expiry"),
    ],
)
def test_bad_requests_are_refused(
    merchants: Merchants, shop: Merchant, amount: int, changes: dict[str, object], code: str
) -> None:
    error = refused(merchants.requests.create, shop.account_id, amount, **changes)
    assert error.code == code and error.refusal is Refusal.INVALID


def test_only_merchants_create_requests(merchants: Merchants, ledger: Ledger) -> None:
    member = member_with(ledger, 0)
    error = refused(merchants.requests.create, member, 100)
    assert error.code == "not_a_merchant" and error.refusal is Refusal.FORBIDDEN


def test_unknown_request(merchants: Merchants) -> None:
    assert refused(merchants.requests.get, uuid4()).code == "request_not_found"


# -- paying -----------------------------------------------------------------------------------
def test_paying_moves_the_money_once(
    pay: Pay, engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    payer = member_with(ledger, 5_000)
    request = merchants.requests.create(shop.account_id, 1_250, reference="Pain")
    payment = pay(request.payload, payer)
    assert not payment.replayed
    assert payment.request.status is RequestStatus.PAID
    assert payment.request.payer_account_id == payer
    assert payment.transfer_id == attempt_transfer_id(request.id, 0)
    assert balance(engine, payer) == 3_750 and balance(engine, shop.account_id) == 1_250
    # the same payer scanning again (a retry) pays nothing more
    again = pay(request.payload, payer)
    assert again.replayed and again.transfer_id == payment.transfer_id
    assert balance(engine, payer) == 3_750
    # another payer is refused
    other = member_with(ledger, 5_000, "Other")
    error = refused(pay, request.payload, other)
    assert error.code == "request_already_paid" and error.refusal is Refusal.CONFLICT
    assert balance(engine, other) == 5_000
    assert merchants.requests.get(request.id).status is RequestStatus.PAID
    assert_books_balance(engine, merchants)


def test_a_payer_without_funds_does_not_block_the_next(
    pay: Pay, engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    poor = member_with(ledger, 100, "Poor")
    rich = member_with(ledger, 10_000, "Rich")
    request = merchants.requests.create(shop.account_id, 1_000)
    error = refused(pay, request.payload, poor)
    assert error.code == "insufficient_funds" and error.result is Result.INSUFFICIENT_FUNDS
    assert merchants.requests.get(request.id).status is RequestStatus.OPEN
    # the same payer, topped up, may try again; so may anyone else
    assert ledger.issue(uuid4(), poor, 5_000, "top-up").applied
    payment = pay(request.payload, poor)
    assert payment.transfer_id == attempt_transfer_id(request.id, 1)
    assert refused(pay, request.payload, rich).code == "request_already_paid"
    assert balance(engine, poor) == 4_100 and balance(engine, rich) == 10_000
    assert_books_balance(engine, merchants)


def test_payer_check_amount(pay: Pay, ledger: Ledger, merchants: Merchants, shop: Merchant) -> None:
    payer = member_with(ledger, 5_000)
    request = merchants.requests.create(shop.account_id, 1_000)
    error = refused(pay, request.payload, payer, amount=999)
    assert error.code == "amount_mismatch"
    assert pay(request.payload, payer, amount=1_000).request.status == "paid"


def test_a_merchant_cannot_pay_its_own_request(
    pay: Pay, merchants: Merchants, shop: Merchant
) -> None:
    request = merchants.requests.create(shop.account_id, 1_000)
    assert refused(pay, request.payload, shop.account_id).code == "same_account"


def test_an_unknown_payer_account(
    pay: Pay, engine: Engine, merchants: Merchants, shop: Merchant, ledger: Ledger
) -> None:
    request = merchants.requests.create(shop.account_id, 1_000)
    assert refused(pay, request.payload, uuid4()).code == "account_not_found"
    payer = member_with(ledger, 2_000)
    assert pay(request.payload, payer).request.status is RequestStatus.PAID
    assert_books_balance(engine, merchants)


@pytest.mark.parametrize("field", ["amount", "expiry", "merchant"])
def test_a_tampered_payload_moves_nothing(
    pay: Pay, engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant, field: str
) -> None:
    payer = member_with(ledger, 5_000)
    thief = merchants.directory.onboard(application())
    request = merchants.requests.create(shop.account_id, 1_000)
    text = request.payload
    if field == "amount":
        text = text.replace("540510.00", "540590.00")
    elif field == "expiry":
        text = text.replace("0303300", "0303900")
    else:
        text = text.replace(shop.account_id.hex, thief.account_id.hex)
    body = text[:-4]
    text = body + f"{p.crc16_ccitt(body.encode()):04X}"
    assert text != request.payload
    assert refused(pay, text, payer).code == "payload_bad_signature"
    assert balance(engine, payer) == 5_000
    assert merchants.requests.get(request.id).status is RequestStatus.OPEN


def test_a_request_made_here_is_paid_without_reading_its_row(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    """The process that made a request pays it straight from the row it wrote; the same
    text again (a retry) goes the full way, and finds it paid."""
    payer = member_with(ledger, 5_000)
    request = merchants.requests.create(shop.account_id, 1_000)
    statements: list[str] = []

    def seen(_c: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(" ".join(statement.split()).lower())

    def request_reads() -> list[str]:
        return [s for s in statements if s.startswith("select") and "payment_requests" in s]

    event.listen(engine, "before_cursor_execute", seen)
    try:
        first = asyncio.run(merchants.requests.pay_async(request.payload, payer))
        assert request_reads() == []
        again = asyncio.run(merchants.requests.pay_async(request.payload, payer))
        assert request_reads() != []
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert not first.replayed and again.replayed and again.transfer_id == first.transfer_id
    assert balance(engine, payer) == 4_000


def test_a_rewritten_row_cannot_make_a_forged_payload_pay(
    pay: Pay, engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    """What the process remembers is its own, not the database's: a forged text written
    into the request's row with plain SQL is still checked against its signature."""
    payer = member_with(ledger, 5_000)
    request = merchants.requests.create(shop.account_id, 1_000)
    body = request.payload.replace("540510.00", "54041.00")[:-4]
    forged = body + f"{p.crc16_ccitt(body.encode()):04X}"
    with engine.begin() as connection:
        connection.execute(
            payment_requests.update()
            .where(payment_requests.c.id == request.id)
            .values(payload=forged, amount=100)
        )
    assert refused(pay, forged, payer).code == "payload_bad_signature"
    assert balance(engine, payer) == 5_000


def test_a_request_paid_or_cancelled_by_another_process_is_refused_here(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant, clock: Clock
) -> None:
    """The row this process remembers may be stale; the ledger referees."""
    other = another_process(engine, ledger, merchants, clock)
    payer, second = member_with(ledger, 5_000), member_with(ledger, 5_000, "Second")

    def pay_here(payload: str, account: UUID) -> Payment:
        return asyncio.run(merchants.requests.pay_async(payload, account))

    paid = merchants.requests.create(shop.account_id, 1_000)
    assert other.requests.pay(paid.payload, payer).request.status is RequestStatus.PAID
    assert refused(pay_here, paid.payload, second).code == "request_already_paid"
    cancelled = merchants.requests.create(shop.account_id, 1_000)
    other.requests.cancel(cancelled.id, shop.account_id)
    assert refused(pay_here, cancelled.payload, second).code == "request_cancelled"
    assert balance(engine, payer) == 4_000 and balance(engine, second) == 5_000
    assert_books_balance(engine, merchants)


def test_payloads_refused_before_any_lookup(
    pay: Pay, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    payer = member_with(ledger, 5_000)
    request = merchants.requests.create(shop.account_id, 1_000)
    assert refused(pay, request.payload[:100], payer).code == "payload_truncated"
    assert refused(pay, "hello", payer).code == "payload_malformed"
    assert refused(pay, "", payer).code == "payload_malformed"
    flipped = request.payload[:-1] + ("0" if request.payload[-1] != "0" else "1")
    assert refused(pay, flipped, payer).code == "payload_bad_crc"


def test_a_payload_signed_by_another_service_is_unknown(
    pay: Pay, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    other_key = Ed25519PrivateKey.generate()
    from rollon.ledger.journal import key_id

    payload = p.dynamic_payload(
        merchant_account_id=shop.account_id,
        key_id=key_id(other_key.public_key()),
        merchant_name="x",
        merchant_city="y",
        amount=100,
        request_id=uuid4(),
        issued_at_s=2_000_000_000,
        expires_at_s=2_000_000_300,
    )
    text = p.sign_payload(payload, other_key)
    error = refused(pay, text, member_with(ledger, 500))
    assert error.code == "payload_unknown_key"


def test_a_signed_payload_without_its_request_or_merchant(
    pay: Pay, ledger: Ledger, merchants: Merchants, shop: Merchant, clock: Clock
) -> None:
    keyring = merchants.keyring
    now_s = clock() // 10**9

    def signed(account: UUID) -> str:
        payload = p.dynamic_payload(
            merchant_account_id=account,
            key_id=keyring.signing_key_id,
            merchant_name="x",
            merchant_city="y",
            amount=100,
            request_id=uuid4(),
            issued_at_s=now_s,
            expires_at_s=now_s + 60,
        )
        return p.sign_payload(payload, keyring.signing_key)

    payer = member_with(ledger, 500)
    assert refused(pay, signed(shop.account_id), payer).code == "request_not_found"
    assert refused(pay, signed(uuid4()), payer).code == "merchant_not_found"


# -- expiry and cancellation ------------------------------------------------------------------
def test_an_expired_request_cannot_be_paid(
    pay: Pay, engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant, clock: Clock
) -> None:
    payer = member_with(ledger, 5_000)
    clock.freeze()
    request = merchants.requests.create(shop.account_id, 1_000, expires_in_s=60)
    clock.advance(59)
    assert merchants.requests.get(request.id).status is RequestStatus.OPEN
    clock.advance(1)
    error = refused(pay, request.payload, payer)
    assert error.code == "payload_expired" and error.refusal is Refusal.GONE
    assert merchants.requests.get(request.id).status is RequestStatus.EXPIRED
    # a payer who read the request in time cannot land a payment afterwards either
    late = _payment_transfer(request.id, 0, payer, shop.account_id, 1_000)
    assert ledger.submit([late]) == [Result.ID_ALREADY_FAILED]
    assert balance(engine, payer) == 5_000
    assert_books_balance(engine, merchants)


def test_expire_due_sweeps_open_requests(
    merchants: Merchants, shop: Merchant, clock: Clock
) -> None:
    old = [merchants.requests.create(shop.account_id, 100, expires_in_s=10) for _ in range(3)]
    fresh = merchants.requests.create(shop.account_id, 100, expires_in_s=600)
    clock.advance(11)
    assert merchants.requests.expire_due() == 3
    assert merchants.requests.expire_due() == 0
    assert {merchants.requests.get(r.id).status for r in old} == {RequestStatus.EXPIRED}
    assert merchants.requests.get(fresh.id).status is RequestStatus.OPEN


def test_cancelling(
    pay: Pay, engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    payer = member_with(ledger, 5_000)
    request = merchants.requests.create(shop.account_id, 1_000)
    cancelled = merchants.requests.cancel(request.id, shop.account_id)
    assert cancelled.status is RequestStatus.CANCELLED
    assert merchants.requests.cancel(request.id, shop.account_id) == cancelled  # twice is fine
    error = refused(pay, request.payload, payer)
    assert error.code == "request_cancelled" and error.refusal is Refusal.CONFLICT
    late = _payment_transfer(request.id, 0, payer, shop.account_id, 1_000)
    assert ledger.submit([late]) == [Result.ID_ALREADY_FAILED]
    assert balance(engine, payer) == 5_000


def test_cancelling_is_for_the_owner_of_an_open_request(
    pay: Pay, ledger: Ledger, merchants: Merchants, shop: Merchant, clock: Clock
) -> None:
    other = merchants.directory.onboard(application())
    request = merchants.requests.create(shop.account_id, 1_000)
    assert (
        refused(merchants.requests.cancel, request.id, other.account_id).code == "request_not_found"
    )
    pay(request.payload, member_with(ledger, 5_000))
    assert (
        refused(merchants.requests.cancel, request.id, shop.account_id).code
        == "request_already_paid"
    )
    expiring = merchants.requests.create(shop.account_id, 1_000, expires_in_s=5)
    clock.advance(5)
    error = refused(merchants.requests.cancel, expiring.id, shop.account_id)
    assert error.code == "request_expired" and error.refusal is Refusal.GONE


def test_a_payment_that_landed_before_the_cancellation_stands(
    engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    """The process that paid died before writing it down: the ledger holds the payment, and
    cancelling finds it there instead of cancelling a paid request."""
    payer = member_with(ledger, 5_000)
    request = merchants.requests.create(shop.account_id, 1_000)
    landed = _payment_transfer(request.id, 0, payer, shop.account_id, 1_000)
    assert ledger.submit([landed]) == [Result.OK]
    error = refused(merchants.requests.cancel, request.id, shop.account_id)
    assert error.code == "request_already_paid"
    now = merchants.requests.get(request.id)
    assert now.status is RequestStatus.PAID and now.payer_account_id == payer
    assert_books_balance(engine, merchants)


def test_reading_a_request_finds_a_payment_not_yet_written_down(
    pay: Pay, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    payer = member_with(ledger, 5_000)
    request = merchants.requests.create(shop.account_id, 1_000)
    assert ledger.submit([_payment_transfer(request.id, 0, payer, shop.account_id, 1_000)]) == [
        Result.OK
    ]
    assert merchants.requests.get(request.id).status is RequestStatus.PAID
    second = member_with(ledger, 5_000, "Second")
    assert refused(pay, request.payload, second).code == "request_already_paid"


def test_listing_a_merchants_requests(merchants: Merchants, shop: Merchant) -> None:
    made = [merchants.requests.create(shop.account_id, 100 + i) for i in range(5)]
    page = merchants.requests.list_for_merchant(shop.account_id, limit=3)
    assert [r.id for r in page] == [r.id for r in reversed(made)][:3]
    rest = merchants.requests.list_for_merchant(shop.account_id, before_ns=page[-1].created_at_ns)
    assert [r.id for r in rest] == [made[1].id, made[0].id]
    assert (
        refused(merchants.requests.list_for_merchant, shop.account_id, limit=0).code
        == "invalid_limit"
    )


def test_a_listing_shows_a_request_past_its_expiry_as_expired(
    merchants: Merchants, shop: Merchant, clock: Clock
) -> None:
    short = merchants.requests.create(shop.account_id, 100, expires_in_s=10)
    long = merchants.requests.create(shop.account_id, 100, expires_in_s=600)
    clock.advance(11)  # no read, no sweep since: the row itself still says open
    listed = {r.id: r.status for r in merchants.requests.list_for_merchant(shop.account_id)}
    assert listed == {short.id: RequestStatus.EXPIRED, long.id: RequestStatus.OPEN}


# -- static codes -----------------------------------------------------------------------------
def test_static_code_payments(
    pay: Pay, engine: Engine, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    sticker = merchants.requests.static_payload(shop.account_id)
    assert merchants.requests.static_payload(shop.account_id) == sticker  # a stable sticker
    payer = member_with(ledger, 5_000)
    payment_id = uuid4()
    payment = pay(sticker, payer, amount=720, payment_id=payment_id)
    assert payment.request.static and payment.request.amount == 720
    assert payment.request.status is RequestStatus.PAID
    again = pay(sticker, payer, amount=720, payment_id=payment_id)
    assert again.replayed and balance(engine, payer) == 4_280
    assert refused(pay, sticker, payer, amount=721, payment_id=payment_id).code == (
        "payment_exists"
    )
    assert refused(pay, sticker, payer, payment_id=uuid4()).code == "amount_required"
    assert refused(pay, sticker, payer, amount=100).code == "payment_id_required"
    assert refused(pay, sticker, payer, amount=0, payment_id=uuid4()).code == (
        "amount_must_be_positive"
    )
    assert_books_balance(engine, merchants)


def test_the_payer_sees_the_directorys_name_not_the_payloads(
    merchants: Merchants, shop: Merchant
) -> None:
    """A swapped sticker: a validly signed code of another merchant shows that merchant."""
    swapper = merchants.directory.onboard(application(trade_name="Swapper"))
    keyring = merchants.keyring
    lying = p.static_payload(
        merchant_account_id=swapper.account_id,
        key_id=keyring.signing_key_id,
        merchant_name=shop.trade_name,  # claims to be the shop...
        merchant_city=shop.city,
        issued_at_s=1_700_000_000,
    )
    preview = merchants.requests.preview(p.sign_payload(lying, keyring.signing_key))
    assert preview.merchant_name == "Swapper" and preview.account_id == swapper.account_id
    request = merchants.requests.create(shop.account_id, 990, reference="Croissants")
    shown = merchants.requests.preview(request.payload)
    assert (shown.merchant_name, shown.amount, shown.reference, shown.status) == (
        shop.trade_name,
        990,
        "Croissants",
        RequestStatus.OPEN,
    )


def test_many_failed_attempts_walk_forward(
    pay: Pay, ledger: Ledger, merchants: Merchants, shop: Merchant
) -> None:
    request = merchants.requests.create(shop.account_id, 1_000)
    poor = member_with(ledger, 1, "Poor")
    for _ in range(MAX_PAY_ROUNDS + 2):
        assert refused(pay, request.payload, poor).code == "insufficient_funds"
    payment = pay(request.payload, member_with(ledger, 1_000))
    assert payment.transfer_id == attempt_transfer_id(request.id, MAX_PAY_ROUNDS + 2)


def _payment_transfer(
    request_id: UUID, attempt: int, payer: UUID, merchant_account: UUID, amount: int
) -> Transfer:
    return Transfer(
        id=attempt_transfer_id(request_id, attempt),
        debit_account_id=payer,
        credit_account_id=merchant_account,
        amount=amount,
        ledger=LedgerCode.RLN,
        code=TransferCode.PAYMENT,
    )
