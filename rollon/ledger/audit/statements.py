"""Bank statements of the guarantee fund's account, as the bank sends them: ISO 20022
CAMT.053 (BkToCstmrStmt, any version) or CSV. Pure parsing, no database.

Amounts become signed centimes (money into the account positive) without a float ever
holding them. Anything that does not read as a statement is refused with a stable code and,
where it helps, the line of the file: nothing of a refused file is kept.

CSV: a header row, then one row per booked line; `;`, `,` or tab separated (found from the
header). Columns, in any order and case: `booking_date` (or `date`), then either `amount`
(signed) or `debit` and `credit` (unsigned, one of them empty); optional `value_date`,
`currency` (EUR only), `reference`, `counterparty`, `description`. Dates YYYY-MM-DD or
DD/MM/YYYY; amounts "1234.56", "-1 234,56" (two decimals at most).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from rollon.ledger.audit.errors import AuditInputError

MAX_STATEMENT_BYTES = 10 * 1024 * 1024
MAX_STATEMENT_LINES = 100_000
MAX_TEXT_CHARS = 500
CURRENCY = "EUR"
_CAMT_NAMESPACE = re.compile(r"^\{urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.\d{2}\}Document$")
_AMOUNT = re.compile(r"^(?P<sign>[-+]?)(?P<units>\d{1,15})(?:[.,](?P<cents>\d{1,2}))?$")
_OPENING_CODES = ("OPBD", "PRCD")
_CLOSING_CODES = ("CLBD",)

SourceFormat = Literal["camt.053", "csv"]


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One booked movement of the account: `amount` in centimes, positive when money came in."""

    line_no: int  # 1-based, in the order of the file
    booking_date: date
    value_date: date | None
    amount: int
    reference: str  # the end-to-end id or bank reference, as given
    counterparty: str
    description: str  # remittance information and the bank's own wording

    @property
    def text(self) -> str:
        """Everything a reference may be found in."""
        return f"{self.reference} {self.description}"


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of one account: its period, balances (CAMT only) and booked lines."""

    source_format: SourceFormat
    statement_ref: str
    account_iban: str
    opening_balance: int | None  # CSV files carry no balances
    closing_balance: int | None
    from_date: date
    to_date: date
    lines: tuple[StatementLine, ...]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


def parse_statement(data: bytes) -> Statement:
    """Read a statement, CAMT.053 if it is XML, CSV otherwise."""
    if not data.strip():
        raise AuditInputError("statement_empty", "the file is empty")
    if len(data) > MAX_STATEMENT_BYTES:
        raise AuditInputError(
            "statement_too_large", f"a statement file holds {MAX_STATEMENT_BYTES} bytes at most"
        )
    start = data.lstrip(codecs.BOM_UTF8).lstrip()
    return parse_camt053(data) if start.startswith(b"<") else parse_csv_statement(data)


def _amount(text: str, *, line: int | None = None) -> int:
    """Signed centimes from "1234.56", "-12,5", "1 234,56"; no float involved."""
    cleaned = re.sub(r"[\s\u00a0\u202f]", "", text)
    match = _AMOUNT.match(cleaned)
    if match is None:
        raise AuditInputError(
            "statement_bad_amount", f"{text.strip()!r} is not an amount such as -12,50", line
        )
    cents_text = match.group("cents") or "0"
    cents = int(cents_text) * (10 if len(cents_text) == 1 else 1)
    value = int(match.group("units")) * 100 + cents
    return -value if match.group("sign") == "-" else value


def _date(text: str, *, line: int | None = None) -> date:
    cleaned = text.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(cleaned, pattern).date()
        except ValueError:
            continue
    # CAMT date-times: 2025-03-01T10:15:00+01:00; the booking day is their date part.
    if re.match(r"^\d{4}-\d{2}-\d{2}T", cleaned):
        return _date(cleaned[:10], line=line)
    raise AuditInputError(
        "statement_bad_date", f"{cleaned!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)", line
    )


def _clip(text: str) -> str:
    return " ".join(text.split())[:MAX_TEXT_CHARS]


def _checked(statement: Statement) -> Statement:
    if not statement.lines and statement.opening_balance is None:
        raise AuditInputError("statement_empty", "the statement holds no booked line")
    if len(statement.lines) > MAX_STATEMENT_LINES:
        raise AuditInputError(
            "statement_too_large", f"a statement holds {MAX_STATEMENT_LINES} lines at most"
        )
    if statement.from_date > statement.to_date:
        raise AuditInputError("statement_bad_date", "the statement ends before it starts")
    if statement.opening_balance is not None and statement.closing_balance is not None:
        expected = statement.opening_balance + statement.total
        if expected != statement.closing_balance:
            raise AuditInputError(
                "statement_unbalanced",
                f"opening balance {statement.opening_balance} plus the lines "
                f"({statement.total}) gives {expected}, not the closing balance "
                f"{statement.closing_balance} (centimes): the file is incomplete",
            )
    return statement


# -- CAMT.053 ---------------------------------------------------------------------------------
class _Camt:
    """Namespace-aware lookups inside one CAMT document."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace

    def path(self, steps: str) -> str:
        return "/".join(f"{{{self.ns}}}{step}" for step in steps.split("/"))

    def find(self, element: ET.Element, steps: str) -> ET.Element | None:
        return element.find(self.path(steps))

    def text(self, element: ET.Element, steps: str) -> str:
        found = self.find(element, steps)
        return "" if found is None or found.text is None else found.text.strip()

    def required(self, element: ET.Element, steps: str, what: str) -> str:
        value = self.text(element, steps)
        if not value:
            raise AuditInputError("camt_missing_field", f"the statement has no {what} ({steps})")
        return value

    def signed_amount(self, element: ET.Element, what: str) -> int:
        amount = self.find(element, "Amt")
        if amount is None or amount.text is None:
            raise AuditInputError("camt_missing_field", f"{what} has no amount")
        currency = amount.get("Ccy", "")
        if currency != CURRENCY:
            raise AuditInputError(
                "statement_currency_not_eur",
                f"{what} is in {currency or 'no currency'}; the guarantee fund is in euros",
            )
        value = _amount(amount.text)
        if value < 0:
            raise AuditInputError("statement_bad_amount", f"{what} has a negative amount")
        indicator = self.text(element, "CdtDbtInd")
        if indicator not in ("CRDT", "DBIT"):
            raise AuditInputError("camt_missing_field", f"{what} is neither CRDT nor DBIT")
        return value if indicator == "CRDT" else -value

    def day(self, element: ET.Element, steps: str) -> date | None:
        for leaf in ("Dt", "DtTm"):
            value = self.text(element, f"{steps}/{leaf}")
            if value:
                return _date(value)
        return None


