"""The currency's operations, each an atomic chain of linked transfers (all or nothing).

Pure builders: given an operation id and its figures, they return the transfers to submit.
Each leg's id is derived from the operation id, so retrying an operation with the same id
is idempotent, and retrying it with other figures is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID, uuid5

from rollon.ledger import chart
from rollon.ledger.accounts import LedgerCode
from rollon.ledger.money import apply_rate_bps, check_amount
from rollon.ledger.transfers import Result, Transfer, TransferCode, TransferFlag


def leg_id(operation_id: UUID, leg: str) -> UUID:
    """The id of one leg of an operation."""
    return uuid5(operation_id, leg)


def linked(transfers: list[Transfer]) -> list[Transfer]:
    """Link every transfer to the next, so the list commits all or nothing."""
    return [
        replace(t, flags=t.flags | TransferFlag.LINKED) if i < len(transfers) - 1 else t
        for i, t in enumerate(transfers)
    ]


def outcome_of(results: list[Result]) -> Result:
    """One result for a whole operation: ok, exists (a retry), or its first real failure."""
    if all(r is Result.OK for r in results):
        return Result.OK
    if all(r is Result.EXISTS for r in results):
        return Result.EXISTS
    benign = (Result.OK, Result.EXISTS, Result.LINKED_TRANSFER_FAILED)
    real = [r for r in results if r not in benign]
    if real:
        return real[0]
    # A retry whose legs partly differ shows up as exists mixed with other results.
    return Result.EXISTS_WITH_DIFFERENT_FIELDS


def issuance(
    operation_id: UUID,
    account_id: UUID,
    amount: int,
    euro_reference: str,
    bonus_bps: int = 0,
    *,
    exchange_point_id: UUID | None = None,
) -> list[Transfer]:
    """RolloN issued against euros received: issuance → account on RLN, bank → reserve on
    EUR, plus the bonus on change (funded by grants) when `bonus_bps` is set.

    With `exchange_point_id` (the exchange point's account, where the member paid), the RolloN
    pass through that account in the same linked chain: issuance → exchange point → account.
    The journal itself then records, hashed, which counter issued them, and each RolloN leg's
    handover is followed by its euro leg (bank → reserve for what the counter collected,
    grants → reserve for the bonus): what the exchange point's daily closing reads.
    """
    check_amount(amount)
    assert exchange_point_id != account_id, "an exchange point does not issue to itself"
    memo = euro_reference

    def rln_legs(leg: str, value: int, text: str) -> list[Transfer]:
        if exchange_point_id is None:
            return [
                Transfer(
                    leg_id(operation_id, leg),
                    chart.ISSUANCE.id,
                    account_id,
                    value,
                    LedgerCode.RLN,
                    TransferCode.ISSUANCE,
                    memo=text,
                )
            ]
        return [
            Transfer(
                leg_id(operation_id, leg),
                chart.ISSUANCE.id,
                exchange_point_id,
                value,
                LedgerCode.RLN,
                TransferCode.ISSUANCE,
                memo=text,
            ),
            Transfer(
                leg_id(operation_id, f"{leg}-handover"),
                exchange_point_id,
                account_id,
                value,
                LedgerCode.RLN,
                TransferCode.ISSUANCE,
                memo=text,
            ),
        ]

    legs = [
        *rln_legs("rln", amount, memo),
        Transfer(
            leg_id(operation_id, "eur"),
            chart.BANK.id,
            chart.RESERVE.id,
            amount,
            LedgerCode.EUR,
            TransferCode.ISSUANCE,
            memo=memo,
        ),
    ]
    bonus = apply_rate_bps(amount, bonus_bps)
    if bonus > 0:
        legs += [
            *rln_legs("bonus-rln", bonus, f"bonus on change: {memo}"),
            Transfer(
                leg_id(operation_id, "bonus-eur"),
                chart.GRANTS.id,
                chart.RESERVE.id,
                bonus,
                LedgerCode.EUR,
                TransferCode.ISSUANCE,
                memo=f"bonus on change: {memo}",
            ),
        ]
    return linked(legs)


@dataclass(frozen=True, slots=True)
class Reconversion:
    """A merchant's RolloN turned back into euros: `fee` for the association, `net` owed."""

    transfers: list[Transfer]
    amount: int
    fee: int
    net: int


def reconversion(
    operation_id: UUID, merchant_account_id: UUID, amount: int, fee_bps: int, memo: str = ""
) -> Reconversion:
    """merchant → issuance on RLN; reserve → payouts_due (net) and reserve → revenue (fee)."""
    check_amount(amount)
    fee = apply_rate_bps(amount, fee_bps)
    net = amount - fee
    legs = [
        Transfer(
            leg_id(operation_id, "rln"),
            merchant_account_id,
            chart.ISSUANCE.id,
            amount,
            LedgerCode.RLN,
            TransferCode.RECONVERSION,
            memo=memo,
        )
    ]
    if net > 0:
        legs.append(
            Transfer(
                leg_id(operation_id, "net"),
                chart.RESERVE.id,
                chart.PAYOUTS_DUE.id,
                net,
                LedgerCode.EUR,
                TransferCode.RECONVERSION,
                memo=memo,
            )
        )
    if fee > 0:
        legs.append(
            Transfer(
                leg_id(operation_id, "fee"),
                chart.RESERVE.id,
                chart.REVENUE.id,
                fee,
                LedgerCode.EUR,
                TransferCode.FEE,
                memo=memo,
            )
        )
    assert fee + net == amount
    return Reconversion(transfers=linked(legs), amount=amount, fee=fee, net=net)


def payout(operation_id: UUID, amount: int, reference: str) -> list[Transfer]:
    """Euros owed for reconversions leave the fund's bank account: payouts_due → bank."""
    check_amount(amount)
    return [
        Transfer(
            leg_id(operation_id, "eur"),
            chart.PAYOUTS_DUE.id,
            chart.BANK.id,
            amount,
            LedgerCode.EUR,
            TransferCode.PAYOUT,
            memo=reference,
        )
    ]
