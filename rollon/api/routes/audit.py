"""Auditors' routes (auditor and admin; an operator may read its own counter's closing).

- `GET /v1/audit/trial-balance?at=`: every account's balance now or at a past moment, with
  each ledger's total (zero in sound books); `GET /v1/audit/accounts/{id}/balance?at=`.
- `GET /v1/audit/verify`: hash chain, signed checkpoints, balances and invariants.
- `GET /v1/audit/export?format=fec|csv|beancount|journal&from=&to=`: streamed; the journal
  export is what `python -m rollon.ledger.audit.offline_verify` checks with no database.
- `GET /v1/audit/reconciliation?at=`: RolloN in circulation against the reserve.
- `POST /v1/audit/bank-statements`: a CAMT.053 or CSV statement of the guarantee fund's bank
  account (the raw file as the body, or a multipart `file`), stored once and reconciled;
  `GET /v1/audit/bank-statements` and `.../{id}` read them back, reconciled again.
- `GET /v1/audit/exchange-points/closing?date=`: each counter's RolloN against its euros.
- `GET /v1/audit/reports/monthly?month=YYYY-MM` and `.../monthly/chart.svg?month=`.

Bad input (a malformed statement, an empty period, a naive time) is a 422 problem whose
`code` is the audit module's stable code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from rollon.api.auth import Principal, Role, require_roles
from rollon.api.fields import from_ns
from rollon.api.problems import PROBLEM_RESPONSES, Problem, ProblemError
from rollon.api.state import AppState, StateDep
from rollon.ledger.accounts import AccountKind, LedgerCode
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.exports import FILE_SUFFIXES, MEDIA_TYPES, ExportFormat, export
from rollon.ledger.audit.local_time import local_date, to_ns
from rollon.ledger.audit.reconciliation import (
    StatementReconciliation,
    reconcile_statement,
    reserve_coverage,
)
from rollon.ledger.audit.reports import (
    ExchangePointClosing,
    MonthlyReport,
    exchange_point_closing,
    monthly_report,
    report_chart_svg,
    report_json,
)
from rollon.ledger.audit.snapshot import Period, read_snapshot
from rollon.ledger.audit.statement_store import (
    MAX_LISTED,
    StoredStatement,
    list_statements,
    load_statement,
    store_statement,
)
from rollon.ledger.audit.statements import MAX_STATEMENT_BYTES, StatementLine, parse_statement
from rollon.ledger.queries import balance_at, get_account, last_seq_at, trial_balance
from rollon.ledger.verify import MAX_PROBLEMS, verify_database

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=PROBLEM_RESPONSES)

_AUDITORS = Depends(require_roles(Role.AUDITOR, Role.ADMIN))
_CLOSERS = Depends(require_roles(Role.AUDITOR, Role.ADMIN, Role.OPERATOR))
_VERIFYING = threading.Lock()  # one verification at a time per process: it reads everything
VERIFY_RETRY_AFTER_S = 5
STATEMENT_PATH = "/v1/audit/bank-statements"

AtQuery = Annotated[
    datetime | None,
    Query(
        description="A past moment, ISO 8601 with its offset (2025-06-30T22:00:00Z); now if absent"
    ),
]


def _refused(error: AuditInputError, title: str) -> ProblemError:
    return ProblemError(422, error.code, title, str(error))


def _moment(at: datetime | None) -> int | None:
    if at is None:
        return None
    if at.tzinfo is None:
        raise ProblemError(
            422,
            "time_zone_required",
            "A time needs its offset",
            "give the moment with its offset, such as 2025-06-30T22:00:00Z",
        )
    return to_ns(at)


# -- trial balance ------------------------------------------------------------------------------
class BalanceLine(BaseModel):
    account_id: UUID
    name: str
    kind: AccountKind
    ledger: LedgerCode
    balance: int = Field(description="Credits less debits, in centimes")


class TrialBalanceOut(BaseModel):
    at: datetime | None = Field(description="The moment asked for; null for now")
    as_of_seq: int = Field(description="The last journal entry the balances include")
    totals: dict[LedgerCode, int] = Field(description="Per ledger: zero in sound books")
    balanced: bool
    lines: list[BalanceLine]


@router.get("/trial-balance", response_model=TrialBalanceOut, summary="Trial balance")
async def get_trial_balance(
    state: StateDep, _: Annotated[Principal, _AUDITORS], at: AtQuery = None
) -> TrialBalanceOut:
    """Every account's balance now or at a past moment, with each ledger's total."""
    at_ns = _moment(at)

    def read() -> TrialBalanceOut:
        with read_snapshot(state.engine) as connection:
            books = trial_balance(connection, at_ns)
        totals = {ledger: books.total(ledger) for ledger in LedgerCode}
        return TrialBalanceOut(
            at=at,
            as_of_seq=books.as_of_seq,
            totals=totals,
            balanced=not any(totals.values()),
            lines=[
                BalanceLine(
                    account_id=line.account_id,
                    name=line.name,
                    kind=line.kind,
                    ledger=line.ledger,
                    balance=line.balance,
                )
                for line in books.lines
            ],
        )

    return await run_in_threadpool(read)


class BalanceAtOut(BaseModel):
    account_id: UUID
    at: datetime | None
    as_of_seq: int
    balance: int = Field(description="Posted balance at that moment, in centimes")


@router.get(
    "/accounts/{account_id}/balance",
    response_model=BalanceAtOut,
    summary="An account's balance at a past moment",
    responses={404: {"model": Problem, "description": "No such account (`account_not_found`)"}},
)
async def get_balance_at(
    account_id: UUID, state: StateDep, _: Annotated[Principal, _AUDITORS], at: AtQuery = None
) -> BalanceAtOut:
    """One account's posted balance now or at a past moment."""
    at_ns = _moment(at)

    def read() -> BalanceAtOut:
        with read_snapshot(state.engine) as connection:
            account = get_account(connection, account_id)
            if account is None:
                raise ProblemError(404, "account_not_found", "No such account", str(account_id))
            moment = at_ns if at_ns is not None else time.time_ns()
            seq = last_seq_at(connection, moment)
            value = account.balance if at_ns is None else balance_at(connection, account_id, at_ns)
        return BalanceAtOut(account_id=account_id, at=at, as_of_seq=seq, balance=value)

    return await run_in_threadpool(read)