def parse_camt053(data: bytes) -> Statement:
    """Read an ISO 20022 CAMT.053 bank-to-customer statement holding one statement."""
    try:
        # defusedxml: no DTD, no entity, no external reference is ever expanded.
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise AuditInputError(
            "camt_doctype_not_allowed", "a CAMT.053 file has no DOCTYPE or entity declarations"
        ) from None
    except ET.ParseError as error:
        raise AuditInputError("camt_malformed_xml", f"the XML does not parse: {error}") from None
    if not _CAMT_NAMESPACE.match(root.tag):
        raise AuditInputError(
            "camt_not_camt053",
            "this XML is not an ISO 20022 camt.053 document (BkToCstmrStmt)",
        )
    camt = _Camt(root.tag[1 : root.tag.index("}")])
    statements = root.findall(camt.path("BkToCstmrStmt/Stmt"))
    if len(statements) != 1:
        raise AuditInputError(
            "camt_statement_count",
            f"the file holds {len(statements)} statements; send one statement per file",
        )
    stmt = statements[0]
    iban = camt.text(stmt, "Acct/Id/IBAN") or camt.text(stmt, "Acct/Id/Othr/Id")
    if not iban:
        raise AuditInputError("camt_missing_field", "the statement names no account (Acct/Id)")
    currency = camt.text(stmt, "Acct/Ccy")
    if currency and currency != CURRENCY:
        raise AuditInputError(
            "statement_currency_not_eur", f"the account is in {currency}, not in euros"
        )
    opening = closing = None
    opening_day = closing_day = None
    for balance in stmt.findall(camt.path("Bal")):
        code = camt.text(balance, "Tp/CdOrPrtry/Cd")
        if code in _OPENING_CODES and opening is None:
            opening, opening_day = (
                camt.signed_amount(balance, "the opening balance"),
                camt.day(balance, "Dt"),
            )
        elif code in _CLOSING_CODES:
            closing, closing_day = (
                camt.signed_amount(balance, "the closing balance"),
                camt.day(balance, "Dt"),
            )
    lines = _camt_lines(camt, stmt)
    days = [line.booking_date for line in lines]
    from_text = camt.text(stmt, "FrToDt/FrDtTm")
    to_text = camt.text(stmt, "FrToDt/ToDtTm")
    from_day = _date(from_text) if from_text else (min(days) if days else opening_day)
    to_day = _date(to_text) if to_text else (max(days) if days else closing_day)
    if from_day is None or to_day is None:
        raise AuditInputError("camt_missing_field", "the statement has no period (FrToDt)")
    return _checked(
        Statement(
            source_format="camt.053",
            statement_ref=_clip(camt.required(stmt, "Id", "identification")),
            account_iban=iban.replace(" ", "").upper(),
            opening_balance=opening,
            closing_balance=closing,
            from_date=from_day,
            to_date=to_day,
            lines=tuple(lines),
        )
    )


