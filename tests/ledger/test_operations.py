"""The currency's operations: issuance (with and without the bonus on change), reconversion
with its fee, payout. Pure builders first, then through the real hot path, where the
invariants of DESIGN.md must hold after each."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from rollon.ledger import chart, operations
from rollon.ledger.accounts import LedgerCode
from rollon.ledger.money import AmountError
from rollon.ledger.service import Ledger
from rollon.ledger.transfers import Result, TransferCode, TransferFlag
from tests.ledger.builders import assert_books_sound, balance_of, member, transfer

R = Result
F = TransferFlag


# -- pure builders -----------------------------------------------------------------------------
def test_issuance_without_bonus_is_two_linked_legs() -> None:
    op, account = uuid4(), uuid4()
    legs = operations.issuance(op, account, 5_000, "deposit 42")
    assert [(t.debit_account_id, t.credit_account_id, t.amount, t.ledger) for t in legs] == [
        (chart.ISSUANCE.id, account, 5_000, LedgerCode.RLN),
        (chart.BANK.id, chart.RESERVE.id, 5_000, LedgerCode.EUR),
    ]
    assert [t.flags for t in legs] == [F.LINKED, F.NONE]
    assert all(t.code is TransferCode.ISSUANCE and t.memo == "deposit 42" for t in legs)


def test_issuance_with_bonus_is_funded_by_grants() -> None:
    op, account = uuid4(), uuid4()
    legs = operations.issuance(op, account, 2_000, "deposit", bonus_bps=500)
    assert [(t.debit_account_id, t.credit_account_id, t.amount) for t in legs] == [
        (chart.ISSUANCE.id, account, 2_000),
        (chart.BANK.id, chart.RESERVE.id, 2_000),
        (chart.ISSUANCE.id, account, 100),
        (chart.GRANTS.id, chart.RESERVE.id, 100),
    ]
    assert [t.flags for t in legs] == [F.LINKED, F.LINKED, F.LINKED, F.NONE]


def test_a_bonus_that_rounds_to_nothing_adds_no_legs() -> None:
    legs = operations.issuance(uuid4(), uuid4(), 9, "small", bonus_bps=500)  # 0.45 -> 0
    assert len(legs) == 2


def test_leg_ids_come_from_the_operation_id() -> None:
    op = uuid4()
    again = operations.issuance(op, uuid4(), 100, "x", bonus_bps=100)
    first = operations.issuance(op, uuid4(), 100, "x", bonus_bps=100)
    assert [t.id for t in first] == [t.id for t in again]
    assert len({t.id for t in first}) == 4
    assert operations.issuance(uuid4(), uuid4(), 100, "x")[0].id != first[0].id


@pytest.mark.parametrize(
    ("amount", "fee_bps", "fee", "net"),
    [
        (10_000, 150, 150, 9_850),
        (1_234, 150, 19, 1_215),  # 18.51 rounds up
        (1_230, 150, 18, 1_212),  # 18.45 rounds down
        (100, 50, 1, 99),  # half a centime rounds up
        (500, 0, 0, 500),
        (500, 10_000, 500, 0),
    ],
)
def test_reconversion_fee_rounding(amount: int, fee_bps: int, fee: int, net: int) -> None:
    merchant = uuid4()
    plan = operations.reconversion(uuid4(), merchant, amount, fee_bps)
    assert (plan.amount, plan.fee, plan.net) == (amount, fee, net)
    legs = [(t.debit_account_id, t.credit_account_id, t.amount) for t in plan.transfers]
    expected = [(merchant, chart.ISSUANCE.id, amount)]
    if net:
        expected.append((chart.RESERVE.id, chart.PAYOUTS_DUE.id, net))
    if fee:
        expected.append((chart.RESERVE.id, chart.REVENUE.id, fee))
    assert legs == expected
    assert [t.flags & F.LINKED for t in plan.transfers][-1] == F.NONE
    assert all(t.flags & F.LINKED for t in plan.transfers[:-1])


def test_payout_leaves_the_fund() -> None:
    [leg] = operations.payout(uuid4(), 700, "SEPA 2025-06")
    assert (leg.debit_account_id, leg.credit_account_id, leg.amount, leg.code) == (
        chart.PAYOUTS_DUE.id,
        chart.BANK.id,
        700,
        TransferCode.PAYOUT,
    )


@pytest.mark.parametrize("amount", [0, -1, 12.5, True, 2**63])
def test_operations_refuse_bad_amounts(amount: int) -> None:
    with pytest.raises(AmountError):
        operations.issuance(uuid4(), uuid4(), amount, "x")
    with pytest.raises(AmountError):
        operations.reconversion(uuid4(), uuid4(), amount, 100)
    with pytest.raises(AmountError):
        operations.payout(uuid4(), amount, "x")


@pytest.mark.parametrize(
    ("results", "outcome"),
    [
        ([R.OK, R.OK], R.OK),
        ([R.EXISTS, R.EXISTS], R.EXISTS),
        ([R.LINKED_TRANSFER_FAILED, R.INSUFFICIENT_FUNDS], R.INSUFFICIENT_FUNDS),
        ([R.EXISTS, R.LINKED_TRANSFER_FAILED], R.EXISTS_WITH_DIFFERENT_FIELDS),
        (
            [R.EXISTS_WITH_DIFFERENT_FIELDS, R.LINKED_TRANSFER_FAILED],
            R.EXISTS_WITH_DIFFERENT_FIELDS,
        ),
        ([R.ID_ALREADY_FAILED, R.LINKED_TRANSFER_FAILED], R.ID_ALREADY_FAILED),
    ],
)
def test_outcome_of_an_operation(results: list[Result], outcome: Result) -> None:
    assert operations.outcome_of(results) is outcome


# -- through the hot path ------------------------------------------------------------------------
def _sound(engine: Engine, key: Ed25519PrivateKey) -> None:
    assert_books_sound(engine, [key.public_key()])  # includes reserve = money in circulation


def _balances(engine: Engine, *ids: UUID) -> list[int]:
    return [balance_of(engine, i) for i in ids]


def test_issuance_with_bonus_then_reconversion_then_payout(
    ledger: Ledger, engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    anne = member(ledger, "Anne")
    shop = member(ledger, "Boulangerie")

    issued = ledger.issue(uuid4(), anne.id, 10_000, "counter 7", bonus_bps=500)
    assert issued.result is R.OK and issued.applied and issued.legs == [R.OK] * 4
    assert _balances(engine, anne.id, chart.ISSUANCE.id, chart.RESERVE.id) == [
        10_500,
        -10_500,
        10_500,
    ]
    assert _balances(engine, chart.BANK.id, chart.GRANTS.id) == [-10_000, -500]
    _sound(engine, signing_key)

    assert ledger.submit([transfer(anne.id, shop.id, 4_321)]) == [R.OK]
    outcome, plan = ledger.reconvert(uuid4(), shop.id, 4_321, fee_bps=150)
    assert outcome.result is R.OK
    assert (plan.fee, plan.net) == (65, 4_256)  # 64.815 rounds up
    assert _balances(engine, shop.id, chart.PAYOUTS_DUE.id, chart.REVENUE.id) == [0, 4_256, 65]
    assert _balances(engine, chart.RESERVE.id, chart.ISSUANCE.id) == [6_179, -6_179]
    _sound(engine, signing_key)

    paid = ledger.pay_out(uuid4(), 4_256, "SEPA batch 1")
    assert paid.result is R.OK
    assert _balances(engine, chart.PAYOUTS_DUE.id, chart.BANK.id) == [0, -5_744]
    _sound(engine, signing_key)


def test_operations_are_idempotent_by_operation_id(
    ledger: Ledger, engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    anne = member(ledger, "Anne")
    op = uuid4()
    assert ledger.issue(op, anne.id, 1_000, "counter", bonus_bps=500).result is R.OK
    retry = ledger.issue(op, anne.id, 1_000, "counter", bonus_bps=500)
    assert retry.result is R.EXISTS and retry.applied
    changed = ledger.issue(op, anne.id, 2_000, "counter", bonus_bps=500)
    assert changed.result is R.EXISTS_WITH_DIFFERENT_FIELDS and not changed.applied
    assert balance_of(engine, anne.id) == 1_050

    recon = uuid4()
    first, _ = ledger.reconvert(recon, anne.id, 300, fee_bps=200)
    again, _ = ledger.reconvert(recon, anne.id, 300, fee_bps=200)
    other_fee, _ = ledger.reconvert(recon, anne.id, 300, fee_bps=300)
    assert (first.result, again.result, other_fee.result) == (
        R.OK,
        R.EXISTS,
        R.EXISTS_WITH_DIFFERENT_FIELDS,
    )
    payout = uuid4()
    assert ledger.pay_out(payout, 294, "p").result is R.OK
    assert ledger.pay_out(payout, 294, "p").result is R.EXISTS
    assert ledger.pay_out(payout, 295, "p").result is R.EXISTS_WITH_DIFFERENT_FIELDS
    assert balance_of(engine, chart.PAYOUTS_DUE.id) == 0
    _sound(engine, signing_key)


def test_a_reconversion_beyond_the_balance_moves_nothing_and_stays_failed(
    ledger: Ledger, engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    shop = member(ledger, "Shop", funded=1_000)
    op = uuid4()
    outcome, _ = ledger.reconvert(op, shop.id, 1_001, fee_bps=100)
    assert outcome.result is R.INSUFFICIENT_FUNDS and not outcome.applied
    assert outcome.legs[0] is R.INSUFFICIENT_FUNDS
    assert set(outcome.legs[1:]) == {R.LINKED_TRANSFER_FAILED}
    assert _balances(engine, shop.id, chart.RESERVE.id, chart.PAYOUTS_DUE.id) == [1_000, 1_000, 0]
    ledger.issue(uuid4(), shop.id, 1, "top up")
    retried, _ = ledger.reconvert(op, shop.id, 1_001, fee_bps=100)
    assert retried.result is R.ID_ALREADY_FAILED
    _sound(engine, signing_key)


def test_a_payout_beyond_what_is_due_is_refused(
    ledger: Ledger, engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    """payouts_due may not go below zero: the fund pays out only what it owes."""
    assert ledger.pay_out(uuid4(), 1, "nothing owed").result is R.INSUFFICIENT_FUNDS
    _sound(engine, signing_key)


def test_issuance_to_a_missing_or_closed_account_moves_nothing(
    ledger: Ledger, engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    assert ledger.issue(uuid4(), uuid4(), 100, "x").result is R.ACCOUNT_NOT_FOUND
    gone = member(ledger, "Gone")
    ledger.close_account(gone.id)
    assert ledger.issue(uuid4(), gone.id, 100, "x", bonus_bps=500).result is R.ACCOUNT_CLOSED
    assert _balances(engine, chart.RESERVE.id, chart.BANK.id, chart.GRANTS.id) == [0, 0, 0]
    _sound(engine, signing_key)
