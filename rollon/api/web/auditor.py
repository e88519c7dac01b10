"""The auditors' pages (auditor and admin tokens): the trial balance and the guarantee fund's
coverage, now or at a past moment (`/audit`); the journal's verification
(`POST /audit/verify`); exports to download (`/audit/export`); the monthly activity report
with its chart (`/audit/report`); the fund's bank statements, imported and reconciled
against the books (`/audit/statements`).

Nothing here moves money: every figure comes from the ledger's own readers
(`queries.trial_balance`, `audit.reconciliation`, `verify.verify_database`,
`audit.exports.export`, `audit.reports`, `audit.statement_store`), the ones the CLI and
`/v1/audit` use.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Depends
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response, StreamingResponse

from rollon.api.token_store import Role
from rollon.api.web.forms import Form
from rollon.api.web.rendering import LOCAL_ZONE, Page, WebError, WebRoute, signed_in
from rollon.ledger.accounts import AccountKind, LedgerCode
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.exports import FILE_SUFFIXES, MEDIA_TYPES, ExportFormat, export
from rollon.ledger.audit.local_time import day_start_ns, to_ns
from rollon.ledger.audit.reconciliation import (
    Coverage,
    StatementReconciliation,
    reconcile_statement,
    reserve_coverage,
)
from rollon.ledger.audit.reports import (
    MonthlyReport,
    monthly_report,
    parse_month,
    report_chart_svg,
)
from rollon.ledger.audit.snapshot import Period, read_snapshot
from rollon.ledger.audit.statement_store import (
    StatementSummary,
    StoredStatement,
    list_statements,
    load_statement,
    store_statement,
)
from rollon.ledger.audit.statements import parse_statement
from rollon.ledger.queries import TrialBalance, trial_balance
from rollon.ledger.verify import VerifyReport, verify_database

router = APIRouter(route_class=WebRoute, include_in_schema=False)

AuditPage = Annotated[Page, Depends(signed_in(Role.AUDITOR, Role.ADMIN))]
MAX_PROBLEMS_SHOWN: Final = 50
FORMATS: Final = tuple(fmt.value for fmt in ExportFormat)


@dataclass(frozen=True, slots=True)
class KindTotal:
    """Accounts of one kind, summed (members are thousands: one line, not thousands)."""

    kind: str
    count: int
    balance: int


@dataclass(slots=True)
class LedgerSection:
    ledger: str
    system: list[tuple[str, int]] = field(default_factory=list)
    kinds: list[KindTotal] = field(default_factory=list)
    total: int = 0


def sections_of(books: TrialBalance) -> list[LedgerSection]:
    """The trial balance per ledger: each system account, then each other kind summed."""
    sections = []
    for ledger in LedgerCode:
        section = LedgerSection(ledger.value, total=books.total(ledger))
        sums: dict[str, list[int]] = {}
        for line in books.lines:
            if line.ledger != ledger:
                continue
            if line.kind is AccountKind.SYSTEM:
                section.system.append((line.name, line.balance))
            else:
                count_and_sum = sums.setdefault(line.kind.value, [0, 0])
                count_and_sum[0] += 1
                count_and_sum[1] += line.balance
        section.kinds = [KindTotal(k, c, b) for k, (c, b) in sorted(sums.items())]
        sections.append(section)
    return sections


@dataclass(frozen=True, slots=True)
class Books:
    at_ns: int | None
    sections: list[LedgerSection]
    as_of_seq: int
    coverage: Coverage


def _moment(form: Form, name: str) -> int | None:
    """An optional local date and time (what <input type=datetime-local> sends), as ledger
    time."""
    value = form.raw(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        form.fail(name, form.t("error.bad_moment"))
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LOCAL_ZONE)
    if moment.year < 1971:
        form.fail(name, form.t("error.bad_moment"))
        return None
    return to_ns(moment)


def _books(page: Page, at_ns: int | None) -> Books:
    with read_snapshot(page.state.engine) as connection:
        books = trial_balance(connection, at_ns)
        coverage = reserve_coverage(connection, at_ns)
    return Books(at_ns, sections_of(books), books.as_of_seq, coverage)


@router.get("/audit")
async def audit_home(page: AuditPage) -> Response:
    form = Form.of(page.t, page.request.query_params)
    at_ns = _moment(form, "at")
    books = await run_in_threadpool(_books, page, at_ns if form.ok else None)
    return page.render(
        "audit.html",
        status=200 if form.ok else 422,
        at_form=form,
        export_form=None,
        books=books,
        formats=FORMATS,
        month=datetime.now(LOCAL_ZONE).strftime("%Y-%m"),
    )


@router.post("/audit/verify")
async def verify(page: AuditPage) -> Response:
    signing_key = page.state.ledger.signing_key
    assert signing_key is not None
    report: VerifyReport = await run_in_threadpool(
        verify_database, page.state.engine, [signing_key.public_key()]
    )
    return page.render(
        "audit_verify.html",
        report=report,
        problems=report.problems[:MAX_PROBLEMS_SHOWN],
        switch_path="/audit",
    )


def _period(form: Form) -> Period | None:
    """The export's period from two optional local days, [from, to)."""
    first = form.day("from")
    last = form.day("to")
    if not form.ok:
        return None
    try:
        return Period(
            from_ns=None if first is None else day_start_ns(first),
            to_ns=None if last is None else day_start_ns(last),
        )
    except AuditInputError as error:
        form.fail("to", page_error(form, error))
        return None


