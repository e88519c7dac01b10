"""The auditors' pages (auditor and admin tokens): the trial balance and the guarantee fund's
coverage, now or at a past moment (`/audit`); the journal's verification
(`POST /audit/verify`); exports to download (`/audit/export`); the monthly activity report
with its chart (`/audit/report`).

Read-only: every figure comes from the ledger's own readers (`queries.trial_balance`,
`audit.reconciliation.reserve_coverage`, `verify.verify_database`, `audit.exports.export`,
`audit.reports.monthly_report`), the ones the CLI and the API use.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Final

from fastapi import APIRouter, Depends
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import Response, StreamingResponse

from rollon.api.token_store import Role
from rollon.api.web.forms import Form
from rollon.api.web.rendering import LOCAL_ZONE, Page, WebRoute, signed_in
from rollon.ledger.accounts import AccountKind, LedgerCode
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.exports import FILE_SUFFIXES, MEDIA_TYPES, ExportFormat, export
from rollon.ledger.audit.local_time import day_start_ns, to_ns
from rollon.ledger.audit.reconciliation import Coverage, reserve_coverage
from rollon.ledger.audit.reports import (
    MonthlyReport,
    monthly_report,
    parse_month,
    report_chart_svg,
)
from rollon.ledger.audit.snapshot import Period, read_snapshot
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
