"""The public directory of merchants accepting the RolloN (`/directory`): search by city,
category and name, a page at a time. No sign-in needed. Reads `MerchantDirectory.search`,
the service behind `GET /v1/merchants`."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rollon.api.merchant_services import merchants_of
from rollon.api.web.forms import Form
from rollon.api.web.rendering import PageDep, WebRoute
from rollon.merchants.directory import MAX_SEARCH_LENGTH, Category, MerchantPage
from rollon.merchants.errors import MerchantError

router = APIRouter(route_class=WebRoute, include_in_schema=False)

CATEGORIES: Final = tuple(category.value for category in Category)
MAX_CURSOR_CHARS: Final = 300


@router.get("/directory")
async def directory(page: PageDep) -> Response:
    form = Form.of(page.t, page.request.query_params)
    city = form.text("city", max_chars=MAX_SEARCH_LENGTH, required=False)
    name = form.text("name", max_chars=MAX_SEARCH_LENGTH, required=False)
    category = form.raw("category")
    if category:
        form.choice("category", CATEGORIES)
    cursor = form.text("cursor", max_chars=MAX_CURSOR_CHARS, required=False)
    found: MerchantPage | None = None
    if form.ok:
        search = merchants_of(page.request).directory.search
        try:
            found = await run_in_threadpool(
                lambda: search(
                    city=city or None,
                    category=category or None,
                    name=name or None,
                    cursor=cursor or None,
                )
            )
        except MerchantError as error:
            form.fail(
                "cursor" if error.code == "invalid_cursor" else "name",
                page.t.error(error.code, str(error)),
            )
    query = {k: v for k, v in (("city", city), ("category", category), ("name", name)) if v}
    return page.render(
        "directory.html",
        status=200 if form.ok else 422,
        form=form,
        found=found,
        categories=CATEGORIES,
        query=query,
    )
