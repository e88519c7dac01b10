"""Authentication and roles, as FastAPI dependencies.

For route authors:

    from rollon.api.auth import Principal, Role, require_roles, check_account_access

    @router.get("/things/{account_id}")
    def read(
        account_id: UUID,
        principal: Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MEMBER))],
    ) -> ...:
        check_account_access(principal, account_id)  # owner, admin or auditor, else 403

`require_roles(...)` answers 401 (`unauthorized`: no bearer token; `token_invalid`: unknown
or revoked), 429 (`too_many_failed_logins`) or 403 (`forbidden`: another role), and otherwise
gives the `Principal`: the token's id, role, and the account it acts for (member, merchant
and operator tokens; None for admin and auditor).

A checked token is trusted for `Settings.token_cache_ttl_s` in one process, so most requests
do not read the database; revoking clears the cache of the process that revoked at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastapi import Request
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from rollon.api.login_limiter import FailedLoginLimiter
from rollon.api.problems import ProblemError
from rollon.api.state import get_state
from rollon.api.token_store import Role, TokenRecord, find_token, secret_sha256

MAX_CACHED_TOKENS = 10_000
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="rollon"'}

__all__ = [
    "BEARER_SECURITY",
    "Principal",
    "Role",
    "RoleGate",
    "check_account_access",
    "require_roles",
]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: from a valid bearer token."""

    token_id: UUID
    role: Role
    account_id: UUID | None
    name: str

    def owns(self, account_id: UUID) -> bool:
        """True when this caller's token acts for `account_id`."""
        return self.account_id is not None and self.account_id == account_id

    @classmethod
    def of(cls, record: TokenRecord) -> Principal:
        return cls(record.id, record.role, record.account_id, record.name)


class Authenticator:
    """Turns a bearer secret into a Principal: cache, database, failed-login limiter."""

    def __init__(
        self,
        engine: Engine,
        limiter: FailedLoginLimiter,
        *,
        cache_ttl_s: float,
        max_cached: int = MAX_CACHED_TOKENS,
        clock_s: Callable[[], float] = time.monotonic,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        assert cache_ttl_s >= 0 and max_cached > 0
        self._engine = engine
        self._limiter = limiter
        self._ttl_s = cache_ttl_s
        self._max_cached = max_cached
        self._clock_s = clock_s
        self._on_failure = on_failure
        self._cache: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    async def authenticate(self, secret: str | None, client: str) -> Principal:
        if secret is None:
            raise ProblemError(
                401,
                "unauthorized",
                "Unauthorized",
                "send a token as `Authorization: Bearer rln_…`",
                headers=_CHALLENGE,
            )
        retry_after_s = self._limiter.retry_after_s(client)
        if retry_after_s is not None:
            raise ProblemError(
                429,
                "too_many_failed_logins",
                "Too many failed logins",
                "too many invalid tokens were sent from this address; wait and retry",
                headers={"Retry-After": str(math.ceil(retry_after_s))},
            )
        digest = secret_sha256(secret)
        now_s = self._clock_s()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[1] > now_s:
            return cached[0]
        record = await run_in_threadpool(self._lookup, secret)
        if record is None:
            self._limiter.record_failure(client)
            self._on_failure()
            raise ProblemError(
                401,
                "token_invalid",
                "Unauthorized",
                "the token is unknown or revoked",
                headers=_CHALLENGE,
            )
        principal = Principal.of(record)
        with self._lock:
            self._cache[digest] = (principal, now_s + self._ttl_s)
            self._cache.move_to_end(digest)
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
        return principal

    def forget_all(self) -> None:
        """Drop every cached token (after a revocation)."""
        with self._lock:
            self._cache.clear()

    def _lookup(self, secret: str) -> TokenRecord | None:
        with self._engine.connect() as connection:
            return find_token(connection, secret)


class RoleGate(HTTPBearer):
    """The dependency `require_roles` gives. It is itself the HTTP bearer security scheme,
    so OpenAPI documents the route's security, and it reads the header itself: one
    dependency to resolve per request instead of a scheme nested in a checker.

    The few hottest routes (a payment at a till) skip FastAPI's dependency resolution,
    which costs more than the check itself: they `await gate.check(request)` in their body
    and declare `openapi_extra=BEARER_SECURITY` so the manual still shows the token."""

    def __init__(self, roles: frozenset[Role]) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="HTTPBearer",
            description="A token from `POST /v1/tokens`",
        )
        self._allowed = roles
        self._allowed_text = ", ".join(sorted(roles))

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return await self.check(request)

    async def check(self, request: Request) -> Principal:
        """The caller, if its token is valid and of an allowed role; else a problem."""
        client = request.client.host if request.client is not None else "unknown"
        scheme, secret = get_authorization_scheme_param(request.headers.get("authorization"))
        given = secret if scheme.lower() == "bearer" and secret else None
        principal = await get_state(request).authenticator.authenticate(given, client)
        if principal.role not in self._allowed:
            raise ProblemError(
                403,
                "forbidden",
                "Forbidden",
                f"a {principal.role} token may not do this; it takes: {self._allowed_text}",
            )
        return principal


# What a RoleGate dependency adds to a route's OpenAPI operation, for routes that call it.
BEARER_SECURITY: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


def require_roles(*roles: Role) -> RoleGate:
    """A dependency that lets through only valid tokens of these roles."""
    assert roles, "name at least one role"
    return RoleGate(frozenset(roles))


def check_account_access(principal: Principal, account_id: UUID) -> None:
    """Reading an account: its owner, an admin or an auditor. Otherwise 403."""
    if principal.role in (Role.ADMIN, Role.AUDITOR) or principal.owns(account_id):
        return
    raise ProblemError(
        403, "forbidden", "Forbidden", f"this token does not act for account {account_id}"
    )
