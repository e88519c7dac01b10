"""How a page is answered: templates, the per-request `Page`, and `WebRoute`, the route class
every page uses.

`WebRoute` wraps each page handler so that:
- every POST is refused (403, in words) unless its form carries the session's CSRF token
  and no foreign `Origin`;
- the language is read from `?lang=` (then kept in a cookie), else the cookie, else French;
- every error becomes an HTML page in the visitor's language, with the right status, never
  a stack trace: `WebError` (our own), the API's `ProblemError`, invalid parameters, the
  ledger's overload and halt, and any bug (logged with its traceback, counted, answered
  with a plain sentence);
- a visitor who must sign in is sent to the sign-in page, and comes back afterwards;
- every page carries security headers (CSP without inline scripts, no framing, no caching
  of personal pages).

Handlers take `page: PageDep` (anyone) or `Annotated[Page, Depends(signed_in(roles))]`,
and answer `page.render("template.html", **context)`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode
from uuid import UUID
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from rollon.api.auth import Principal
from rollon.api.problems import ProblemError
from rollon.api.state import AppState, get_state
from rollon.api.token_store import Role
from rollon.api.web import csrf
from rollon.api.web.i18n import (
    DEFAULT_LANG,
    LANG_COOKIE,
    LANG_COOKIE_MAX_AGE_S,
    Lang,
    Translator,
    parse_lang,
)
from rollon.api.web.session import (
    PRESIGN_COOKIE,
    PRESIGN_MAX_AGE_S,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    new_presign_nonce,
    read_session,
    valid_presign_nonce,
    web_key,
)
from rollon.api.web.static_files import static_url
from rollon.ledger.hot_path import LedgerHalted, LedgerOverloaded, StorageUnavailable
from rollon.ledger.money import format_amount

log = logging.getLogger(__name__)

LOCAL_ZONE: Final = ZoneInfo("Europe/Paris")
NS_PER_S: Final = 1_000_000_000
TEMPLATES_DIR: Final = Path(__file__).parent / "templates"
SIGN_IN_PATH: Final = "/sign-in"

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}


# -- templates ---------------------------------------------------------------------------------
def _when(timestamp_ns: int) -> str:
    """A ledger time as people in Normandy read it: 14/03/2025 15:42."""
    moment = datetime.fromtimestamp(timestamp_ns // NS_PER_S, UTC).astimezone(LOCAL_ZONE)
    return moment.strftime("%d/%m/%Y %H:%M")


def _time_of_s(timestamp_s: int) -> str:
    return datetime.fromtimestamp(timestamp_s, UTC).astimezone(LOCAL_ZONE).strftime("%H:%M")


def _euros(centimes: int) -> str:
    return format_amount(centimes, "€")


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["amount"] = format_amount
    environment.filters["euros"] = _euros
    environment.filters["when"] = _when
    environment.filters["time_of_s"] = _time_of_s
    environment.globals["static_url"] = static_url
    return environment


TEMPLATES: Final = _environment()


# -- errors ------------------------------------------------------------------------------------
class WebError(Exception):
    """A page that cannot be shown: its status and the catalogue key of the reason."""

    def __init__(self, status: int, key: str, **values: object) -> None:
        assert 400 <= status <= 599
        super().__init__(key)
        self.status = status
        self.key = key
        self.values = values


class SignInRequired(Exception):
    """The visitor must sign in first (no session, or it ended)."""


# -- per request -------------------------------------------------------------------------------
@dataclass(slots=True)
class _Pending:
    """Cookie changes a handler asked for, applied by WebRoute to whatever it answers."""

    lang: Lang | None = None
    presign_nonce: str | None = None
    clear_session: bool = False
    session_cookie: str | None = None


def _pending(request: Request) -> _Pending:
    pending = getattr(request.state, "rollon_web", None)
    if pending is None:
        pending = _Pending()
        request.state.rollon_web = pending
    assert isinstance(pending, _Pending)
    return pending


def page_key(state: AppState) -> bytes:
    """The pages' HMAC key (see session.py), from the service's signing key."""
    signing_key = state.ledger.signing_key
    assert signing_key is not None, "the service always runs with a signing key"
    return web_key(signing_key)


def request_lang(request: Request) -> Lang:
    asked = parse_lang(request.query_params.get("lang"))
    if asked is not None:
        return asked
    return parse_lang(request.cookies.get(LANG_COOKIE)) or DEFAULT_LANG


def _lang_links(request: Request, switch_path: str | None) -> dict[str, str]:
    if switch_path is None:
        query = {k: v for k, v in request.query_params.items() if k != "lang"}
        switch_path = request.url.path
    else:
        query = {}
    return {
        lang.value: f"{switch_path}?{urlencode({**query, 'lang': lang.value})}" for lang in Lang
    }


@dataclass(slots=True)
class Page:
    """One page being answered: who is looking, in which language, with which form token."""

    request: Request
    state: AppState
    lang: Lang
    viewer: Principal | None
    csrf_token: str
    t: Translator = field(init=False)

    def __post_init__(self) -> None:
        self.t = Translator(self.lang)

    @property
    def viewer_account(self) -> UUID:
        """The account the viewer's token acts for (member, merchant, operator)."""
        assert self.viewer is not None and self.viewer.account_id is not None
        return self.viewer.account_id

    def render(
        self,
        template: str,
        *,
        status: int = 200,
        switch_path: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """The template as an HTML answer. `switch_path` is where the language links go
        (default: this page; give one for pages answered to a POST)."""
        if switch_path is None and self.request.method != "GET":
            switch_path = home_path(self.viewer)
        html = TEMPLATES.get_template(template).render(
            t=self.t,
            lang=self.lang.value,
            viewer=self.viewer,
            csrf_field=csrf.CSRF_FIELD,
            csrf_token=self.csrf_token,
            lang_links=_lang_links(self.request, switch_path),
            path=self.request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status)


def home_path(viewer: Principal | None) -> str:
    """Where each role starts."""
    if viewer is None:
        return "/"
    return {
        Role.MEMBER: "/wallet",
        Role.MERCHANT: "/till",
        Role.ADMIN: "/admin",
        Role.OPERATOR: "/admin/issue",
        Role.AUDITOR: "/audit",
    }[viewer.role]


async def _viewer(request: Request, state: AppState, key: bytes) -> Principal | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        return None
    session = read_session(key, cookie)
    if session is None:
        _pending(request).clear_session = True
        return None
    client = request.client.host if request.client is not None else "unknown"
    try:
        return await state.authenticator.authenticate(session.token, client)
    except ProblemError as error:
        if error.code == "too_many_failed_logins":
            raise
        _pending(request).clear_session = True  # revoked since sign-in
        return None


async def page_of(request: Request) -> Page:
    """The page for anyone, signed in or not."""
    state = get_state(request)
    key = page_key(state)
    viewer = await _viewer(request, state, key)
    pending = _pending(request)
    if viewer is not None:
        cookie = request.cookies[SESSION_COOKIE]
        token = csrf.session_csrf_token(key, cookie)
    else:
        nonce = request.cookies.get(PRESIGN_COOKIE)
        if not valid_presign_nonce(nonce):
            nonce = pending.presign_nonce or new_presign_nonce()
            pending.presign_nonce = nonce
        assert nonce is not None
        token = csrf.presign_csrf_token(key, nonce)
    page = Page(request, state, request_lang(request), viewer, token)
    request.state.rollon_page = page  # for an error page met later in this request
    return page


PageDep = Annotated[Page, Depends(page_of)]


def signed_in(*roles: Role) -> Callable[..., Awaitable[Page]]:
    """A dependency: the page for a signed-in viewer of one of these roles."""
    assert roles
    allowed = frozenset(roles)

    async def page_for_role(page: PageDep) -> Page:
        if page.viewer is None:
            raise SignInRequired
        if page.viewer.role not in allowed:
            raise WebError(403, "error.forbidden")
        return page

    return page_for_role


# -- the route class ---------------------------------------------------------------------------
def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    lang = request_lang(request)
    t = Translator(lang)
    # The visitor, when the request got as far as knowing them, keeps their menu.
    page = getattr(request.state, "rollon_page", None)
    viewer = page.viewer if isinstance(page, Page) else None
    html = TEMPLATES.get_template("error.html").render(
        t=t,
        lang=lang.value,
        viewer=viewer,
        csrf_field=csrf.CSRF_FIELD,
        csrf_token=page.csrf_token if isinstance(page, Page) else "",
        lang_links=_lang_links(request, "/" if request.method != "GET" else None),
        path=request.url.path,
        message=message,
        status=status,
    )
    return HTMLResponse(html, status_code=status)


def _sign_in_redirect(request: Request) -> Response:
    target = request.url.path if request.method == "GET" else home_path(None)
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    location = f"{SIGN_IN_PATH}?next={quote(target, safe='')}"
    if SESSION_COOKIE in request.cookies:
        location += "&ended=1"
    return RedirectResponse(location, status_code=303)


def _apply(request: Request, response: Response) -> Response:
    pending = _pending(request)
    secure = request.url.scheme == "https"
    asked = parse_lang(request.query_params.get("lang"))
    if asked is not None and asked.value != request.cookies.get(LANG_COOKIE):
        response.set_cookie(
            LANG_COOKIE, asked.value, max_age=LANG_COOKIE_MAX_AGE_S, samesite="lax", secure=secure
        )
    if pending.session_cookie is not None:
        response.set_cookie(
            SESSION_COOKIE,
            pending.session_cookie,
            max_age=SESSION_MAX_AGE_S,
            httponly=True,
            samesite="lax",
            secure=secure,
        )
        response.delete_cookie(PRESIGN_COOKIE, httponly=True, samesite="lax", secure=secure)
    elif pending.clear_session:
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=secure)
    if pending.presign_nonce is not None and pending.session_cookie is None:
        response.set_cookie(
            PRESIGN_COOKIE,
            pending.presign_nonce,
            max_age=PRESIGN_MAX_AGE_S,
            httponly=True,
            samesite="lax",
            secure=secure,
        )
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _csrf_refusal(request: Request) -> Response | None:
    """None when the POST may go on; else the page refusing it."""
    key = page_key(get_state(request))
    form = await request.form()
    submitted = form.get(csrf.CSRF_FIELD)
    if not csrf.same_origin(request.headers.get("origin"), request.headers.get("host")) or (
        not isinstance(submitted, str) or not csrf.token_matches(key, request.cookies, submitted)
    ):
        log.info("refused a page POST without a valid CSRF token: %s", request.url.path)
        return _error_page(request, 403, Translator(request_lang(request))("error.csrf"))
    return None


