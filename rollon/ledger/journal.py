"""The tamper-evident journal: a canonical encoding of each entry, a SHA-256 hash chain over
them, and Ed25519-signed checkpoints of the chain head.

Pure functions only; keys are loaded and stored elsewhere (`keys.py`).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rollon.ledger.accounts import LedgerCode
from rollon.ledger.transfers import JournalEntry, Transfer, TransferCode

GENESIS_HASH = bytes(32)
_NO_UUID = bytes(16)
_NONE_TIME = -1
# seq, timestamp, id, debit, credit, amount, ledger, flags, pending_id, timeout_s,
# expires_at, event_time, debit_balance_after, credit_balance_after
_FIXED = struct.Struct(">QQ16s16s16sQ3sI16sQqqqq")
_MEMO_LENGTH = struct.Struct(">I")
_CHECKPOINT_DOMAIN = b"rollon-checkpoint-v1"


def _length_prefixed_code(code: str) -> bytes:
    encoded = code.encode("ascii")
    return struct.pack(">B", len(encoded)) + encoded


# Encoded once: the enums' own attributes cost more than the rest of an entry's encoding.
_CODE_FIELDS = {code: _length_prefixed_code(code.value) for code in TransferCode}
_LEDGER_FIELDS = {ledger: ledger.value.encode("ascii") for ledger in LedgerCode}


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last entry of the journal: the next entry continues from here."""

    seq: int
    hash: bytes
    timestamp_ns: int


GENESIS = ChainHead(seq=0, hash=GENESIS_HASH, timestamp_ns=0)


def encode_entry(
    seq: int,
    timestamp_ns: int,
    transfer: Transfer,
    expires_at_ns: int | None,
    debit_balance_after: int,
    credit_balance_after: int,
) -> bytes:
    """The canonical bytes of one entry: fixed-width fields, then length-prefixed text."""
    code = _CODE_FIELDS.get(transfer.code) or _length_prefixed_code(transfer.code.value)
    ledger = _LEDGER_FIELDS.get(transfer.ledger) or transfer.ledger.value.encode("ascii")
    memo = transfer.memo.encode("utf-8")
    pending_id = transfer.pending_id
    fixed = _FIXED.pack(
        seq,
        timestamp_ns,
        transfer.id.bytes,
        transfer.debit_account_id.bytes,
        transfer.credit_account_id.bytes,
        transfer.amount,
        ledger,
        int(transfer.flags),
        _NO_UUID if pending_id is None else pending_id.bytes,
        transfer.timeout_s,
        _NONE_TIME if expires_at_ns is None else expires_at_ns,
        _NONE_TIME if transfer.event_time_ns is None else transfer.event_time_ns,
        debit_balance_after,
        credit_balance_after,
    )
    return b"".join((fixed, code, _MEMO_LENGTH.pack(len(memo)), memo))


def entry_hash(prev_hash: bytes, encoded: bytes) -> bytes:
    """Hash of an entry: it covers the previous hash, so no entry can change unseen."""
    return hashlib.sha256(prev_hash + encoded).digest()


def recompute_hash(entry: JournalEntry) -> bytes:
    """The hash an entry should carry, from its own fields and its stored previous hash."""
    encoded = encode_entry(
        entry.seq,
        entry.timestamp_ns,
        entry.transfer,
        entry.expires_at_ns,
        entry.debit_balance_after,
        entry.credit_balance_after,
    )
    return entry_hash(entry.prev_hash, encoded)


class Recorded(NamedTuple):
    """A transfer the state machine accepted, before it has a place in the chain.

    A named tuple rather than a frozen dataclass: the state machine makes one per transfer,
    and a frozen dataclass's constructor costs three times as much."""

    timestamp_ns: int
    transfer: Transfer
    expires_at_ns: int | None
    debit_balance_after: int
    credit_balance_after: int


def chain(head: ChainHead, recorded: Iterable[Recorded]) -> tuple[list[JournalEntry], ChainHead]:
    """Give each accepted transfer its sequence number and hash, continuing from `head`."""
    entries: list[JournalEntry] = []
    seq, prev, last_ts = head.seq, head.hash, head.timestamp_ns
    for timestamp_ns, transfer, expires_at_ns, debited, credited in recorded:
        assert timestamp_ns > last_ts, "journal timestamps must strictly increase"
        seq += 1
        encoded = encode_entry(seq, timestamp_ns, transfer, expires_at_ns, debited, credited)
        digest = entry_hash(prev, encoded)
        entries.append(
            JournalEntry(
                seq, timestamp_ns, transfer, expires_at_ns, debited, credited, prev, digest
            )
        )
        prev, last_ts = digest, timestamp_ns
    return entries, ChainHead(seq=seq, hash=prev, timestamp_ns=last_ts)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: "the journal's entry number `seq` has hash `hash`"."""

    seq: int
    hash: bytes
    timestamp_ns: int
    key_id: str
    signature: bytes


def checkpoint_message(seq: int, head_hash: bytes, timestamp_ns: int) -> bytes:
    """What a checkpoint signs; domain-separated so the key signs nothing else this way."""
    return _CHECKPOINT_DOMAIN + struct.pack(">QQ", seq, timestamp_ns) + head_hash


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short stable name for a public key: the start of the SHA-256 of its raw bytes."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_checkpoint(private_key: Ed25519PrivateKey, head: ChainHead) -> Checkpoint:
    """Sign the chain head."""
    message = checkpoint_message(head.seq, head.hash, head.timestamp_ns)
    return Checkpoint(
        seq=head.seq,
        hash=head.hash,
        timestamp_ns=head.timestamp_ns,
        key_id=key_id(private_key.public_key()),
        signature=private_key.sign(message),
    )


def checkpoint_is_valid(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint was signed by this key over exactly these fields."""
    message = checkpoint_message(checkpoint.seq, checkpoint.hash, checkpoint.timestamp_ns)
    try:
        public_key.verify(checkpoint.signature, message)
    except InvalidSignature:
        return False
    return True


# Ids the ledger derives for its own entries carry the UUID variant "reserved for future
# definition" (the top three bits of byte 8 set), which no UUID generator produces, and the
# state machine refuses it from clients: a client can never take such an id first.
LEDGER_ID_MASK = 0b111 << 61


def expiry_id(pending_id: UUID) -> UUID:
    """The id of the void the ledger writes when `pending_id` times out: derived, so that two
    writers expiring the same hold would collide instead of voiding it twice."""
    digest = hashlib.sha256(b"rollon-expiry" + pending_id.bytes).digest()[:16]
    return UUID(int=int.from_bytes(digest, "big") | LEDGER_ID_MASK)
