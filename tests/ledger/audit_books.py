"""A small but complete set of books for the audit tests, made through the ledger's own hot
path over three days of ledger time, and the plain-SQL tools that break them on purpose."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rollon.ledger.accounts import Account, AccountKind
from rollon.ledger.audit.local_time import local_date
from rollon.ledger.journal import recompute_hash
from rollon.ledger.schema import transfers
from rollon.ledger.service import Ledger
from rollon.ledger.storage import entry_from_row, entry_to_row
from rollon.ledger.transfers import JournalEntry, Result, TransferCode, TransferFlag
from tests.ledger.builders import ManualClock, transfer

DAY_S = 86_400
BONUS_BPS = 500
FEE_BPS = 150


@dataclass
class Books:
    anne: Account
    bruno: Account
    cafe: Account
    comptoir: Account  # an exchange point
    day1_ns: int  # a moment of each day, after that day's activity
    day2_ns: int
    day3_ns: int
    open_hold: UUID

    @property
    def day1(self) -> Any:
        return local_date(self.day1_ns)

    @property
    def day2(self) -> Any:
        return local_date(self.day2_ns)

    @property
    def day3(self) -> Any:
        return local_date(self.day3_ns)


def ok(results: list[Result]) -> None:
    assert set(results) == {Result.OK}, results


def build_books(ledger: Ledger, clock: ManualClock) -> Books:
    """Day 1: issuances (one at the exchange point, with the bonus on change). Day 2:
    payment, transfer, refund, holds. Day 3: reconversion and payout. Ends with a checkpoint."""
    anne = ledger.open_account(kind=AccountKind.MEMBER, name="Anne Leroux")
    bruno = ledger.open_account(kind=AccountKind.MEMBER, name="=Bruno Hamel")  # CSV injection
    cafe = ledger.open_account(kind=AccountKind.MERCHANT, name="Café des Halles")
    comptoir = ledger.open_account(kind=AccountKind.EXCHANGE_POINT, name="Comptoir Rouen")
    assert ledger.issue(
        uuid4(), anne.id, 10_000, "CAISSE-ROUEN-0001", BONUS_BPS, exchange_point_id=comptoir.id
    ).applied
    clock.advance_s(60)
    assert ledger.issue(uuid4(), bruno.id, 5_000, "VIR-BQ-0002").applied
    day1_ns = clock.advance_s(60)

    clock.advance_s(DAY_S)
    ok(ledger.submit([transfer(anne.id, cafe.id, 1_250, code=TransferCode.PAYMENT, memo="café")]))
    ok(ledger.submit([transfer(anne.id, bruno.id, 500, memo="pour le pain")]))
    ok(ledger.submit([transfer(cafe.id, anne.id, 250, code=TransferCode.REFUND)]))
    held = transfer(bruno.id, cafe.id, 300, code=TransferCode.PAYMENT, flags=TransferFlag.PENDING)
    ok(ledger.submit([held]))
    posted = transfer(bruno.id, cafe.id, 700, code=TransferCode.PAYMENT, flags=TransferFlag.PENDING)
    ok(ledger.submit([posted]))
    ok(
        ledger.submit(
            [
                transfer(
                    bruno.id,
                    cafe.id,
                    600,
                    code=TransferCode.PAYMENT,
                    flags=TransferFlag.POST_PENDING,
                    pending_id=posted.id,
                )
            ]
        )
    )
    day2_ns = clock.advance_s(60)

    clock.advance_s(DAY_S)
    outcome, plan = ledger.reconvert(uuid4(), cafe.id, 1_000, FEE_BPS)
    assert outcome.applied
    assert ledger.pay_out(uuid4(), plan.net, "SEPA-PAYOUT-0001").applied
    day3_ns = clock.advance_s(60)
    ledger.checkpoint()
    return Books(anne, bruno, cafe, comptoir, day1_ns, day2_ns, day3_ns, held.id)


# -- breaking the books on purpose, around the ledger ---------------------------------------------
def entry_at(engine: Engine, seq: int) -> JournalEntry:
    with engine.connect() as connection:
        row = connection.execute(sa.select(transfers).where(transfers.c.seq == seq)).one()
    return entry_from_row(row)


def last_seq(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.max(transfers.c.seq))).scalar_one())


def sql_edit_amount(engine: Engine, seq: int, delta: int = 1) -> None:
    with engine.begin() as connection:
        connection.execute(
            transfers.update()
            .where(transfers.c.seq == seq)
            .values(amount=transfers.c.amount + delta)
        )


def sql_rewrite_with_new_hash(engine: Engine, seq: int) -> None:
    """Edit an entry's memo and give it the hash its new fields call for (a careful forger)."""
    entry = entry_at(engine, seq)
    changed = replace(entry, transfer=replace(entry.transfer, memo="forged"))
    with engine.begin() as connection:
        connection.execute(
            transfers.update()
            .where(transfers.c.seq == seq)
            .values(memo="forged", hash=recompute_hash(changed))
        )


def sql_delete(engine: Engine, seq: int) -> None:
    with engine.begin() as connection:
        connection.execute(transfers.delete().where(transfers.c.seq == seq))


def sql_delete_and_renumber(engine: Engine, seq: int) -> None:
    """Delete an entry and close the gap, one row at a time in ascending order."""
    top = last_seq(engine)
    with engine.begin() as connection:
        connection.execute(transfers.delete().where(transfers.c.seq == seq))
        for s in range(seq + 1, top + 1):
            connection.execute(transfers.update().where(transfers.c.seq == s).values(seq=s - 1))


def sql_insert_copy_at_end(engine: Engine, copied_seq: int) -> UUID:
    """Append a copy of an entry under a new id (a payment made up out of an old one)."""
    entry = entry_at(engine, copied_seq)
    row = entry_to_row(entry)
    new_id = uuid4()
    row.update(
        id=new_id,
        seq=last_seq(engine) + 1,
        timestamp_ns=entry_at(engine, last_seq(engine)).timestamp_ns + 1,
        pending_id=None,
    )
    with engine.begin() as connection:
        connection.execute(transfers.insert().values(**row))
    return new_id


def sql_swap(engine: Engine, first: int, second: int) -> None:
    """Swap the places of two entries, as a reordering UPDATE would."""
    with engine.begin() as connection:
        for old, new in ((first, -1), (second, first), (-1, second)):
            connection.execute(transfers.update().where(transfers.c.seq == old).values(seq=new))


def find_seq(engine: Engine, **where: Any) -> int:
    """The seq of the first entry whose columns have these values."""
    with engine.connect() as connection:
        condition = sa.and_(*(transfers.c[k] == v for k, v in where.items()))
        return int(
            connection.execute(
                sa.select(transfers.c.seq).where(condition).order_by(transfers.c.seq).limit(1)
            ).scalar_one()
        )
