"""Result codes, idempotency, failed ids, linked chains and two-phase transfers through the
real hot path, on SQLite and PostgreSQL: what the ledger answers is what it wrote."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from rollon.ledger import chart
from rollon.ledger.accounts import Account, AccountKind, LedgerCode
from rollon.ledger.journal import expiry_id
from rollon.ledger.money import MAX_AMOUNT
from rollon.ledger.queries import get_account, get_transfer
from rollon.ledger.schema import failed_transfers, holds, transfers
from rollon.ledger.service import Ledger
from rollon.ledger.state_machine import MAX_MEMO_BYTES
from rollon.ledger.storage import MAX_EXPIRIES_PER_BATCH
from rollon.ledger.transfers import Result, Transfer, TransferCode, TransferFlag
from tests.ledger.budgets import PURE_PROPERTIES
from tests.ledger.builders import ManualClock, assert_books_sound, member, transfer

R = Result
F = TransferFlag


@dataclass
class World:
    ledger: Ledger
    engine: Engine
    clock: ManualClock
    key: Ed25519PrivateKey
    rich: Account
    poor: Account
    empty: Account
    closed: Account
    eur: Account

    def one(self, t: Transfer) -> Result:
        [result] = self.ledger.submit([t])
        return result

    def pay(self, amount: int = 10, **fields: object) -> Transfer:
        return transfer(self.rich.id, self.empty.id, amount, **fields)  # type: ignore[arg-type]

    def account(self, account: Account) -> Account:
        with self.engine.connect() as connection:
            found = get_account(connection, account.id)
        assert found is not None
        return found

    def in_journal(self, transfer_id: UUID) -> int:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count()).where(transfers.c.id == transfer_id)
            ).scalar_one()

    def sound(self) -> None:
        assert_books_sound(self.engine, [self.key.public_key()])


@pytest.fixture
def w(ledger: Ledger, engine: Engine, clock: ManualClock, signing_key: Ed25519PrivateKey) -> World:
    closed = member(ledger, "Closed")
    ledger.close_account(closed.id)
    eur = ledger.open_account(kind=AccountKind.MERCHANT, name="Euro", ledger=LedgerCode.EUR)
    return World(
        ledger=ledger,
        engine=engine,
        clock=clock,
        key=signing_key,
        rich=member(ledger, "Rich", funded=10_000),
        poor=member(ledger, "Poor", funded=500),
        empty=member(ledger, "Empty"),
        closed=closed,
        eur=eur,
    )


LONE_TRANSFERS: list[tuple[Callable[[World], Transfer], Result]] = [
    (lambda w: w.pay(), R.OK),
    (lambda w: transfer(w.poor.id, w.empty.id, 501), R.INSUFFICIENT_FUNDS),
    (lambda w: transfer(w.rich.id, uuid4(), 1), R.ACCOUNT_NOT_FOUND),
    (lambda w: transfer(uuid4(), w.rich.id, 1), R.ACCOUNT_NOT_FOUND),
    (lambda w: transfer(w.rich.id, w.closed.id, 1), R.ACCOUNT_CLOSED),
    (lambda w: transfer(w.rich.id, w.eur.id, 1), R.LEDGER_MISMATCH),
    (lambda w: w.pay(0), R.AMOUNT_MUST_BE_POSITIVE),
    (lambda w: w.pay(-10), R.AMOUNT_MUST_BE_POSITIVE),
    (lambda w: w.pay(MAX_AMOUNT + 1), R.AMOUNT_TOO_LARGE),
    (lambda w: transfer(w.rich.id, w.rich.id, 1), R.SAME_ACCOUNT),
    (lambda w: w.pay(flags=F.PENDING | F.POST_PENDING), R.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
    (lambda w: w.pay(flags=F.POST_PENDING), R.PENDING_ID_REQUIRED),
    (lambda w: w.pay(pending_id=uuid4()), R.PENDING_ID_NOT_ALLOWED),
    (lambda w: w.pay(timeout_s=1), R.TIMEOUT_NOT_ALLOWED),
    (lambda w: w.pay(flags=F.PENDING, timeout_s=-1), R.INVALID_TIMEOUT),
    (lambda w: w.pay(event_time_ns=-1), R.INVALID_EVENT_TIME),
    (lambda w: w.pay(memo="é" * MAX_MEMO_BYTES), R.MEMO_TOO_LONG),
    (lambda w: w.pay(flags=F.VOID_PENDING, pending_id=uuid4()), R.PENDING_NOT_FOUND),
    (lambda w: w.pay(flags=F.LINKED), R.LINKED_CHAIN_OPEN),
]


def test_result_codes_of_lone_transfers(w: World) -> None:
    """Each refusal the state machine knows, through the real hot path, one batch each."""
    for make, expected in LONE_TRANSFERS:
        t = make(w)
        assert (w.one(t), t) == (expected, t)
        assert w.in_journal(t.id) == (1 if expected is R.OK else 0)
    w.sound()


def test_idempotent_retry_answers_exists_and_moves_money_once(w: World) -> None:
    t = w.pay(250, memo="bread")
    assert w.one(t) is R.OK
    assert w.one(t) is R.EXISTS
    assert w.ledger.submit([t, t]) == [R.EXISTS, R.EXISTS]
    assert w.account(w.empty).balance == 250
    assert w.in_journal(t.id) == 1
    w.sound()


def test_retry_with_changed_fields_is_refused(w: World) -> None:
    t = w.pay(250, memo="bread")
    assert w.one(t) is R.OK
    changes: list[dict[str, Any]] = [
        {"amount": 251},
        {"memo": "cake"},
        {"code": TransferCode.PAYMENT},
        {"flags": F.PENDING},
        {"credit_account_id": w.poor.id},
    ]
    for change in changes:
        assert (w.one(replace(t, **change)), change) == (R.EXISTS_WITH_DIFFERENT_FIELDS, change)
    assert (w.account(w.empty).balance, w.account(w.poor).balance) == (250, 500)
    w.sound()


def test_a_refusal_for_lack_of_funds_stays_a_refusal_when_funds_arrive(w: World) -> None:
    t = transfer(w.poor.id, w.empty.id, 800)
    assert w.one(t) is R.INSUFFICIENT_FUNDS
    assert w.one(transfer(w.rich.id, w.poor.id, 1_000)) is R.OK
    assert w.one(t) is R.ID_ALREADY_FAILED
    assert w.in_journal(t.id) == 0
    with w.engine.connect() as connection:
        remembered = connection.execute(
            sa.select(failed_transfers.c.result).where(failed_transfers.c.id == t.id)
        ).scalar_one()
    assert remembered == "insufficient_funds"
    assert w.account(w.poor).balance == 1_500
    w.sound()


def test_a_refusal_for_a_missing_account_stays_when_the_account_is_opened(w: World) -> None:
    later = uuid4()
    t = transfer(w.rich.id, later, 10)
    assert w.one(t) is R.ACCOUNT_NOT_FOUND
    w.ledger.open_account(kind=AccountKind.MEMBER, name="Late", account_id=later)
    assert w.one(t) is R.ID_ALREADY_FAILED


def test_a_refusal_for_a_bad_field_frees_the_id(w: World) -> None:
    t = w.pay(0)
    assert w.one(t) is R.AMOUNT_MUST_BE_POSITIVE
    assert w.one(replace(t, amount=5)) is R.OK


def test_overflow_of_the_issuance_account_is_a_refusal_not_a_halt(w: World) -> None:
    """The issuance account has no limit: two huge issuances would push its debits past a
    64-bit column. The second must be refused with `overflow`, and the ledger go on."""
    first = w.ledger.issue(uuid4(), w.empty.id, MAX_AMOUNT - 20_000, "huge")
    assert first.result is R.OK
    second = w.ledger.issue(uuid4(), w.poor.id, 50_000, "one too many")
    assert second.result is R.OVERFLOW
    assert w.one(transfer(w.rich.id, w.poor.id, 1)) is R.OK
    w.sound()


# -- linked chains -----------------------------------------------------------------------------
def test_a_linked_chain_commits_all_or_nothing(w: World) -> None:
    chain = [
        transfer(w.rich.id, w.empty.id, 100, flags=F.LINKED),
        transfer(w.empty.id, w.poor.id, 100, flags=F.LINKED),
        transfer(w.poor.id, w.empty.id, 10_000),
    ]
    assert w.ledger.submit(chain) == [
        R.LINKED_TRANSFER_FAILED,
        R.LINKED_TRANSFER_FAILED,
        R.INSUFFICIENT_FUNDS,
    ]
    assert all(w.in_journal(t.id) == 0 for t in chain)
    assert (w.account(w.rich).balance, w.account(w.empty).balance) == (10_000, 0)
    fixed = [*chain[:2], replace(chain[2], id=uuid4(), amount=600)]
    assert w.ledger.submit(fixed) == [R.OK, R.OK, R.OK]
    assert (w.account(w.rich).balance, w.account(w.poor).balance) == (9_900, 0)
    w.sound()


def test_a_chain_never_crosses_from_one_request_into_the_next(w: World) -> None:
    dangling = w.pay(1, flags=F.LINKED)
    next_one = w.pay(2)
    first = w.ledger.hot_path.submit_nowait([dangling])
    second = w.ledger.hot_path.submit_nowait([next_one])
    assert first.result(timeout=10) == [R.LINKED_CHAIN_OPEN]
    assert second.result(timeout=10) == [R.OK]
    assert (w.in_journal(dangling.id), w.in_journal(next_one.id)) == (0, 1)


def test_a_failed_chain_and_a_good_request_in_one_batch(w: World) -> None:
    failing = [w.pay(5, flags=F.LINKED), transfer(w.poor.id, w.empty.id, 10_000)]
    good = [w.pay(7)]
    futures = [w.ledger.hot_path.submit_nowait(r) for r in (failing, good, failing)]
    results = [f.result(timeout=10) for f in futures]
    assert results == [
        [R.LINKED_TRANSFER_FAILED, R.INSUFFICIENT_FUNDS],
        [R.OK],
        [R.LINKED_TRANSFER_FAILED, R.ID_ALREADY_FAILED],
    ]
    assert w.account(w.empty).balance == 7
    w.sound()


def test_a_rolled_back_void_keeps_a_hold_opened_in_the_same_request(w: World) -> None:
    pending = w.pay(40, flags=F.PENDING)
    void = w.pay(40, flags=F.VOID_PENDING | F.LINKED, pending_id=pending.id)
    failing = transfer(w.rich.id, w.rich.id, 1)
    assert w.ledger.submit([pending, void, failing]) == [
        R.OK,
        R.LINKED_TRANSFER_FAILED,
        R.SAME_ACCOUNT,
    ]
    w.sound()  # the hold is in the holds table as the journal says
    assert w.one(w.pay(40, flags=F.POST_PENDING, pending_id=pending.id)) is R.OK
    w.sound()


# -- two-phase transfers -----------------------------------------------------------------------
def test_pending_holds_funds_until_posted_in_part(w: World) -> None:
    pending = transfer(w.poor.id, w.empty.id, 400, flags=F.PENDING)
    assert w.one(pending) is R.OK
    poor = w.account(w.poor)
    assert (poor.balance, poor.available, poor.debits_pending) == (500, 100, 400)
    assert w.one(transfer(w.poor.id, w.rich.id, 101)) is R.INSUFFICIENT_FUNDS
    post = transfer(w.poor.id, w.empty.id, 250, flags=F.POST_PENDING, pending_id=pending.id)
    assert w.one(post) is R.OK
    poor, empty = w.account(w.poor), w.account(w.empty)
    assert (poor.balance, poor.available, poor.debits_pending) == (250, 250, 0)
    assert (empty.balance, empty.credits_pending) == (250, 0)
    assert w.one(replace(post, id=uuid4())) is R.PENDING_ALREADY_POSTED
    w.sound()


def test_pending_posted_in_full(w: World) -> None:
    pending = w.pay(300, flags=F.PENDING)
    assert w.one(pending) is R.OK
    assert w.one(w.pay(300, flags=F.POST_PENDING, pending_id=pending.id)) is R.OK
    assert w.account(w.empty).balance == 300
    w.sound()


def test_void_releases_the_hold(w: World) -> None:
    pending = w.pay(300, flags=F.PENDING)
    assert w.one(pending) is R.OK
    void = w.pay(300, flags=F.VOID_PENDING, pending_id=pending.id)
    assert w.one(void) is R.OK
    assert w.account(w.rich).available == 10_000
    assert w.one(replace(void, id=uuid4())) is R.PENDING_ALREADY_VOIDED
    assert w.one(w.pay(300, flags=F.POST_PENDING, pending_id=pending.id)) is (
        R.PENDING_ALREADY_VOIDED
    )
    w.sound()


def test_post_more_than_held_or_to_others_is_refused(w: World) -> None:
    pending = w.pay(300, flags=F.PENDING)
    assert w.one(pending) is R.OK
    assert w.one(w.pay(301, flags=F.POST_PENDING, pending_id=pending.id)) is (
        R.EXCEEDS_PENDING_AMOUNT
    )
    other = transfer(w.rich.id, w.poor.id, 300, flags=F.POST_PENDING, pending_id=pending.id)
    assert w.one(other) is R.PENDING_MISMATCH
    assert w.one(w.pay(299, flags=F.VOID_PENDING, pending_id=pending.id)) is R.PENDING_MISMATCH


def test_expiry_releases_the_hold_and_refuses_a_late_post(w: World) -> None:
    pending = transfer(w.poor.id, w.empty.id, 500, flags=F.PENDING, timeout_s=60)
    assert w.one(pending) is R.OK
    w.clock.advance_s(59)
    assert w.one(transfer(w.poor.id, w.rich.id, 1)) is R.INSUFFICIENT_FUNDS
    w.clock.advance_s(2)
    # The next batch, whatever it holds, expires the hold first: the money is free again.
    assert w.one(transfer(w.poor.id, w.rich.id, 500)) is R.OK
    with w.engine.connect() as connection:
        assert connection.execute(sa.select(holds)).all() == []
        void_entry = connection.execute(
            sa.select(transfers).where(transfers.c.pending_id == pending.id)
        ).one()
    assert void_entry.code == "expiry"
    late = transfer(w.poor.id, w.empty.id, 500, flags=F.POST_PENDING, pending_id=pending.id)
    assert w.one(late) is R.PENDING_EXPIRED
    assert w.account(w.empty).balance == 0
    w.sound()


def test_an_expired_hold_cannot_be_voided_either(w: World) -> None:
    pending = w.pay(100, flags=F.PENDING, timeout_s=1)
    assert w.one(pending) is R.OK
    w.clock.advance_s(5)
    void = w.pay(100, flags=F.VOID_PENDING, pending_id=pending.id)
    assert w.one(void) is R.PENDING_EXPIRED  # expired at the start of this very batch


def test_pending_transfer_recorded_with_its_expiry(w: World) -> None:
    pending = w.pay(100, flags=F.PENDING, timeout_s=30)
    assert w.one(pending) is R.OK
    with w.engine.connect() as connection:
        entry = get_transfer(connection, pending.id)
        hold_expiry = connection.execute(
            sa.select(holds.c.expires_at_ns).where(holds.c.transfer_id == pending.id)
        ).scalar_one()
    assert entry is not None and entry.expires_at_ns is not None
    assert entry.expires_at_ns == hold_expiry == entry.timestamp_ns + 30 * 10**9


def test_events_keep_their_own_time(w: World) -> None:
    imported = w.pay(5, event_time_ns=1_000_000_000)
    assert w.one(imported) is R.OK
    with w.engine.connect() as connection:
        entry = get_transfer(connection, imported.id)
    assert entry is not None
    assert entry.transfer.event_time_ns == 1_000_000_000
    assert entry.timestamp_ns >= w.clock.now_ns


def test_issuance_account_may_go_negative_and_reserve_follows(w: World) -> None:
    with w.engine.connect() as connection:
        issuance = get_account(connection, chart.ISSUANCE.id)
        reserve = get_account(connection, chart.RESERVE.id)
    assert issuance is not None and reserve is not None
    assert issuance.balance == -10_500
    assert reserve.balance == 10_500


def test_a_transfer_squatting_an_expiry_id_cannot_halt_the_ledger(w: World) -> None:
    """The id the ledger gives the expiry of a hold is derived from the hold's id; a client
    taking it first must be refused, or the expiry's insert would break the ledger."""
    pending = w.pay(100, flags=F.PENDING, timeout_s=1)
    assert w.one(pending) is R.OK
    squatter = transfer(w.rich.id, w.poor.id, 1, transfer_id=expiry_id(pending.id))
    assert w.one(squatter) is R.EXISTS_WITH_DIFFERENT_FIELDS
    w.clock.advance_s(2)
    assert w.one(w.pay(1)) is R.OK  # this batch expires the hold
    assert w.one(squatter) is R.EXISTS_WITH_DIFFERENT_FIELDS
    assert w.account(w.rich).available == 10_000 - 1
    w.sound()


