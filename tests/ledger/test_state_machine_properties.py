"""Property tests of the pure state machine: random batches agree with the reference model,
and the invariants hold after every batch."""

from __future__ import annotations

from uuid import UUID, uuid5

from hypothesis import given, settings
from hypothesis import strategies as st

from rollon.ledger.accounts import Balances, LedgerCode
from rollon.ledger.verify import JournalReplay
from tests.ledger.budgets import PURE_PROPERTIES
from tests.ledger.builders import NS_PER_S, START_NS, balances, transfer
from tests.ledger.memory_store import MemoryStore
from tests.ledger.reference_model import Model, ModelAccount
from tests.ledger.workloads import Cast, WorkloadDrawer

NAMESPACE = UUID("0b5bd7b4-6a3c-4c52-9d2c-3f0a0e7c1b11")


def _world() -> tuple[Cast, MemoryStore, Model]:
    source = balances(no_overdraft=False)
    members = [balances() for _ in range(3)]
    closed = balances(closed=True)
    foreign = balances(ledger=LedgerCode.EUR)
    everyone = [source, *members, closed, foreign]
    cast = Cast(
        source=source.id,
        members=tuple(m.id for m in members),
        closed=closed.id,
        foreign=foreign.id,
        missing=uuid5(NAMESPACE, "missing"),
    )
    model = Model(
        accounts={b.id: ModelAccount(b.ledger, b.no_overdraft, b.closed) for b in everyone}
    )
    return cast, MemoryStore(everyone), model


def _totals(b: Balances | ModelAccount) -> tuple[int, int, int, int]:
    return (b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending)


def assert_agrees(store: MemoryStore, model: Model) -> None:
    """The state machine's writes and the model's state are the same books."""
    assert [
        (e.transfer, e.timestamp_ns, e.expires_at_ns, e.debit_balance_after, e.credit_balance_after)
        for e in store.entries
    ] == [
        (e.transfer, e.timestamp_ns, e.expires_at_ns, e.debit_after, e.credit_after)
        for e in model.journal
    ]
    assert {i: _totals(b) for i, b in store.accounts.items()} == {
        i: _totals(a) for i, a in model.accounts.items()
    }
    assert store.failed == model.failed
    assert {i: h.expires_at_ns for i, h in store.holds.items()} == {
        i: expires for i, (_, expires) in model.open_holds.items()
    }
    assert store.resolved == model.closed_holds


def assert_invariants(store: MemoryStore) -> None:
    """Per ledger the sums are zero, no limited account is below zero, the chain is sound
    and replaying it gives the stored balances and holds."""
    for ledger in LedgerCode:
        mine = [b for b in store.accounts.values() if b.ledger == ledger]
        assert sum(b.posted for b in mine) == 0
        assert sum(b.debits_pending for b in mine) == sum(b.credits_pending for b in mine)
    for b in store.accounts.values():
        assert not b.no_overdraft or b.available >= 0
        assert b.debits_pending >= 0 and b.credits_pending >= 0
    replay = JournalReplay(
        {b.id: (b.ledger, b.no_overdraft) for b in store.accounts.values()}, [], []
    )
    for entry in store.entries:
        replay.feed(entry)
    report = replay.finish(store.accounts.values(), store.holds.keys(), store.head)
    assert report.ok, report.problems


@PURE_PROPERTIES
@given(st.data())
def test_random_batches_agree_with_the_reference_model(data: st.DataObject) -> None:
    cast, store, model = _world()
    drawer = WorkloadDrawer(cast, NAMESPACE)
    now_ns = START_NS
    funding = [[transfer(cast.source, m, 1_000) for m in cast.members]]
    assert store.execute(funding, now_ns).results == model.run_batch(now_ns, funding)
    for _ in range(data.draw(st.integers(1, 6), label="batches")):
        step = drawer.draw_step(data)
        now_ns += step.advance_s * NS_PER_S
        expected = model.run_batch(now_ns, step.requests)
        outcome = store.execute(step.requests, now_ns)
        assert outcome.results == expected
        assert_agrees(store, model)
        assert_invariants(store)


@settings(PURE_PROPERTIES, max_examples=max(10, PURE_PROPERTIES.max_examples // 3))
@given(st.data())
def test_splitting_a_batch_into_requests_does_not_change_results(data: st.DataObject) -> None:
    """The hot path may cut the queue into batches anywhere between requests: at one moment,
    one batch of requests or one batch per request decide the same and write the same."""
    cast, together, _ = _world()
    _, apart, _ = _world()
    apart.accounts = {i: b.copy() for i, b in together.accounts.items()}
    drawer = WorkloadDrawer(cast, NAMESPACE)
    now_ns = START_NS
    for _ in range(data.draw(st.integers(1, 4), label="steps")):
        step = drawer.draw_step(data)
        now_ns += step.advance_s * NS_PER_S
        as_one = together.execute(step.requests, now_ns).results
        one_by_one = [apart.execute([request], now_ns).results[0] for request in step.requests]
        assert as_one == one_by_one
        assert together.entries == apart.entries
        assert together.accounts == apart.accounts
