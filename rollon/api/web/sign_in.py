"""Signing in with a token, and out: `GET/POST /sign-in`, `POST /sign-out`, and `/`, which
sends a signed-in visitor to the page of their role. See session.py for what the session
cookie holds and why."""

from __future__ import annotations

import time
from typing import Final

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from rollon.api.problems import ProblemError
from rollon.api.web.forms import Form
from rollon.api.web.rendering import (
    SIGN_IN_PATH,
    PageDep,
    WebRoute,
    home_path,
    mark_signed_in,
    mark_signed_out,
    page_key,
)
from rollon.api.web.session import session_cookie

router = APIRouter(route_class=WebRoute, include_in_schema=False)

MAX_TOKEN_CHARS: Final = 128
MAX_NEXT_CHARS: Final = 500


def safe_next(target: str | None) -> str | None:
    """A path on this site to go back to after sign-in; None for anything else (an open
    redirect to another site would make the sign-in page a phishing tool)."""
    if not target or len(target) > MAX_NEXT_CHARS or not target.startswith("/"):
        return None
    if target.startswith(("//", "/\\")) or any(c in target for c in "\\\r\n\t"):
        return None
    if target.startswith((SIGN_IN_PATH, "/sign-out")):
        return None
    return target


@router.get("/")
async def home(page: PageDep) -> Response:
    if page.viewer is not None:
        return RedirectResponse(home_path(page.viewer), status_code=303)
    return page.render("home.html")


@router.get(SIGN_IN_PATH)
async def sign_in_form(
    page: PageDep, next: str | None = None, ended: str | None = None, out: str | None = None
) -> Response:
    if page.viewer is not None:
        return RedirectResponse(safe_next(next) or home_path(page.viewer), status_code=303)
    message = None
    if out is not None:
        message = page.t("sign_in.signed_out")
    elif ended is not None:
        message = page.t("sign_in.expired")
    return page.render("sign_in.html", form=None, next=safe_next(next) or "", message=message)


@router.post(SIGN_IN_PATH)
async def sign_in(page: PageDep) -> Response:
    request = page.request
    form = Form.of(page.t, await request.form())
    token = form.text("token", max_chars=MAX_TOKEN_CHARS)
    target = safe_next(form.raw("next"))
    if form.ok:
        client = request.client.host if request.client is not None else "unknown"
        try:
            principal = await page.state.authenticator.authenticate(token, client)
        except ProblemError as error:
            form.fail("token", page.t.error(error.code, str(error.detail)))
            status = error.status_code
        else:
            mark_signed_in(request, session_cookie(page_key(page.state), token, int(time.time())))
            return RedirectResponse(target or home_path(principal), status_code=303)
    else:
        status = 422
    form.values.pop("token", None)  # never echo a secret back into the page
    return page.render(
        "sign_in.html",
        status=status,
        form=form,
        next=target or "",
        message=None,
        switch_path=SIGN_IN_PATH,
    )


@router.post("/sign-out")
async def sign_out(page: PageDep) -> Response:
    mark_signed_out(page.request)
    return RedirectResponse(f"{SIGN_IN_PATH}?out=1", status_code=303)
