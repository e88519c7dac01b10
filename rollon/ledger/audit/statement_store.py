"""Imported bank statements, kept for reconciliation: store once, list, load."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from rollon.ledger.audit.schema import bank_statement_lines, bank_statements
from rollon.ledger.audit.statements import Statement, StatementLine

MAX_LISTED = 500
_INSERT_CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class StoredStatement:
    """A statement as kept: its id, the SHA-256 of the uploaded file, when it came."""

    id: UUID
    file_sha256: str
    imported_at_ns: int
    statement: Statement


def file_digest(data: bytes) -> str:
    """The hex SHA-256 of an uploaded file: the same file is one statement."""
    return hashlib.sha256(data).hexdigest()


def store_statement(
    engine: Engine, data: bytes, statement: Statement, now_ns: int
) -> tuple[StoredStatement, bool]:
    """Keep a parsed statement; the same file twice is stored once. Returns the stored
    statement and whether it is new."""
    digest = file_digest(data)
    existing = load_by_digest(engine, digest)
    if existing is not None:
        return existing, False
    statement_id = uuid4()
    rows = [_line_row(statement_id, line) for line in statement.lines]
    try:
        with engine.begin() as connection:
            connection.execute(
                bank_statements.insert().values(
                    id=statement_id,
                    file_sha256=digest,
                    source_format=statement.source_format,
                    statement_ref=statement.statement_ref,
                    account_iban=statement.account_iban,
                    opening_balance=statement.opening_balance,
                    closing_balance=statement.closing_balance,
                    from_date=statement.from_date,
                    to_date=statement.to_date,
                    line_count=len(statement.lines),
                    imported_at_ns=now_ns,
                )
            )
            for start in range(0, len(rows), _INSERT_CHUNK):
                connection.execute(
                    bank_statement_lines.insert(), rows[start : start + _INSERT_CHUNK]
                )
    except IntegrityError:
        # Another upload of the same file won the race: answer with its statement.
        raced = load_by_digest(engine, digest)
        if raced is None:
            raise
        return raced, False
    return StoredStatement(statement_id, digest, now_ns, statement), True


def _line_row(statement_id: UUID, line: StatementLine) -> dict[str, object]:
    return {
        "statement_id": statement_id,
        "line_no": line.line_no,
        "booking_date": line.booking_date,
        "value_date": line.value_date,
        "amount": line.amount,
        "reference": line.reference,
        "counterparty": line.counterparty,
        "description": line.description,
    }


def load_by_digest(engine: Engine, digest: str) -> StoredStatement | None:
    """The statement uploaded as the file with this digest, if any."""
    with engine.connect() as connection:
        return _find(connection, digest)


def _find(connection: Connection, digest: str) -> StoredStatement | None:
    statement_id = connection.execute(
        sa.select(bank_statements.c.id).where(bank_statements.c.file_sha256 == digest)
    ).scalar_one_or_none()
    return None if statement_id is None else load_statement(connection, statement_id)


def load_statement(connection: Connection, statement_id: UUID) -> StoredStatement | None:
    """A stored statement with its lines, or None."""
    row = connection.execute(
        sa.select(bank_statements).where(bank_statements.c.id == statement_id)
    ).first()
    if row is None:
        return None
    lines = tuple(
        StatementLine(
            line_no=r.line_no,
            booking_date=r.booking_date,
            value_date=r.value_date,
            amount=r.amount,
            reference=r.reference,
            counterparty=r.counterparty,
            description=r.description,
        )
        for r in connection.execute(
            sa.select(bank_statement_lines)
            .where(bank_statement_lines.c.statement_id == statement_id)
            .order_by(bank_statement_lines.c.line_no)
        )
    )
    statement = Statement(
        source_format=row.source_format,
        statement_ref=row.statement_ref,
        account_iban=row.account_iban,
        opening_balance=row.opening_balance,
        closing_balance=row.closing_balance,
        from_date=row.from_date,
        to_date=row.to_date,
        lines=lines,
    )
    return StoredStatement(row.id, row.file_sha256, row.imported_at_ns, statement)


@dataclass(frozen=True, slots=True)
class StatementSummary:
    """A stored statement without its lines, for listings."""

    id: UUID
    source_format: str
    statement_ref: str
    account_iban: str
    from_date: date
    to_date: date
    line_count: int
    imported_at_ns: int


def list_statements(connection: Connection, limit: int = 100) -> list[StatementSummary]:
    """The latest imported statements, newest period first."""
    assert 0 < limit <= MAX_LISTED
    rows = connection.execute(
        sa.select(bank_statements)
        .order_by(bank_statements.c.to_date.desc(), bank_statements.c.imported_at_ns.desc())
        .limit(limit)
    )
    return [
        StatementSummary(
            r.id,
            r.source_format,
            r.statement_ref,
            r.account_iban,
            r.from_date,
            r.to_date,
            r.line_count,
            r.imported_at_ns,
        )
        for r in rows
    ]
