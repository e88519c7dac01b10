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
from rollon.ledger.audit.local_time import LocalDays, local_date
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
    """A day as the FEC writes it: AAAAMMJJ."""
    return day.strftime("%Y%m%d")


def _clean(text: str) -> str:
    """Text for one field: no separator, no line break."""
    return " ".join(text.replace("|", " ").split())


class _Writer:
    def __init__(self, accounts: Mapping[UUID, Account], separator: str) -> None:
        assert separator in SEPARATORS
        self.separator = separator
        # Per account, its four columns (cleaned once) and whether it is on the RolloN ledger.
        self.columns: dict[UUID, tuple[str, bool]] = {
            i: self._account_columns(book_account(a), a.ledger) for i, a in accounts.items()
        }
        self.numbers: dict[str, int] = {}
        self.days = LocalDays()
        self.day_texts: dict[date, str] = {}

    def _account_columns(self, book: BookAccount, ledger: LedgerCode | None) -> tuple[str, bool]:
        fields = (book.number, book.label, book.aux_number, book.aux_label)
        return self.separator.join(_clean(f) for f in fields), ledger is LedgerCode.RLN

    def day_text(self, day: date) -> str:
        text = self.day_texts.get(day)
        if text is None:
            text = self.day_texts[day] = fec_date(day)
        return text

    def next_number(self, journal: str) -> str:
        self.numbers[journal] = self.numbers.get(journal, 0) + 1
        return str(self.numbers[journal])

    def line(
        self,
        head: str,
        account_id: UUID,
        piece: str,
        debit: int,
        credit: int,
        valid_day: str,
    ) -> str:
        """One line: `head` holds the journal, number and date columns; `piece` the
        reference, its date and the label, all cleaned."""
        known = self.columns.get(account_id)
        if known is None:
            known = self.columns[account_id] = self._account_columns(
                unknown_account(account_id), None
            )
        account, rln = known
        amount = fec_amount(debit or credit)
        sep = self.separator
        return (
            sep.join(
                (
                    head,
                    account,
                    piece,
                    fec_amount(debit),
                    fec_amount(credit),
                    "",
                    "",
                    valid_day,
                    amount if rln else "",
                    "RLN" if rln else "",
                )
            )
            + "\n"
        )

    def entry(self, entry: JournalEntry) -> str:
        amount = posted_amount(entry)
        if amount == 0:
            return ""
        t = entry.transfer
        journal = JOURNALS[t.code]
        sep = self.separator
        day = self.day_text(self.days(entry.timestamp_ns))
        piece_day = day if t.event_time_ns is None else self.day_text(local_date(t.event_time_ns))
        label = _clean(f"{t.memo or journal[1]} (seq {entry.seq})")
        head = sep.join((journal[0], journal[1], self.next_number(journal[0]), day))
        piece = sep.join((str(t.id), piece_day, label))
        return self.line(head, t.debit_account_id, piece, amount, 0, day) + self.line(
            head, t.credit_account_id, piece, 0, amount, day
        )

    def opening(
        self, balances: Mapping[UUID, int], day: date, ledgers: Mapping[UUID, LedgerCode]
    ) -> str:
        """The balances carried forward: one écriture per ledger, debit balances on the debit
        side. Each ledger's balances sum to zero, so each écriture balances."""
        out = []
        text_day = self.day_text(day)
        for ledger in LedgerCode:
            lines = sorted(
                (self.columns[i][0], i, b)
                for i, b in balances.items()
                if b != 0 and ledgers[i] is ledger
            )
            if not lines:
                continue
            head = self.separator.join(
                (*OPENING_JOURNAL, self.next_number(OPENING_JOURNAL[0]), text_day)
            )
            piece = self.separator.join(("AN", text_day, f"À nouveaux {ledger.value}"))
            for _, account_id, balance in lines:
                debit, credit = (-balance, 0) if balance < 0 else (0, balance)
                out.append(self.line(head, account_id, piece, debit, credit, text_day))
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
            {i: a.ledger for i, a in accounts.items()},
        )
    done = 0
    for page in iter_entries(connection, seqs.first_seq, seqs.last_seq):
        yield "".join(writer.entry(e) for e in page)
        done += len(page)
        if progress is not None:
            progress(done)
