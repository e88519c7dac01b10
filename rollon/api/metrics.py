"""Prometheus metrics of one app, and the middleware that times requests and logs them.

Each app has its own registry (so several apps in one process, as in tests, do not mix).
Route authors who want a metric of their own add it to `Metrics` or use
`state.metrics.registry` to register one.

| metric | type | labels |
| --- | --- | --- |
| rollon_http_request_duration_seconds | histogram | method (or OTHER), route (template), status |
| rollon_transfers_committed_total | counter | |
| rollon_transfers_rejected_total | counter | code (the ledger's result) |
| rollon_batch_transfers | histogram | (transfers per committed batch) |
| rollon_batch_requests | histogram | (requests coalesced per batch) |
| rollon_batch_duration_seconds | histogram | |
| rollon_failed_logins_total | counter | |
| rollon_internal_errors_total | counter | (bugs: should stay at zero) |
| rollon_sqlite_wal_frames | gauge | (SQLite only: the WAL's length at the last checkpoint) |
| rollon_sqlite_wal_backlog_frames | gauge | (SQLite only: of those, not yet in the database) |
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rollon.ledger.hot_path import BatchReport
from rollon.ledger.transfers import Result
from rollon.ledger.wal_checkpoints import CheckpointReport, WalCheckpointer

access_log = logging.getLogger("rollon.access")

_LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8190)
_COMMITTED = frozenset({Result.OK})
_NOT_REJECTED = frozenset({Result.OK, Result.EXISTS})


class Metrics:
    """The service's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_duration = Histogram(
            "rollon_http_request_duration_seconds",
            "Time from request start to the end of the answer",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.transfers_committed = Counter(
            "rollon_transfers_committed",
            "Transfers the ledger committed",
            registry=self.registry,
        )
        self.transfers_rejected = Counter(
            "rollon_transfers_rejected",
            "Transfers the ledger refused, by result code",
            ["code"],
            registry=self.registry,
        )
        self.batch_transfers = Histogram(
            "rollon_batch_transfers",
            "Transfers per committed batch",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "rollon_batch_requests",
            "Requests coalesced into one committed batch",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_duration = Histogram(
            "rollon_batch_duration_seconds",
            "Time to decide and commit one batch",
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.failed_logins = Counter(
            "rollon_failed_logins",
            "Requests with an unknown or revoked token",
            registry=self.registry,
        )
        self.internal_errors = Counter(
            "rollon_internal_errors",
            "Requests answered 500 (bugs)",
            registry=self.registry,
        )
        self._wal: WalCheckpointer | None = None

    def watch_wal(self, checkpointer: WalCheckpointer) -> None:
        """Export what the ledger's WAL checkpoints find (SQLite). A backlog that keeps growing
        means the checkpoints fail, or a reader holds an old snapshot open."""
        assert self._wal is None, "one ledger per app"
        self._wal = checkpointer
        Gauge(
            "rollon_sqlite_wal_frames",
            "Frames in SQLite's write-ahead log at its last checkpoint",
            registry=self.registry,
        ).set_function(lambda: self._last_wal_report().wal_frames)
        Gauge(
            "rollon_sqlite_wal_backlog_frames",
            "Frames of the write-ahead log not yet copied into the database file",
            registry=self.registry,
        ).set_function(lambda: self._last_wal_report().backlog_frames)

    def _last_wal_report(self) -> CheckpointReport:
        last = self._wal.last if self._wal is not None else None
        return last or CheckpointReport(wal_frames=0, copied_frames=0)

    def observe_batch(self, report: BatchReport) -> None:
        """The ledger's observer: called after each committed batch, on the writer's thread or
        the thread that reads the writer process's answers."""
        self.batch_transfers.observe(report.transfers)
        self.batch_requests.observe(report.requests)
        self.batch_duration.observe(report.duration_s)
        committed = sum(1 for r in report.results if r in _COMMITTED)
        if committed:
            self.transfers_committed.inc(committed)
        for result in report.results:
            if result not in _NOT_REJECTED:
                self.transfers_rejected.labels(code=result.value).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self.registry)


# A client may send any token as its method: only these are label values, the rest OTHER.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


class RequestTimer:
    """Times HTTP requests by route template (bounded label values) and, when `access_log`
    is on, logs one structured line per request. Shared by `RequestMetricsMiddleware` and
    the hot routes (rollon/api/hot_route.py), which time their own requests."""

    def __init__(self, metrics: Metrics, *, access_log: bool) -> None:
        self.metrics = metrics
        self.access_log = access_log
        # Each label set's histogram, found once: `labels()` checks and locks every time.
        self._timers: dict[tuple[str, str, int], Histogram] = {}

    def record(self, scope: Scope, status: int, started: float) -> None:
        """A request answered `status`, begun at `started` (time.perf_counter())."""
        elapsed_s = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        self._timer(method, template, status).observe(elapsed_s)
        if self.access_log:
            client = scope.get("client")
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed_s * 1000, 3),
                    "client": client[0] if client else None,
                },
            )

    def _timer(self, method: str, template: str, status: int) -> Histogram:
        key = (method, template, status)
        timer = self._timers.get(key)
        if timer is None:  # bounded: methods, the app's routes, the statuses it answers
            timer = self._timers[key] = self.metrics.request_duration.labels(
                method=method, route=template, status=str(status)
            )
        return timer


class RequestMetricsMiddleware:
    """Times every HTTP request that reaches it (see `RequestTimer`)."""

    def __init__(self, app: ASGIApp, timer: RequestTimer) -> None:
        self.app = app
        self.timer = timer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.timer.record(scope, status, started)
