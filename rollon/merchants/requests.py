"""Payment requests and their payment: open -> paid (then refunded, see refunds.py);
open -> expired; open -> cancelled.

A request is paid at most once, even when several payers scan it at the same moment, and
across processes. The ledger is the referee: the payment's transfer id is derived from the
request id and the request's current `attempt`, so two payers of one attempt submit the
same id, and the ledger accepts the first and refuses the other. When an attempt fails for
good (the payer lacked funds: the ledger then refuses that id forever), the request moves
to the next attempt, so one payer's failure does not block the next payer. Cancelling and
expiring first freeze the attempt (status cancelling/expiring), then spend its id in the
ledger with a transfer that cannot succeed, so a payment racing a cancellation either
landed before it (the request is paid) or can never land.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial
from typing import Any
from uuid import UUID, uuid4, uuid5

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from rollon.ledger.accounts import LedgerCode
from rollon.ledger.money import AmountError, check_amount
from rollon.ledger.queries import get_transfer
from rollon.ledger.service import Ledger
from rollon.ledger.storage import DriverStatement, read_first
from rollon.ledger.transfers import STATE_DEPENDENT_FAILURES, Result, Transfer, TransferCode
from rollon.merchants.batch_writer import BatchWriter
from rollon.merchants.directory import Merchant, MerchantDirectory
from rollon.merchants.errors import MerchantError, Refusal
from rollon.merchants.keyring import Keyring
from rollon.merchants.notifier import RequestNotifier
from rollon.merchants.payload import (
    MAX_PAYLOAD_AMOUNT,
    MAX_VALIDITY_S,
    PayloadError,
    PayloadKind,
    PaymentPayload,
    dynamic_payload,
    sign_payload,
    static_payload,
    verify_payload,
)
from rollon.merchants.schema import MAX_DESCRIPTION_LENGTH, MAX_REFERENCE_LENGTH, payment_requests
from rollon.merchants.signed_here import SignedHere

NS_PER_S = 1_000_000_000
MAX_PAY_ROUNDS = 8  # attempts a payer walks through before giving up as "busy"
MAX_WAIT_S = 60
POLL_INTERVAL_S = 1.0  # how often a waiting till looks at the database (other processes)
MAX_EXPIRED_PER_SWEEP = 100
MAX_LIST_PAGE = 100
# The debit account of the transfer that spends a closed request's attempt id: it never
# exists, so that transfer always fails, and the ledger remembers the id as failed.
NOWHERE = UUID("00000000-0000-0000-0000-000000000000")


class RequestStatus(StrEnum):
    """What a client sees. Refund states are derived from the refunded amount."""

    OPEN = "open"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class _Stored(StrEnum):
    """The states rows hold; cancelling and expiring last only while a closing runs."""

    OPEN = "open"
    CANCELLING = "cancelling"
    EXPIRING = "expiring"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


_CLOSING = {_Stored.CANCELLING: _Stored.CANCELLED, _Stored.EXPIRING: _Stored.EXPIRED}
TERMINAL = frozenset({RequestStatus.REFUNDED, RequestStatus.EXPIRED, RequestStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A payment request as merchants and payers see it. `merchant_name` and
    `merchant_city` come from the directory, never from a payload."""

    id: UUID
    merchant_id: UUID
    account_id: UUID
    merchant_name: str
    merchant_city: str
    static: bool
    amount: int
    reference: str
    description: str
    status: RequestStatus
    created_at_ns: int
    expires_at_s: int
    payload: str
    payer_account_id: UUID | None
    transfer_id: UUID | None
    paid_at_ns: int | None
    refunded_amount: int


@dataclass(frozen=True, slots=True)
class Payment:
    """A done payment. `replayed` is True when this payer had paid it already (a retry)."""

    request: PaymentRequest
    transfer_id: UUID
    payer_account_id: UUID
    replayed: bool


@dataclass(frozen=True, slots=True)
class PaymentPreview:
    """What a payer's app shows before paying: the merchant as the directory knows it."""

    merchant_id: UUID
    account_id: UUID
    merchant_name: str
    merchant_city: str
    static: bool
    amount: int | None
    reference: str
    request_id: UUID | None
    status: RequestStatus | None
    expires_at_s: int | None


@dataclass(frozen=True, slots=True)
class _Row:
    id: UUID
    merchant_id: UUID
    account_id: UUID
    kind: str
    amount: int
    reference: str
    description: str
    status: _Stored
    attempt: int
    created_at_ns: int
    issued_at_s: int
    expires_at_s: int
    payload: str
    payer_account_id: UUID | None
    transfer_id: UUID | None
    paid_at_ns: int | None
    refund_reserved: int
    refunded_amount: int


