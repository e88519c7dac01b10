"""The FastAPI application: `create_app(settings)` builds it; its lifespan opens the database,
the Ledger (with its group-commit writer) and the API's components, and closes them.

Adding routes: write a module under `rollon/api/routes/` exposing an `APIRouter`, and add
one line `"rollon.api.routes.NAME:router"` to `ROUTERS` below: the single place where
routers are included. Shared pieces to reuse: `rollon.api.auth` (require_roles, Principal),
`rollon.api.problems` (ProblemError, PROBLEM_RESPONSES), `rollon.api.idempotency`
(IdempotencyDep for money-moving POSTs), `rollon.api.state` (StateDep: ledger, engine,
settings, metrics).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from sqlalchemy.exc import SQLAlchemyError

from rollon.api.account_kinds import AccountKinds
from rollon.api.auth import Authenticator
from rollon.api.bootstrap import load_key, prepare_database, prepare_signing_key
from rollon.api.gc_policy import serving
from rollon.api.hot_route import HotRoutedApp, HotRoutes
from rollon.api.idempotency import IdempotencyStore
from rollon.api.login_limiter import FailedLoginLimiter
from rollon.api.logs import configure_logging
from rollon.api.metrics import Metrics, RequestMetricsMiddleware, RequestTimer
from rollon.api.middleware import BodyLimit, BodyLimitMiddleware, LastResortMiddleware
from rollon.api.problems import install_problem_handlers, problem_openapi
from rollon.api.routes.audit import STATEMENT_PATH
from rollon.api.settings import Settings
from rollon.api.state import AppState
from rollon.ledger.audit.statements import MAX_STATEMENT_BYTES
from rollon.ledger.service import Ledger
from rollon.ledger.storage import create_engine
from rollon.ledger.writer_process import ChildSetup

log = logging.getLogger(__name__)

# Every router of the service, as "module:attribute". Add yours here, one line.
# Requests are matched against routers in this order: the busiest come first.
ROUTERS: tuple[str, ...] = (
    "rollon.api.routes.transfers:router",
    "rollon.api.routes.issuances:router",
    "rollon.api.routes.health:router",
    "rollon.api.routes.health:root_router",
    "rollon.api.routes.tokens:router",
    "rollon.api.routes.accounts:router",
    "rollon.api.routes.merchants:router",
    "rollon.api.routes.payment_requests:router",
    "rollon.api.routes.payments:router",
    "rollon.api.routes.reconversions:router",
    "rollon.api.routes.keys:router",
    "rollon.api.routes.audit:router",
    "rollon.api.web.routes:router",
)

NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
DESCRIPTION = """\
The RolloN ledger: accounts, balances and payments of Normandy's complementary currency.

* **Amounts** are JSON integers in centimes: `1250` is 12,50 RolloN. Decimals and strings
  are refused (`amount_must_be_integer`).
* **Tokens**: send `Authorization: Bearer rln_…`. An admin creates them with
  `POST /v1/tokens` (or `rollon token create` on the server). Roles: admin, operator,
  merchant, member, auditor.
* **Errors** are RFC 9457 problem details (`application/problem+json`) with a stable
  `code` to branch on.
* **Retries**: every POST that moves money takes an `Idempotency-Key` header (and an `id`
  in its body): the same request again gets the first answer again, never a second payment.
"""


def _router(target: str) -> APIRouter:
    module_name, attribute = target.split(":")
    router = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(router, APIRouter), target
    return router


def open_state(settings: Settings, metrics: Metrics) -> AppState:
    """Open the database (migrating it if needed), the Ledger and the API's components."""
    engine = create_engine(settings.database_url)
    prepare_database(engine)
    prepare_signing_key(settings.signing_key_file)
    signing_key = load_key(settings.signing_key_file)
    ledger = Ledger(
        engine,
        signing_key=signing_key,
        observer=metrics.observe_batch,
        writer_process=_writer_setup(settings) if settings.writer_process else None,
    )
    if ledger.hot_path.wal_checkpointer is not None:
        metrics.watch_wal(ledger.hot_path.wal_checkpointer)
    limiter = FailedLoginLimiter(settings.login_failures_allowed, settings.login_failure_window_s)
    authenticator = Authenticator(
        engine,
        limiter,
        cache_ttl_s=settings.token_cache_ttl_s,
        on_failure=metrics.failed_logins.inc,
    )
    return AppState(
        settings=settings,
        engine=engine,
        ledger=ledger,
        authenticator=authenticator,
        idempotency=IdempotencyStore(engine),
        metrics=metrics,
        account_kinds=AccountKinds(engine),
    )


def _writer_setup(settings: Settings) -> ChildSetup:
    """The ledger's writer process: it knows this app's tickets and participants (of the
    routes and merchants), and logs as `rollon serve` does."""
    return ChildSetup(preload=(__name__,), on_start=partial(configure_logging, settings.log_level))


def close_state(state: AppState) -> None:
    """Commit what is queued, sign the journal's head, stop the writers, close."""
    state.ledger.close()
    try:
        state.ledger.checkpoint()
    except (SQLAlchemyError, RuntimeError) as error:  # a broken database must not stop shutdown
        log.warning("no checkpoint signed at shutdown: %s", error)
    state.idempotency.close()
    state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service as an ASGI app. `settings` default to the environment's."""
    settings = settings or Settings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = open_state(settings, metrics)
        app.state.rollon = state
        log.info("service started", extra={"database": state.engine.dialect.name})
        try:
            with serving():  # start-up state stays out of the collector's scans
                yield
        finally:
            close_state(state)
            log.info("service stopped")

    app = HotRoutedApp(
        title="RolloN ledger service",
        version=importlib.metadata.version("rollon"),
        description=DESCRIPTION,
        lifespan=lifespan,
        # The service exports its own Prometheus metrics and structured logs. FastAPI's
        # OpenTelemetry hooks would look up the global providers (and the environment) on
        # every request, some 30 µs each, to find them unconfigured.
        telemetry=NO_OPENTELEMETRY,
    )
    install_problem_handlers(app)
    routes: list[APIRoute] = []
    for target in ROUTERS:
        router = _router(target)
        app.include_router(router)
        routes += [route for route in router.routes if isinstance(route, APIRoute)]

    body_limit = BodyLimit(
        settings.max_body_bytes,
        larger_limits={STATEMENT_PATH: MAX_STATEMENT_BYTES},  # bank statement uploads
    )
    timer = RequestTimer(metrics, access_log=settings.access_log)
    # Added innermost first: the last one added sees the request first.
    app.add_middleware(BodyLimitMiddleware, limit=body_limit)
    app.add_middleware(RequestMetricsMiddleware, timer=timer)
    app.add_middleware(LastResortMiddleware, on_error=metrics.internal_errors.inc)
    app.hot_routes = HotRoutes(  # paying: served before the middleware, see hot_route
        routes,
        handlers_of=app,
        body_limit=body_limit,
        timer=timer,
        on_error=metrics.internal_errors.inc,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
