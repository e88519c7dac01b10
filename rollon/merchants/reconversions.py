"""Reconversions (a merchant's RolloN back to euros) and their payout settlements.

A reconversion commits its RLN and EUR legs atomically in the ledger (Ledger.reconvert):
merchant -> issuance, reserve -> payouts_due (net) and reserve -> revenue (fee). The net is
then owed to the merchant. An admin settles what is owed: one SEPA credit transfer file
(pain.001) per settlement, one transfer per merchant, then, once the bank has executed it,
marks it paid, which records payouts_due -> bank in the ledger.

Each reconversion row is written before the ledger is asked, and finished after; a retry
with the same id finishes one left halfway. Invariant: the ledger's payouts_due balance
equals the net of every reconversion that is due or settling.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from rollon.ledger import operations
from rollon.ledger.money import AmountError
from rollon.ledger.service import Ledger
from rollon.ledger.storage import write_transaction
from rollon.ledger.transfers import Result
from rollon.merchants.directory import Merchant, MerchantDirectory
from rollon.merchants.errors import MerchantError, Refusal
from rollon.merchants.requests import NOWHERE
from rollon.merchants.schema import reconversions, settlements
from rollon.merchants.sepa import (
    MAX_TRANSFERS_PER_FILE,
    CreditTransfer,
    Debtor,
    SepaError,
    credit_transfer_file,
)
from rollon.merchants.settings import MerchantSettings

NS_PER_S = 1_000_000_000
MAX_RECONVERSIONS_PER_SETTLEMENT = 10_000
MAX_LISTED = 100


class ReconversionStatus(StrEnum):
    PENDING = "pending"  # written, the ledger not yet asked (or the answer not yet written)
    DUE = "due"  # in the ledger; the net is owed
    FAILED = "failed"  # the ledger refused it; nothing moved
    SETTLING = "settling"  # in a prepared payout file
    PAID = "paid"


class SettlementStatus(StrEnum):
    PREPARED = "prepared"
    PAID = "paid"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Reconversion:
    id: UUID
    merchant_id: UUID
    account_id: UUID
    amount: int
    fee_bps: int
    fee: int
    net: int
    status: ReconversionStatus
    failure: str | None
    created_at_ns: int
    settlement_id: UUID | None


@dataclass(frozen=True, slots=True)
class Settlement:
    id: UUID
    message_id: str
    status: SettlementStatus
    created_at_ns: int
    execution_date: date
    total: int
    transfers: int
    reconversions: int
    document: str
    closed_at_ns: int | None


def _reconversion(row: Any) -> Reconversion:
    return Reconversion(
        id=row.id,
        merchant_id=row.merchant_id,
        account_id=row.account_id,
        amount=row.amount,
        fee_bps=row.fee_bps,
        fee=row.fee,
        net=row.net,
        status=ReconversionStatus(row.status),
        failure=row.failure,
        created_at_ns=row.created_at_ns,
        settlement_id=row.settlement_id,
    )


def _settlement(row: Any) -> Settlement:
    return Settlement(
        id=row.id,
        message_id=row.message_id,
        status=SettlementStatus(row.status),
        created_at_ns=row.created_at_ns,
        execution_date=row.execution_date,
        total=row.total,
        transfers=row.transfers,
        reconversions=row.reconversions,
        document=row.document,
        closed_at_ns=row.closed_at_ns,
    )


def _conflict(code: str, message: str) -> MerchantError:
    return MerchantError(code, message, Refusal.CONFLICT)


class Reconversions:
    """Reconversion requests by merchants, and payout settlements by admins."""

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        directory: MerchantDirectory,
        settings: MerchantSettings,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._directory = directory
        self._settings = settings
        self._clock_ns = clock_ns

    # -- reconversions ----------------------------------------------------------------------
    def get(self, reconversion_id: UUID) -> Reconversion | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(reconversions).where(reconversions.c.id == reconversion_id)
            ).first()
        return None if row is None else _reconversion(row)

    def reconvert(self, account_id: UUID, amount: int, reconversion_id: UUID) -> Reconversion:
        """Convert `amount` of the merchant's RolloN to euros owed to it, less the fee at the
        configured rate. The same id again returns the same reconversion (a retry)."""
        merchant = self._merchant(account_id)
        fee_bps = self._settings.reconversion_fee_bps
        try:
            plan = operations.reconversion(reconversion_id, account_id, amount, fee_bps)
        except AmountError as error:
            raise MerchantError(error.code, str(error), Refusal.INVALID) from None
        row = {
            "id": reconversion_id,
            "merchant_id": merchant.id,
            "account_id": account_id,
            "amount": amount,
            "fee_bps": fee_bps,
            "fee": plan.fee,
            "net": plan.net,
            "status": ReconversionStatus.PENDING.value,
            "created_at_ns": self._clock_ns(),
        }
        try:
            with write_transaction(self._engine) as connection:
                connection.execute(reconversions.insert().values(row))
        except IntegrityError:
            pass  # written before: a retry, checked below
        stored = self.get(reconversion_id)
        assert stored is not None
        if (stored.account_id, stored.amount) != (account_id, amount):
            raise _conflict(
                "reconversion_exists", f"reconversion {reconversion_id} has other figures"
            )
        if stored.status is ReconversionStatus.PENDING:
            stored = self._submit(stored)
        if stored.status is ReconversionStatus.FAILED:
            assert stored.failure is not None
            result = Result(stored.failure)
            raise MerchantError.from_result(result, _refusal_text(result, stored.amount))
        return stored

    def _submit(self, pending: Reconversion) -> Reconversion:
        # The stored rate, not today's: a retry must submit the very same legs.
        outcome, plan = self._ledger.reconvert(
            pending.id, pending.account_id, pending.amount, pending.fee_bps
        )
        assert (plan.fee, plan.net) == (pending.fee, pending.net)
        status = ReconversionStatus.DUE if outcome.applied else ReconversionStatus.FAILED
        if outcome.applied and pending.net == 0:
            status = ReconversionStatus.PAID  # all of it was fee: nothing is owed
        with write_transaction(self._engine) as connection:
            connection.execute(
                reconversions.update()
                .where(
                    reconversions.c.id == pending.id,
                    reconversions.c.status == ReconversionStatus.PENDING.value,
                )
                .values(
                    status=status.value,
                    failure=None if outcome.applied else outcome.result.value,
                )
            )
        done = self.get(pending.id)
        assert done is not None and done.status is not ReconversionStatus.PENDING
        return done

    def list_for_merchant(self, account_id: UUID, limit: int = 20) -> list[Reconversion]:
        """A merchant's reconversions, newest first."""
        if not 0 < limit <= MAX_LISTED:
            raise MerchantError("invalid_limit", f"1 to {MAX_LISTED} at a time", Refusal.INVALID)
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(reconversions)
                .where(reconversions.c.account_id == account_id)
                .order_by(reconversions.c.created_at_ns.desc())
                .limit(limit)
            )
            return [_reconversion(row) for row in rows]

    def owed(self) -> int:
        """Euro cents owed to merchants: the net of every due or settling reconversion."""
        with self._engine.connect() as connection:
            total = connection.execute(
                sa.select(sa.func.coalesce(sa.func.sum(reconversions.c.net), 0)).where(
                    reconversions.c.status.in_(
                        [ReconversionStatus.DUE.value, ReconversionStatus.SETTLING.value]
                    )
                )
            ).scalar_one()
        return int(total)

    def _merchant(self, account_id: UUID) -> Merchant:
        merchant = self._directory.by_account(account_id)
        if merchant is None:
            raise MerchantError(
                "not_a_merchant", f"account {account_id} is no merchant's", Refusal.FORBIDDEN
            )
        return merchant

    # -- settlements ------------------------------------------------------------------------
    def prepare_settlement(self, settlement_id: UUID, execution_date: date) -> Settlement:
        """Put every due reconversion (up to the file's bound) in one payout file: one
        credit transfer per merchant. The same id again returns the same settlement."""
        earlier = self.get_settlement(settlement_id)
        if earlier is not None:
            return earlier
        if self._settings.fund_iban is None:
            raise _conflict("fund_iban_missing", "set ROLLON_FUND_IBAN to make payout files")
        now_ns = self._clock_ns()
        if execution_date < datetime.fromtimestamp(now_ns // NS_PER_S, UTC).date():
            raise MerchantError(
                "invalid_execution_date",
                "a payout cannot be asked for a past day",
                Refusal.INVALID,
            )
        message_id = f"RLN-{now_ns // NS_PER_S}-{secrets.token_hex(4)}"
        with write_transaction(self._engine) as connection:
            due = list(
                connection.execute(
                    sa.select(reconversions)
                    .where(reconversions.c.status == ReconversionStatus.DUE.value)
                    .order_by(reconversions.c.created_at_ns, reconversions.c.id)
                    .limit(MAX_RECONVERSIONS_PER_SETTLEMENT)
                    .with_for_update()
                )
            )
            by_merchant: defaultdict[UUID, list[Any]] = defaultdict(list)
            for row in due:
                if len(by_merchant) < MAX_TRANSFERS_PER_FILE or row.merchant_id in by_merchant:
                    by_merchant[row.merchant_id].append(row)
            if not by_merchant:
                raise _conflict("nothing_to_settle", "no reconversion is waiting for a payout")
            document = self._document(message_id, now_ns, execution_date, by_merchant)
            included = [row.id for rows in by_merchant.values() for row in rows]
            total = sum(row.net for rows in by_merchant.values() for row in rows)
            moved = connection.execute(
                reconversions.update()
                .where(
                    reconversions.c.id.in_(included),
                    reconversions.c.status == ReconversionStatus.DUE.value,
                )
                .values(status=ReconversionStatus.SETTLING.value, settlement_id=settlement_id)
            )
            assert moved.rowcount == len(included), "due reconversions moved under the lock"
            connection.execute(
                settlements.insert().values(
                    id=settlement_id,
                    message_id=message_id,
                    status=SettlementStatus.PREPARED.value,
                    created_at_ns=now_ns,
                    execution_date=execution_date,
                    total=total,
                    transfers=len(by_merchant),
                    reconversions=len(included),
                    document=document,
                )
            )
        prepared = self.get_settlement(settlement_id)
        assert prepared is not None
        return prepared

    def _document(
        self,
        message_id: str,
        now_ns: int,
        execution_date: date,
        by_merchant: dict[UUID, list[Any]],
    ) -> str:
        transfers = []
        for index, (merchant_id, rows) in enumerate(by_merchant.items(), start=1):
            merchant = self._directory.get(merchant_id)
            assert merchant is not None
            transfers.append(
                CreditTransfer(
                    end_to_end_id=f"{message_id}-{index}",
                    amount=sum(row.net for row in rows),
                    creditor_name=merchant.legal_name,
                    creditor_iban=merchant.iban,
                    remittance=f"Reconversion RolloN {merchant.trade_name}: {len(rows)} op.",
                )
            )
        assert self._settings.fund_iban is not None
        debtor = Debtor(self._settings.fund_name, self._settings.fund_iban, self._settings.fund_bic)
        try:
            xml = credit_transfer_file(
                message_id=message_id,
                created_at=datetime.fromtimestamp(now_ns // NS_PER_S, UTC),
                execution_date=execution_date,
                debtor=debtor,
                transfers=[t for t in transfers if t.amount > 0],
            )
        except SepaError as error:
            raise _conflict(error.code, f"the payout file cannot be made: {error}") from None
        return xml.decode("utf-8")

    def get_settlement(self, settlement_id: UUID) -> Settlement | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(settlements).where(settlements.c.id == settlement_id)
            ).first()
        return None if row is None else _settlement(row)

    def list_settlements(self, limit: int = 20) -> list[Settlement]:
        """Settlements, newest first."""
        if not 0 < limit <= MAX_LISTED:
            raise MerchantError("invalid_limit", f"1 to {MAX_LISTED} at a time", Refusal.INVALID)
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(settlements).order_by(settlements.c.created_at_ns.desc()).limit(limit)
            )
            return [_settlement(row) for row in rows]

    def mark_paid(self, settlement_id: UUID) -> Settlement:
        """The bank executed the file: record payouts_due -> bank in the ledger, and mark the
        settlement and its reconversions paid. Marking twice is fine."""
        settlement = self._existing(settlement_id)
        if settlement.status is SettlementStatus.CANCELLED:
            raise _conflict("settlement_cancelled", "this settlement was cancelled")
        outcome = self._ledger.pay_out(settlement_id, settlement.total, settlement.message_id)
        if outcome.result is Result.ID_ALREADY_FAILED:
            raise _conflict("settlement_cancelled", "this settlement is being cancelled")
        if not outcome.applied:
            raise MerchantError.from_result(
                outcome.result, f"the ledger refused the payout: {outcome.result.value}"
            )
        with write_transaction(self._engine) as connection:
            connection.execute(
                settlements.update()
                .where(
                    settlements.c.id == settlement_id,
                    settlements.c.status == SettlementStatus.PREPARED.value,
                )
                .values(status=SettlementStatus.PAID.value, closed_at_ns=self._clock_ns())
            )
            connection.execute(
                reconversions.update()
                .where(
                    reconversions.c.settlement_id == settlement_id,
                    reconversions.c.status == ReconversionStatus.SETTLING.value,
                )
                .values(status=ReconversionStatus.PAID.value)
            )
        return self._existing(settlement_id)

    def cancel_settlement(self, settlement_id: UUID) -> Settlement:
        """The bank refused the file: its reconversions go back to due, for the next one.

        The payout's ledger id is spent first with a transfer that cannot succeed, so a
        `mark_paid` racing this either landed before (then the settlement stays paid) or
        can never land: the euros are never owed twice."""
        settlement = self._existing(settlement_id)
        if settlement.status is SettlementStatus.PAID:
            raise _conflict("settlement_paid", "a paid settlement cannot be cancelled")
        (payout,) = operations.payout(settlement_id, settlement.total, settlement.message_id)
        spend = replace(payout, debit_account_id=NOWHERE, memo="settlement cancelled")
        (result,) = self._ledger.submit([spend])
        assert result not in (Result.OK, Result.EXISTS), "money moved from nowhere"
        if result is Result.EXISTS_WITH_DIFFERENT_FIELDS:
            return self.mark_paid(settlement_id)  # the payout landed first: it stands
        with write_transaction(self._engine) as connection:
            cancelled = connection.execute(
                settlements.update()
                .where(
                    settlements.c.id == settlement_id,
                    settlements.c.status == SettlementStatus.PREPARED.value,
                )
                .values(status=SettlementStatus.CANCELLED.value, closed_at_ns=self._clock_ns())
            )
            if cancelled.rowcount == 1:
                connection.execute(
                    reconversions.update()
                    .where(
                        reconversions.c.settlement_id == settlement_id,
                        reconversions.c.status == ReconversionStatus.SETTLING.value,
                    )
                    .values(status=ReconversionStatus.DUE.value, settlement_id=None)
                )
        return self._existing(settlement_id)

    def _existing(self, settlement_id: UUID) -> Settlement:
        settlement = self.get_settlement(settlement_id)
        if settlement is None:
            raise MerchantError(
                "settlement_not_found", f"no settlement {settlement_id}", Refusal.NOT_FOUND
            )
        return settlement


def _refusal_text(result: Result, amount: int) -> str:
    if result is Result.INSUFFICIENT_FUNDS:
        return f"the merchant's account cannot reconvert {amount} centimes"
    return f"the ledger refused the reconversion: {result.value}"
