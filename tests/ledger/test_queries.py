"""Queries on real databases: balances at past moments, history pages newest first with a
cursor, trial balance now and in the past."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlalchemy.engine import Engine

from rollon.ledger import chart
from rollon.ledger.accounts import LedgerCode
from rollon.ledger.queries import (
    MAX_PAGE,
    balance_at,
    get_account,
    get_transfer,
    history,
    last_seq_at,
    list_accounts,
    trial_balance,
)
from rollon.ledger.service import Ledger
from rollon.ledger.transfers import Result
from tests.ledger.builders import ManualClock, member, transfer


def test_balance_at_past_moments(ledger: Ledger, engine: Engine, clock: ManualClock) -> None:
    anne = member(ledger, "Anne")
    shop = member(ledger, "Shop")
    before_anything = clock.now_ns - 1
    ledger.issue(uuid4(), anne.id, 1_000, "deposit")
    funded_at = clock.now_ns
    clock.advance_s(60)
    assert ledger.submit([transfer(anne.id, shop.id, 300)]) == [Result.OK]
    first_payment_at = clock.now_ns
    clock.advance_s(60)
    assert ledger.submit([transfer(anne.id, shop.id, 200)]) == [Result.OK]
    clock.advance_s(60)
    with engine.connect() as connection:
        assert balance_at(connection, anne.id, before_anything) == 0
        assert balance_at(connection, anne.id, funded_at + 1) == 1_000
        assert balance_at(connection, anne.id, first_payment_at - 1) == 1_000
        assert balance_at(connection, anne.id, first_payment_at + 30 * 10**9) == 700
        assert balance_at(connection, shop.id, first_payment_at + 30 * 10**9) == 300
        assert balance_at(connection, anne.id, clock.now_ns) == 500
        assert balance_at(connection, chart.ISSUANCE.id, clock.now_ns) == -1_000
        assert balance_at(connection, uuid4(), clock.now_ns) == 0
        assert last_seq_at(connection, before_anything) == 0


def test_history_pages_newest_first_without_gaps_or_duplicates(
    ledger: Ledger, engine: Engine
) -> None:
    anne = member(ledger, "Anne", funded=100_000)
    others = [member(ledger, f"Other {i}", funded=1_000) for i in range(3)]
    mine = []
    for i in range(23):
        other = others[i % 3]
        t = (
            transfer(anne.id, other.id, 10 + i)
            if i % 2
            else transfer(other.id, anne.id, 1 + i)  # both sides of the account
        )
        assert ledger.submit([t]) == [Result.OK]
        mine.append(t.id)
        # Noise that does not concern Anne.
        assert ledger.submit([transfer(others[0].id, others[1].id, 1)]) == [Result.OK]
    with engine.connect() as connection:
        pages = []
        cursor = None
        while True:
            page = history(connection, anne.id, before_seq=cursor, limit=5)
            if not page:
                break
            assert len(page) <= 5
            pages.append(page)
            cursor = page[-1].seq
        everything = history(connection, anne.id, limit=MAX_PAGE)
    seen = [e for page in pages for e in page]
    seqs = [e.seq for e in seen]
    assert seqs == sorted(seqs, reverse=True), "newest first"
    assert len(seqs) == len(set(seqs)), "no duplicates"
    assert [e.seq for e in everything] == seqs, "no gaps"
    assert len(seen) == 24  # the funding issuance and 23 transfers
    assert [e.transfer.id for e in seen[:23]] == list(reversed(mine))
    assert all(anne.id in (e.transfer.debit_account_id, e.transfer.credit_account_id) for e in seen)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 4]


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1])
def test_history_pages_are_bounded(ledger: Ledger, engine: Engine, limit: int) -> None:
    with engine.connect() as connection, pytest.raises(AssertionError):
        history(connection, chart.ISSUANCE.id, limit=limit)


def test_trial_balance_now_and_in_the_past(
    ledger: Ledger, engine: Engine, clock: ManualClock
) -> None:
    anne = member(ledger, "Anne")
    ledger.issue(uuid4(), anne.id, 5_000, "deposit", bonus_bps=200)
    clock.advance_s(10)
    past = clock.now_ns
    clock.advance_s(10)
    late = member(ledger, "Late")  # opened after `past`
    assert ledger.submit([transfer(anne.id, late.id, 1_234)]) == [Result.OK]
    ledger.reconvert(uuid4(), late.id, 1_000, fee_bps=150)
    with engine.connect() as connection:
        now = trial_balance(connection)
        then = trial_balance(connection, at_ns=past)
        live = {a.id: a.balance for a in list_accounts(connection)}
        then_balances = {a: balance_at(connection, a, past) for a in live}
    for code in LedgerCode:
        assert now.total(code) == 0
        assert then.total(code) == 0
    assert {line.account_id: line.balance for line in now.lines} == live
    assert {line.account_id for line in then.lines} == set(live) - {late.id}
    assert all(line.balance == then_balances[line.account_id] for line in then.lines)
    by_id = {line.account_id: line.balance for line in then.lines}
    assert by_id[anne.id] == 5_100
    assert by_id[chart.RESERVE.id] == 5_100
    assert now.as_of_seq > then.as_of_seq > 0


def test_lookups_of_what_does_not_exist(ledger: Ledger, engine: Engine) -> None:
    with engine.connect() as connection:
        assert get_account(connection, uuid4()) is None
        assert get_transfer(connection, uuid4()) is None
        assert {a.id for a in list_accounts(connection)} == {s.id for s in chart.SYSTEM_ACCOUNTS}
