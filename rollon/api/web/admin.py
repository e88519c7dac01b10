"""The association's pages: open accounts (and give their holders a sign-in token), create
and revoke tokens (`/admin`); issue RolloN against euros received (`/admin/issue`, also for
exchange-point operators, through their own exchange point); onboard merchants
(`/admin/merchants/new`); settle reconversions with a SEPA payout file
(`/admin/settlements`).

These call what the API's routes call: `Ledger.open_account`, `token_store.create_token`
and `revoke_token`, the issuance legs of `rollon.ledger.operations` through the ledger's
hot path, and the merchants layer's `MerchantDirectory` and `Reconversions`. A token's
secret is shown once, on the answer to the form that created it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Final
from uuid import UUID, uuid4

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from rollon.api.merchant_services import merchants_of
from rollon.api.routes.issuances import MAX_EURO_REFERENCE_LENGTH
from rollon.api.schema import MAX_TOKEN_NAME_LENGTH, api_tokens
from rollon.api.token_store import Role, TokenError, create_token, revoke_token
from rollon.api.web.forms import Form
from rollon.api.web.ledger_views import operation_id
from rollon.api.web.rendering import LOCAL_ZONE, Page, WebError, WebRoute, signed_in
from rollon.ledger import operations
from rollon.ledger.accounts import Account, AccountKind
from rollon.ledger.money import format_amount
from rollon.ledger.queries import get_account, get_transfer
from rollon.ledger.service import MAX_NAME_LENGTH, AccountError
from rollon.ledger.transfers import Result
from rollon.merchants.directory import Category, MerchantApplication
from rollon.merchants.errors import MerchantError
from rollon.merchants.reconversions import Settlement

router = APIRouter(route_class=WebRoute, include_in_schema=False)

AdminPage = Annotated[Page, Depends(signed_in(Role.ADMIN))]
IssuerPage = Annotated[Page, Depends(signed_in(Role.ADMIN, Role.OPERATOR))]
TOKENS_LISTED: Final = 30
ISSUE_PURPOSE: Final = "issue"
OPENABLE_KINDS: Final = (AccountKind.MEMBER, AccountKind.MERCHANT, AccountKind.EXCHANGE_POINT)
# The role a token for a newly opened account gets.
ROLE_OF_KIND: Final = {
    AccountKind.MEMBER: Role.MEMBER,
    AccountKind.MERCHANT: Role.MERCHANT,
    AccountKind.EXCHANGE_POINT: Role.OPERATOR,
}
_RECIPIENTS: Final = frozenset({AccountKind.MEMBER, AccountKind.MERCHANT})
CATEGORIES: Final = tuple(category.value for category in Category)


@dataclass(frozen=True, slots=True)
class TokenLine:
    id: UUID
    role: str
    name: str
    account_id: UUID | None
    created_at_ns: int
    revoked_at_ns: int | None


def _tokens(page: Page, name_prefix: str) -> list[TokenLine]:
    """The newest tokens, optionally those whose name starts with `name_prefix`."""
    query = sa.select(api_tokens).order_by(api_tokens.c.created_at_ns.desc()).limit(TOKENS_LISTED)
    if name_prefix:
        escaped = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(api_tokens.c.name.like(escaped + "%", escape="\\"))
    with page.state.engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        TokenLine(r.id, r.role, r.name, r.account_id, r.created_at_ns, r.revoked_at_ns)
        for r in rows
    ]


async def _admin_home(
    page: Page,
    *,
    status: int = 200,
    account_form: Form | None = None,
    token_form: Form | None = None,
    notice: str | None = None,
    created: dict[str, object] | None = None,
    name_prefix: str = "",
) -> Response:
    tokens = await run_in_threadpool(_tokens, page, name_prefix)
    return page.render(
        "admin.html",
        status=status,
        account_form=account_form,
        token_form=token_form,
        tokens=tokens,
        notice=notice,
        created=created,
        name_prefix=name_prefix,
        kinds=[kind.value for kind in OPENABLE_KINDS],
        roles=[role.value for role in Role],
        switch_path="/admin",
    )


@router.get("/admin")
async def admin_home(
    page: AdminPage,
    q: Annotated[str, Query(max_length=MAX_TOKEN_NAME_LENGTH)] = "",
    revoked: UUID | None = None,
) -> Response:
    notice = None
    if revoked is not None:
        notice = await run_in_threadpool(_revoked_notice, page, revoked)
    return await _admin_home(page, notice=notice, name_prefix=q.strip())


def _revoked_notice(page: Page, token_id: UUID) -> str | None:
    with page.state.engine.connect() as connection:
        row = connection.execute(
            sa.select(api_tokens.c.name, api_tokens.c.revoked_at_ns).where(
                api_tokens.c.id == token_id
            )
        ).first()
    if row is None or row.revoked_at_ns is None:
        return None
    return page.t("admin.revoked", name=row.name)


@router.post("/admin/accounts")
async def open_account(page: AdminPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    kind_text = form.choice("kind", [kind.value for kind in OPENABLE_KINDS])
    name = form.text("name", max_chars=MAX_NAME_LENGTH)
    if not form.ok:
        return await _admin_home(page, status=422, account_form=form)
    kind = AccountKind(kind_text)
    try:
        account = await run_in_threadpool(page.state.ledger.open_account, kind=kind, name=name)
    except AccountError as error:
        form.fail("name", page.t.error(error.code, str(error)))
        return await _admin_home(page, status=422, account_form=form)
    created: dict[str, object] = {"account": account}
    if form.raw("with_token"):
        role = ROLE_OF_KIND[kind]
        _, secret = await run_in_threadpool(
            create_token, page.state.engine, role, account.id, name[:MAX_TOKEN_NAME_LENGTH]
        )
        created["token"] = secret
        created["role"] = role.value
    return await _admin_home(
        page, notice=page.t("admin.opened", name=account.name), created=created
    )


@router.post("/admin/tokens")
async def new_token(page: AdminPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    role_text = form.choice("role", [role.value for role in Role])
    name = form.text("name", max_chars=MAX_TOKEN_NAME_LENGTH)
    account_id = form.account_id("account_id", required=False)
    if not form.ok:
        return await _admin_home(page, status=422, token_form=form)
    role = Role(role_text)
    try:
        record, secret = await run_in_threadpool(
            create_token, page.state.engine, role, account_id, name
        )
    except TokenError as error:
        field = "name" if error.code == "invalid_name" else "account_id"
        form.fail(field, page.t.error(error.code, str(error)))
        return await _admin_home(page, status=422, token_form=form)
    created: dict[str, object] = {
        "token": secret,
        "role": record.role.value,
        "token_name": record.name,
    }
    return await _admin_home(page, created=created)


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke(page: AdminPage, token_id: UUID) -> Response:
    record = await run_in_threadpool(revoke_token, page.state.engine, token_id)
    if record is None:
        raise WebError(404, "error.token_not_found")
    page.state.authenticator.forget_all()
    return RedirectResponse(f"/admin?revoked={token_id}", status_code=303)


# -- issuance --------------------------------------------------------------------------------
@router.get("/admin/issue")
async def issue_form(page: IssuerPage, issued: UUID | None = None) -> Response:
    notice = None
    if issued is not None:
        notice = await run_in_threadpool(_issued_notice, page, issued)
    return page.render("issue.html", form=None, form_id=uuid4(), notice=notice)


def _issued_notice(page: Page, form_id: UUID) -> str | None:
    """What an issuance by this viewer gave: found from the form's id, so only their own.
    The legs are found by their names in `operations.issuance`."""
    assert page.viewer is not None
    operation = operation_id(page.viewer.token_id, ISSUE_PURPOSE, form_id)
    with page.state.engine.connect() as connection:
        euros = get_transfer(connection, operations.leg_id(operation, "eur"))
        handover = get_transfer(connection, operations.leg_id(operation, "rln-handover"))
        to_holder = handover or get_transfer(connection, operations.leg_id(operation, "rln"))
        bonus = get_transfer(connection, operations.leg_id(operation, "bonus-eur"))
        if euros is None or to_holder is None:
            return None
        holder = get_account(connection, to_holder.transfer.credit_account_id)
    name = holder.name if holder is not None else "?"
    text = page.t("admin.issued", amount=format_amount(euros.transfer.amount), name=name)
    if bonus is not None:
        text += " (" + page.t("admin.bonus", bonus=format_amount(bonus.transfer.amount)) + ")"
    return text


@router.post("/admin/issue")
async def issue(page: IssuerPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    account_id = form.account_id("account_id")
    amount = form.amount("amount")
    reference = form.text("euro_reference", max_chars=MAX_EURO_REFERENCE_LENGTH)
    form_id = form.operation_id("form_id")
    recipient: Account | None = None
    if account_id is not None:
        recipient = await run_in_threadpool(_account, page, account_id)
        if recipient is None:
            form.fail("account_id", page.t("error.account_not_found"))
        elif recipient.kind not in _RECIPIENTS:
            form.fail("account_id", page.t("error.account_kind_not_allowed"))
    if not form.ok or recipient is None or form_id is None:
        return page.render(
            "issue.html", status=422, form=form, form_id=form.raw("form_id"), notice=None
        )
    assert page.viewer is not None
    exchange_point_id = page.viewer.account_id if page.viewer.role is Role.OPERATOR else None
    operation = operation_id(page.viewer.token_id, ISSUE_PURPOSE, form_id)
    legs = operations.issuance(
        operation,
        recipient.id,
        amount,
        reference,
        page.state.settings.bonus_bps,
        exchange_point_id=exchange_point_id,
    )
    outcome = operations.outcome_of(await page.state.ledger.submit_async(legs))
    if outcome not in (Result.OK, Result.EXISTS):
        form.fail("amount", page.t.error(outcome.value, outcome.value))
        return page.render("issue.html", status=422, form=form, form_id=uuid4(), notice=None)
    return RedirectResponse(f"/admin/issue?issued={form_id}", status_code=303)


def _account(page: Page, account_id: UUID) -> Account | None:
    with page.state.engine.connect() as connection:
        return get_account(connection, account_id)


# -- onboarding merchants ----------------------------------------------------------------------
ONBOARD_PURPOSE: Final = "onboard"
MERCHANT_FIELDS: Final = (
    "legal_name",
    "trade_name",
    "siret",
    "category",
    "address",
    "postcode",
    "city",
    "iban",
)
# Which field each refusal of the directory is about.
_FIELD_OF_CODE: Final = {
    "siret_malformed": "siret",
    "siret_checksum": "siret",
    "siren_checksum": "siret",
    "siret_exists": "siret",
    "merchant_exists": "siret",
    "iban_malformed": "iban",
    "iban_checksum": "iban",
    "iban_length": "iban",
    "iban_country": "iban",
    "invalid_postcode": "postcode",
    "invalid_city": "city",
    "invalid_address": "address",
    "unknown_category": "category",
}
MAX_MERCHANT_FIELD_CHARS: Final = 200


@router.get("/admin/merchants/new")
async def onboard_form(page: AdminPage) -> Response:
    return page.render(
        "onboard.html", form=None, form_id=uuid4(), categories=CATEGORIES, created=None
    )


@router.post("/admin/merchants")
async def onboard(page: AdminPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    values = {name: form.text(name, max_chars=MAX_MERCHANT_FIELD_CHARS) for name in MERCHANT_FIELDS}
    form.choice("category", CATEGORIES)
    form_id = form.operation_id("form_id")

    def refused() -> Response:  # the form again, with what was wrong
        return page.render(
            "onboard.html",
            status=422,
            form=form,
            form_id=form.raw("form_id"),
            categories=CATEGORIES,
            created=None,
        )

    if not form.ok or form_id is None:
        return refused()
    assert page.viewer is not None
    merchant_id = operation_id(page.viewer.token_id, ONBOARD_PURPOSE, form_id)
    directory = merchants_of(page.request).directory
    try:
        merchant = await run_in_threadpool(
            directory.onboard, MerchantApplication(**values), merchant_id
        )
    except MerchantError as error:
        form.fail(
            _FIELD_OF_CODE.get(error.code, "legal_name"), page.t.error(error.code, str(error))
        )
        return refused()
    created: dict[str, object] = {"merchant": merchant}
    if form.raw("with_token"):
        _, created["token"] = await run_in_threadpool(
            create_token,
            page.state.engine,
            Role.MERCHANT,
            merchant.account_id,
            merchant.trade_name[:MAX_TOKEN_NAME_LENGTH],
        )
    return page.render(
        "onboard.html",
        form=None,
        form_id=uuid4(),
        categories=CATEGORIES,
        created=created,
        switch_path="/admin/merchants/new",
    )


# -- settling reconversions ----------------------------------------------------------------------
SETTLE_PURPOSE: Final = "settle"
SETTLEMENTS_LISTED: Final = 20


@dataclass(frozen=True, slots=True)
class SettlementsView:
    owed: int
    settlements: list[Settlement]


def _settlements(page: Page) -> SettlementsView:
    reconversions = merchants_of(page.request).reconversions
    return SettlementsView(
        owed=reconversions.owed(),
        settlements=reconversions.list_settlements(limit=SETTLEMENTS_LISTED),
    )


async def _settlements_page(
    page: Page, *, form: Form | None = None, notice: str | None = None, status: int = 200
) -> Response:
    view = await run_in_threadpool(_settlements, page)
    tomorrow = datetime.now(LOCAL_ZONE).date() + timedelta(days=1)
    return page.render(
        "settlements.html",
        status=status,
        view=view,
        form=form,
        form_id=uuid4(),
        execution_date=tomorrow.isoformat(),
        notice=notice,
        switch_path="/admin/settlements",
    )


@router.get("/admin/settlements")
async def settlements(
    page: AdminPage, made: UUID | None = None, paid: UUID | None = None
) -> Response:
    notice = None
    if made is not None:
        settlement = await run_in_threadpool(
            merchants_of(page.request).reconversions.get_settlement, made
        )
        if settlement is not None:
            notice = page.t(
                "admin.settlement_made",
                count=settlement.transfers,
                total=format_amount(settlement.total, "€"),
            )
    elif paid is not None:
        notice = page.t("admin.settlement_done")
    return await _settlements_page(page, notice=notice)


@router.post("/admin/settlements")
async def prepare_settlement(page: AdminPage) -> Response:
    form = Form.of(page.t, await page.request.form())
    execution_date = form.day("execution_date")
    form_id = form.operation_id("form_id")
    if execution_date is None:
        form.fail("execution_date", page.t("error.required"))
    if not form.ok or form_id is None or execution_date is None:
        return await _settlements_page(page, form=form, status=422)
    assert page.viewer is not None
    settlement_id = operation_id(page.viewer.token_id, SETTLE_PURPOSE, form_id)
    try:
        await run_in_threadpool(
            merchants_of(page.request).reconversions.prepare_settlement,
            settlement_id,
            execution_date,
        )
    except MerchantError as error:
        form.fail("execution_date", page.t.error(error.code, str(error)))
        return await _settlements_page(page, form=form, status=422)
    return RedirectResponse(f"/admin/settlements?made={settlement_id}", status_code=303)


async def _settlement(page: Page, settlement_id: UUID) -> Settlement:
    settlement = await run_in_threadpool(
        merchants_of(page.request).reconversions.get_settlement, settlement_id
    )
    if settlement is None:
        raise WebError(404, "error.settlement_not_found")
    return settlement


@router.get("/admin/settlements/{settlement_id}/pain001.xml")
async def settlement_file(page: AdminPage, settlement_id: UUID) -> Response:
    """The SEPA Credit Transfer file (pain.001) to hand to the bank."""
    settlement = await _settlement(page, settlement_id)
    name = f"{settlement.message_id}.xml"
    return Response(
        settlement.document,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/admin/settlements/{settlement_id}/paid")
async def settlement_paid(page: AdminPage, settlement_id: UUID) -> Response:
    await _settlement(page, settlement_id)
    try:
        await run_in_threadpool(merchants_of(page.request).reconversions.mark_paid, settlement_id)
    except MerchantError as error:
        raise WebError(409, "error.service", detail=page.t.error(error.code, str(error))) from error
    return RedirectResponse(f"/admin/settlements?paid={settlement_id}", status_code=303)


@router.post("/admin/settlements/{settlement_id}/cancel")
async def settlement_cancel(page: AdminPage, settlement_id: UUID) -> Response:
    await _settlement(page, settlement_id)
    try:
        await run_in_threadpool(
            merchants_of(page.request).reconversions.cancel_settlement, settlement_id
        )
    except MerchantError as error:
        raise WebError(409, "error.service", detail=page.t.error(error.code, str(error))) from error
    return RedirectResponse("/admin/settlements", status_code=303)
