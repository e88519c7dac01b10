"""Liveness and metrics: `GET /v1/healthz` (checks the database and the ledger's writer) and
`GET /v1/metrics` (Prometheus). Both need no token, and are also served at `/healthz` and
`/metrics`."""

from __future__ import annotations

import logging
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from rollon.api.problems import Problem, ProblemError
from rollon.api.state import StateDep

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["health"])
root_router = APIRouter(include_in_schema=False)

PROMETHEUS_MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]


def _check(state: StateDep) -> Health:
    if not state.ledger.hot_path.alive:
        log.error("health check: the ledger's writer stopped")
        raise ProblemError(
            503, "ledger_unavailable", "Ledger unavailable", "the ledger's writer has stopped"
        )
    try:
        with state.engine.connect() as connection:
            connection.execute(sa.select(1)).scalar_one()
    except SQLAlchemyError as error:
        log.warning("health check: database unreachable: %s", error)
        raise ProblemError(
            503, "database_unavailable", "Database unavailable", "the database does not answer"
        ) from None
    return Health(status="ok", database="ok")


@router.get(
    "/healthz",
    summary="Is the service up? (checks the database and the ledger's writer)",
    responses={
        503: {"model": Problem, "description": "The database or the ledger's writer is down"}
    },
)
def healthz(state: StateDep) -> Health:
    return _check(state)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(state: StateDep) -> Response:
    return Response(state.metrics.render(), media_type=PROMETHEUS_MEDIA_TYPE)


@root_router.get("/healthz")
def root_healthz(state: StateDep) -> Health:
    return _check(state)


@root_router.get("/metrics")
def root_metrics(state: StateDep) -> Response:
    return metrics(state)
