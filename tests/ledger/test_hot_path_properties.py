"""Random batches through the real hot path and database agree with the reference model, and
verify passes after every batch, on SQLite and PostgreSQL."""

from __future__ import annotations

from uuid import UUID, uuid4, uuid5

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from rollon.ledger.accounts import AccountKind, LedgerCode
from rollon.ledger.queries import get_account
from rollon.ledger.schema import failed_transfers, holds, journal_head, transfers
from rollon.ledger.service import Ledger
from rollon.ledger.storage import entry_from_row
from rollon.ledger.transfers import Result
from rollon.ledger.verify import verify_database
from tests.ledger.budgets import DB_PROPERTIES
from tests.ledger.builders import ManualClock, member, transfer
from tests.ledger.reference_model import Model, ModelAccount
from tests.ledger.workloads import Cast, WorkloadDrawer


def _cast(ledger: Ledger, namespace: UUID) -> Cast:
    closed = member(ledger, "Closed")
    ledger.close_account(closed.id)
    foreign = ledger.open_account(kind=AccountKind.MEMBER, name="Euro", ledger=LedgerCode.EUR)
    return Cast(
        source=member(ledger, "Source", funded=1_000_000).id,
        members=tuple(member(ledger, f"Member {i}", funded=300).id for i in range(3)),
        closed=closed.id,
        foreign=foreign.id,
        missing=uuid5(namespace, "missing"),
    )


def _model(engine: Engine, cast: Cast) -> tuple[Model, int]:
    """The model, starting from what the database holds now; and the journal's last seq."""
    with engine.connect() as connection:
        found = [get_account(connection, i) for i in cast.everyone if i != cast.missing]
        head = connection.execute(sa.select(journal_head)).one()
    model_accounts = {
        a.id: ModelAccount(
            a.ledger,
            a.no_overdraft,
            a.closed,
            a.debits_posted,
            a.credits_posted,
            a.debits_pending,
            a.credits_pending,
        )
        for a in found
        if a is not None
    }
    return Model(accounts=model_accounts, last_ts=head.timestamp_ns), head.seq


def _assert_database_agrees(engine: Engine, model: Model, start_seq: int) -> None:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(transfers).where(transfers.c.seq > start_seq).order_by(transfers.c.seq)
        ).all()
        stored = {i: get_account(connection, i) for i in model.accounts}
        ids = list(model.failed) + list(model.committed)
        failed = dict(
            connection.execute(
                sa.select(failed_transfers.c.id, failed_transfers.c.result).where(
                    failed_transfers.c.id.in_(ids)
                )
            ).all()
        )
        open_holds = dict(
            connection.execute(
                sa.select(holds.c.transfer_id, holds.c.expires_at_ns).where(
                    holds.c.transfer_id.in_(list(model.committed))
                )
            ).all()
        )
    entries = [entry_from_row(row) for row in rows]
    assert [
        (e.transfer, e.timestamp_ns, e.expires_at_ns, e.debit_balance_after, e.credit_balance_after)
        for e in entries
    ] == [
        (e.transfer, e.timestamp_ns, e.expires_at_ns, e.debit_after, e.credit_after)
        for e in model.journal
    ]
    for account_id, expected in model.accounts.items():
        account = stored[account_id]
        assert account is not None
        assert (
            account.debits_posted,
            account.credits_posted,
            account.debits_pending,
            account.credits_pending,
        ) == (
            expected.debits_posted,
            expected.credits_posted,
            expected.debits_pending,
            expected.credits_pending,
        )
    assert {i: Result(r) for i, r in failed.items()} == model.failed
    assert open_holds == {i: expires for i, (_, expires) in model.open_holds.items()}


@pytest.mark.slow
@DB_PROPERTIES
@given(data=st.data())
def test_random_batches_through_the_database_agree_with_the_model(
    ledger: Ledger,
    engine: Engine,
    clock: ManualClock,
    signing_key: Ed25519PrivateKey,
    data: st.DataObject,
) -> None:
    namespace = uuid4()  # examples share the database: each plays with its own ids
    clock.advance_s(3_600)
    cast = _cast(ledger, namespace)
    model, start_seq = _model(engine, cast)
    drawer = WorkloadDrawer(cast, namespace)
    try:
        for _ in range(data.draw(st.integers(1, 4), label="steps")):
            step = drawer.draw_step(data)
            clock.advance_s(step.advance_s)
            # Submitted together: the writer may cut them into batches anywhere between
            # requests; at one moment that decides the same as one batch.
            futures = [ledger.hot_path.submit_nowait(r) for r in step.requests]
            answers = [f.result(timeout=30) for f in futures]
            assert answers == model.run_batch(clock.now_ns, step.requests)
            _assert_database_agrees(engine, model, start_seq)
            report = verify_database(engine, [signing_key.public_key()])
            assert report.ok, report.problems
    finally:
        # Let every hold of this example expire now, so no later example sees it expire.
        clock.advance_s(60)
        ledger.submit([transfer(cast.source, cast.source, 1)])