def test_a_backlog_of_expiries_drains_over_bounded_batches(w: World) -> None:
    count = MAX_EXPIRIES_PER_BATCH + 40
    pendings = [w.pay(1, flags=F.PENDING, timeout_s=1) for _ in range(count)]
    assert w.ledger.submit(pendings) == [R.OK] * count
    assert w.account(w.rich).available == 10_000 - count
    w.clock.advance_s(5)
    late_post = w.pay(1, flags=F.POST_PENDING, pending_id=pendings[-1].id)
    assert w.one(late_post) is R.PENDING_EXPIRED  # named by the batch: expired there too
    with w.engine.connect() as connection:
        left = connection.execute(sa.select(sa.func.count()).select_from(holds)).scalar_one()
    assert 0 < left < count  # bounded: the rest waits for the next batch
    assert w.one(w.pay(1)) is R.OK
    assert w.account(w.rich).available == 10_000 - 1
    w.sound()


@PURE_PROPERTIES
@given(
    st.builds(
        Transfer,
        id=st.uuids(),
        debit_account_id=st.uuids(),
        credit_account_id=st.uuids(),
        amount=st.integers(0, MAX_AMOUNT),
        ledger=st.sampled_from(LedgerCode),
        code=st.sampled_from(TransferCode),
        flags=st.sampled_from([TransferFlag(bits) for bits in range(16)]),
        pending_id=st.none() | st.uuids(),
        timeout_s=st.integers(0, 10**6),
        memo=st.text(max_size=40),
        event_time_ns=st.none() | st.integers(0, 2**62),
    )
)
def test_a_transfer_pickles_back_to_itself(sent: Transfer) -> None:
    """Transfers cross to the ledger's writer process pickled, in a format of their own."""
    received = pickle.loads(pickle.dumps(sent))
    assert received == sent
    assert received.ledger is sent.ledger and received.code is sent.code
    assert type(received.flags) is TransferFlag and received.flags == sent.flags