def _camt_lines(camt: _Camt, stmt: ET.Element) -> list[StatementLine]:
    """Booked entries; an entry that batches several transactions with their own amounts
    (a SEPA batch of payouts) becomes one line per transaction, so each can be matched."""
    lines: list[StatementLine] = []
    for number, entry in enumerate(stmt.findall(camt.path("Ntry")), start=1):
        status = camt.text(entry, "Sts/Cd") or camt.text(entry, "Sts")
        if status != "BOOK":
            continue  # pending and informational entries are not in the balance yet
        what = f"entry {number}"
        amount = camt.signed_amount(entry, what)
        booked = camt.day(entry, "BookgDt")
        if booked is None:
            raise AuditInputError("camt_missing_field", f"{what} has no booking date")
        valued = camt.day(entry, "ValDt")
        bank_ref = camt.text(entry, "AcctSvcrRef")
        extra = camt.text(entry, "AddtlNtryInf")
        details = entry.findall(camt.path("NtryDtls/TxDtls"))
        parts = [_camt_detail(camt, d, amount) for d in details]
        split = len(parts) > 1 and all(p[0] is not None for p in parts)
        if split and sum(p[0] or 0 for p in parts) != amount:
            split = False  # the details do not add up to the entry: keep the entry whole
        if not split:
            _, reference, counterparty, remittance = (
                parts[0] if len(parts) == 1 else (None, "", "", "")
            )
            parts = [(amount, reference or bank_ref, counterparty, remittance)]
        for part_amount, reference, counterparty, remittance in parts:
            assert part_amount is not None
            if len(lines) >= MAX_STATEMENT_LINES:
                raise AuditInputError(
                    "statement_too_large", f"a statement holds {MAX_STATEMENT_LINES} lines at most"
                )
            lines.append(
                StatementLine(
                    line_no=len(lines) + 1,
                    booking_date=booked,
                    value_date=valued,
                    amount=part_amount,
                    reference=_clip(reference or bank_ref),
                    counterparty=_clip(counterparty),
                    description=_clip(f"{remittance} {extra}"),
                )
            )
    return lines


def _camt_detail(
    camt: _Camt, detail: ET.Element, entry_amount: int
) -> tuple[int | None, str, str, str]:
    """(signed amount if given, reference, counterparty, remittance) of one transaction."""
    amount_element = camt.find(detail, "Amt")
    if amount_element is None:
        amount_element = camt.find(detail, "AmtDtls/TxAmt/Amt")
    amount = None
    if amount_element is not None and amount_element.text:
        value = _amount(amount_element.text)
        amount = value if entry_amount >= 0 else -value
    reference = camt.text(detail, "Refs/EndToEndId")
    if reference.upper() == "NOTPROVIDED":
        reference = ""
    reference = reference or camt.text(detail, "Refs/InstrId") or camt.text(detail, "Refs/TxId")
    side = "Dbtr" if entry_amount >= 0 else "Cdtr"
    counterparty = camt.text(detail, f"RltdPties/{side}/Nm") or camt.text(
        detail, f"RltdPties/{side}/Pty/Nm"
    )
    remittance = " ".join((u.text or "").strip() for u in detail.findall(camt.path("RmtInf/Ustrd")))
    return amount, reference, counterparty, remittance