# -- verify -------------------------------------------------------------------------------------
class ProblemOut(BaseModel):
    kind: str = Field(examples=["entry_edited"])
    message: str
    seq: int | None
    transfer_id: UUID | None
    account_id: UUID | None


class VerifyOut(BaseModel):
    ok: bool = Field(description="True only when the journal and every invariant hold")
    entries_checked: int
    checkpoints_checked: int
    last_seq: int
    signed_through_seq: int = Field(
        description="Entries after this one are signed by no checkpoint yet"
    )
    problems: list[ProblemOut] = Field(description=f"The first {MAX_PROBLEMS} found")
    truncated: bool


@router.get(
    "/verify",
    response_model=VerifyOut,
    summary="Verify the journal and the invariants",
    responses={
        503: {"model": Problem, "description": "A verification runs already (`verify_busy`)"}
    },
)
async def get_verify(state: StateDep, _: Annotated[Principal, _AUDITORS]) -> VerifyOut:
    """Recompute the hash chain, check the signed checkpoints, replay every balance
    and check the invariants. `ok` is true only when everything holds."""

    def run() -> VerifyOut:
        if not _VERIFYING.acquire(blocking=False):
            raise ProblemError(
                503,
                "verify_busy",
                "A verification is running",
                "one verification runs at a time; retry shortly",
                headers={"Retry-After": str(VERIFY_RETRY_AFTER_S)},
            )
        try:
            report = verify_database(state.engine, _public_keys(state))
        finally:
            _VERIFYING.release()
        return VerifyOut(
            ok=report.ok,
            entries_checked=report.entries_checked,
            checkpoints_checked=report.checkpoints_checked,
            last_seq=report.last_seq,
            signed_through_seq=report.signed_through_seq,
            problems=[
                ProblemOut(
                    kind=p.kind,
                    message=p.message,
                    seq=p.seq,
                    transfer_id=p.transfer_id,
                    account_id=p.account_id,
                )
                for p in report.problems
            ],
            truncated=report.truncated,
        )

    return await run_in_threadpool(run)


def _public_keys(state: AppState) -> list[Ed25519PublicKey]:
    key = state.ledger.signing_key
    return [] if key is None else [key.public_key()]


