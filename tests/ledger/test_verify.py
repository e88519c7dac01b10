"""Tampering with the books by plain SQL, behind the ledger's back: verify fails and names the
row (seq, transfer id) or the account. Checkpoints signed by another key are refused."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Connection, Engine

from rollon.ledger.journal import ChainHead, Checkpoint, chain, key_id, sign_checkpoint
from rollon.ledger.journal import Recorded as JournalRecorded
from rollon.ledger.schema import accounts, checkpoints, transfers
from rollon.ledger.service import Ledger
from rollon.ledger.storage import entry_from_row, entry_to_row
from rollon.ledger.transfers import Result
from rollon.ledger.verify import JournalReplay, VerifyReport, verify_database
from tests.ledger.builders import member, transfer


@dataclass
class Books:
    engine: Engine
    key: Ed25519PrivateKey
    ids: dict[int, UUID]  # seq -> transfer id
    payer: UUID
    last_seq: int

    def verify(self, *keys: Ed25519PrivateKey) -> VerifyReport:
        signers = keys or (self.key,)
        return verify_database(self.engine, [k.public_key() for k in signers])


@pytest.fixture
def books(ledger: Ledger, engine: Engine, signing_key: Ed25519PrivateKey) -> Books:
    """Two members, a few payments (one with a memo), signed every 10 entries."""
    payer = member(ledger, "Payer", funded=5_000)
    payee = member(ledger, "Payee")
    for i in range(12):
        assert ledger.submit([transfer(payer.id, payee.id, 100 + i, memo=f"#{i}")]) == [Result.OK]
    with engine.connect() as connection:
        rows = connection.execute(sa.select(transfers.c.seq, transfers.c.id)).all()
    ids = {row.seq: row.id for row in rows}
    report = verify_database(engine, [signing_key.public_key()])
    assert report.ok and report.checkpoints_checked >= 1, report.problems
    return Books(engine, signing_key, ids, payer.id, max(ids))


def _names_entry(report: VerifyReport, books: Books, *seqs: int) -> bool:
    wanted_ids = {books.ids[s] for s in seqs if s in books.ids}
    return any(p.seq in seqs or p.transfer_id in wanted_ids for p in report.problems)


def _update_row(connection: Connection, at: int, **values: Any) -> None:
    connection.execute(transfers.update().where(transfers.c.seq == at).values(**values))


def _row(connection: Connection, seq: int) -> dict[str, Any]:
    return dict(
        connection.execute(sa.select(transfers).where(transfers.c.seq == seq)).one()._mapping
    )


MIDDLE = 7

EDITS: dict[str, Callable[[Connection, Books], None]] = {
    "amount": lambda c, b: _update_row(c, MIDDLE, amount=_row(c, MIDDLE)["amount"] + 1),
    "account": lambda c, b: _update_row(c, MIDDLE, credit_account_id=b.payer),
    "memo": lambda c, b: _update_row(c, MIDDLE, memo="changed after the fact"),
    "timestamp": lambda c, b: _update_row(
        c, MIDDLE, timestamp_ns=_row(c, MIDDLE)["timestamp_ns"] + 10**6
    ),
    "balance_after": lambda c, b: _update_row(
        c, MIDDLE, debit_balance_after=_row(c, MIDDLE)["debit_balance_after"] + 5
    ),
    "hash": lambda c, b: _update_row(c, MIDDLE, hash=os.urandom(32)),
}


@pytest.mark.parametrize("field", sorted(EDITS))
def test_editing_a_transfer_row_is_named(books: Books, field: str) -> None:
    with books.engine.begin() as connection:
        EDITS[field](connection, books)
    report = books.verify()
    assert not report.ok
    assert _names_entry(report, books, MIDDLE), report.problems


@pytest.mark.parametrize("where", ["middle", "last"])
def test_deleting_a_transfer_row_is_named(books: Books, where: str) -> None:
    seq = MIDDLE if where == "middle" else books.last_seq
    with books.engine.begin() as connection:
        connection.execute(transfers.delete().where(transfers.c.seq == seq))
    report = books.verify()
    assert not report.ok
    assert any(p.seq == seq for p in report.problems), report.problems


def _forged(books: Books, connection: Connection, *, chained: bool) -> dict[str, Any]:
    """A new last row paying the payer 1000 from the payee; chained: with a hash and balances
    a forger who knows the format computes, so that only the rest of the books can tell."""
    last = entry_from_row(
        connection.execute(sa.select(transfers).where(transfers.c.seq == books.last_seq)).one()
    )
    fake = transfer(last.transfer.credit_account_id, books.payer, 1_000, memo="forged")
    head = ChainHead(last.seq, last.hash, last.timestamp_ns)
    recorded = JournalRecorded(
        last.timestamp_ns + 1,
        fake,
        None,
        last.credit_balance_after - 1_000,
        last.debit_balance_after + 1_000,
    )
    [entry], _ = chain(head, [recorded])
    row = entry_to_row(entry)
    if not chained:
        row["hash"] = os.urandom(32)
    return row


@pytest.mark.parametrize("chained", [False, True], ids=["random_hash", "chained_hash"])
def test_inserting_a_forged_row_is_named(books: Books, chained: bool) -> None:
    with books.engine.begin() as connection:
        row = _forged(books, connection, chained=chained)
        connection.execute(transfers.insert().values(**row))
    report = books.verify()
    assert not report.ok
    forged_seq = books.last_seq + 1
    assert any(p.seq == forged_seq or p.transfer_id == row["id"] for p in report.problems), (
        report.problems
    )


def test_swapping_two_rows_is_named(books: Books) -> None:
    first, second = 4, MIDDLE + 2
    with books.engine.begin() as connection:
        _update_row(connection, first, seq=-1)
        _update_row(connection, second, seq=first)
        _update_row(connection, -1, seq=second)
    report = books.verify()
    assert not report.ok
    assert _names_entry(report, books, first, second), report.problems


def test_editing_a_balance_is_named_by_account(books: Books) -> None:
    with books.engine.begin() as connection:
        connection.execute(
            accounts.update()
            .where(accounts.c.id == books.payer)
            .values(credits_posted=accounts.c.credits_posted + 100)
        )
    report = books.verify()
    assert not report.ok
    assert books.payer in {p.account_id for p in report.problems}, report.problems


def test_a_checkpoint_signed_by_another_key_is_refused(books: Books) -> None:
    intruder = Ed25519PrivateKey.generate()
    with books.engine.begin() as connection:
        row = connection.execute(sa.select(checkpoints).order_by(checkpoints.c.seq)).first()
        assert row is not None
        forged = sign_checkpoint(intruder, ChainHead(row.seq, bytes(row.hash), row.timestamp_ns))
        connection.execute(
            checkpoints.update()
            .where(checkpoints.c.seq == row.seq)
            .values(key_id=forged.key_id, signature=forged.signature)
        )
    report = books.verify()
    assert not report.ok
    assert any(p.seq == row.seq and "checkpoint" in p.kind for p in report.problems)
    # Knowing the intruder's public key does not make its checkpoint the service's.
    assert not books.verify(books.key).ok


def test_a_checkpoint_claiming_the_service_key_with_a_foreign_signature(books: Books) -> None:
    intruder = Ed25519PrivateKey.generate()
    with books.engine.begin() as connection:
        row = connection.execute(sa.select(checkpoints)).first()
        assert row is not None
        forged = sign_checkpoint(intruder, ChainHead(row.seq, bytes(row.hash), row.timestamp_ns))
        connection.execute(
            checkpoints.update()
            .where(checkpoints.c.seq == row.seq)
            .values(signature=forged.signature)  # key_id still names the service's key
        )
    report = books.verify()
    assert not report.ok
    assert any(p.seq == row.seq for p in report.problems)
    assert row.key_id == key_id(books.key.public_key())


def test_verify_with_the_wrong_public_key_refuses_the_checkpoints(books: Books) -> None:
    report = books.verify(Ed25519PrivateKey.generate())
    assert not report.ok


def test_sound_books_verify_with_small_pages(books: Books) -> None:
    seen: list[int] = []
    report = verify_database(
        books.engine, [books.key.public_key()], page_size=3, progress=seen.append
    )
    assert report.ok, report.problems
    assert report.entries_checked == books.last_seq
    assert seen[-1] == books.last_seq and seen == sorted(seen)


def test_journal_replay_alone_needs_the_whole_chain(books: Books) -> None:
    """The pure replay, fed from an export, says the same as verify_database."""
    with books.engine.connect() as connection:
        entries = [
            entry_from_row(r)
            for r in connection.execute(sa.select(transfers).order_by(transfers.c.seq))
        ]
        ledgers = {
            r.id: (r.ledger, r.no_overdraft) for r in connection.execute(sa.select(accounts))
        }
        signed = [
            Checkpoint(r.seq, bytes(r.hash), r.timestamp_ns, r.key_id, bytes(r.signature))
            for r in connection.execute(sa.select(checkpoints))
        ]
    replay = JournalReplay(ledgers, signed, [books.key.public_key()])
    for entry in entries:
        replay.feed(entry)
    assert replay.finish().ok
    skipping = JournalReplay(ledgers, signed, [books.key.public_key()])
    for entry in entries[:3] + entries[4:]:
        skipping.feed(entry)
    report = skipping.finish()
    assert not report.ok
    assert any(p.seq == entries[3].seq for p in report.problems), report.problems
