"""The pure state machine, scenario by scenario: every result code comes out of a real batch,
and the rules of chains, holds, expiry, idempotency and failed ids hold."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import replace
from uuid import uuid4

import pytest

from rollon.ledger.accounts import Balances, LedgerCode
from rollon.ledger.journal import GENESIS, ChainHead, expiry_id
from rollon.ledger.money import MAX_AMOUNT
from rollon.ledger.state_machine import (
    MAX_BATCH_TRANSFERS,
    MAX_MEMO_BYTES,
    MAX_TIMEOUT_S,
    Snapshot,
    execute,
)
from rollon.ledger.transfers import (
    STATE_DEPENDENT_FAILURES,
    Result,
    Transfer,
    TransferCode,
    TransferFlag,
)
from tests.ledger.builders import NS_PER_S, START_NS, balances, transfer
from tests.ledger.memory_store import MemoryStore

R = Result
F = TransferFlag
NOW = START_NS


class World:
    """Accounts for the scenarios: `rich` holds 1000, `poor` 5, `empty` nothing, `unlimited`
    may go below zero, `closed` is closed, `eur` lives on the other ledger."""

    def __init__(self) -> None:
        self.rich = balances(1000)
        self.poor = balances(5)
        self.empty = balances()
        self.unlimited = balances(no_overdraft=False)
        self.closed = balances(closed=True)
        self.eur = balances(ledger=LedgerCode.EUR)
        self.store = MemoryStore(
            [self.rich, self.poor, self.empty, self.unlimited, self.closed, self.eur]
        )
        self.now_ns = NOW

    def run(self, *requests: list[Transfer], advance_s: int = 0) -> list[list[Result]]:
        """One batch holding these requests; returns one result list per request."""
        self.now_ns += advance_s * NS_PER_S
        return self.store.execute(list(requests), self.now_ns).results

    def one(self, t: Transfer, advance_s: int = 0) -> Result:
        [[result]] = self.run([t], advance_s=advance_s)
        return result

    def pay(self, amount: int = 10, **fields: object) -> Transfer:
        return transfer(self.rich.id, self.empty.id, amount, **fields)  # type: ignore[arg-type]

    def balance(self, account: Balances) -> Balances:
        return self.store.accounts[account.id]


Scenario = Callable[[World], Result]


def _exists(w: World) -> Result:
    t = w.pay()
    w.one(t)
    return w.one(t)


def _exists_with_different_fields(w: World) -> Result:
    t = w.pay()
    w.one(t)
    return w.one(replace(t, amount=11))


def _account_closed(w: World) -> Result:
    return w.one(transfer(w.rich.id, w.closed.id, 10))


def _linked_transfer_failed(w: World) -> Result:
    first = w.pay(flags=F.LINKED)
    [[result, _]] = w.run([first, transfer(w.poor.id, w.empty.id, 50)])
    return result


def _linked_chain_open(w: World) -> Result:
    [[result]] = w.run([w.pay(flags=F.LINKED)])
    return result


def _pending(w: World, timeout_s: int = 0) -> Transfer:
    pending = w.pay(100, flags=F.PENDING, timeout_s=timeout_s)
    assert w.one(pending) is R.OK
    return pending


def _resolve(w: World, pending: Transfer, flags: F, amount: int | None = None) -> Transfer:
    return w.pay(pending.amount if amount is None else amount, flags=flags, pending_id=pending.id)


def _pending_not_found(w: World) -> Result:
    return w.one(w.pay(flags=F.POST_PENDING, pending_id=uuid4()))


def _pending_expired(w: World) -> Result:
    pending = _pending(w, timeout_s=5)
    return w.one(_resolve(w, pending, F.POST_PENDING), advance_s=6)


def _pending_already_posted(w: World) -> Result:
    pending = _pending(w)
    assert w.one(_resolve(w, pending, F.POST_PENDING)) is R.OK
    return w.one(_resolve(w, pending, F.VOID_PENDING))


def _pending_already_voided(w: World) -> Result:
    pending = _pending(w)
    assert w.one(_resolve(w, pending, F.VOID_PENDING)) is R.OK
    return w.one(_resolve(w, pending, F.POST_PENDING))


def _pending_mismatch(w: World) -> Result:
    pending = _pending(w)
    wrong_account = transfer(w.rich.id, w.poor.id, 100, flags=F.POST_PENDING, pending_id=pending.id)
    return w.one(wrong_account)


def _exceeds_pending_amount(w: World) -> Result:
    pending = _pending(w)
    return w.one(_resolve(w, pending, F.POST_PENDING, amount=101))


def _overflow(w: World) -> Result:
    assert w.one(transfer(w.unlimited.id, w.empty.id, MAX_AMOUNT)) is R.OK
    return w.one(transfer(w.unlimited.id, w.empty.id, 1))


def _id_already_failed(w: World) -> Result:
    t = transfer(w.poor.id, w.empty.id, 50)
    assert w.one(t) is R.INSUFFICIENT_FUNDS
    assert w.one(transfer(w.rich.id, w.poor.id, 100)) is R.OK  # the money arrives
    return w.one(t)  # the old refusal stands


SCENARIOS: dict[str, tuple[Scenario, Result]] = {
    "ok": (lambda w: w.one(w.pay()), R.OK),
    "exists": (_exists, R.EXISTS),
    "exists_with_different_fields": (_exists_with_different_fields, R.EXISTS_WITH_DIFFERENT_FIELDS),
    "insufficient_funds": (
        lambda w: w.one(transfer(w.poor.id, w.empty.id, 6)),
        R.INSUFFICIENT_FUNDS,
    ),
    "account_not_found": (lambda w: w.one(transfer(w.rich.id, uuid4(), 1)), R.ACCOUNT_NOT_FOUND),
    "account_closed": (_account_closed, R.ACCOUNT_CLOSED),
    "ledger_mismatch": (lambda w: w.one(transfer(w.rich.id, w.eur.id, 1)), R.LEDGER_MISMATCH),
    "amount_must_be_positive": (lambda w: w.one(w.pay(0)), R.AMOUNT_MUST_BE_POSITIVE),
    "amount_too_large": (lambda w: w.one(w.pay(MAX_AMOUNT + 1)), R.AMOUNT_TOO_LARGE),
    "same_account": (lambda w: w.one(transfer(w.rich.id, w.rich.id, 1)), R.SAME_ACCOUNT),
    "linked_transfer_failed": (_linked_transfer_failed, R.LINKED_TRANSFER_FAILED),
    "linked_chain_open": (_linked_chain_open, R.LINKED_CHAIN_OPEN),
    "flags_are_mutually_exclusive": (
        lambda w: w.one(w.pay(flags=F.PENDING | F.VOID_PENDING, pending_id=uuid4())),
        R.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
    ),
    "pending_id_required": (lambda w: w.one(w.pay(flags=F.POST_PENDING)), R.PENDING_ID_REQUIRED),
    "pending_id_not_allowed": (
        lambda w: w.one(w.pay(pending_id=uuid4())),
        R.PENDING_ID_NOT_ALLOWED,
    ),
    "timeout_not_allowed": (lambda w: w.one(w.pay(timeout_s=10)), R.TIMEOUT_NOT_ALLOWED),
    "invalid_timeout": (
        lambda w: w.one(w.pay(flags=F.PENDING, timeout_s=MAX_TIMEOUT_S + 1)),
        R.INVALID_TIMEOUT,
    ),
    "invalid_event_time": (lambda w: w.one(w.pay(event_time_ns=-1)), R.INVALID_EVENT_TIME),
    "memo_too_long": (lambda w: w.one(w.pay(memo="x" * (MAX_MEMO_BYTES + 1))), R.MEMO_TOO_LONG),
    "pending_not_found": (_pending_not_found, R.PENDING_NOT_FOUND),
    "pending_expired": (_pending_expired, R.PENDING_EXPIRED),
    "pending_already_posted": (_pending_already_posted, R.PENDING_ALREADY_POSTED),
    "pending_already_voided": (_pending_already_voided, R.PENDING_ALREADY_VOIDED),
    "pending_mismatch": (_pending_mismatch, R.PENDING_MISMATCH),
    "exceeds_pending_amount": (_exceeds_pending_amount, R.EXCEEDS_PENDING_AMOUNT),
    "overflow": (_overflow, R.OVERFLOW),
    "id_already_failed": (_id_already_failed, R.ID_ALREADY_FAILED),
}


def test_every_result_code_has_a_scenario() -> None:
    assert {expected for _, expected in SCENARIOS.values()} == set(Result)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_result_code_scenario(name: str) -> None:
    scenario, expected = SCENARIOS[name]
    world = World()
    assert scenario(world) is expected
    # Whatever was refused moved no money: the books still add up to what they started with.
    assert sum(a.posted for a in world.store.accounts.values() if a.ledger == "RLN") == 1005
    assert all(not a.no_overdraft or a.available >= 0 for a in world.store.accounts.values())


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 11},
        {"memo": "other"},
        {"code": TransferCode.PAYMENT},
        {"credit_account_id": "poor"},
        {"flags": F.PENDING},
        {"event_time_ns": NOW - 1},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_retry_with_any_field_changed_is_refused(change: dict[str, object]) -> None:
    w = World()
    t = w.pay()
    assert w.one(t) is R.OK
    if change.get("credit_account_id") == "poor":
        change = {"credit_account_id": w.poor.id}
    assert w.one(replace(t, **change)) is R.EXISTS_WITH_DIFFERENT_FIELDS  # type: ignore[arg-type]
    assert w.balance(w.empty).posted == 10, "the retry moved nothing"


def test_an_identical_retry_in_the_same_batch_and_later_moves_money_once() -> None:
    w = World()
    t = w.pay()
    assert w.run([t, t], [t]) == [[R.OK, R.EXISTS], [R.EXISTS]]
    assert w.one(t) is R.EXISTS
    assert w.balance(w.empty).posted == 10
    assert [e.transfer.id for e in w.store.entries] == [t.id]


def test_insufficient_funds_counts_money_held_by_pending_transfers() -> None:
    w = World()
    assert w.one(transfer(w.poor.id, w.empty.id, 4, flags=F.PENDING)) is R.OK
    assert w.one(transfer(w.poor.id, w.empty.id, 2)) is R.INSUFFICIENT_FUNDS
    assert w.one(transfer(w.poor.id, w.empty.id, 1)) is R.OK
    assert w.balance(w.poor).available == 0


def test_an_account_without_limit_may_go_below_zero() -> None:
    w = World()
    assert w.one(transfer(w.unlimited.id, w.empty.id, 10**12)) is R.OK
    assert w.balance(w.unlimited).posted == -(10**12)


@pytest.mark.parametrize("side", ["debit", "credit"])
def test_account_not_found_on_either_side(side: str) -> None:
    w = World()
    t = w.pay()
    t = (
        replace(t, debit_account_id=uuid4())
        if side == "debit"
        else replace(t, credit_account_id=uuid4())
    )
    assert w.one(t) is R.ACCOUNT_NOT_FOUND


def test_a_closed_account_can_neither_pay_nor_be_paid() -> None:
    w = World()
    assert w.one(transfer(w.closed.id, w.empty.id, 1)) is R.ACCOUNT_CLOSED
    assert w.one(transfer(w.rich.id, w.closed.id, 1)) is R.ACCOUNT_CLOSED


def test_a_closed_account_can_still_have_a_hold_voided() -> None:
    """Void releases money; it must not be blocked by a closure that happened meanwhile."""
    w = World()
    pending = _pending(w)
    w.store.accounts[w.empty.id].closed = True
    assert w.one(_resolve(w, pending, F.POST_PENDING)) is R.ACCOUNT_CLOSED
    assert w.one(_resolve(w, pending, F.VOID_PENDING)) is R.OK
    assert w.balance(w.rich).available == 1000


def test_transfer_ledger_must_match_both_accounts() -> None:
    w = World()
    eur_too = balances(ledger=LedgerCode.EUR)
    w.store.accounts[eur_too.id] = eur_too.copy()
    t = transfer(w.eur.id, eur_too.id, 1, ledger=LedgerCode.RLN)
    assert w.one(t) is R.LEDGER_MISMATCH


@pytest.mark.parametrize("amount", [0, -1, -MAX_AMOUNT])
def test_amounts_must_be_positive(amount: int) -> None:
    assert World().one(World().pay(amount)) is R.AMOUNT_MUST_BE_POSITIVE


@pytest.mark.parametrize(
    ("memo", "result"),
    [
        ("x" * MAX_MEMO_BYTES, R.OK),
        ("é" * (MAX_MEMO_BYTES // 2), R.OK),
        ("é" * (MAX_MEMO_BYTES // 2 + 1), R.MEMO_TOO_LONG),  # bytes count, not characters
    ],
)
def test_memo_length_is_counted_in_bytes(memo: str, result: Result) -> None:
    w = World()
    assert w.one(w.pay(memo=memo)) is result


@pytest.mark.parametrize(
    ("timeout_s", "result"),
    [(0, R.OK), (1, R.OK), (MAX_TIMEOUT_S, R.OK), (-1, R.INVALID_TIMEOUT)],
)
def test_pending_timeouts(timeout_s: int, result: Result) -> None:
    w = World()
    assert w.one(w.pay(flags=F.PENDING, timeout_s=timeout_s)) is result


@pytest.mark.parametrize(
    ("event_time_ns", "result"),
    [(0, R.OK), (NOW - 10**18, R.OK), (MAX_AMOUNT, R.OK), (MAX_AMOUNT + 1, R.INVALID_EVENT_TIME)],
)
def test_event_time_bounds(event_time_ns: int, result: Result) -> None:
    w = World()
    assert w.one(w.pay(event_time_ns=event_time_ns)) is result


@pytest.mark.parametrize(
    "flags",
    [F.PENDING | F.POST_PENDING, F.POST_PENDING | F.VOID_PENDING, F.PENDING | F.VOID_PENDING],
)
def test_two_phase_flags_are_mutually_exclusive(flags: TransferFlag) -> None:
    w = World()
    assert w.one(w.pay(flags=flags, pending_id=uuid4())) is R.FLAGS_ARE_MUTUALLY_EXCLUSIVE


def test_void_needs_a_pending_id_and_pending_takes_none() -> None:
    w = World()
    assert w.one(w.pay(flags=F.VOID_PENDING)) is R.PENDING_ID_REQUIRED
    assert w.one(w.pay(flags=F.PENDING, pending_id=uuid4())) is R.PENDING_ID_NOT_ALLOWED


def test_timeout_is_only_for_pending_transfers() -> None:
    w = World()
    pending = _pending(w)
    post = replace(_resolve(w, pending, F.POST_PENDING), timeout_s=5)
    assert w.one(post) is R.TIMEOUT_NOT_ALLOWED


def test_overflow_on_the_debit_side_of_an_account_without_limit() -> None:
    """The issuance account has no limit, so its debits can grow past 2^63-1 too: refused."""
    w = World()
    first = balances()
    w.store.accounts[first.id] = first.copy()
    assert w.one(transfer(w.unlimited.id, first.id, MAX_AMOUNT)) is R.OK
    assert w.one(transfer(w.unlimited.id, w.empty.id, 1)) is R.OVERFLOW
    assert w.balance(w.unlimited).debits_posted == MAX_AMOUNT


def test_overflow_counts_pending_credits() -> None:
    w = World()
    assert w.one(transfer(w.unlimited.id, w.empty.id, MAX_AMOUNT, flags=F.PENDING)) is R.OK
    assert w.one(transfer(w.rich.id, w.empty.id, 1)) is R.OVERFLOW


# -- two-phase transfers ---------------------------------------------------------------------
def test_pending_holds_funds_then_post_of_part_releases_the_rest() -> None:
    w = World()
    pending = _pending(w)
    rich = w.balance(w.rich)
    assert (rich.posted, rich.available, rich.debits_pending) == (1000, 900, 100)
    assert w.balance(w.empty).credits_pending == 100
    assert w.one(_resolve(w, pending, F.POST_PENDING, amount=60)) is R.OK
    rich, empty = w.balance(w.rich), w.balance(w.empty)
    assert (rich.posted, rich.available, rich.debits_pending) == (940, 940, 0)
    assert (empty.posted, empty.credits_pending) == (60, 0)
    assert w.store.holds == {}


def test_post_in_full_and_void() -> None:
    w = World()
    first, second = _pending(w), _pending(w)
    assert w.one(_resolve(w, first, F.POST_PENDING)) is R.OK
    assert w.one(_resolve(w, second, F.VOID_PENDING)) is R.OK
    assert (w.balance(w.rich).posted, w.balance(w.rich).available) == (900, 900)
    assert w.balance(w.empty).posted == 100


def test_void_must_name_the_whole_amount() -> None:
    w = World()
    pending = _pending(w)
    assert w.one(_resolve(w, pending, F.VOID_PENDING, amount=99)) is R.PENDING_MISMATCH
    assert w.one(_resolve(w, pending, F.VOID_PENDING)) is R.OK


def test_post_must_name_the_pending_transfer_accounts_and_ledger() -> None:
    w = World()
    pending = _pending(w)
    swapped = transfer(w.empty.id, w.rich.id, 100, flags=F.POST_PENDING, pending_id=pending.id)
    assert w.one(swapped) is R.PENDING_MISMATCH


def test_pending_id_of_a_plain_transfer_is_not_found() -> None:
    w = World()
    plain = w.pay()
    assert w.one(plain) is R.OK
    assert w.one(_resolve(w, plain, F.POST_PENDING)) is R.PENDING_NOT_FOUND


def test_post_and_void_in_the_same_batch_as_the_pending_transfer() -> None:
    w = World()
    pending = w.pay(100, flags=F.PENDING)
    post = _resolve(w, pending, F.POST_PENDING, amount=30)
    void = _resolve(w, pending, F.VOID_PENDING)
    assert w.run([pending, post], [void]) == [[R.OK, R.OK], [R.PENDING_ALREADY_POSTED]]
    assert w.store.holds == {}
    assert w.balance(w.rich).posted == 970


def test_expiry_releases_the_hold_before_the_batch_is_decided() -> None:
    w = World()
    pending = transfer(w.poor.id, w.empty.id, 5, flags=F.PENDING, timeout_s=10)
    assert w.one(pending) is R.OK
    assert w.one(transfer(w.poor.id, w.empty.id, 5), advance_s=9) is R.INSUFFICIENT_FUNDS
    # At 10 s the hold has expired: the same batch can spend the money it held.
    assert w.one(transfer(w.poor.id, w.empty.id, 5), advance_s=1) is R.OK
    expiry = w.store.entries[-2]
    assert expiry.transfer.id == expiry_id(pending.id)
    assert expiry.transfer.code is TransferCode.EXPIRY
    assert expiry.transfer.flags == F.VOID_PENDING
    assert expiry.transfer.pending_id == pending.id
    assert w.store.holds == {}
    assert w.one(_resolve(w, pending, F.VOID_PENDING)) is R.PENDING_EXPIRED


def test_expiry_is_due_at_ledger_time_plus_timeout() -> None:
    w = World()
    pending = _pending(w, timeout_s=3)
    recorded = w.store.entries[-1]
    assert recorded.expires_at_ns == recorded.timestamp_ns + 3 * NS_PER_S
    hold = w.store.holds[pending.id]
    assert hold.expires_at_ns == recorded.expires_at_ns


def test_a_pending_transfer_without_timeout_never_expires() -> None:
    w = World()
    pending = _pending(w, timeout_s=0)
    assert w.one(w.pay(1), advance_s=MAX_TIMEOUT_S * 2) is R.OK
    assert pending.id in w.store.holds
    assert w.one(_resolve(w, pending, F.POST_PENDING)) is R.OK


def test_expired_holds_go_in_order_of_expiry() -> None:
    w = World()
    late = w.pay(1, flags=F.PENDING, timeout_s=20)
    early = w.pay(1, flags=F.PENDING, timeout_s=10)
    w.run([late, early])
    w.run([w.pay(1)], advance_s=30)
    expired = [e.transfer.pending_id for e in w.store.entries if e.transfer.code == "expiry"]
    assert expired == [early.id, late.id]


# -- linked chains ---------------------------------------------------------------------------
def test_a_failed_chain_rolls_back_every_transfer_before_it() -> None:
    w = World()
    chain = [
        transfer(w.rich.id, w.empty.id, 100, flags=F.LINKED),
        transfer(w.empty.id, w.poor.id, 100, flags=F.LINKED),  # uses money from the first
        transfer(w.poor.id, w.empty.id, 500),  # the poor cannot pay this
    ]
    assert w.run(chain) == [
        [R.LINKED_TRANSFER_FAILED, R.LINKED_TRANSFER_FAILED, R.INSUFFICIENT_FUNDS]
    ]
    assert w.store.entries == []
    assert (w.balance(w.rich).posted, w.balance(w.empty).posted, w.balance(w.poor).posted) == (
        1000,
        0,
        5,
    )


def test_a_chain_that_succeeds_moves_all_its_money() -> None:
    w = World()
    chain = [
        transfer(w.rich.id, w.empty.id, 100, flags=F.LINKED),
        transfer(w.empty.id, w.poor.id, 100),
    ]
    assert w.run(chain) == [[R.OK, R.OK]]
    assert w.balance(w.poor).posted == 105


def test_a_chain_of_retries_is_exists() -> None:
    w = World()
    chain = [w.pay(1, flags=F.LINKED), w.pay(2)]
    assert w.run(chain) == [[R.OK, R.OK]]
    assert w.run(chain) == [[R.EXISTS, R.EXISTS]]


def test_only_the_failing_transfer_of_a_chain_is_remembered_as_failed() -> None:
    w = World()
    first = w.pay(1, flags=F.LINKED)
    failing = transfer(w.poor.id, w.empty.id, 500)
    w.run([first, failing])
    assert set(w.store.failed) == {failing.id}
    assert w.one(replace(first, flags=F.NONE)) is R.OK  # the innocent id is still free


def test_an_id_refused_for_a_reason_that_is_not_state_is_free_again() -> None:
    w = World()
    t = transfer(w.rich.id, w.rich.id, 1)
    assert w.one(t) is R.SAME_ACCOUNT
    assert w.one(replace(t, credit_account_id=w.empty.id)) is R.OK


@pytest.mark.parametrize("result", sorted(STATE_DEPENDENT_FAILURES))
def test_every_state_dependent_failure_makes_the_id_stay_failed(result: Result) -> None:
    w = World()
    scenario, _ = SCENARIOS[result.value]
    assert scenario(w) is result
    [failed_id] = [i for i, r in w.store.failed.items() if r is result]
    retry = w.store.snapshot([], w.now_ns)
    assert failed_id not in retry.failed  # loaded only when a batch names the id
    again = w.run([replace(w.pay(), id=failed_id)])
    assert again == [[R.ID_ALREADY_FAILED]]


def test_id_already_failed_within_one_batch() -> None:
    w = World()
    t = transfer(w.poor.id, w.empty.id, 50)
    top_up = transfer(w.rich.id, w.poor.id, 100)
    assert w.run([t], [top_up], [t]) == [[R.INSUFFICIENT_FUNDS], [R.OK], [R.ID_ALREADY_FAILED]]


def test_an_open_chain_never_reaches_into_the_next_request() -> None:
    w = World()
    dangling = w.pay(1, flags=F.LINKED)
    other = w.pay(2)
    assert w.run([dangling], [other]) == [[R.LINKED_CHAIN_OPEN], [R.OK]]
    assert [e.transfer.id for e in w.store.entries] == [other.id]


def test_a_failing_chain_in_one_request_leaves_the_next_request_alone() -> None:
    w = World()
    failing = [w.pay(1, flags=F.LINKED), transfer(w.poor.id, w.empty.id, 500)]
    fine = [w.pay(2, flags=F.LINKED), w.pay(3)]
    assert w.run(failing, fine) == [
        [R.LINKED_TRANSFER_FAILED, R.INSUFFICIENT_FUNDS],
        [R.OK, R.OK],
    ]


def test_a_rolled_back_chain_leaves_correct_balances_for_the_rest_of_the_batch() -> None:
    """After a chain touched accounts and rolled back, later transfers on the same accounts
    in the same batch are decided and written against the real pre-batch balances."""
    w = World()
    failing = [
        transfer(w.rich.id, w.empty.id, 10, flags=F.LINKED),
        transfer(w.rich.id, w.poor.id, 5000),
    ]
    later = [transfer(w.rich.id, w.empty.id, 7)]
    outcome = w.store.execute([failing, later], w.now_ns)  # write() checks accounts_before
    assert outcome.results == [[R.LINKED_TRANSFER_FAILED, R.INSUFFICIENT_FUNDS], [R.OK]]
    assert outcome.accounts_before[w.rich.id].posted == 1000
    assert (w.balance(w.rich).posted, w.balance(w.empty).posted) == (993, 7)


def test_a_hold_opened_earlier_in_the_batch_survives_a_rolled_back_void() -> None:
    """A chain voids a hold opened by an earlier chain of the batch, then fails: the hold is
    open again and must still be written as open."""
    w = World()
    pending = w.pay(10, flags=F.PENDING)
    void = replace(_resolve(w, pending, F.VOID_PENDING), flags=F.VOID_PENDING | F.LINKED)
    failing = transfer(w.rich.id, w.rich.id, 1)
    outcome = w.store.execute([[pending, void, failing]], w.now_ns)
    assert outcome.results == [[R.OK, R.LINKED_TRANSFER_FAILED, R.SAME_ACCOUNT]]
    assert [h.transfer.id for h in outcome.holds_opened] == [pending.id]
    assert pending.id in w.store.holds
    assert w.one(_resolve(w, pending, F.POST_PENDING)) is R.OK


def test_a_rolled_back_post_reopens_a_hold_from_an_earlier_batch() -> None:
    w = World()
    pending = _pending(w)
    post = replace(_resolve(w, pending, F.POST_PENDING), flags=F.POST_PENDING | F.LINKED)
    outcome = w.store.execute([[post, transfer(w.poor.id, w.empty.id, 500)]], w.now_ns)
    assert outcome.holds_closed == []
    assert pending.id in w.store.holds
    assert w.balance(w.rich).debits_pending == 100


# -- the journal side ------------------------------------------------------------------------
def test_entries_chain_from_the_head_with_strictly_increasing_timestamps() -> None:
    w = World()
    w.run([w.pay(1), w.pay(2)], [w.pay(3)])
    w.run([w.pay(4)])
    entries = w.store.entries
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS.hash
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
        assert after.timestamp_ns > before.timestamp_ns
    assert w.store.head == ChainHead(4, entries[-1].hash, entries[-1].timestamp_ns)


def test_timestamps_stay_increasing_when_the_clock_goes_back() -> None:
    w = World()
    w.run([w.pay(1)])
    last = w.store.entries[-1].timestamp_ns
    w.now_ns -= 3600 * NS_PER_S
    w.run([w.pay(2)])
    assert w.store.entries[-1].timestamp_ns == last + 1


def test_entries_record_both_balances_after_the_transfer() -> None:
    w = World()
    w.run([transfer(w.rich.id, w.poor.id, 30)])
    entry = w.store.entries[-1]
    assert (entry.debit_balance_after, entry.credit_balance_after) == (970, 35)


def test_a_batch_with_nothing_accepted_leaves_the_head() -> None:
    w = World()
    refused = transfer(w.poor.id, w.empty.id, 500)
    outcome = w.store.execute([[refused]], w.now_ns)
    assert outcome.entries == [] and outcome.head == GENESIS and outcome.accounts == {}
    assert outcome.failures == {refused.id: R.INSUFFICIENT_FUNDS}


def test_batches_are_bounded() -> None:
    w = World()
    request = [w.pay(1) for _ in range(MAX_BATCH_TRANSFERS + 1)]
    snapshot = w.store.snapshot([request], NOW)
    with pytest.raises(AssertionError, match="bounded"):
        execute(snapshot, [request])


def test_results_come_in_request_order_one_per_transfer() -> None:
    w = World()
    requests = [[w.pay(1), w.pay(0)], [w.pay(2)], [w.pay(3, flags=F.LINKED), w.pay(-1)]]
    results = w.run(*requests)
    assert results == [
        [R.OK, R.AMOUNT_MUST_BE_POSITIVE],
        [R.OK],
        [R.LINKED_TRANSFER_FAILED, R.AMOUNT_MUST_BE_POSITIVE],
    ]


def test_snapshot_without_the_accounts_means_not_found() -> None:
    snapshot = Snapshot(now_ns=NOW, head=GENESIS, accounts={})
    t = transfer(uuid4(), uuid4(), 1)
    assert execute(snapshot, [[t]]).results == [[R.ACCOUNT_NOT_FOUND]]


def test_a_client_cannot_take_the_id_the_ledger_will_give_an_expiry() -> None:
    """Expiry voids have ids derived from the pending id. A client that took such an id for
    a transfer of its own, before or in the batch of the expiry, would make the ledger write
    two entries with one id (the database refuses: the ledger halts, at every restart)."""
    w = World()
    pending = _pending(w, timeout_s=1)
    squatter = transfer(w.rich.id, w.poor.id, 1, transfer_id=expiry_id(pending.id))
    assert w.one(squatter) is R.EXISTS_WITH_DIFFERENT_FIELDS
    assert w.run([squatter], advance_s=2) == [[R.EXISTS_WITH_DIFFERENT_FIELDS]]
    expiry = w.store.entries[-1]
    assert expiry.transfer.id == expiry_id(pending.id) and expiry.transfer.code == "expiry"
    assert w.one(squatter) is R.EXISTS_WITH_DIFFERENT_FIELDS
    assert w.balance(w.poor).posted == 5


def test_client_ids_never_collide_with_expiry_ids() -> None:
    w = World()
    for _ in range(100):
        assert w.one(w.pay(1)) is R.OK  # random client ids are all fine
    pending = _pending(w, timeout_s=1)
    assert expiry_id(pending.id).variant == uuid.RESERVED_FUTURE != uuid4().variant
