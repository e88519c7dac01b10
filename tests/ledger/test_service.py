"""The Ledger object: opening and closing accounts (each refusal with its stable code), the
chart installed once, checkpoints on demand."""

from __future__ import annotations

from uuid import uuid4

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from rollon.ledger import chart
from rollon.ledger.accounts import AccountKind, LedgerCode
from rollon.ledger.journal import checkpoint_is_valid
from rollon.ledger.queries import list_accounts
from rollon.ledger.schema import accounts, checkpoints
from rollon.ledger.service import MAX_NAME_LENGTH, AccountError, Ledger, install_chart
from rollon.ledger.transfers import Result, TransferFlag
from tests.ledger.builders import ManualClock, assert_books_sound, member, transfer


def test_open_account_starts_empty_and_limited(ledger: Ledger, clock: ManualClock) -> None:
    shop = ledger.open_account(kind=AccountKind.MERCHANT, name="  Épicerie du Vieux Marché  ")
    assert shop.name == "Épicerie du Vieux Marché"
    assert (shop.balance, shop.available, shop.ledger) == (0, 0, LedgerCode.RLN)
    assert shop.no_overdraft and not shop.closed
    assert shop.created_at_ns == clock.now_ns
    chosen = uuid4()
    point = ledger.open_account(
        kind=AccountKind.EXCHANGE_POINT, name="Comptoir Caen", account_id=chosen
    )
    assert point.id == chosen and point.kind is AccountKind.EXCHANGE_POINT


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"kind": AccountKind.MEMBER, "name": ""}, "invalid_name"),
        ({"kind": AccountKind.MEMBER, "name": "   "}, "invalid_name"),
        ({"kind": AccountKind.MEMBER, "name": "x" * (MAX_NAME_LENGTH + 1)}, "invalid_name"),
        ({"kind": AccountKind.SYSTEM, "name": "my own issuance"}, "invalid_kind"),
        (
            {"kind": AccountKind.MEMBER, "name": "Twin", "account_id": chart.ISSUANCE.id},
            "account_exists",
        ),
    ],
    ids=["empty", "blank", "too_long", "system", "taken_id"],
)
def test_open_account_refusals(
    ledger: Ledger, engine: Engine, kwargs: dict[str, object], code: str
) -> None:
    with engine.connect() as connection:
        before = len(list_accounts(connection))
    with pytest.raises(AccountError) as raised:
        ledger.open_account(**kwargs)  # type: ignore[arg-type]
    assert raised.value.code == code
    with engine.connect() as connection:
        assert len(list_accounts(connection)) == before, "nothing half-made"


def test_close_account_refusals(ledger: Ledger) -> None:
    funded = member(ledger, "Funded", funded=10)
    holding = member(ledger, "Holding", funded=10)
    receiving = member(ledger, "Receiving")
    pending = transfer(holding.id, receiving.id, 10, flags=TransferFlag.PENDING)
    assert ledger.submit([pending]) == [Result.OK]
    for account_id, code in [
        (uuid4(), "account_not_found"),
        (chart.FEES.id, "invalid_kind"),
        (funded.id, "account_not_empty"),
        (holding.id, "account_not_empty"),  # its balance is held, not gone
        (receiving.id, "account_not_empty"),  # money is on its way to it
    ]:
        with pytest.raises(AccountError) as raised:
            ledger.close_account(account_id)
        assert raised.value.code == code
    assert ledger.close_account(member(ledger, "Empty").id).closed


def test_a_closed_account_takes_no_money(ledger: Ledger, engine: Engine) -> None:
    payer = member(ledger, "Payer", funded=100)
    gone = member(ledger, "Gone")
    ledger.close_account(gone.id)
    assert ledger.submit([transfer(payer.id, gone.id, 1)]) == [Result.ACCOUNT_CLOSED]
    assert ledger.issue(uuid4(), gone.id, 1, "x").result is Result.ACCOUNT_CLOSED
    assert_books_sound(engine)


def test_install_chart_is_safe_to_run_twice(engine: Engine) -> None:
    install_chart(engine)
    install_chart(engine)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(accounts.c.id, accounts.c.no_overdraft)).all()
    assert sorted((r.id, r.no_overdraft) for r in rows) == sorted(
        (s.id, s.no_overdraft) for s in chart.SYSTEM_ACCOUNTS
    )


def test_checkpoint_on_demand(
    ledger: Ledger, engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    assert ledger.checkpoint() is None  # nothing to sign on an empty journal
    member(ledger, "Anne", funded=100)
    signed = ledger.checkpoint()
    assert signed is not None and signed.seq == 2
    assert checkpoint_is_valid(signing_key.public_key(), signed)
    assert ledger.checkpoint() == signed  # the same head is not signed into a second row
    with engine.connect() as connection:
        assert connection.execute(sa.select(checkpoints.c.seq)).scalars().all() == [2]


def test_a_ledger_without_a_key_signs_nothing(engine: Engine) -> None:
    unsigned = Ledger(engine)
    try:
        member(unsigned, "Anne", funded=100)
        assert unsigned.checkpoint() is None
    finally:
        unsigned.close()
    with engine.connect() as connection:
        assert connection.execute(sa.select(checkpoints)).all() == []
