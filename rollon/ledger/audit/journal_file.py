"""The journal export: a file an auditor verifies on their own machine, with no database.

JSON Lines, UTF-8, one record per line, in this order:

1. `header`: format name and version, when it was exported, the public keys (PEM) that sign
   the checkpoints;
2. `account`, one per account: id, ledger, kind, name, no_overdraft, closed, created_at_ns and
   the four running totals the database stores;
3. `checkpoint`, one per signed checkpoint: seq, hash, timestamp_ns, key_id, signature;
4. `entry`, one per journal entry in seq order, with every field its hash covers (hashes and
   signatures in hex, amounts in centimes, times in ns);
5. `hold`, one per open pending transfer (its id);
6. `head`: the journal head the database stores (seq, hash, timestamp_ns);
7. `end`: how many records of each kind were written, so a cut file is seen as cut.

Written and read a page at a time: memory is bounded by the number of accounts, never by the
length of the journal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from uuid import UUID

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Connection

from rollon.ledger.accounts import Account, AccountKind, LedgerCode
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.snapshot import iter_entries
from rollon.ledger.journal import ChainHead, Checkpoint
from rollon.ledger.keys import load_public_key_pem, public_key_pem
from rollon.ledger.queries import list_accounts
from rollon.ledger.schema import checkpoints, holds, journal_head
from rollon.ledger.transfers import JournalEntry, Transfer, TransferCode, TransferFlag

FORMAT = "rollon-journal"
VERSION = 1
MAX_LINE_CHARS = 16_384  # an entry line is well under 2 KiB; a longer one is not ours
_ORDER = ("header", "account", "checkpoint", "entry", "hold", "head", "end")

Progress = Callable[[int], None]


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def account_record(account: Account) -> dict[str, Any]:
    """The `account` record of the export."""
    return {
        "record": "account",
        "id": str(account.id),
        "ledger": account.ledger.value,
        "kind": account.kind.value,
        "name": account.name,
        "no_overdraft": account.no_overdraft,
        "closed": account.closed,
        "created_at_ns": account.created_at_ns,
        "debits_posted": account.debits_posted,
        "credits_posted": account.credits_posted,
        "debits_pending": account.debits_pending,
        "credits_pending": account.credits_pending,
    }


def entry_record(entry: JournalEntry) -> dict[str, Any]:
    """The `entry` record of the export: every field its hash covers."""
    t = entry.transfer
    return {
        "record": "entry",
        "seq": entry.seq,
        "timestamp_ns": entry.timestamp_ns,
        "id": str(t.id),
        "debit_account_id": str(t.debit_account_id),
        "credit_account_id": str(t.credit_account_id),
        "amount": t.amount,
        "ledger": t.ledger.value,
        "code": t.code.value,
        "flags": int(t.flags),
        "pending_id": None if t.pending_id is None else str(t.pending_id),
        "timeout_s": t.timeout_s,
        "expires_at_ns": entry.expires_at_ns,
        "event_time_ns": t.event_time_ns,
        "memo": t.memo,
        "debit_balance_after": entry.debit_balance_after,
        "credit_balance_after": entry.credit_balance_after,
        "prev_hash": entry.prev_hash.hex(),
        "hash": entry.hash.hex(),
    }


def journal_lines(
    connection: Connection,
    public_keys: Sequence[Ed25519PublicKey],
    exported_at_ns: int,
    progress: Progress | None = None,
) -> Iterator[str]:
    """The whole journal as export lines, read from `connection` (use a read snapshot).
    Yields chunks of many lines; `progress` gets the number of entries written so far."""
    yield _line(
        {
            "record": "header",
            "format": FORMAT,
            "version": VERSION,
            "exported_at_ns": exported_at_ns,
            "public_keys": [public_key_pem(k) for k in public_keys],
        }
    )
    accounts = list_accounts(connection)
    yield "".join(_line(account_record(a)) for a in accounts)
    signed = connection.execute(sa.select(checkpoints).order_by(checkpoints.c.seq)).all()
    yield "".join(
        _line(
            {
                "record": "checkpoint",
                "seq": c.seq,
                "hash": bytes(c.hash).hex(),
                "timestamp_ns": c.timestamp_ns,
                "key_id": c.key_id,
                "signature": bytes(c.signature).hex(),
            }
        )
        for c in signed
    )
    written = 0
    for page in iter_entries(connection):
        yield "".join(_line(entry_record(e)) for e in page)
        written += len(page)
        if progress is not None:
            progress(written)
    held = sa.select(holds.c.transfer_id).order_by(holds.c.transfer_id)
    open_holds = list(connection.execute(held).scalars())
    yield "".join(_line({"record": "hold", "transfer_id": str(h)}) for h in open_holds)
    head = connection.execute(sa.select(journal_head)).one_or_none()
    if head is not None:
        yield _line(
            {
                "record": "head",
                "seq": head.seq,
                "hash": bytes(head.hash).hex(),
                "timestamp_ns": head.timestamp_ns,
            }
        )
    yield _line(
        {
            "record": "end",
            "accounts": len(accounts),
            "checkpoints": len(signed),
            "entries": written,
            "holds": len(open_holds),
        }
    )


# -- reading ----------------------------------------------------------------------------------
def bounded_lines(handle: TextIO) -> Iterator[str]:
    """The lines of an open file, refusing any line longer than MAX_LINE_CHARS before it
    is read whole (a file of one endless line must not fill the memory)."""
    number = 0
    while True:
        text = handle.readline(MAX_LINE_CHARS + 1)
        if not text:
            return
        number += 1
        if len(text) > MAX_LINE_CHARS:
            raise AuditInputError("journal_file_malformed", "the line is too long", number)
        yield text


@dataclass(frozen=True, slots=True)
class Header:
    """What the export's first record says."""

    exported_at_ns: int
    public_keys: Sequence[Ed25519PublicKey]


