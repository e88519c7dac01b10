"""Verify a journal export on your own machine, with no database:

    python -m rollon.ledger.audit.offline_verify EXPORT.jsonl [--public-key KEY.pem ...]

Recomputes every hash of the chain, checks the signed checkpoints, replays every balance and
checks the invariants, exactly as `rollon audit verify` does on the database (the same
`JournalReplay`). Pass the association's public key (GET /v1/keys) with --public-key: the keys
inside the file only prove that the file agrees with itself. Exit 0 only when all holds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rollon.ledger.accounts import Balances
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.journal_file import JournalFileReader, bounded_lines
from rollon.ledger.keys import load_public_key_pem
from rollon.ledger.verify import JournalReplay, Problem, VerifyReport

Progress = Callable[[int], None]
_PROGRESS_EVERY = 10_000


@dataclass(frozen=True, slots=True)
class OfflineReport:
    """The verification of one export file."""

    report: VerifyReport
    exported_at_ns: int
    keys_pinned: bool  # checked against keys the auditor brought, not the file's own

    @property
    def ok(self) -> bool:
        return self.report.ok


def verify_lines(
    lines: Iterable[str],
    trusted_keys: Sequence[Ed25519PublicKey] | None = None,
    progress: Progress | None = None,
) -> OfflineReport:
    """Verify an export given as lines. Raises AuditInputError if it is not a readable
    export (the error names the line); tampering inside a readable export is reported."""
    reader = JournalFileReader(lines)
    header = reader.header()
    accounts = list(reader.accounts())
    signed = list(reader.checkpoints())
    keys = list(trusted_keys) if trusted_keys is not None else list(header.public_keys)
    replay = JournalReplay({a.id: (a.ledger, a.no_overdraft) for a in accounts}, signed, keys)
    for entry in reader.entries():
        replay.feed(entry)
        if progress is not None and replay.report.entries_checked % _PROGRESS_EVERY == 0:
            progress(replay.report.entries_checked)
    open_holds = list(reader.holds())
    head = reader.head()
    trailer = reader.end()
    stored = [
        Balances(
            a.id,
            a.ledger,
            a.no_overdraft,
            a.closed,
            a.debits_posted,
            a.credits_posted,
            a.debits_pending,
            a.credits_pending,
        )
        for a in accounts
    ]
    report = replay.finish(stored, open_holds, head)
    counted = (len(accounts), len(signed), report.entries_checked, len(open_holds))
    declared = (trailer.accounts, trailer.checkpoints, trailer.entries, trailer.holds)
    if counted != declared:
        report.problems.insert(
            0,
            Problem(
                "export_incomplete",
                f"the file declares {declared[2]} entries, {declared[0]} accounts, "
                f"{declared[1]} checkpoints and {declared[3]} holds but holds {counted[2]}, "
                f"{counted[0]}, {counted[1]} and {counted[3]}: lines were removed or added",
            ),
        )
    return OfflineReport(report, header.exported_at_ns, trusted_keys is not None)


def verify_file(
    path: Path,
    trusted_keys: Sequence[Ed25519PublicKey] | None = None,
    progress: Progress | None = None,
) -> OfflineReport:
    """Verify an export file, reading it a line at a time."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return verify_lines(bounded_lines(handle), trusted_keys, progress)
    except UnicodeDecodeError:
        raise AuditInputError("journal_file_malformed", "the file is not UTF-8 text") from None


def describe(report: VerifyReport) -> list[str]:
    """A verification report in lines for people: the verdict first, then each problem."""
    verdict = "OK: the journal and every invariant hold" if report.ok else "FAILED"
    lines = [
        verdict,
        f"entries checked: {report.entries_checked}, last entry: {report.last_seq}",
        f"checkpoints checked: {report.checkpoints_checked}, "
        f"signed through entry {report.signed_through_seq}",
    ]
    unsigned = report.last_seq - report.signed_through_seq
    if report.ok and unsigned > 0:
        lines.append(f"note: the last {unsigned} entries are covered by no signature yet")
    for problem in report.problems:
        where = []
        if problem.seq is not None:
            where.append(f"seq {problem.seq}")
        if problem.transfer_id is not None:
            where.append(f"transfer {problem.transfer_id}")
        if problem.account_id is not None:
            where.append(f"account {problem.account_id}")
        suffix = f" [{', '.join(where)}]" if where else ""
        lines.append(f"- {problem.kind}: {problem.message}{suffix}")
    if report.truncated:
        lines.append("- (more problems were found than are listed)")
    return lines


def load_keys(paths: Sequence[Path]) -> list[Ed25519PublicKey]:
    """Public keys from PEM files; refuses anything that is not an Ed25519 public key."""
    keys = []
    for path in paths:
        try:
            keys.append(load_public_key_pem(path.read_text(encoding="ascii")))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise AuditInputError(
                "public_key_unreadable", f"{path}: not an Ed25519 public key in PEM ({error})"
            ) from None
    return keys


def main(argv: list[str] | None = None) -> int:
    """Command line: exit 0 when the export verifies, 1 when it does not, 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m rollon.ledger.audit.offline_verify", description=__doc__
    )
    parser.add_argument("file", type=Path, help="a journal export (rollon export --format journal)")
    parser.add_argument(
        "--public-key",
        type=Path,
        action="append",
        default=[],
        help="a trusted public key (PEM); repeat for several",
    )
    args = parser.parse_args(argv)
    try:
        keys = load_keys(args.public_key) if args.public_key else None
        outcome = verify_file(args.file, keys)
    except AuditInputError as error:
        print(f"error ({error.code}): {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error (file_unreadable): {error}", file=sys.stderr)
        return 2
    for line in describe(outcome.report):
        print(line)
    if not outcome.keys_pinned:
        print(
            "warning: checked with the keys inside the file; pass --public-key with the "
            "association's key to rule out a re-signed copy",
            file=sys.stderr,
        )
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