def page_error(form: Form, error: AuditInputError) -> str:
    codes = {"period_empty": "empty_period"}
    return form.t.error(codes.get(error.code, error.code), str(error))


@router.get("/audit/export")
async def download_export(page: AuditPage) -> Response:
    form = Form.of(page.t, page.request.query_params)
    fmt_text = form.choice("format", FORMATS)
    period = _period(form)
    if form.ok and period is not None:
        fmt = ExportFormat(fmt_text)
        signing_key = page.state.ledger.signing_key
        assert signing_key is not None
        try:
            chunks = export(page.state.engine, fmt, period, public_keys=[signing_key.public_key()])
        except AuditInputError as error:
            form.fail("from", page_error(form, error))
        else:
            return _download(chunks, fmt, period)
    books = await run_in_threadpool(_books, page, None)
    return page.render(
        "audit.html",
        status=422,
        at_form=None,
        export_form=form,
        books=books,
        formats=FORMATS,
        month=datetime.now(LOCAL_ZONE).strftime("%Y-%m"),
    )


def _download(chunks: Iterator[str], fmt: ExportFormat, period: Period) -> Response:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"rollon-{fmt.value}-{stamp}{FILE_SUFFIXES[fmt]}"

    async def body() -> AsyncIterator[bytes]:
        async for chunk in iterate_in_threadpool(chunks):
            yield chunk.encode("utf-8")

    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- monthly report ----------------------------------------------------------------------------
def _report(page: Page, month: str) -> MonthlyReport:
    with read_snapshot(page.state.engine) as connection:
        return monthly_report(connection, month, time.time_ns())


def _month(form: Form) -> str:
    value = form.raw("month") or datetime.now(LOCAL_ZONE).strftime("%Y-%m")
    try:
        parse_month(value)
    except AuditInputError:
        form.fail("month", form.t("error.bad_month"))
    return value


@router.get("/audit/report")
async def report(page: AuditPage) -> Response:
    form = Form.of(page.t, page.request.query_params)
    month = _month(form)
    if not form.ok:
        return page.render("audit_report.html", status=422, form=form, report=None, month=month)
    monthly = await run_in_threadpool(_report, page, month)
    return page.render("audit_report.html", form=form, report=monthly, month=month)


@router.get("/audit/report/chart.svg")
async def report_chart(page: AuditPage) -> Response:
    form = Form.of(page.t, page.request.query_params)
    month = _month(form)
    if not form.ok:
        return Response(status_code=404)
    monthly = await run_in_threadpool(_report, page, month)
    return Response(report_chart_svg(monthly), media_type="image/svg+xml")


# -- bank statements ---------------------------------------------------------------------------
STATEMENTS_LISTED: Final = 20


def _statements(page: Page) -> list[StatementSummary]:
    with page.state.engine.connect() as connection:
        return list_statements(connection, limit=STATEMENTS_LISTED)


async def _statements_page(page: Page, *, error: str | None = None, status: int = 200) -> Response:
    statements = await run_in_threadpool(_statements, page)
    return page.render(
        "audit_statements.html",
        status=status,
        statements=statements,
        error=error,
        max_kb=page.state.settings.max_body_bytes // 1024,
        switch_path="/audit/statements",
    )


@router.get("/audit/statements")
async def statements(page: AuditPage) -> Response:
    return await _statements_page(page)


@router.post("/audit/statements")
async def import_statement(page: AuditPage) -> Response:
    """Import a statement (CAMT.053 or CSV) of the fund's bank account, then show it
    reconciled. The file is refused, with its reason, if it does not read as a statement."""
    upload = (await page.request.form()).get("file")
    data = await upload.read() if isinstance(upload, UploadFile) else b""
    if not data:
        return await _statements_page(page, error=page.t("error.required"), status=422)
    try:
        statement = await run_in_threadpool(parse_statement, data)
    except AuditInputError as error:
        message = page.t.error(error.code, str(error))
        if error.line is not None and page.t.has(f"error.{error.code}"):
            # Our own words lack the line; the service's own message already names it.
            message = page.t("audit.statement_line", line=error.line, message=message)
        return await _statements_page(page, error=message, status=422)
    stored, _ = await run_in_threadpool(
        store_statement, page.state.engine, data, statement, time.time_ns()
    )
    return RedirectResponse(f"/audit/statements/{stored.id}", status_code=303)


@dataclass(frozen=True, slots=True)
class Reconciled:
    stored: StoredStatement
    result: StatementReconciliation


def _reconciled(page: Page, statement_id: UUID) -> Reconciled | None:
    with read_snapshot(page.state.engine) as connection:
        stored = load_statement(connection, statement_id)
        if stored is None:
            return None
        return Reconciled(stored, reconcile_statement(connection, stored.statement))


@router.get("/audit/statements/{statement_id}")
async def statement(page: AuditPage, statement_id: UUID) -> Response:
    reconciled = await run_in_threadpool(_reconciled, page, statement_id)
    if reconciled is None:
        raise WebError(404, "error.statement_not_found")
    return page.render("audit_statement.html", stored=reconciled.stored, result=reconciled.result)