@dataclass(frozen=True, slots=True)
class Trailer:
    """What the export's last record counts."""

    accounts: int
    checkpoints: int
    entries: int
    holds: int


class _Fields:
    """Typed access to one record's fields; any bad field is a clear error naming the line."""

    def __init__(self, record: dict[str, Any], line: int) -> None:
        self.record = record
        self.line = line

    def fail(self, message: str) -> AuditInputError:
        return AuditInputError("journal_file_malformed", message, self.line)

    def value(self, key: str) -> Any:
        if key not in self.record:
            raise self.fail(f"the {self.record.get('record')} record has no {key!r}")
        return self.record[key]

    def integer(self, key: str, *, minimum: int = -(2**63), optional: bool = False) -> int | None:
        value = self.value(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{key!r} must be an integer")
        if not minimum <= value < 2**63:
            raise self.fail(f"{key!r} is out of range")
        return value

    def req_int(self, key: str, *, minimum: int = -(2**63)) -> int:
        value = self.integer(key, minimum=minimum)
        assert value is not None
        return value

    def text(self, key: str) -> str:
        value = self.value(key)
        if not isinstance(value, str):
            raise self.fail(f"{key!r} must be text")
        return value

    def flag(self, key: str) -> bool:
        value = self.value(key)
        if not isinstance(value, bool):
            raise self.fail(f"{key!r} must be true or false")
        return value

    def uuid(self, key: str) -> UUID:
        try:
            return UUID(self.text(key))
        except ValueError:
            raise self.fail(f"{key!r} is not a UUID") from None

    def optional_uuid(self, key: str) -> UUID | None:
        return None if self.value(key) is None else self.uuid(key)

    def hex(self, key: str, size: int) -> bytes:
        try:
            value = bytes.fromhex(self.text(key))
        except ValueError:
            raise self.fail(f"{key!r} is not hexadecimal") from None
        if len(value) != size:
            raise self.fail(f"{key!r} must be {size} bytes")
        return value

    def enum(self, key: str, kind: type[Any]) -> Any:
        try:
            return kind(self.text(key))
        except ValueError:
            raise self.fail(f"{key!r} has an unknown value") from None


class JournalFileReader:
    """Reads an export's records in their sections' order, one line at a time.

    Call header(), accounts(), checkpoints(), entries(), holds(), head(), end() in turn; each
    section may be empty except the header, head and end.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = enumerate(lines, start=1)
        self._pending: _Fields | None = None
        self._section = -1

    def _next(self) -> _Fields | None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        for number, text in self._lines:
            if len(text) > MAX_LINE_CHARS:
                raise AuditInputError("journal_file_malformed", "the line is too long", number)
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise AuditInputError(
                    "journal_file_malformed", f"not JSON: {error.msg}", number
                ) from None
            if not isinstance(record, dict) or record.get("record") not in _ORDER:
                raise AuditInputError(
                    "journal_file_malformed", "not a record of a journal export", number
                )
            return _Fields(record, number)
        return None

    def _section_of(self, kind: str) -> Iterator[_Fields]:
        """The consecutive records of one kind; stops before a record of a later section."""
        wanted = _ORDER.index(kind)
        while True:
            fields = self._next()
            if fields is None:
                return
            position = _ORDER.index(fields.record["record"])
            if position == wanted:
                self._section = wanted
                yield fields
                continue
            if position < wanted or position < self._section:
                raise fields.fail(f"a {fields.record['record']} record is out of its place")
            self._pending = fields
            return

    def _one(self, kind: str) -> _Fields:
        records = self._section_of(kind)
        first = next(records, None)
        if first is None and self._pending is not None:
            raise self._pending.fail(f"a {kind} record was expected here")
        if first is None:
            raise AuditInputError(
                "journal_file_incomplete", f"the file has no {kind} record: it was cut"
            )
        if next(records, None) is not None:
            raise first.fail(f"the file has more than one {kind} record")
        return first

    def header(self) -> Header:
        fields = self._one("header")
        if fields.value("format") != FORMAT:
            raise fields.fail("this is not a RolloN journal export")
        if fields.value("version") != VERSION:
            raise fields.fail(f"version {fields.value('version')!r} is not supported")
        keys = fields.value("public_keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise fields.fail("'public_keys' must be a list of PEM texts")
        try:
            loaded = [load_public_key_pem(k) for k in keys]
        except ValueError:
            raise fields.fail("a public key is not an Ed25519 PEM key") from None
        return Header(fields.req_int("exported_at_ns", minimum=0), loaded)

    def accounts(self) -> Iterator[Account]:
        for f in self._section_of("account"):
            yield Account(
                id=f.uuid("id"),
                ledger=f.enum("ledger", LedgerCode),
                kind=f.enum("kind", AccountKind),
                name=f.text("name"),
                no_overdraft=f.flag("no_overdraft"),
                closed=f.flag("closed"),
                created_at_ns=f.req_int("created_at_ns", minimum=0),
                debits_posted=f.req_int("debits_posted"),
                credits_posted=f.req_int("credits_posted"),
                debits_pending=f.req_int("debits_pending"),
                credits_pending=f.req_int("credits_pending"),
            )

    def checkpoints(self) -> Iterator[Checkpoint]:
        for f in self._section_of("checkpoint"):
            yield Checkpoint(
                seq=f.req_int("seq", minimum=1),
                hash=f.hex("hash", 32),
                timestamp_ns=f.req_int("timestamp_ns", minimum=0),
                key_id=f.text("key_id"),
                signature=f.hex("signature", 64),
            )

    def entries(self) -> Iterator[JournalEntry]:
        for f in self._section_of("entry"):
            try:
                flags = TransferFlag(f.req_int("flags", minimum=0))
            except ValueError:
                raise f.fail("'flags' holds unknown bits") from None
            transfer = Transfer(
                id=f.uuid("id"),
                debit_account_id=f.uuid("debit_account_id"),
                credit_account_id=f.uuid("credit_account_id"),
                amount=f.req_int("amount", minimum=0),
                ledger=f.enum("ledger", LedgerCode),
                code=f.enum("code", TransferCode),
                flags=flags,
                pending_id=f.optional_uuid("pending_id"),
                timeout_s=f.req_int("timeout_s", minimum=0),
                memo=f.text("memo"),
                event_time_ns=f.integer("event_time_ns", minimum=0, optional=True),
            )
            yield JournalEntry(
                seq=f.req_int("seq", minimum=1),
                timestamp_ns=f.req_int("timestamp_ns", minimum=0),
                transfer=transfer,
                expires_at_ns=f.integer("expires_at_ns", minimum=0, optional=True),
                debit_balance_after=f.req_int("debit_balance_after"),
                credit_balance_after=f.req_int("credit_balance_after"),
                prev_hash=f.hex("prev_hash", 32),
                hash=f.hex("hash", 32),
            )

    def holds(self) -> Iterator[UUID]:
        for f in self._section_of("hold"):
            yield f.uuid("transfer_id")

    def head(self) -> ChainHead:
        f = self._one("head")
        return ChainHead(
            seq=f.req_int("seq", minimum=0),
            hash=f.hex("hash", 32),
            timestamp_ns=f.req_int("timestamp_ns", minimum=0),
        )

    def end(self) -> Trailer:
        f = self._one("end")
        trailer = Trailer(
            accounts=f.req_int("accounts", minimum=0),
            checkpoints=f.req_int("checkpoints", minimum=0),
            entries=f.req_int("entries", minimum=0),
            holds=f.req_int("holds", minimum=0),
        )
        extra = self._next()
        if extra is not None:
            raise extra.fail("records follow the end record")
        return trailer
