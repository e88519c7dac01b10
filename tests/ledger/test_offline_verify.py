"""The journal proof, from the database and from an export file with no database: clean books
verify; every kind of tampering (edited, deleted, inserted, reordered) is found and named,
whether done with plain SQL on the database or by editing the export file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from rollon.ledger import chart
from rollon.ledger.accounts import LedgerCode
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.exports import ExportFormat, export
from rollon.ledger.audit.journal_file import entry_record
from rollon.ledger.audit.offline_verify import describe, main, verify_file, verify_lines
from rollon.ledger.journal import (
    GENESIS,
    Checkpoint,
    Recorded,
    chain,
    checkpoint_message,
    key_id,
    recompute_hash,
)
from rollon.ledger.keys import public_key_pem
from rollon.ledger.service import Ledger
from rollon.ledger.transfers import JournalEntry, Transfer, TransferCode
from rollon.ledger.verify import (
    MAX_PROBLEMS,
    RECENT_WINDOW,
    JournalReplay,
    VerifyReport,
    verify_database,
)
from tests.ledger.audit_books import (
    Books,
    build_books,
    entry_at,
    last_seq,
    sql_delete,
    sql_delete_and_renumber,
    sql_edit_amount,
    sql_insert_copy_at_end,
    sql_rewrite_with_new_hash,
    sql_swap,
)
from tests.ledger.builders import START_NS, ManualClock

PAYMENT_SEQ = 9  # build_books: the first payment, in the middle of the journal


@pytest.fixture
def books(ledger: Ledger, clock: ManualClock) -> Books:
    return build_books(ledger, clock)


def journal_text(engine: Engine, key: Ed25519PrivateKey) -> str:
    return "".join(export(engine, ExportFormat.JOURNAL, public_keys=[key.public_key()]))


def named(report: VerifyReport, kind: str, seq: int, transfer_id: UUID | None = None) -> bool:
    return any(
        p.kind == kind and p.seq == seq and (transfer_id is None or p.transfer_id == transfer_id)
        for p in report.problems
    )


def kinds(report: VerifyReport) -> set[str]:
    return {p.kind for p in report.problems}


# -- clean books -------------------------------------------------------------------------------
def test_clean_books_verify_from_database_and_file(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    from_db = verify_database(engine, [signing_key.public_key()])
    assert from_db.ok, from_db.problems
    path = tmp_path / "journal.jsonl"
    path.write_text(journal_text(engine, signing_key), encoding="utf-8")
    outcome = verify_file(path, [signing_key.public_key()])
    assert outcome.ok, outcome.report.problems
    assert outcome.keys_pinned
    assert outcome.report.entries_checked == from_db.entries_checked == last_seq(engine)
    assert outcome.report.signed_through_seq == last_seq(engine)  # build_books signs the head
    assert outcome.report.checkpoints_checked == from_db.checkpoints_checked >= 2
    assert describe(outcome.report)[0].startswith("OK")


# -- tampering with plain SQL ------------------------------------------------------------------
def test_sql_edit_is_named(engine: Engine, books: Books, signing_key: Ed25519PrivateKey) -> None:
    edited = entry_at(engine, PAYMENT_SEQ).transfer.id
    sql_edit_amount(engine, PAYMENT_SEQ)
    report = verify_database(engine, [signing_key.public_key()])
    assert named(report, "entry_edited", PAYMENT_SEQ, edited)
    assert "balance_mismatch" in kinds(report)  # the stored balances no longer add up either


def test_sql_rewrite_with_a_recomputed_hash_is_named(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    rewritten = entry_at(engine, PAYMENT_SEQ).transfer.id
    sql_rewrite_with_new_hash(engine, PAYMENT_SEQ)
    report = verify_database(engine, [signing_key.public_key()])
    assert named(report, "entry_edited", PAYMENT_SEQ, rewritten)


def test_sql_rewrite_of_the_signed_last_entry_breaks_its_checkpoint(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    last = last_seq(engine)
    rewritten = entry_at(engine, last).transfer.id
    sql_rewrite_with_new_hash(engine, last)
    report = verify_database(engine, [signing_key.public_key()])
    assert named(report, "checkpoint_mismatch", last, rewritten)


def test_sql_delete_is_named(engine: Engine, books: Books, signing_key: Ed25519PrivateKey) -> None:
    sql_delete(engine, PAYMENT_SEQ)
    report = verify_database(engine, [signing_key.public_key()])
    assert named(report, "entry_deleted", PAYMENT_SEQ)
    assert "entry_edited" not in kinds(report)


def test_sql_delete_of_the_last_entry_is_named(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    last = last_seq(engine)
    sql_delete(engine, last)
    report = verify_database(engine, [signing_key.public_key()])
    assert named(report, "entry_deleted", last)
    assert "journal_truncated" in kinds(report)  # its checkpoint now points past the end


def test_sql_delete_and_renumber_is_named(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    moved = entry_at(engine, PAYMENT_SEQ + 1).transfer.id
    sql_delete_and_renumber(engine, PAYMENT_SEQ)
    report = verify_database(engine, [signing_key.public_key()])
    assert named(report, "entry_deleted", PAYMENT_SEQ)
    # The entries after it were renumbered: one problem for the whole run.
    assert named(report, "entry_reordered", PAYMENT_SEQ + 1, moved)
    assert sum(p.kind == "entry_reordered" for p in report.problems) == 1


def test_sql_insert_is_named(engine: Engine, books: Books, signing_key: Ed25519PrivateKey) -> None:
    forged = sql_insert_copy_at_end(engine, PAYMENT_SEQ)
    report = verify_database(engine, [signing_key.public_key()])
    assert named(report, "entry_inserted", last_seq(engine), forged)


def test_sql_reorder_is_named(engine: Engine, books: Books, signing_key: Ed25519PrivateKey) -> None:
    first = entry_at(engine, PAYMENT_SEQ).transfer.id
    second = entry_at(engine, PAYMENT_SEQ + 1).transfer.id
    sql_swap(engine, PAYMENT_SEQ, PAYMENT_SEQ + 1)
    report = verify_database(engine, [signing_key.public_key()])
    assert named(report, "entry_reordered", PAYMENT_SEQ, first)
    assert named(report, "entry_reordered", PAYMENT_SEQ + 1, second)
    assert not kinds(report) & {"entry_edited", "entry_deleted", "entry_inserted"}


# -- tampering with the export file -----------------------------------------------------------
Edit = Callable[[list[str], list[int]], None]


def _tampered(
    engine: Engine, key: Ed25519PrivateKey, edit: Edit, pinned: bool = True
) -> VerifyReport:
    lines = journal_text(engine, key).splitlines(keepends=True)
    entry_lines = [i for i, line in enumerate(lines) if line.startswith('{"record":"entry"')]
    edit(lines, entry_lines)
    return verify_lines(lines, [key.public_key()] if pinned else None).report


def _record(line: str) -> dict[str, object]:
    record = json.loads(line)
    assert isinstance(record, dict)
    return record


def _set(lines: list[str], index: int, **changes: object) -> None:
    lines[index] = json.dumps({**_record(lines[index]), **changes}) + "\n"


def test_file_edit_is_named(engine: Engine, books: Books, signing_key: Ed25519PrivateKey) -> None:
    edited = entry_at(engine, PAYMENT_SEQ).transfer.id

    def edit(lines: list[str], entries: list[int]) -> None:
        i = entries[PAYMENT_SEQ - 1]
        _set(lines, i, amount=int(str(_record(lines[i])["amount"])) + 100)

    assert named(_tampered(engine, signing_key, edit), "entry_edited", PAYMENT_SEQ, edited)


def test_file_rewrite_with_a_recomputed_hash_is_named(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    entry = entry_at(engine, PAYMENT_SEQ)
    forged = replace(entry, transfer=replace(entry.transfer, memo="forged"))
    forged = replace(forged, hash=recompute_hash(forged))

    def edit(lines: list[str], entries: list[int]) -> None:
        lines[entries[PAYMENT_SEQ - 1]] = json.dumps(entry_record(forged)) + "\n"

    report = _tampered(engine, signing_key, edit)
    assert named(report, "entry_edited", PAYMENT_SEQ, entry.transfer.id)


def test_file_delete_is_named(engine: Engine, books: Books, signing_key: Ed25519PrivateKey) -> None:
    def edit(lines: list[str], entries: list[int]) -> None:
        del lines[entries[PAYMENT_SEQ - 1]]

    report = _tampered(engine, signing_key, edit)
    assert named(report, "entry_deleted", PAYMENT_SEQ)
    assert "export_incomplete" in kinds(report)


def test_file_duplicate_line_is_named_as_inserted(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    copied = entry_at(engine, PAYMENT_SEQ).transfer.id

    def edit(lines: list[str], entries: list[int]) -> None:
        lines.insert(entries[PAYMENT_SEQ + 2], lines[entries[PAYMENT_SEQ - 1]])

    assert named(_tampered(engine, signing_key, edit), "entry_inserted", PAYMENT_SEQ, copied)


def test_file_made_up_entry_is_named_as_inserted(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    made_up = uuid4()

    def edit(lines: list[str], entries: list[int]) -> None:
        source = _record(lines[entries[PAYMENT_SEQ - 1]])
        forged = {**source, "id": str(made_up), "seq": PAYMENT_SEQ + 1}
        lines.insert(entries[PAYMENT_SEQ], json.dumps(forged) + "\n")

    report = _tampered(engine, signing_key, edit)
    assert named(report, "entry_inserted", PAYMENT_SEQ + 1, made_up)
    assert "entry_edited" not in kinds(report)


def test_file_reorder_is_named(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    moved = entry_at(engine, PAYMENT_SEQ).transfer.id

    def edit(lines: list[str], entries: list[int]) -> None:
        a, b = entries[PAYMENT_SEQ - 1], entries[PAYMENT_SEQ]
        lines[a], lines[b] = lines[b], lines[a]

    report = _tampered(engine, signing_key, edit)
    assert named(report, "entry_reordered", PAYMENT_SEQ, moved)
    assert not kinds(report) & {"entry_edited", "entry_deleted", "entry_inserted"}


def test_file_edited_stored_balance_is_found(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    def edit(lines: list[str], entries: list[int]) -> None:
        i = next(n for n, line in enumerate(lines) if str(books.anne.id) in line)
        _set(lines, i, credits_posted=int(str(_record(lines[i])["credits_posted"])) + 1)

    report = _tampered(engine, signing_key, edit)
    assert any(
        p.kind == "balance_mismatch" and p.account_id == books.anne.id for p in report.problems
    )


def test_a_re_signed_copy_passes_only_when_the_key_is_not_pinned(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    """A forger who edits the journal and signs it again with a key of their own fools a
    check that trusts the file's keys; an auditor who pins the association's key is not."""
    forger = Ed25519PrivateKey.generate()

    def edit(lines: list[str], entries: list[int]) -> None:
        _set(lines, 0, public_keys=[public_key_pem(forger.public_key())])
        for i, line in enumerate(lines):
            record = _record(line)
            if record["record"] == "checkpoint":
                signed = Checkpoint(
                    int(str(record["seq"])),
                    bytes.fromhex(str(record["hash"])),
                    int(str(record["timestamp_ns"])),
                    key_id(forger.public_key()),
                    b"",
                )
                message = checkpoint_message(signed.seq, signed.hash, signed.timestamp_ns)
                _set(
                    lines,
                    i,
                    key_id=signed.key_id,
                    signature=forger.sign(message).hex(),
                )

    assert _tampered(engine, signing_key, edit, pinned=False).ok
    assert "checkpoint_unknown_key" in kinds(_tampered(engine, signing_key, edit, pinned=True))


# -- files that are not exports ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("edit", "code", "line"),
    [
        (lambda lines: lines.__setitem__(3, "{not json\n"), "journal_file_malformed", 4),
        (lambda lines: lines.__delitem__(slice(-2, None)), "journal_file_incomplete", None),
        (lambda lines: lines.__delitem__(0), "journal_file_malformed", 1),
        (
            lambda lines: lines.__setitem__(0, '{"record":"header","format":"x"}\n'),
            "journal_file_malformed",
            1,
        ),
        (lambda lines: lines.append(lines[1]), "journal_file_malformed", None),
        (lambda lines: lines.__setitem__(1, '["a list"]\n'), "journal_file_malformed", 2),
    ],
    ids=["not-json", "cut", "no-header", "not-ours", "trailing-record", "not-a-record"],
)
def test_unreadable_files_are_refused_naming_the_line(
    engine: Engine,
    books: Books,
    signing_key: Ed25519PrivateKey,
    edit: Callable[[list[str]], None],
    code: str,
    line: int | None,
) -> None:
    lines = journal_text(engine, signing_key).splitlines(keepends=True)
    edit(lines)
    with pytest.raises(AuditInputError) as refused:
        verify_lines(lines, [signing_key.public_key()])
    assert refused.value.code == code
    if line is not None:
        assert refused.value.line == line


def test_bad_entry_field_is_refused_naming_the_line(
    engine: Engine, books: Books, signing_key: Ed25519PrivateKey
) -> None:
    lines = journal_text(engine, signing_key).splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if '"record":"entry"' in line)
    _set(lines, index, amount="12,50")
    with pytest.raises(AuditInputError, match="'amount' must be an integer") as refused:
        verify_lines(lines)
    assert refused.value.line == index + 1


# -- the command line --------------------------------------------------------------------------
def test_command_line_exit_codes(
    engine: Engine,
    books: Books,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_file = tmp_path / "association.pem"
    key_file.write_text(public_key_pem(signing_key.public_key()))
    good = tmp_path / "good.jsonl"
    good.write_text(journal_text(engine, signing_key), encoding="utf-8")
    assert main([str(good), "--public-key", str(key_file)]) == 0
    assert capsys.readouterr().out.startswith("OK")

    assert main([str(good)]) == 0
    assert "--public-key" in capsys.readouterr().err  # warned: keys taken from the file

    sql_delete(engine, PAYMENT_SEQ)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(journal_text(engine, signing_key), encoding="utf-8")
    assert main([str(bad), "--public-key", str(key_file)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED") and "entry_deleted" in out

    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\xff\xfe not text")
    assert main([str(garbage)]) == 2
    assert "journal_file_malformed" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl")]) == 2
    assert main([str(good), "--public-key", str(garbage)]) == 2
    assert "public_key_unreadable" in capsys.readouterr().err


# -- long journals: the bounded window ----------------------------------------------------------
LONG = 3 * RECENT_WINDOW


def long_journal(
    count: int = LONG,
) -> tuple[list[JournalEntry], dict[UUID, tuple[LedgerCode, bool]]]:
    """`count` issuances of one centime to one member, chained as the ledger chains them."""
    member = uuid4()
    recorded = [
        Recorded(
            timestamp_ns=START_NS + i,
            transfer=Transfer(
                uuid4(), chart.ISSUANCE.id, member, 1, LedgerCode.RLN, TransferCode.ISSUANCE
            ),
            expires_at_ns=None,
            debit_balance_after=-i,
            credit_balance_after=i,
        )
        for i in range(1, count + 1)
    ]
    entries, _ = chain(GENESIS, recorded)
    ledgers = {chart.ISSUANCE.id: (LedgerCode.RLN, False), member: (LedgerCode.RLN, True)}
    return entries, ledgers


def replay(
    entries: list[JournalEntry], ledgers: dict[UUID, tuple[LedgerCode, bool]]
) -> VerifyReport:
    checker = JournalReplay(ledgers, [], [])
    for entry in entries:
        checker.feed(entry)
    return checker.finish()


def test_long_journal_verifies_and_names_a_deletion_past_the_window() -> None:
    entries, ledgers = long_journal()
    assert replay(entries, ledgers).ok
    gone = entries.pop(100)
    report = replay(entries, ledgers)
    assert named(report, "entry_deleted", gone.seq)


def test_an_entry_moved_far_is_named_where_it_reappears() -> None:
    entries, ledgers = long_journal()
    moved = entries.pop(100)
    entries.append(moved)
    report = replay(entries, ledgers)
    assert named(report, "entry_reordered", moved.seq, moved.transfer.id)


def test_a_journal_broken_everywhere_is_reported_in_bounded_time() -> None:
    entries, ledgers = long_journal()
    broken = [replace(e, transfer=replace(e.transfer, memo="x")) for e in entries]
    started = time.perf_counter()
    report = replay(broken, ledgers)
    assert time.perf_counter() - started < 30
    assert report.truncated and len(report.problems) == MAX_PROBLEMS
    assert all(p.kind == "entry_edited" for p in report.problems)