def _row(row: Any) -> _Row:
    return _Row(
        id=row.id,
        merchant_id=row.merchant_id,
        account_id=row.account_id,
        kind=row.kind,
        amount=row.amount,
        reference=row.reference,
        description=row.description,
        status=_Stored(row.status),
        attempt=row.attempt,
        created_at_ns=row.created_at_ns,
        issued_at_s=row.issued_at_s,
        expires_at_s=row.expires_at_s,
        payload=row.payload,
        payer_account_id=row.payer_account_id,
        transfer_id=row.transfer_id,
        paid_at_ns=row.paid_at_ns,
        refund_reserved=row.refund_reserved,
        refunded_amount=row.refunded_amount,
    )


# Built once: these run on every payment.
_SELECT_REQUEST = sa.select(payment_requests).where(
    payment_requests.c.id == sa.bindparam("request_id")
)
_INSERTED_COLUMNS = (
    "id",
    "merchant_id",
    "account_id",
    "kind",
    "amount",
    "reference",
    "description",
    "status",
    "attempt",
    "created_at_ns",
    "issued_at_s",
    "expires_at_s",
    "payload",
    "payer_account_id",
)
# A payment that landed is written down even if a closing began meanwhile (it came first).
_PAYABLE_AT_RECORDING = (_Stored.OPEN, _Stored.CANCELLING, _Stored.EXPIRING)
_RECORD_PAID = DriverStatement(
    payment_requests.update()
    .where(
        payment_requests.c.id == sa.bindparam("request_id"),
        payment_requests.c.attempt == sa.bindparam("b_attempt"),
        # Not `status.in_(...)`: an IN list is rendered at each execution, and this SQL once.
        sa.or_(*(payment_requests.c.status == s.value for s in _PAYABLE_AT_RECORDING)),
    )
    .values(
        status=_Stored.PAID.value,
        payer_account_id=sa.bindparam("b_payer_account_id"),
        transfer_id=sa.bindparam("b_transfer_id"),
        paid_at_ns=sa.bindparam("b_paid_at_ns"),
    )
)
_INSERT_REQUEST = DriverStatement(
    payment_requests.insert().values({name: sa.bindparam(name) for name in _INSERTED_COLUMNS})
)


def attempt_transfer_id(request_id: UUID, attempt: int) -> UUID:
    """The ledger id a payment of this request's attempt uses."""
    return uuid5(request_id, f"payment:{attempt}")


def _public_status(row: _Row, now_s: int) -> RequestStatus:
    """What the request is for its readers. An open request past its expiry reads as
    expired already (it is closed for good by the next read of it, or a sweep)."""
    if row.status is _Stored.PAID:
        if row.refunded_amount == 0:
            return RequestStatus.PAID
        if row.refunded_amount < row.amount:
            return RequestStatus.PARTIALLY_REFUNDED
        return RequestStatus.REFUNDED
    if row.status in (_Stored.CANCELLED, _Stored.CANCELLING):
        return RequestStatus.CANCELLED
    if row.status in (_Stored.EXPIRED, _Stored.EXPIRING) or now_s >= row.expires_at_s:
        return RequestStatus.EXPIRED
    return RequestStatus.OPEN


def _invalid(code: str, message: str) -> MerchantError:
    return MerchantError(code, message, Refusal.INVALID)


def _not_found(request_id: UUID) -> MerchantError:
    return MerchantError("request_not_found", f"no payment request {request_id}", Refusal.NOT_FOUND)