def mark_signed_in(request: Request, session_cookie: str) -> None:
    """Have the answer to this request set the session cookie (sign-in)."""
    _pending(request).session_cookie = session_cookie


def mark_signed_out(request: Request) -> None:
    """Have the answer to this request clear the session cookie (sign-out)."""
    _pending(request).clear_session = True


class WebRoute(APIRoute):
    """The route class of every page: CSRF on POST, language, errors as pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            started_s = time.perf_counter()
            response = await self._answer(handler, request)
            log.debug(
                "page %s in %.1f ms", request.url.path, (time.perf_counter() - started_s) * 1e3
            )
            return _apply(request, response)

        return handle

    @staticmethod
    async def _answer(
        handler: Callable[[Request], Awaitable[Response]], request: Request
    ) -> Response:
        t = Translator(request_lang(request))
        try:
            if request.method == "POST":
                refusal = await _csrf_refusal(request)
                if refusal is not None:
                    return refusal
            return await handler(request)
        except SignInRequired:
            return _sign_in_redirect(request)
        except WebError as error:
            return _error_page(request, error.status, t(error.key, **error.values))
        except ProblemError as error:
            return _error_page(request, error.status_code, t.error(error.code, str(error.detail)))
        except RequestValidationError:
            return _error_page(request, 404, t("error.not_found"))
        except StarletteHTTPException as error:
            key = "error.not_found" if error.status_code == 404 else "error.bad_request"
            return _error_page(request, error.status_code, t(key))
        except LedgerHalted:
            return _error_page(request, 503, t("error.halted"))
        except (LedgerOverloaded, StorageUnavailable):
            return _error_page(request, 503, t("error.unavailable"))
        except Exception:
            log.exception("page failed: %s %s", request.method, request.url.path)
            get_state(request).metrics.internal_errors.inc()
            return _error_page(request, 500, t("error.internal"))
