"""The merchant directory: `POST /v1/merchants` (admin onboarding, each merchant with its
RLN account) and `GET /v1/merchants` (anyone: search by city, category and name, paginated),
plus a merchant's static QR code for its counter."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rollon.api.auth import Principal, Role, require_roles
from rollon.api.fields import RequestModel
from rollon.api.idempotency import Answer, IdempotencyDep, json_answer
from rollon.api.merchant_services import MerchantsDep, problem_of
from rollon.api.problems import PROBLEM_RESPONSES, ProblemError
from rollon.merchants.directory import Category, Merchant, MerchantApplication
from rollon.merchants.errors import MerchantError
from rollon.merchants.iban import format_iban
from rollon.merchants.qr import qr_png, qr_svg

router = APIRouter(prefix="/v1", tags=["merchants"], responses=PROBLEM_RESPONSES)


class MerchantIn(RequestModel):
    id: UUID | None = Field(default=None, description="Chosen by the client: a retry is safe")
    name: str = Field(description="Trade name, as customers know it", examples=["Le Fournil"])
    legal_name: str | None = Field(
        default=None, description="Registered name; the trade name when absent"
    )
    siret: str = Field(description="14 digits, spaces allowed", examples=["732 829 320 00074"])
    category: Category
    address: str = Field(examples=["12 rue du Gros-Horloge"])
    postcode: str = Field(examples=["76000"])
    city: str = Field(examples=["Rouen"])
    iban: str = Field(description="For reconversion payouts", examples=["FR76 3000 ..."])


class MerchantOut(BaseModel):
    id: UUID
    account_id: UUID = Field(description="Its RolloN account")
    name: str
    legal_name: str
    siret: str
    category: Category
    address: str
    postcode: str
    city: str
    iban: str | None = Field(description="Shown to admins and to the merchant only")


class MerchantPageOut(BaseModel):
    items: list[MerchantOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class StaticPayloadOut(BaseModel):
    merchant_id: UUID
    account_id: UUID
    payload: str = Field(description="The text of the counter's QR code: payers type the amount")


def merchant_out(merchant: Merchant, *, private: bool) -> MerchantOut:
    return MerchantOut(
        id=merchant.id,
        account_id=merchant.account_id,
        name=merchant.trade_name,
        legal_name=merchant.legal_name,
        siret=merchant.siret,
        category=merchant.category,
        address=merchant.address,
        postcode=merchant.postcode,
        city=merchant.city,
        iban=format_iban(merchant.iban) if private else None,
    )


@router.post(
    "/merchants", status_code=201, response_model=MerchantOut, summary="Onboard a merchant"
)
async def post_merchant(
    body: MerchantIn,
    merchants: MerchantsDep,
    principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
    idempotency: IdempotencyDep,
) -> Response:
    merchant_id = idempotency.operation_id(principal, body.id)
    application = MerchantApplication(
        legal_name=body.legal_name or body.name,
        trade_name=body.name,
        siret=body.siret,
        category=body.category.value,
        address=body.address,
        postcode=body.postcode,
        city=body.city,
        iban=body.iban,
    )

    async def execute() -> Answer:
        try:
            merchant = await run_in_threadpool(
                merchants.directory.onboard, application, merchant_id
            )
        except MerchantError as error:
            raise problem_of(error) from None
        return json_answer(201, merchant_out(merchant, private=True))

    return await idempotency.run(principal, body, execute)


@router.get("/merchants", response_model=MerchantPageOut, summary="Search the directory")
async def get_merchants(
    merchants: MerchantsDep,
    city: Annotated[str | None, Query(description="Exact city; accents and case ignored")] = None,
    category: Annotated[Category | None, Query()] = None,
    name: Annotated[str | None, Query(description="A piece of the name")] = None,
    cursor: Annotated[str | None, Query(max_length=1_000)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> MerchantPageOut:
    try:
        page = await run_in_threadpool(
            lambda: merchants.directory.search(
                city=city,
                category=category.value if category is not None else None,
                name=name,
                cursor=cursor,
                limit=limit,
            )
        )
    except MerchantError as error:
        raise problem_of(error) from None
    return MerchantPageOut(
        items=[merchant_out(m, private=False) for m in page.merchants],
        next_cursor=page.next_cursor,
    )


async def _merchant(merchants: MerchantsDep, merchant_id: UUID) -> Merchant:
    merchant = await run_in_threadpool(merchants.directory.get, merchant_id)
    if merchant is None:
        raise ProblemError(
            404, "merchant_not_found", "Merchant not found", f"no merchant {merchant_id}"
        )
    return merchant


@router.get("/merchants/{merchant_id}", response_model=MerchantOut, summary="One merchant")
async def get_merchant(merchant_id: UUID, merchants: MerchantsDep) -> MerchantOut:
    return merchant_out(await _merchant(merchants, merchant_id), private=False)


def _check_owner(principal: Principal, merchant: Merchant) -> None:
    if principal.role is not Role.ADMIN and not principal.owns(merchant.account_id):
        raise ProblemError(403, "forbidden", "Forbidden", "only this merchant or an admin")


_OWNER_OR_ADMIN = Depends(require_roles(Role.ADMIN, Role.MERCHANT))


@router.get(
    "/merchants/{merchant_id}/static-payload",
    response_model=StaticPayloadOut,
    summary="The payload of the merchant's counter QR code",
)
async def get_static_payload(
    merchant_id: UUID,
    merchants: MerchantsDep,
    principal: Annotated[Principal, _OWNER_OR_ADMIN],
) -> StaticPayloadOut:
    merchant = await _merchant(merchants, merchant_id)
    _check_owner(principal, merchant)
    payload = await run_in_threadpool(merchants.requests.static_payload, merchant.account_id)
    return StaticPayloadOut(
        merchant_id=merchant.id, account_id=merchant.account_id, payload=payload
    )


@router.get(
    "/merchants/{merchant_id}/static-qr.{image_format}",
    response_class=Response,
    summary="The merchant's counter QR code, as an SVG or PNG image",
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
)
async def get_static_qr(
    merchant_id: UUID,
    image_format: str,
    merchants: MerchantsDep,
    principal: Annotated[Principal, _OWNER_OR_ADMIN],
) -> Response:
    if image_format not in ("svg", "png"):
        raise ProblemError(404, "not_found", "Not found", "images are .svg or .png")
    merchant = await _merchant(merchants, merchant_id)
    _check_owner(principal, merchant)
    payload = await run_in_threadpool(merchants.requests.static_payload, merchant.account_id)
    return qr_response(payload, image_format)


def qr_response(payload: str, image_format: str) -> Response:
    """A QR image of a payload, cacheable by the client (a payload never changes)."""
    if image_format == "svg":
        return Response(qr_svg(payload), media_type="image/svg+xml")
    return Response(qr_png(payload), media_type="image/png")
