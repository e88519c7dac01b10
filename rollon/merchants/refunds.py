"""Refunds: a merchant gives back all or part of a payment, merchant -> payer through the
ledger's hot path.

The cumulative refund never passes what was paid, even with refunds racing: a refund first
reserves its amount on the request with a conditional update (refund_reserved + amount <=
amount), then moves the money, then counts it as refunded (or releases the reservation if
the ledger refused). A refund's ledger id is derived from the refund's own id, so retrying
a refund never pays twice; a retry of a refund left halfway finishes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from rollon.ledger.accounts import LedgerCode
from rollon.ledger.money import AmountError, check_amount
from rollon.ledger.service import Ledger
from rollon.ledger.storage import write_transaction
from rollon.ledger.transfers import Result, Transfer, TransferCode
from rollon.merchants.errors import MerchantError, Refusal
from rollon.merchants.requests import PaymentRequest, PaymentRequests, RequestStatus
from rollon.merchants.schema import payment_requests, refunds

MAX_REFUNDS_LISTED = 100


class RefundStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Refund:
    id: UUID
    request_id: UUID
    amount: int
    transfer_id: UUID
    status: RefundStatus
    failure: str | None
    created_at_ns: int


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    """A refund and the request after it; `replayed` when this refund id was done before."""

    refund: Refund
    request: PaymentRequest
    replayed: bool


def refund_transfer_id(refund_id: UUID) -> UUID:
    return uuid5(refund_id, "refund")


def _refund(row: Any) -> Refund:
    return Refund(
        id=row.id,
        request_id=row.request_id,
        amount=row.amount,
        transfer_id=row.transfer_id,
        status=RefundStatus(row.status),
        failure=row.failure,
        created_at_ns=row.created_at_ns,
    )


def _load(connection: Connection, refund_id: UUID) -> Refund | None:
    row = connection.execute(sa.select(refunds).where(refunds.c.id == refund_id)).first()
    return None if row is None else _refund(row)


class Refunds:
    """Refunding paid requests."""

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        requests: PaymentRequests,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._requests = requests
        self._clock_ns = clock_ns

    def refund(
        self, request_id: UUID, account_id: UUID, refund_id: UUID, amount: int | None = None
    ) -> RefundOutcome:
        """Refund `amount` (everything not yet refunded when None) of a paid request to its
        payer. `account_id` is the merchant's: others get request_not_found."""
        request = self._requests.get_for_merchant(request_id, account_id)
        with self._engine.connect() as connection:
            earlier = _load(connection, refund_id)
        if earlier is not None:
            if earlier.request_id != request_id or amount not in (None, earlier.amount):
                raise MerchantError(
                    "refund_exists",
                    f"refund {refund_id} was made with other figures",
                    Refusal.CONFLICT,
                )
            return self._finish(earlier, request, replayed=True)
        refundable = (RequestStatus.PAID, RequestStatus.PARTIALLY_REFUNDED, RequestStatus.REFUNDED)
        if request.status not in refundable:
            raise MerchantError(
                "request_not_paid",
                f"a request that is {request.status} has nothing to refund",
                Refusal.CONFLICT,
            )
        if amount is None:
            amount = self._refundable(request_id)
            if amount == 0:
                raise MerchantError(
                    "refund_exceeds_payment",
                    "everything paid is refunded or being refunded",
                    Refusal.CONFLICT,
                )
        try:
            check_amount(amount)
        except AmountError as error:
            raise MerchantError(error.code, str(error), Refusal.INVALID) from None
        reserved = self._reserve(request, refund_id, amount)
        if reserved is None:  # the same refund id raced us in: answer as a retry
            return self.refund(request_id, account_id, refund_id, amount)
        return self._finish(reserved, request, replayed=False)

    def _refundable(self, request_id: UUID) -> int:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(payment_requests.c.amount, payment_requests.c.refund_reserved).where(
                    payment_requests.c.id == request_id
                )
            ).one()
        return int(row.amount - row.refund_reserved)

    def _reserve(self, request: PaymentRequest, refund_id: UUID, amount: int) -> Refund | None:
        """Reserve `amount` on the request and write the pending refund, in one transaction.
        None if this refund id was written meanwhile by another call."""
        refund = Refund(
            id=refund_id,
            request_id=request.id,
            amount=amount,
            transfer_id=refund_transfer_id(refund_id),
            status=RefundStatus.PENDING,
            failure=None,
            created_at_ns=self._clock_ns(),
        )
        row = {**asdict(refund), "status": refund.status.value}
        table = payment_requests
        try:
            with write_transaction(self._engine) as connection:
                reserved = connection.execute(
                    table.update()
                    .where(
                        table.c.id == request.id,
                        table.c.status == "paid",
                        table.c.refund_reserved + amount <= table.c.amount,
                    )
                    .values(refund_reserved=table.c.refund_reserved + amount)
                )
                if reserved.rowcount == 1:
                    connection.execute(refunds.insert().values(row))
        except IntegrityError:
            return None
        if reserved.rowcount != 1:
            raise MerchantError(
                "refund_exceeds_payment",
                f"at most {self._refundable(request.id)} centimes are left to refund",
                Refusal.CONFLICT,
            )
        return refund

    def _finish(self, refund: Refund, request: PaymentRequest, *, replayed: bool) -> RefundOutcome:
        """Move the money of a pending refund and settle its reservation; a done or failed
        refund is answered as it ended."""
        if refund.status is RefundStatus.PENDING:
            assert request.payer_account_id is not None
            transfer = Transfer(
                id=refund.transfer_id,
                debit_account_id=request.account_id,
                credit_account_id=request.payer_account_id,
                amount=refund.amount,
                ledger=LedgerCode.RLN,
                code=TransferCode.REFUND,
                memo=f"refund: {request.reference}"[:120],
            )
            (result,) = self._ledger.submit([transfer])
            refund = self._settle(refund, result)
            self._requests.notifier.notify(request.id)
        if refund.status is RefundStatus.FAILED:
            assert refund.failure is not None
            result = Result(refund.failure)
            message = "the merchant's account cannot pay this refund"
            if result is not Result.INSUFFICIENT_FUNDS:
                message = f"the ledger refused the refund: {result.value}"
            raise MerchantError.from_result(result, message)
        return RefundOutcome(refund, self._requests.get(request.id), replayed)

    def _settle(self, refund: Refund, result: Result) -> Refund:
        """Count a pending refund as done, or release its reservation; exactly once."""
        done = result in (Result.OK, Result.EXISTS)
        status = RefundStatus.DONE if done else RefundStatus.FAILED
        table = payment_requests
        with write_transaction(self._engine) as connection:
            moved = connection.execute(
                refunds.update()
                .where(refunds.c.id == refund.id, refunds.c.status == RefundStatus.PENDING.value)
                .values(status=status.value, failure=None if done else result.value)
            )
            if moved.rowcount == 1:
                change = (
                    {"refunded_amount": table.c.refunded_amount + refund.amount}
                    if done
                    else {"refund_reserved": table.c.refund_reserved - refund.amount}
                )
                updated = connection.execute(
                    table.update().where(table.c.id == refund.request_id).values(change)
                )
                assert updated.rowcount == 1
            settled = _load(connection, refund.id)
        assert settled is not None and settled.status is not RefundStatus.PENDING
        return settled

    def list_for_request(self, request_id: UUID, account_id: UUID) -> list[Refund]:
        """A request's refunds, oldest first, for its merchant."""
        self._requests.get_for_merchant(request_id, account_id)
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(refunds)
                .where(refunds.c.request_id == request_id)
                .order_by(refunds.c.created_at_ns, refunds.c.id)
                .limit(MAX_REFUNDS_LISTED)
            )
            return [_refund(row) for row in rows]