class PaymentRequests:
    """Creating, reading, closing and paying payment requests."""

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        directory: MerchantDirectory,
        keyring: Keyring,
        notifier: RequestNotifier,
        writer: BatchWriter,
        *,
        request_ttl_s: int,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        assert 0 < request_ttl_s <= MAX_VALIDITY_S
        self._engine = engine
        self._ledger = ledger
        self._directory = directory
        self._keyring = keyring
        self.notifier = notifier
        self._writer = writer
        self._ttl_s = request_ttl_s
        self._clock_ns = clock_ns
        self._signed_here: SignedHere[_Row] = SignedHere()

    # -- reading ----------------------------------------------------------------------------
    def _load(self, request_id: UUID) -> _Row | None:
        row = read_first(self._engine, _SELECT_REQUEST, {"request_id": request_id})
        return None if row is None else _row(row)

    def _merchant_of(self, row: _Row) -> Merchant:
        merchant = self._directory.by_account(row.account_id)
        assert merchant is not None and merchant.id == row.merchant_id, "request of no merchant"
        return merchant

    def _view(self, row: _Row) -> PaymentRequest:
        merchant = self._merchant_of(row)
        return PaymentRequest(
            id=row.id,
            merchant_id=row.merchant_id,
            account_id=row.account_id,
            merchant_name=merchant.trade_name,
            merchant_city=merchant.city,
            static=row.kind == "static",
            amount=row.amount,
            reference=row.reference,
            description=row.description,
            status=_public_status(row, self._now_s()),
            created_at_ns=row.created_at_ns,
            expires_at_s=row.expires_at_s,
            payload=row.payload,
            payer_account_id=row.payer_account_id,
            transfer_id=row.transfer_id,
            paid_at_ns=row.paid_at_ns,
            refunded_amount=row.refunded_amount,
        )

    def _current(self, request_id: UUID) -> _Row:
        """The request's row, brought up to date: a payment the ledger holds is recorded,
        a closing left halfway is finished, an open request past its expiry expires."""
        row = self._load(request_id)
        if row is None:
            raise _not_found(request_id)
        if row.status is _Stored.OPEN:
            row = self._sync(row)
        if row.status in _CLOSING:
            row = self._finish_closing(row)
        if row.status is _Stored.OPEN and self._now_s() >= row.expires_at_s:
            row = self._close(row, _Stored.EXPIRING)
        return row

    def get(self, request_id: UUID) -> PaymentRequest:
        """A request as it stands now (expiring it if its time has passed)."""
        return self._view(self._current(request_id))

    def get_for_merchant(self, request_id: UUID, account_id: UUID) -> PaymentRequest:
        """A request, for the merchant who owns it (others get request_not_found)."""
        request = self.get(request_id)
        if request.account_id != account_id:
            raise _not_found(request_id)
        return request

    def list_for_merchant(
        self, account_id: UUID, *, before_ns: int | None = None, limit: int = 20
    ) -> list[PaymentRequest]:
        """A merchant's requests, newest first, created strictly before `before_ns`."""
        if not 0 < limit <= MAX_LIST_PAGE:
            raise _invalid("invalid_limit", f"a page holds 1 to {MAX_LIST_PAGE} requests")
        query = (
            sa.select(payment_requests)
            .where(payment_requests.c.account_id == account_id)
            .order_by(payment_requests.c.created_at_ns.desc())
            .limit(limit)
        )
        if before_ns is not None:
            query = query.where(payment_requests.c.created_at_ns < before_ns)
        with self._engine.connect() as connection:
            rows = [_row(r) for r in connection.execute(query)]
        return [self._view(r) for r in rows]

    # -- creating ---------------------------------------------------------------------------
    def create(
        self,
        account_id: UUID,
        amount: int,
        *,
        reference: str = "",
        description: str = "",
        expires_in_s: int | None = None,
        request_id: UUID | None = None,
    ) -> PaymentRequest:
        """A merchant asks for `amount`; the answer carries the signed payload to show as a
        QR code. The same `request_id` with the same figures again returns the request."""
        row = self._request_row(
            account_id, amount, reference, description, expires_in_s, request_id
        )
        if self._insert(row):
            return self._view(self._remember(row))
        return self._asked_before(row)

    async def create_async(
        self,
        account_id: UUID,
        amount: int,
        *,
        reference: str = "",
        description: str = "",
        expires_in_s: int | None = None,
        request_id: UUID | None = None,
    ) -> PaymentRequest:
        """`create` from an event loop: the row commits with the ledger's next batch, and
        no thread waits for it meanwhile (a thread per request waiting on the writer makes
        the threads fight over the GIL)."""
        row = self._request_row(
            account_id, amount, reference, description, expires_in_s, request_id
        )
        try:
            await self._writer.write_async(partial(_insert_request, row))
        except IntegrityError:
            return await asyncio.to_thread(self._asked_before, row)
        return self._view(self._remember(row))

    def _remember(self, values: dict[str, Any]) -> _Row:
        """The row of a request just stored, kept for its payment (see signed_here.py)."""
        row = _new_row(values)
        self._signed_here.remember(row.payload, row)
        return row

    def _request_row(
        self,
        account_id: UUID,
        amount: int,
        reference: str,
        description: str,
        expires_in_s: int | None,
        request_id: UUID | None,
    ) -> dict[str, Any]:
        """A new request's row, its payload signed; MerchantError for bad figures."""
        merchant = self._merchant(account_id)
        amount = self._amount(amount)
        reference = " ".join(reference.split())
        if len(reference) > MAX_REFERENCE_LENGTH:
            raise _invalid("invalid_reference", f"a reference has {MAX_REFERENCE_LENGTH} at most")
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise _invalid(
                "invalid_description", f"a description has {MAX_DESCRIPTION_LENGTH} at most"
            )
        ttl_s = self._ttl_s if expires_in_s is None else expires_in_s
        if not 0 < ttl_s <= MAX_VALIDITY_S:
            raise _invalid("invalid_expiry", f"a request lasts 1 to {MAX_VALIDITY_S} seconds")
        request_id = request_id or uuid4()
        now_ns = self._clock_ns()
        issued_at_s = now_ns // NS_PER_S
        payload = dynamic_payload(
            merchant_account_id=account_id,
            key_id=self._keyring.signing_key_id,
            merchant_name=merchant.trade_name,
            merchant_city=merchant.city,
            amount=amount,
            request_id=request_id,
            issued_at_s=issued_at_s,
            expires_at_s=issued_at_s + ttl_s,
            reference=reference,
        )
        return {
            "id": request_id,
            "merchant_id": merchant.id,
            "account_id": account_id,
            "kind": "dynamic",
            "amount": amount,
            "reference": reference,
            "description": description,
            "status": _Stored.OPEN.value,
            "attempt": 0,
            "created_at_ns": now_ns,
            "issued_at_s": issued_at_s,
            "expires_at_s": issued_at_s + ttl_s,
            "payload": sign_payload(payload, self._keyring.signing_key),
            "payer_account_id": None,
        }

    def _asked_before(self, row: dict[str, Any]) -> PaymentRequest:
        """The request whose id `row` found taken: the same request asked again, or a
        conflict."""
        earlier = self._load(row["id"])
        assert earlier is not None
        same = (earlier.account_id, earlier.amount, earlier.reference, earlier.description)
        asked = (row["account_id"], row["amount"], row["reference"], row["description"])
        if earlier.kind != "dynamic" or same != asked:
            raise MerchantError(
                "request_exists",
                f"request {row['id']} exists for other figures",
                Refusal.CONFLICT,
            )
        return self.get(row["id"])

    def _insert(self, row: dict[str, Any]) -> bool:
        """Insert a request row (group-committed); False if its id exists already."""
        try:
            self._writer.write(partial(_insert_request, row))
        except IntegrityError:
            return False
        return True

    def _merchant(self, account_id: UUID) -> Merchant:
        merchant = self._directory.by_account(account_id)
        if merchant is None:
            raise MerchantError(
                "not_a_merchant", f"account {account_id} is no merchant's", Refusal.FORBIDDEN
            )
        return merchant

    @staticmethod
    def _amount(amount: int) -> int:
        try:
            check_amount(amount)
        except AmountError as error:
            raise _invalid(error.code, str(error)) from None
        if amount > MAX_PAYLOAD_AMOUNT:
            raise _invalid("amount_too_large", f"a request asks {MAX_PAYLOAD_AMOUNT} at most")
        return amount

    def static_payload(self, account_id: UUID) -> str:
        """The merchant's static QR payload, for a sticker at the counter: always the same
        text for a merchant (issued at its onboarding; Ed25519 signs deterministically)."""
        merchant = self._merchant(account_id)
        payload = static_payload(
            merchant_account_id=account_id,
            key_id=self._keyring.signing_key_id,
            merchant_name=merchant.trade_name,
            merchant_city=merchant.city,
            issued_at_s=max(1, merchant.created_at_ns // NS_PER_S),
        )
        return sign_payload(payload, self._keyring.signing_key)

    # -- closing ----------------------------------------------------------------------------
    def cancel(self, request_id: UUID, account_id: UUID) -> PaymentRequest:
        """The merchant withdraws an open request. Cancelling twice is fine; a paid or
        expired request cannot be cancelled."""
        row = self._current(request_id)
        if row.account_id != account_id:
            raise _not_found(request_id)
        if row.status is _Stored.OPEN:
            row = self._close(row, _Stored.CANCELLING)
        if row.status is _Stored.PAID:
            raise MerchantError(
                "request_already_paid",
                "this request is paid: refund it instead",
                Refusal.CONFLICT,
            )
        if row.status is _Stored.EXPIRED:
            raise MerchantError("request_expired", "this request has expired", Refusal.GONE)
        assert row.status is _Stored.CANCELLED
        return self._view(row)

    def expire_due(self, limit: int = MAX_EXPIRED_PER_SWEEP) -> int:
        """Expire open requests whose time has passed (a sweep; reads do it lazily too).
        Returns how many were looked at."""
        assert 0 < limit <= MAX_EXPIRED_PER_SWEEP
        with self._engine.connect() as connection:
            ids = list(
                connection.execute(
                    sa.select(payment_requests.c.id)
                    .where(
                        payment_requests.c.status == _Stored.OPEN.value,
                        payment_requests.c.expires_at_s <= self._now_s(),
                    )
                    .order_by(payment_requests.c.expires_at_s)
                    .limit(limit)
                ).scalars()
            )
        for request_id in ids:
            self._current(request_id)
        return len(ids)

    def _close(self, row: _Row, closing: _Stored) -> _Row:
        """Freeze the attempt, then spend its id in the ledger (see the module's doc)."""
        assert closing in _CLOSING
        expired_by_s = self._now_s() if closing is _Stored.EXPIRING else None
        self._writer.write(partial(_freeze_request, row.id, closing, expired_by_s))
        frozen = self._load(row.id)
        assert frozen is not None
        return self._finish_closing(frozen) if frozen.status in _CLOSING else frozen

    def _finish_closing(self, row: _Row) -> _Row:
        assert row.status in _CLOSING
        spend = Transfer(
            id=attempt_transfer_id(row.id, row.attempt),
            debit_account_id=NOWHERE,
            credit_account_id=row.account_id,
            amount=row.amount,
            ledger=LedgerCode.RLN,
            code=TransferCode.PAYMENT,
            memo="request closed",
        )
        (result,) = self._ledger.submit([spend])
        assert result not in (Result.OK, Result.EXISTS), "money moved from nowhere"
        if result is Result.EXISTS_WITH_DIFFERENT_FIELDS:
            return self._sync(row)  # a payment of this attempt landed first: it stands
        assert result in STATE_DEPENDENT_FAILURES or result is Result.ID_ALREADY_FAILED, result
        closing = _CLOSING[row.status]
        closed_at_ns = self._clock_ns()
        self._writer.write(
            partial(_close_attempt, row.id, row.status, row.attempt, closing, closed_at_ns)
        )
        closed = self._load(row.id)
        assert closed is not None and closed.status in (closing, _Stored.PAID)
        if closed.status is not _Stored.PAID:
            self.notifier.notify(row.id)
        return closed

    # -- paying -----------------------------------------------------------------------------
    def verify(self, payload_text: str) -> PaymentPayload:
        """A payload this service signed, still valid; MerchantError with its code if not."""
        try:
            return verify_payload(payload_text, self._keyring.verify_keys, self._now_s())
        except PayloadError as error:
            refusal = Refusal.GONE if error.code == "payload_expired" else Refusal.INVALID
            raise MerchantError(error.code, str(error), refusal) from None

    def preview(self, payload_text: str) -> PaymentPreview:
        """What the payer is about to pay, with the merchant the directory holds for the
        payload's account (a swapped sticker shows its real beneficiary)."""
        payload = self.verify(payload_text)
        merchant = self._payee(payload)
        request: PaymentRequest | None = None
        if payload.request_id is not None:
            request = self.get(payload.request_id)
            if (request.account_id, request.amount) != (
                payload.merchant_account_id,
                payload.amount,
            ):
                raise _invalid("payload_mismatch", "the payload does not match its request")
        return PaymentPreview(
            merchant_id=merchant.id,
            account_id=merchant.account_id,
            merchant_name=merchant.trade_name,
            merchant_city=merchant.city,
            static=payload.kind is PayloadKind.STATIC,
            amount=payload.amount,
            reference=request.reference if request is not None else "",
            request_id=payload.request_id,
            status=request.status if request is not None else None,
            expires_at_s=payload.expires_at_s,
        )

    def _payee(self, payload: PaymentPayload) -> Merchant:
        merchant = self._directory.by_account(payload.merchant_account_id)
        if merchant is None:
            raise MerchantError(
                "merchant_not_found",
                "this code names no merchant of the directory",
                Refusal.NOT_FOUND,
            )
        return merchant

    def pay(
        self,
        payload_text: str,
        payer_account_id: UUID,
        *,
        amount: int | None = None,
        payment_id: UUID | None = None,
    ) -> Payment:
        """Pay from a scanned payload through the ledger's hot path.

        Dynamic payload: `amount`, if given, must be the request's (what the payer saw).
        Static payload: the payer gives `amount` and a `payment_id` (the idempotency key:
        the same id again never pays twice).
        """
        row = self._signed_here_row(payload_text, amount)
        if row is not None:
            return self._pay_row(row, payer_account_id)
        payload = self.verify(payload_text)
        if payload.kind is PayloadKind.DYNAMIC:
            return self._pay_row(self._dynamic_request(payload, amount), payer_account_id)
        return self._pay_static(payload, payload_text, payer_account_id, amount, payment_id)

    async def pay_async(
        self,
        payload_text: str,
        payer_account_id: UUID,
        *,
        amount: int | None = None,
        payment_id: UUID | None = None,
    ) -> Payment:
        """`pay` from an event loop. The usual payment (a dynamic request's attempt that
        goes through) is submitted from the loop, and no thread waits while it commits: a
        thread per payment waiting on the writer makes the threads fight over the GIL.
        Anything else (a static code, a race, a refusal) goes on in a worker thread."""
        row = self._signed_here_row(payload_text, amount)
        if row is None:
            payload = self.verify(payload_text)
            if payload.kind is not PayloadKind.DYNAMIC:
                return await asyncio.to_thread(
                    self._pay_static, payload, payload_text, payer_account_id, amount, payment_id
                )
            row = await asyncio.to_thread(self._dynamic_request, payload, amount)
        replay = self._replay(row, payer_account_id)
        if replay is not None:
            return replay
        attempt = self._attempt(row, payer_account_id)
        (result,), recorded = await self._writer.submit_async([attempt.transfer], attempt.record)
        if result is Result.OK and recorded:  # settling reads and writes nothing
            return self._after(attempt, result, recorded)
        return await asyncio.to_thread(self._after, attempt, result, recorded)

    def _signed_here_row(self, payload_text: str, amount: int | None) -> _Row | None:
        """The row of the request this process signed as exactly `payload_text`, as it was
        stored, if still unexpired: no signature to check, no row to read (signed_here.py
        says why that is safe). None sends the payment the full way, where an expired or
        unknown payload gets its precise refusal."""
        row = self._signed_here.take(payload_text)
        if row is None or self._now_s() >= row.expires_at_s:
            return None
        if amount is not None and amount != row.amount:
            raise _invalid("amount_mismatch", "the amount differs from the request's")
        return row

    def _dynamic_request(self, payload: PaymentPayload, amount: int | None) -> _Row:
        """The request a verified dynamic payload names, checked against it."""
        assert payload.request_id is not None
        self._payee(payload)
        if amount is not None and amount != payload.amount:
            raise _invalid("amount_mismatch", "the amount differs from the request's")
        row = self._load(payload.request_id)
        if row is None:
            raise _not_found(payload.request_id)
        if (row.account_id, row.amount) != (payload.merchant_account_id, payload.amount):
            raise _invalid("payload_mismatch", "the payload does not match its request")
        return row

    def _pay_static(
        self,
        payload: PaymentPayload,
        payload_text: str,
        payer_account_id: UUID,
        amount: int | None,
        payment_id: UUID | None,
    ) -> Payment:
        merchant = self._payee(payload)
        row = self._static_request(merchant, payload_text, payer_account_id, amount, payment_id)
        return self._pay_row(row, payer_account_id)

    def _static_request(
        self,
        merchant: Merchant,
        payload_text: str,
        payer_account_id: UUID,
        amount: int | None,
        payment_id: UUID | None,
    ) -> _Row:
        """The request row a static-QR payment goes through, created on first use."""
        if amount is None:
            raise _invalid("amount_required", "a static code has no amount: give one")
        if payment_id is None:
            raise _invalid("payment_id_required", "a static-code payment needs an id")
        amount = self._amount(amount)
        now_ns = self._clock_ns()
        issued_at_s = now_ns // NS_PER_S
        row = {
            "id": payment_id,
            "merchant_id": merchant.id,
            "account_id": merchant.account_id,
            "kind": "static",
            "amount": amount,
            "reference": "",
            "description": "",
            "status": _Stored.OPEN.value,
            "attempt": 0,
            "created_at_ns": now_ns,
            "issued_at_s": issued_at_s,
            "expires_at_s": issued_at_s + self._ttl_s,
            "payload": payload_text,
            "payer_account_id": payer_account_id,
        }
        self._insert(row)
        stored = self._load(payment_id)
        assert stored is not None
        intended = (stored.kind, stored.account_id, stored.amount, stored.payer_account_id)
        if intended != ("static", merchant.account_id, amount, payer_account_id):
            raise MerchantError(
                "payment_exists",
                f"payment {payment_id} was made with other figures",
                Refusal.CONFLICT,
            )
        return stored

    def _pay_row(self, row: _Row, payer_account_id: UUID) -> Payment:
        for _ in range(MAX_PAY_ROUNDS):
            replay = self._replay(row, payer_account_id)
            if replay is not None:
                return replay
            attempt = self._attempt(row, payer_account_id)
            (result,), recorded = self._writer.submit([attempt.transfer], attempt.record)
            next_row = self._settle(attempt, result, recorded)
            if isinstance(next_row, Payment):
                return next_row
            row = next_row
        raise MerchantError(
            "request_busy", "too many payers at once on this request; retry", Refusal.BUSY
        )

    def _replay(self, row: _Row, payer_account_id: UUID) -> Payment | None:
        """The payment already made of `row` by this payer, None if it is still to pay;
        MerchantError if it cannot be paid (by someone else, cancelled, expired)."""
        self._check_payable(row, payer_account_id)
        if row.status is not _Stored.PAID:
            return None
        assert row.transfer_id is not None
        return Payment(self._view(row), row.transfer_id, payer_account_id, replayed=True)

    def _attempt(self, row: _Row, payer_account_id: UUID) -> _Attempt:
        transfer = Transfer(
            id=attempt_transfer_id(row.id, row.attempt),
            debit_account_id=payer_account_id,
            credit_account_id=row.account_id,
            amount=row.amount,
            ledger=LedgerCode.RLN,
            code=TransferCode.PAYMENT,
            memo=row.reference,
        )
        return _Attempt(row, transfer, self._clock_ns())

    def _after(self, attempt: _Attempt, result: Result, recorded: bool) -> Payment:
        """`_settle` an attempt, then pay on if the request moved to another attempt."""
        settled = self._settle(attempt, result, recorded)
        if isinstance(settled, Payment):
            return settled
        return self._pay_row(settled, attempt.transfer.debit_account_id)

    def _settle(self, attempt: _Attempt, result: Result, recorded: bool) -> Payment | _Row:
        """The payment if the attempt went through; else the request's row to try next, or
        MerchantError if the ledger refused the payer."""
        row = attempt.row
        if result in (Result.OK, Result.EXISTS):
            paid = attempt.paid_row() if recorded else self._record_paid(row, attempt.transfer)
            return self._paid(attempt, paid, replayed=result is Result.EXISTS)
        if result is Result.EXISTS_WITH_DIFFERENT_FIELDS:
            return self._sync(row)  # another payer got this attempt
        if result is Result.ID_ALREADY_FAILED:
            return self._next_attempt(row)  # an earlier payer failed it, or it was closed
        if result in STATE_DEPENDENT_FAILURES:
            self._next_attempt(row)  # this id failed for good: let the next payer in
        raise MerchantError.from_result(result, _refusal_text(result, row.amount))

    def _paid(self, attempt: _Attempt, paid: _Row, *, replayed: bool) -> Payment:
        self.notifier.notify(paid.id)
        transfer = attempt.transfer
        return Payment(self._view(paid), transfer.id, transfer.debit_account_id, replayed=replayed)

    def _check_payable(self, row: _Row, payer_account_id: UUID) -> None:
        if row.status is _Stored.PAID:
            if row.payer_account_id != payer_account_id:
                raise MerchantError(
                    "request_already_paid", "someone else paid this request", Refusal.CONFLICT
                )
            return
        if row.status in (_Stored.CANCELLED, _Stored.CANCELLING):
            raise MerchantError(
                "request_cancelled", "the merchant cancelled this request", Refusal.CONFLICT
            )
        if row.status in (_Stored.EXPIRED, _Stored.EXPIRING) or self._now_s() >= row.expires_at_s:
            raise MerchantError("request_expired", "this request has expired", Refusal.GONE)
        if payer_account_id == row.account_id:
            raise MerchantError.from_result(Result.SAME_ACCOUNT, "a merchant cannot pay itself")

    def _record_paid(self, row: _Row, transfer: Transfer) -> _Row:
        """Record the ledger's payment of `row`'s attempt (once; later calls agree)."""
        late = _Attempt(row, transfer, self._clock_ns())
        if self._writer.write(late.write_down) == 1:
            return late.paid_row()
        paid = self._load(row.id)  # written down already, by a reader or another payer
        assert paid is not None and paid.status is _Stored.PAID, "a paid request must say so"
        assert paid.transfer_id == transfer.id, "a request was paid twice"
        assert paid.payer_account_id == transfer.debit_account_id
        return paid

    def _sync(self, row: _Row) -> _Row:
        """Record a payment of the current attempt that the ledger has and the row lacks."""
        transfer_id = attempt_transfer_id(row.id, row.attempt)
        with self._engine.connect() as connection:
            entry = get_transfer(connection, transfer_id)
        if entry is None:
            fresh = self._load(row.id)
            assert fresh is not None
            return fresh
        return self._record_paid(row, entry.transfer)

    def _next_attempt(self, row: _Row) -> _Row:
        """Move an open request past an attempt whose id failed for good in the ledger."""
        self._writer.write(partial(_advance_attempt, row.id, row.attempt))
        fresh = self._load(row.id)
        assert fresh is not None and fresh.attempt >= row.attempt
        return fresh

    # -- waiting ----------------------------------------------------------------------------
    async def wait_for_change(
        self, request_id: UUID, known: RequestStatus | None, wait_s: float
    ) -> PaymentRequest:
        """The request once its status differs from `known`, or as it is after `wait_s`
        (long-poll). Woken at once by a payment in this process; a payment in another
        process is seen within POLL_INTERVAL_S."""
        assert 0 <= wait_s <= MAX_WAIT_S
        deadline = time.monotonic() + wait_s
        while True:
            request = await asyncio.to_thread(self.get, request_id)
            remaining = deadline - time.monotonic()
            if request.status != known or remaining <= 0:
                return request
            await self.notifier.wait(request_id, min(remaining, POLL_INTERVAL_S))

    async def changes(self, request_id: UUID, wait_s: float) -> AsyncIterator[PaymentRequest]:
        """The request now, then each time its status changes, until it is final or
        `wait_s` passes (for server-sent events)."""
        assert 0 <= wait_s <= MAX_WAIT_S
        deadline = time.monotonic() + wait_s
        request = await asyncio.to_thread(self.get, request_id)
        yield request
        while request.status not in TERMINAL:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            changed = await self.wait_for_change(request_id, request.status, remaining)
            if changed.status == request.status:
                return
            request = changed
            yield request

    def _now_s(self) -> int:
        return self._clock_ns() // NS_PER_S


# The writes below run in the ledger's writer, which may be another process: module-level
# functions of the plain values they need, which pickle (see BatchWriter).
def _insert_request(row: dict[str, Any], connection: Connection) -> None:
    _INSERT_REQUEST.run(connection, row)


def _freeze_request(
    request_id: UUID, closing: _Stored, expired_by_s: int | None, connection: Connection
) -> None:
    """Freeze an open request on its way to `closing` (if expiring: once it has expired)."""
    guard = [payment_requests.c.id == request_id, payment_requests.c.status == _Stored.OPEN]
    if expired_by_s is not None:
        guard.append(payment_requests.c.expires_at_s <= expired_by_s)
    connection.execute(payment_requests.update().where(*guard).values(status=closing.value))


def _close_attempt(
    request_id: UUID,
    status: _Stored,
    attempt: int,
    closing: _Stored,
    closed_at_ns: int,
    connection: Connection,
) -> None:
    """Move a frozen request on to `closing`, if it is still at `status` and `attempt`."""
    connection.execute(
        payment_requests.update()
        .where(
            payment_requests.c.id == request_id,
            payment_requests.c.status == status.value,
            payment_requests.c.attempt == attempt,
        )
        .values(status=closing.value, closed_at_ns=closed_at_ns)
    )


def _advance_attempt(request_id: UUID, attempt: int, connection: Connection) -> None:
    """Move an open request past its attempt `attempt`."""
    connection.execute(
        payment_requests.update()
        .where(
            payment_requests.c.id == request_id,
            payment_requests.c.attempt == attempt,
            payment_requests.c.status == _Stored.OPEN.value,
        )
        .values(attempt=attempt + 1)
    )


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One try at paying a request: its transfer, and the row's update that commits with it."""

    row: _Row
    transfer: Transfer
    paid_at_ns: int

    def record(self, connection: Connection, results: Sequence[Result]) -> bool:
        """Write the request down as paid if this attempt just went through (in its batch)."""
        return results == [Result.OK] and self.write_down(connection) == 1

    def write_down(self, connection: Connection) -> int:
        """Mark the row paid by this attempt, if it is still open at it; the rows updated."""
        values = {
            "request_id": self.row.id,
            "b_attempt": self.row.attempt,
            "b_payer_account_id": self.transfer.debit_account_id,
            "b_transfer_id": self.transfer.id,
            "b_paid_at_ns": self.paid_at_ns,
        }
        return _RECORD_PAID.run(connection, values)

    def paid_row(self) -> _Row:
        return replace(
            self.row,
            status=_Stored.PAID,
            payer_account_id=self.transfer.debit_account_id,
            transfer_id=self.transfer.id,
            paid_at_ns=self.paid_at_ns,
        )


def _new_row(values: dict[str, Any]) -> _Row:
    """A just-inserted row, with the columns the database defaults."""
    defaults: dict[str, Any] = {
        "payer_account_id": None,
        "transfer_id": None,
        "paid_at_ns": None,
        "refund_reserved": 0,
        "refunded_amount": 0,
    }
    return _Row(**{**defaults, **values, "status": _Stored(values["status"])})


def _refusal_text(result: Result, amount: int) -> str:
    if result is Result.INSUFFICIENT_FUNDS:
        return f"the payer's account cannot pay {amount} centimes"
    if result is Result.ACCOUNT_NOT_FOUND:
        return "the paying account does not exist"
    if result is Result.ACCOUNT_CLOSED:
        return "an account of this payment is closed"
    return f"the ledger refused the payment: {result.value}"
