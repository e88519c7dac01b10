"""The hash chain and signed checkpoints, pure: every field is covered by the hash, each entry
covers the one before, and a checkpoint is valid only for its key and its exact head."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rollon.ledger.accounts import LedgerCode
from rollon.ledger.journal import (
    GENESIS,
    ChainHead,
    Recorded,
    chain,
    checkpoint_is_valid,
    encode_entry,
    entry_hash,
    expiry_id,
    key_id,
    recompute_hash,
    sign_checkpoint,
)
from rollon.ledger.transfers import JournalEntry, TransferCode, TransferFlag
from tests.ledger.builders import START_NS, transfer

BASE = transfer(uuid4(), uuid4(), 1250, memo="pain au chocolat", code=TransferCode.PAYMENT)


def _recorded(n: int) -> list[Recorded]:
    return [
        Recorded(START_NS + i, replace(BASE, id=uuid4(), amount=100 + i), None, -i, i)
        for i in range(n)
    ]


def test_chain_links_each_entry_to_the_one_before() -> None:
    entries, head = chain(GENESIS, _recorded(5))
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS.hash == bytes(32)
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    assert all(recompute_hash(e) == e.hash for e in entries)
    assert head == ChainHead(5, entries[-1].hash, entries[-1].timestamp_ns)


def _again(entries: list[JournalEntry]) -> list[Recorded]:
    return [
        Recorded(
            e.timestamp_ns,
            e.transfer,
            e.expires_at_ns,
            e.debit_balance_after,
            e.credit_balance_after,
        )
        for e in entries
    ]


def test_chain_continues_from_any_head() -> None:
    whole, _ = chain(GENESIS, _recorded(4))
    first, middle = chain(GENESIS, _again(whole[:2]))
    rest, _ = chain(middle, _again(whole[2:]))
    assert first + rest == whole


def test_chain_refuses_timestamps_that_do_not_increase() -> None:
    records = _recorded(2)
    records[1] = records[1]._replace(timestamp_ns=records[0].timestamp_ns)
    with pytest.raises(AssertionError, match="increase"):
        chain(GENESIS, records)


CHANGES: dict[str, dict[str, Any]] = {
    "id": {"id": uuid4()},
    "debit": {"debit_account_id": uuid4()},
    "credit": {"credit_account_id": uuid4()},
    "amount": {"amount": 1251},
    "ledger": {"ledger": LedgerCode.EUR},
    "code": {"code": TransferCode.REFUND},
    "flags": {"flags": TransferFlag.PENDING},
    "pending_id": {"pending_id": uuid4()},
    "timeout": {"timeout_s": 5},
    "memo": {"memo": "pain au chocolaT"},
    "event_time": {"event_time_ns": 0},
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_the_hash_covers_every_transfer_field(field: str) -> None:
    original = encode_entry(1, START_NS, BASE, None, -1250, 1250)
    changed = encode_entry(1, START_NS, replace(BASE, **CHANGES[field]), None, -1250, 1250)
    assert changed != original
    assert entry_hash(GENESIS.hash, changed) != entry_hash(GENESIS.hash, original)


@pytest.mark.parametrize(
    "args",
    [
        (2, START_NS, None, -1250, 1250),
        (1, START_NS + 1, None, -1250, 1250),
        (1, START_NS, START_NS + 5, -1250, 1250),
        (1, START_NS, None, -1249, 1250),
        (1, START_NS, None, -1250, 1251),
    ],
    ids=["seq", "timestamp", "expires_at", "debit_after", "credit_after"],
)
def test_the_hash_covers_every_entry_field(args: tuple[int, int, int | None, int, int]) -> None:
    seq, ts, expires, debit_after, credit_after = args
    original = encode_entry(1, START_NS, BASE, None, -1250, 1250)
    assert encode_entry(seq, ts, BASE, expires, debit_after, credit_after) != original


def test_memos_cannot_be_shifted_into_other_fields() -> None:
    """Length prefixes: no two different (code, memo) pairs encode alike."""
    a = encode_entry(1, START_NS, replace(BASE, memo="ab"), None, 0, 0)
    b = encode_entry(1, START_NS, replace(BASE, memo="a"), None, 0, 0)
    assert a != b and not a.startswith(b)


def test_the_hash_covers_the_previous_hash() -> None:
    encoded = encode_entry(1, START_NS, BASE, None, 0, 0)
    assert entry_hash(bytes(32), encoded) != entry_hash(b"\x01" + bytes(31), encoded)


def test_a_checkpoint_is_valid_for_its_key_and_head_only() -> None:
    key = Ed25519PrivateKey.generate()
    _, head = chain(GENESIS, _recorded(3))
    signed = sign_checkpoint(key, head)
    assert (signed.seq, signed.hash, signed.timestamp_ns) == (
        head.seq,
        head.hash,
        head.timestamp_ns,
    )
    assert signed.key_id == key_id(key.public_key())
    assert len(signed.key_id) == 16 and int(signed.key_id, 16) >= 0
    assert checkpoint_is_valid(key.public_key(), signed)
    assert not checkpoint_is_valid(Ed25519PrivateKey.generate().public_key(), signed)
    for change in (
        {"seq": head.seq + 1},
        {"hash": bytes(32)},
        {"timestamp_ns": head.timestamp_ns + 1},
        {"signature": bytes(64)},
    ):
        assert not checkpoint_is_valid(key.public_key(), replace(signed, **change))


def test_key_ids_differ_between_keys() -> None:
    keys = [Ed25519PrivateKey.generate().public_key() for _ in range(5)]
    assert len({key_id(k) for k in keys}) == 5


def test_expiry_ids_are_derived_and_distinct() -> None:
    first, second = uuid4(), uuid4()
    assert expiry_id(first) == expiry_id(first)
    assert expiry_id(first) != expiry_id(second)
    assert expiry_id(first) not in (first, second)