# -- export -------------------------------------------------------------------------------------
@router.get(
    "/export",
    summary="Export the books (streamed)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file, streamed",
            "content": {m: {} for m in sorted(set(MEDIA_TYPES.values()))},
        }
    },
)
async def get_export(
    state: StateDep,
    _: Annotated[Principal, _AUDITORS],
    format: Annotated[ExportFormat, Query(description="fec, csv, beancount or journal")],
    from_: Annotated[
        datetime | None, Query(alias="from", description="Start of the period (included)")
    ] = None,
    to: Annotated[datetime | None, Query(description="End of the period (excluded)")] = None,
    separator: Annotated[Literal["tab", "pipe"], Query(description="FEC column separator")] = "tab",
) -> StreamingResponse:
    """The books for a period, streamed: FEC, CSV, Beancount, or the whole journal
    for offline verification (`python -m rollon.ledger.audit.offline_verify`)."""
    try:
        period = Period(_moment(from_), _moment(to))
        chunks: Iterator[str] = export(
            state.engine,
            format,
            period,
            public_keys=_public_keys(state),
            fec_separator="\t" if separator == "tab" else "|",
        )
    except AuditInputError as error:
        raise _refused(error, "Cannot export this") from None
    stamp = local_date(time.time_ns()).strftime("%Y%m%d")
    name = f"rollon-{format.value}-{stamp}{FILE_SUFFIXES[format]}"
    return StreamingResponse(
        (chunk.encode("utf-8") for chunk in chunks),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- reconciliation -----------------------------------------------------------------------------
class CoverageOut(BaseModel):
    at: datetime | None
    as_of_seq: int
    circulation: int = Field(description="RolloN in circulation (minus the issuance balance)")
    held_by_accounts: int = Field(description="RolloN the accounts hold: equals circulation")
    reserve: int = Field(description="Euros backing them")
    difference: int = Field(description="Reserve less circulation: zero in sound books")
    balanced: bool
    payouts_due: int
    revenue: int
    grants: int
    bank: int


@router.get("/reconciliation", response_model=CoverageOut, summary="Circulation against reserve")
async def get_reconciliation(
    state: StateDep, _: Annotated[Principal, _AUDITORS], at: AtQuery = None
) -> CoverageOut:
    """RolloN in circulation against the reserve, now or at a past moment."""
    at_ns = _moment(at)

    def read() -> CoverageOut:
        with read_snapshot(state.engine) as connection:
            c = reserve_coverage(connection, at_ns)
        return CoverageOut(
            at=at,
            as_of_seq=c.as_of_seq,
            circulation=c.circulation,
            held_by_accounts=c.held_by_accounts,
            reserve=c.reserve,
            difference=c.difference,
            balanced=c.balanced,
            payouts_due=c.payouts_due,
            revenue=c.revenue,
            grants=c.grants,
            bank=c.bank,
        )

    return await run_in_threadpool(read)


class StatementLineOut(BaseModel):
    line_no: int
    booking_date: date
    amount: int = Field(description="Centimes; positive when money came in")
    reference: str
    counterparty: str
    description: str

    @classmethod
    def of(cls, line: StatementLine) -> StatementLineOut:
        return cls(
            line_no=line.line_no,
            booking_date=line.booking_date,
            amount=line.amount,
            reference=line.reference,
            counterparty=line.counterparty,
            description=line.description,
        )


class MovementOut(BaseModel):
    seq: int
    transfer_id: UUID
    day: date
    amount: int = Field(description="Centimes into (+) or out of (-) the bank account")
    code: str
    memo: str


class MatchOut(BaseModel):
    line_no: int
    seq: int
    transfer_id: UUID
    amount: int
    by: Literal["reference", "amount_and_date"]
    days_apart: int


class ExplanationOut(BaseModel):
    kind: str
    description: str
    amount: int
    count: int


class FundOut(BaseModel):
    statement_closing: int
    expected: int = Field(description="Reserve, plus payouts owed, plus fees not taken out")
    reserve: int
    payouts_due: int
    revenue: int
    grant_funded_bonus: int
    difference: int


class StatementOut(BaseModel):
    id: UUID
    created: bool = Field(description="False when this very file was uploaded before")
    source_format: str
    statement_ref: str
    account_iban: str
    from_date: date
    to_date: date
    opening_balance: int | None
    closing_balance: int | None
    imported_at: datetime
    reconciled: bool = Field(description="Every line matched, nothing of the ledger missing")
    statement_total: int
    ledger_total: int
    difference: int = Field(description="Statement total less ledger total: explained below")
    explanation: list[ExplanationOut]
    matched: list[MatchOut]
    unmatched_lines: list[StatementLineOut]
    unmatched_movements: list[MovementOut]
    fund: FundOut | None


def _statement_out(
    stored: StoredStatement, result: StatementReconciliation, created: bool
) -> StatementOut:
    s = stored.statement
    fund = result.fund
    return StatementOut(
        id=stored.id,
        created=created,
        source_format=s.source_format,
        statement_ref=s.statement_ref,
        account_iban=s.account_iban,
        from_date=s.from_date,
        to_date=s.to_date,
        opening_balance=s.opening_balance,
        closing_balance=s.closing_balance,
        imported_at=from_ns(stored.imported_at_ns),
        reconciled=result.reconciled,
        statement_total=result.statement_total,
        ledger_total=result.ledger_total,
        difference=result.difference,
        explanation=[
            ExplanationOut(kind=e.kind, description=e.description, amount=e.amount, count=e.count)
            for e in result.explanation
        ],
        matched=[
            MatchOut(
                line_no=m.line.line_no,
                seq=m.movement.seq,
                transfer_id=m.movement.transfer_id,
                amount=m.movement.amount,
                by=m.by,
                days_apart=m.days_apart,
            )
            for m in result.matched
        ],
        unmatched_lines=[StatementLineOut.of(line) for line in result.unmatched_lines],
        unmatched_movements=[
            MovementOut(
                seq=m.seq,
                transfer_id=m.transfer_id,
                day=m.day,
                amount=m.amount,
                code=m.code,
                memo=m.memo,
            )
            for m in result.unmatched_movements
        ],
        fund=None
        if fund is None
        else FundOut(
            statement_closing=fund.statement_closing,
            expected=fund.expected,
            reserve=fund.reserve,
            payouts_due=fund.payouts_due,
            revenue=fund.revenue,
            grant_funded_bonus=fund.grant_funded_bonus,
            difference=fund.difference,
        ),
    )


ToleranceQuery = Annotated[
    int, Query(ge=0, le=31, description="Days a bank line may lie from its ledger transfer")
]


async def _upload(request: Request) -> bytes:
    """The statement file: the whole body, or the `file` part of a multipart form."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return await request.body()
    form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_STATEMENT_BYTES)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ProblemError(
            422, "statement_missing", "No statement", "send the file as the form's `file` part"
        )
    return await upload.read()


@router.post(
    "/bank-statements",
    status_code=201,
    response_model=StatementOut,
    summary="Import and reconcile a bank statement (CAMT.053 or CSV)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/xml": {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
    responses={200: {"model": StatementOut, "description": "This file was imported before"}},
)
async def post_bank_statement(
    request: Request,
    state: StateDep,
    _: Annotated[Principal, _AUDITORS],
    tolerance_days: ToleranceQuery = 3,
) -> JSONResponse:
    """Import a CAMT.053 or CSV statement of the guarantee fund's account (as the
    body, or a multipart `file`), keep it, and reconcile it with the ledger."""
    data = await _upload(request)

    def work() -> tuple[StatementOut, bool]:
        try:
            statement = parse_statement(data)
        except AuditInputError as error:
            raise _refused(error, "Bank statement refused") from None
        stored, created = store_statement(state.engine, data, statement, time.time_ns())
        with read_snapshot(state.engine) as connection:
            result = reconcile_statement(connection, statement, tolerance_days)
        return _statement_out(stored, result, created), created

    answer, created = await run_in_threadpool(work)
    return JSONResponse(answer.model_dump(mode="json"), status_code=201 if created else 200)


class StatementSummaryOut(BaseModel):
    id: UUID
    source_format: str
    statement_ref: str
    account_iban: str
    from_date: date
    to_date: date
    line_count: int
    imported_at: datetime


@router.get(
    "/bank-statements", response_model=list[StatementSummaryOut], summary="Imported statements"
)
async def get_bank_statements(
    state: StateDep,
    _: Annotated[Principal, _AUDITORS],
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 100,
) -> list[StatementSummaryOut]:
    """The imported statements, newest period first."""

    def read() -> list[StatementSummaryOut]:
        with state.engine.connect() as connection:
            found = list_statements(connection, limit)
        return [
            StatementSummaryOut(
                id=s.id,
                source_format=s.source_format,
                statement_ref=s.statement_ref,
                account_iban=s.account_iban,
                from_date=s.from_date,
                to_date=s.to_date,
                line_count=s.line_count,
                imported_at=from_ns(s.imported_at_ns),
            )
            for s in found
        ]

    return await run_in_threadpool(read)


@router.get(
    "/bank-statements/{statement_id}",
    response_model=StatementOut,
    summary="A statement, reconciled against the books as they are now",
    responses={404: {"model": Problem, "description": "No such statement (`not_found`)"}},
)
async def get_bank_statement(
    statement_id: UUID,
    state: StateDep,
    _: Annotated[Principal, _AUDITORS],
    tolerance_days: ToleranceQuery = 3,
) -> StatementOut:
    """A stored statement, reconciled against the books as they are now."""

    def read() -> StatementOut:
        with read_snapshot(state.engine) as connection:
            stored = load_statement(connection, statement_id)
            if stored is None:
                raise ProblemError(404, "not_found", "No such statement", str(statement_id))
            result = reconcile_statement(connection, stored.statement, tolerance_days)
        return _statement_out(stored, result, created=False)

    return await run_in_threadpool(read)


# -- exchange-point closing ---------------------------------------------------------------------
class CounterLineOut(BaseModel):
    seq: int
    transfer_id: UUID
    recorded_at: datetime
    member_id: UUID
    amount: int
    bonus: bool = Field(description="Funded by grants, not paid for at the counter")
    euro_reference: str


class ClosingOut(BaseModel):
    exchange_point_id: UUID
    name: str
    day: date
    issuances: int
    rollon_issued: int = Field(description="Handed out: paid plus bonus, in centimes")
    bonus_issued: int
    euros_collected: int = Field(description="What the till should hold for the day")
    unattributed: int = Field(description="RolloN credited outside a whole issuance chain")
    lines: list[CounterLineOut]
    lines_truncated: bool

    @classmethod
    def of(cls, c: ExchangePointClosing) -> ClosingOut:
        return cls(
            exchange_point_id=c.exchange_point_id,
            name=c.name,
            day=c.day,
            issuances=c.issuances,
            rollon_issued=c.rollon_issued,
            bonus_issued=c.bonus_issued,
            euros_collected=c.euros_collected,
            unattributed=c.unattributed,
            lines=[
                CounterLineOut(
                    seq=line.seq,
                    transfer_id=line.transfer_id,
                    recorded_at=from_ns(line.recorded_at_ns),
                    member_id=line.member_id,
                    amount=line.amount,
                    bonus=line.bonus,
                    euro_reference=line.euro_reference,
                )
                for line in c.lines
            ],
            lines_truncated=c.lines_truncated,
        )


@router.get(
    "/exchange-points/closing",
    response_model=list[ClosingOut],
    summary="Exchange points' closing for a day (an operator sees its own)",
)
async def get_closing(
    state: StateDep,
    principal: Annotated[Principal, _CLOSERS],
    day: Annotated[date, Query(alias="date", description="The local day, YYYY-MM-DD")],
    exchange_point_id: UUID | None = None,
) -> list[ClosingOut]:
    """For one local day, each exchange point's RolloN handed out against the euros
    its till should hold. An operator sees its own counter."""
    if principal.role is Role.OPERATOR:
        if exchange_point_id not in (None, principal.account_id):
            raise ProblemError(
                403, "forbidden", "Forbidden", "an operator reads its own exchange point's closing"
            )
        exchange_point_id = principal.account_id

    def read() -> list[ClosingOut]:
        with read_snapshot(state.engine) as connection:
            try:
                closings = exchange_point_closing(connection, day, exchange_point_id)
            except AuditInputError as error:
                raise _refused(error, "Not an exchange point") from None
        return [ClosingOut.of(c) for c in closings]

    return await run_in_threadpool(read)


# -- monthly report -----------------------------------------------------------------------------
MonthQuery = Annotated[str, Query(description="YYYY-MM", examples=["2025-06"])]


def _monthly(state: AppState, month: str) -> MonthlyReport:
    with read_snapshot(state.engine) as connection:
        try:
            return monthly_report(connection, month, time.time_ns())
        except AuditInputError as error:
            raise _refused(error, "No report for this month") from None


@router.get("/reports/monthly", summary="Monthly activity report (JSON, amounts in centimes)")
async def get_monthly_report(
    state: StateDep, _: Annotated[Principal, _AUDITORS], month: MonthQuery
) -> JSONResponse:
    """A month's issuances, reconversions, payments, transfers, active accounts,
    circulation and reserve (amounts in centimes)."""
    report = await run_in_threadpool(_monthly, state, month)
    return JSONResponse(report_json(report))


@router.get(
    "/reports/monthly/chart.svg",
    summary="Circulation and reserve over the month, as an SVG chart",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
async def get_monthly_chart(
    state: StateDep, _: Annotated[Principal, _AUDITORS], month: MonthQuery
) -> Response:
    """Circulation and reserve at the end of each day of the month, as SVG."""
    report = await run_in_threadpool(_monthly, state, month)
    return Response(report_chart_svg(report), media_type="image/svg+xml")
