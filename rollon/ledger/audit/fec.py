"""The FEC (Fichier des Écritures Comptables, article A47 A-1 du LPF): the 18 columns, one
line per debit and per credit, dates AAAAMMJJ, amounts with a decimal comma.

Each posted transfer is one écriture of two lines: the ledger's debit account on the debit
side, its credit account on the credit side. Journals follow the transfer's purpose and
number their écritures continuously from 1 in each file; PieceRef is the transfer's id and
EcritureLib ends with the journal's seq, so every line leads back to its journal entry.
A period export opens with the balances carried forward (journal AN, one écriture per
ledger). Holds and their release move nothing in the books and are left out. RolloN lines
carry Montantdevise and Idevise RLN (one RolloN is one euro).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date
from uuid import UUID

from sqlalchemy.engine import Connection

from rollon.ledger.accounts import Account, LedgerCode
from rollon.ledger.audit.book_accounts import (
    BookAccount,
    balances_at_seq,
    book_account,
    posted_amount,
    unknown_account,
)
from rollon.ledger.audit.local_time import local_date
from rollon.ledger.audit.snapshot import Period, iter_entries, seq_range
from rollon.ledger.queries import list_accounts
from rollon.ledger.transfers import JournalEntry, TransferCode

COLUMNS = (
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
)
SEPARATORS = ("\t", "|")
JOURNALS: dict[TransferCode, tuple[str, str]] = {
    TransferCode.ISSUANCE: ("EMI", "Émissions de RolloN"),
    TransferCode.TRANSFER: ("VIR", "Virements entre comptes"),
    TransferCode.PAYMENT: ("PAI", "Paiements aux commerçants"),
    TransferCode.REFUND: ("REM", "Remboursements"),
    TransferCode.RECONVERSION: ("REC", "Reconversions en euros"),
    TransferCode.PAYOUT: ("VER", "Versements aux commerçants"),
    TransferCode.FEE: ("COM", "Commissions"),
    TransferCode.CORRECTION: ("COR", "Corrections"),
    TransferCode.EXPIRY: ("EXP", "Expirations"),
}
OPENING_JOURNAL = ("AN", "À nouveaux")

Progress = Callable[[int], None]


def fec_amount(centimes: int) -> str:
    """1250 -> "12,50": no thousands separator, a decimal comma."""
    assert centimes >= 0
    units, cents = divmod(centimes, 100)
    return f"{units},{cents:02d}"


def fec_date(day: date) -> str:
    return day.strftime("%Y%m%d")


def _clean(text: str) -> str:
    """Text for one field: no separator, no line break."""
    return " ".join(text.replace("|", " ").split())


class _Writer:
    def __init__(self, accounts: Mapping[UUID, Account], separator: str) -> None:
        assert separator in SEPARATORS
        self.separator = separator
        self.books: dict[UUID, BookAccount] = {i: book_account(a) for i, a in accounts.items()}
        self.ledgers = {i: a.ledger for i, a in accounts.items()}
        self.numbers: dict[str, int] = {}

    def next_number(self, journal: str) -> str:
        self.numbers[journal] = self.numbers.get(journal, 0) + 1
        return str(self.numbers[journal])

    def line(
        self,
        journal: tuple[str, str],
        number: str,
        day: date,
        account_id: UUID,
        piece_ref: str,
        piece_day: date,
        label: str,
        debit: int,
        credit: int,
    ) -> str:
        book = self.books.get(account_id) or unknown_account(account_id)
        rln = self.ledgers.get(account_id) is LedgerCode.RLN
        fields = (
            journal[0],
            journal[1],
            number,
            fec_date(day),
            book.number,
            book.label,
            book.aux_number,
            book.aux_label,
            piece_ref,
            fec_date(piece_day),
            label,
            fec_amount(debit),
            fec_amount(credit),
            "",
            "",
            fec_date(day),
            fec_amount(debit or credit) if rln else "",
            "RLN" if rln else "",
        )
        return self.separator.join(_clean(f) for f in fields) + "\n"

    def entry(self, entry: JournalEntry) -> str:
        amount = posted_amount(entry)
        if amount == 0:
            return ""
        t = entry.transfer
        journal = JOURNALS[t.code]
        number = self.next_number(journal[0])
        day = local_date(entry.timestamp_ns)
        piece_day = local_date(t.event_time_ns) if t.event_time_ns is not None else day
        label = f"{t.memo or journal[1]} (seq {entry.seq})"
        piece = str(t.id)
        return self.line(
            journal, number, day, t.debit_account_id, piece, piece_day, label, amount, 0
        ) + self.line(journal, number, day, t.credit_account_id, piece, piece_day, label, 0, amount)

    def opening(self, balances: Mapping[UUID, int], day: date) -> str:
        """The balances carried forward: one écriture per ledger, debit balances on the debit
        side. Each ledger's balances sum to zero, so each écriture balances."""
        out = []
        for ledger in LedgerCode:
            lines = [(i, b) for i, b in balances.items() if b != 0 and self.ledgers[i] is ledger]
            if not lines:
                continue
            number = self.next_number(OPENING_JOURNAL[0])
            label = f"À nouveaux {ledger.value}"
            for account_id, balance in sorted(lines, key=lambda x: self.books[x[0]].number):
                debit, credit = (-balance, 0) if balance < 0 else (0, balance)
                out.append(
                    self.line(
                        OPENING_JOURNAL, number, day, account_id, "AN", day, label, debit, credit
                    )
                )
        return "".join(out)


def fec_lines(
    connection: Connection,
    period: Period,
    separator: str = "\t",
    progress: Progress | None = None,
) -> Iterator[str]:
    """The FEC of a period, read from `connection` (use a read snapshot), in chunks."""
    accounts = {a.id: a for a in list_accounts(connection)}
    writer = _Writer(accounts, separator)
    yield separator.join(COLUMNS) + "\n"
    seqs = seq_range(connection, period)
    if period.from_ns is not None and seqs.opening_seq > 0:
        yield writer.opening(
            balances_at_seq(connection, accounts.values(), seqs.opening_seq),
            local_date(period.from_ns),
        )
    done = 0
    for page in iter_entries(connection, seqs.first_seq, seqs.last_seq):
        yield "".join(writer.entry(e) for e in page)
        done += len(page)
        if progress is not None:
            progress(done)