# -- CSV --------------------------------------------------------------------------------------
_ALIASES = {
    "booking_date": ("booking_date", "date"),
    "value_date": ("value_date",),
    "amount": ("amount",),
    "debit": ("debit",),
    "credit": ("credit",),
    "currency": ("currency",),
    "reference": ("reference",),
    "counterparty": ("counterparty",),
    "description": ("description",),
}


def parse_csv_statement(data: bytes) -> Statement:
    """Read a CSV statement in the format this module's docstring describes."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AuditInputError("csv_not_utf8", "the CSV file is not UTF-8 text") from None
    first_line = text.split("\n", 1)[0]
    delimiter = max(";,\t", key=first_line.count)
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(rows)]
    except StopIteration:
        raise AuditInputError("statement_empty", "the file is empty") from None
    except csv.Error as error:
        raise AuditInputError("csv_malformed", f"not CSV: {error}", 1) from None
    columns: dict[str, int] = {}
    for name, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in header:
                columns[name] = header.index(alias)
                break
    if "booking_date" not in columns:
        raise AuditInputError("csv_missing_column", "the CSV has no booking_date column", 1)
    if "amount" not in columns and not {"debit", "credit"} <= columns.keys():
        raise AuditInputError(
            "csv_missing_column", "the CSV needs an amount column, or debit and credit", 1
        )
    lines: list[StatementLine] = []
    try:
        for number, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(lines) >= MAX_STATEMENT_LINES:
                raise AuditInputError(
                    "statement_too_large", f"a statement holds {MAX_STATEMENT_LINES} lines at most"
                )
            lines.append(_csv_line(row, columns, number, len(lines) + 1))
    except csv.Error as error:
        raise AuditInputError("csv_malformed", f"not CSV: {error}", rows.line_num) from None
    if not lines:
        raise AuditInputError("statement_empty", "the CSV holds no line")
    return _checked(
        Statement(
            source_format="csv",
            statement_ref="",
            account_iban="",
            opening_balance=None,
            closing_balance=None,
            from_date=min(line.booking_date for line in lines),
            to_date=max(line.booking_date for line in lines),
            lines=tuple(lines),
        )
    )


def _csv_line(row: list[str], columns: dict[str, int], number: int, line_no: int) -> StatementLine:
    def cell(name: str) -> str:
        index = columns.get(name)
        if index is None:
            return ""
        if index >= len(row):
            raise AuditInputError(
                "csv_bad_row", f"the row has {len(row)} cells, fewer than the header", number
            )
        return row[index].strip()

    currency = cell("currency") or CURRENCY
    if currency.upper() != CURRENCY:
        raise AuditInputError(
            "statement_currency_not_eur", f"a line is in {currency}, not in euros", number
        )
    if "amount" in columns:
        if not cell("amount"):
            raise AuditInputError("statement_bad_amount", "the amount is empty", number)
        amount = _amount(cell("amount"), line=number)
    else:
        debit, credit = cell("debit"), cell("credit")
        if bool(debit) == bool(credit):
            raise AuditInputError(
                "statement_bad_amount", "give either a debit or a credit, not both", number
            )
        value = _amount(debit or credit, line=number)
        if value < 0:
            raise AuditInputError(
                "statement_bad_amount", "debit and credit are given without a sign", number
            )
        amount = value if credit else -value
    if amount == 0:
        raise AuditInputError("statement_bad_amount", "a line moves no money", number)
    value_date = cell("value_date")
    return StatementLine(
        line_no=line_no,
        booking_date=_date(cell("booking_date"), line=number),
        value_date=_date(value_date, line=number) if value_date else None,
        amount=amount,
        reference=_clip(cell("reference")),
        counterparty=_clip(cell("counterparty")),
        description=_clip(cell("description")),
    )
