"""The auditors' routes over HTTP, on both databases: roles, trial balance now and in the
past, verify, streamed exports (the journal export verifies offline), reserve coverage, bank
statement uploads (raw and multipart; malformed ones refused as problem+json), closings and
the monthly report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from rollon.api.token_store import Role
from rollon.ledger.audit.local_time import local_date
from rollon.ledger.audit.offline_verify import verify_lines
from rollon.ledger.audit.statements import MAX_STATEMENT_BYTES
from rollon.ledger.keys import load_signing_key
from tests.api.conftest import Api

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"


def today() -> str:
    return local_date(int(datetime.now(UTC).timestamp() * 1e9)).isoformat()


async def books(api: Api) -> tuple[UUID, UUID, dict[str, str]]:
    """A member funded by the association and through an exchange point; the counter's
    operator token."""
    member, _ = await api.holder(balance=2_000)
    counter, operator = await api.holder("exchange_point", role=Role.OPERATOR)
    answer = await api.client.post(
        "/v1/issuances",
        json={"account_id": str(member), "amount": 5_000, "euro_reference": "CAISSE-42"},
        headers=operator,
    )
    assert answer.status_code == 201, answer.text
    return member, counter, operator


async def test_only_auditors_and_admins_read_the_books(api: Api) -> None:
    member, _, operator = await books(api)
    member_token = api.token(Role.MEMBER, member)
    for path in (
        "/v1/audit/trial-balance",
        "/v1/audit/verify",
        "/v1/audit/export?format=csv",
        "/v1/audit/reconciliation",
        "/v1/audit/bank-statements",
        "/v1/audit/reports/monthly?month=2025-06",
    ):
        for headers in (member_token, operator):
            answer = await api.client.get(path, headers=headers)
            assert (answer.status_code, answer.json()["code"]) == (403, "forbidden"), path
        answer = await api.client.get(path)
        assert answer.status_code == 401, path
    auditor = api.token(Role.AUDITOR)
    assert (await api.client.get("/v1/audit/trial-balance", headers=auditor)).status_code == 200


async def test_trial_balance_now_and_in_the_past(api: Api) -> None:
    before = datetime.now(UTC)
    member, _, _ = await books(api)
    auditor = api.token(Role.AUDITOR)
    now = (await api.client.get("/v1/audit/trial-balance", headers=auditor)).json()
    assert now["balanced"] and now["totals"] == {"RLN": 0, "EUR": 0}
    assert {line["account_id"]: line["balance"] for line in now["lines"]}[str(member)] == 7_000
    past = await api.client.get(
        "/v1/audit/trial-balance", params={"at": before.isoformat()}, headers=auditor
    )
    assert past.status_code == 200
    assert past.json()["as_of_seq"] == 0 and past.json()["balanced"]
    naive = await api.client.get(
        "/v1/audit/trial-balance", params={"at": "2025-06-15T12:00:00"}, headers=auditor
    )
    assert (naive.status_code, naive.json()["code"]) == (422, "time_zone_required")
    assert naive.headers["content-type"] == PROBLEM

    balance = await api.client.get(
        f"/v1/audit/accounts/{member}/balance",
        params={"at": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()},
        headers=auditor,
    )
    assert balance.json()["balance"] == 7_000
    missing = await api.client.get(f"/v1/audit/accounts/{uuid4()}/balance", headers=auditor)
    assert (missing.status_code, missing.json()["code"]) == (404, "account_not_found")


async def test_verify_and_reconciliation(api: Api) -> None:
    await books(api)
    verified = await api.client.get("/v1/audit/verify", headers=api.admin)
    assert verified.status_code == 200
    body = verified.json()
    assert body["ok"] and body["problems"] == [] and body["entries_checked"] == body["last_seq"]
    coverage = (await api.client.get("/v1/audit/reconciliation", headers=api.admin)).json()
    assert (coverage["circulation"], coverage["reserve"], coverage["balanced"]) == (
        7_000,
        7_000,
        True,
    )


async def test_exports_stream_and_the_journal_verifies_offline(api: Api) -> None:
    await books(api)
    for fmt, media, first in (
        ("fec", "text/plain", "JournalCode\tJournalLib"),
        ("csv", "text/csv", "seq,recorded_at"),
        ("beancount", "text/plain", 'option "title"'),
        ("journal", "application/x-ndjson", '{"record":"header"'),
    ):
        answer = await api.client.get("/v1/audit/export", params={"format": fmt}, headers=api.admin)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(media)
        assert "attachment" in answer.headers["content-disposition"]
        assert answer.text.startswith(first)
        if fmt == "journal":
            key = load_signing_key(api.state.settings.signing_key_file).public_key()
            outcome = verify_lines(answer.text.splitlines(keepends=True), [key])
            assert outcome.ok, outcome.report.problems
    piped = await api.client.get(
        "/v1/audit/export", params={"format": "fec", "separator": "pipe"}, headers=api.admin
    )
    assert piped.text.startswith("JournalCode|JournalLib")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"format": "xlsx"}, "validation_failed"),
        ({"format": "journal", "from": "2025-01-01T00:00:00Z"}, "journal_export_is_whole"),
        (
            {"format": "csv", "from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"},
            "period_empty",
        ),
        ({"format": "fec", "to": "2025-01-01T00:00:00"}, "time_zone_required"),
    ],
)
async def test_bad_export_requests_are_problems(
    api: Api, params: dict[str, str], code: str
) -> None:
    answer = await api.client.get("/v1/audit/export", params=params, headers=api.admin)
    assert (answer.status_code, answer.json()["code"]) == (422, code)
    assert answer.headers["content-type"] == PROBLEM


def camt(amount: str, day: str, reference: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>M</MsgId><CreDtTm>2025-06-30T20:00:00</CreDtTm></GrpHdr>"
        "<Stmt><Id>S-1</Id><Acct><Id><IBAN>FR7630006000011234567890189</IBAN></Id></Acct>"
        f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{day}</Dt></BookgDt>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>{reference}</EndToEndId></Refs></TxDtls>"
        "</NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>"
    ).encode()


async def test_bank_statements_upload_and_reconcile(api: Api) -> None:
    await books(api)
    data = camt("50.00", today(), "CAISSE-42")
    first = await api.client.post(
        "/v1/audit/bank-statements",
        content=data,
        headers={**api.admin, "Content-Type": "application/xml"},
    )
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] and body["source_format"] == "camt.053"
    assert [(m["by"], m["amount"]) for m in body["matched"]] == [("reference", 5_000)]
    # The association's own 20.00 deposit is in the ledger, not on this statement.
    assert [m["amount"] for m in body["unmatched_movements"]] == [2_000]
    assert body["difference"] == sum(e["amount"] for e in body["explanation"]) == -2_000

    again = await api.client.post(
        "/v1/audit/bank-statements",
        content=data,
        headers={**api.admin, "Content-Type": "application/xml"},
    )
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert not again.json()["created"]

    csv_file = f"booking_date;amount;reference\n{today()};20,00;test\n{today()};50,00;x\n"
    multipart = await api.client.post(
        "/v1/audit/bank-statements",
        files={"file": ("statement.csv", csv_file.encode(), "text/csv")},
        headers=api.admin,
    )
    assert multipart.status_code == 201, multipart.text
    assert multipart.json()["reconciled"]

    listed = (await api.client.get("/v1/audit/bank-statements", headers=api.admin)).json()
    assert {s["id"] for s in listed} == {body["id"], multipart.json()["id"]}
    read = await api.client.get(f"/v1/audit/bank-statements/{body['id']}", headers=api.admin)
    assert read.json()["matched"] == body["matched"]
    missing = await api.client.get(f"/v1/audit/bank-statements/{uuid4()}", headers=api.admin)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"<Document><broken></Document>", "camt_malformed_xml"),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><Document>&e;</Document>',
            "camt_doctype_not_allowed",
        ),
        (b"date;what\n2025-06-01;1\n", "csv_missing_column"),
        (b"booking_date;amount\n2025-06-01;abc\n", "statement_bad_amount"),
        (b"", "statement_empty"),
    ],
)
async def test_malformed_statements_are_problems(api: Api, data: bytes, code: str) -> None:
    answer = await api.client.post(
        "/v1/audit/bank-statements",
        content=data,
        headers={**api.admin, "Content-Type": "text/csv"},
    )
    assert (answer.status_code, answer.json()["code"]) == (422, code), answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert (await api.client.get("/v1/audit/bank-statements", headers=api.admin)).json() == []


async def test_statement_uploads_have_their_own_size_limit(api: Api) -> None:
    lines = "".join(f"{today()};1,{i % 100:02d};ref-{i}\n" for i in range(4_000))
    big = ("booking_date;amount;reference\n" + lines).encode()
    assert 64 * 1024 < len(big) < MAX_STATEMENT_BYTES
    answer = await api.client.post(
        "/v1/audit/bank-statements", content=big, headers={**api.admin, "Content-Type": "text/csv"}
    )
    assert answer.status_code == 201, answer.text[:300]
    too_big = b"x" * (MAX_STATEMENT_BYTES + 1)
    answer = await api.client.post(
        "/v1/audit/bank-statements",
        content=too_big,
        headers={**api.admin, "Content-Type": "text/csv"},
    )
    assert (answer.status_code, answer.json()["code"]) == (413, "body_too_large")
    # Other routes keep the small limit.
    answer = await api.client.post(
        "/v1/accounts",
        content=b"{" + b" " * 70_000 + b"}",
        headers={**api.admin, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413


async def test_exchange_point_closing(api: Api) -> None:
    member, counter, operator = await books(api)
    own = await api.client.get(
        "/v1/audit/exchange-points/closing", params={"date": today()}, headers=operator
    )
    assert own.status_code == 200, own.text
    (closing,) = own.json()
    assert closing["exchange_point_id"] == str(counter)
    assert (closing["issuances"], closing["euros_collected"], closing["rollon_issued"]) == (
        1,
        5_000,
        5_000,
    )
    assert closing["lines"][0]["member_id"] == str(member)
    other, _ = await api.holder("exchange_point", role=Role.OPERATOR)
    refused = await api.client.get(
        "/v1/audit/exchange-points/closing",
        params={"date": today(), "exchange_point_id": str(other)},
        headers=operator,
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    everyone = await api.client.get(
        "/v1/audit/exchange-points/closing", params={"date": today()}, headers=api.admin
    )
    assert {c["exchange_point_id"] for c in everyone.json()} == {str(counter), str(other)}
    not_a_counter = await api.client.get(
        "/v1/audit/exchange-points/closing",
        params={"date": today(), "exchange_point_id": str(member)},
        headers=api.admin,
    )
    assert (not_a_counter.status_code, not_a_counter.json()["code"]) == (
        422,
        "not_an_exchange_point",
    )
    bad_day = await api.client.get(
        "/v1/audit/exchange-points/closing", params={"date": "31/02/2025"}, headers=api.admin
    )
    assert (bad_day.status_code, bad_day.json()["code"]) == (422, "validation_failed")


async def test_monthly_report_and_chart(api: Api) -> None:
    await books(api)
    month = today()[:7]
    report = await api.client.get(
        "/v1/audit/reports/monthly", params={"month": month}, headers=api.admin
    )
    assert report.status_code == 200
    assert report.json()["issued"] == {"count": 2, "value": 7_000}
    assert report.json()["circulation"]["end"] == 7_000
    chart = await api.client.get(
        "/v1/audit/reports/monthly/chart.svg", params={"month": month}, headers=api.admin
    )
    assert chart.headers["content-type"].startswith("image/svg+xml")
    assert chart.text.startswith("<svg")
    for bad, code in (("2025-13", "bad_month"), ("2999-01", "month_in_future")):
        answer = await api.client.get(
            "/v1/audit/reports/monthly", params={"month": bad}, headers=api.admin
        )
        assert (answer.status_code, answer.json()["code"]) == (422, code)
