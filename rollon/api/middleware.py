"""ASGI middleware of the service: the request body limit, and the last-resort error answer.

Both are plain ASGI (no BaseHTTPMiddleware). The hot routes (rollon/api/hot_route.py) are
served before any middleware and apply the same `BodyLimit`, `report_bug` and
`send_internal_error` themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rollon.api.problems import PROBLEM_MEDIA_TYPE, internal_error_body, problem_body

log = logging.getLogger(__name__)


async def _send_problem(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Request bodies over `max_body_bytes` are refused with 413 `body_too_large` before the
    app reads them: by Content-Length when the client sends one, else by counting."""

    def __init__(self, max_body_bytes: int, larger_limits: Mapping[str, int] | None = None) -> None:
        """`larger_limits`: exact paths that take more (an uploaded file), by path."""
        assert max_body_bytes > 0
        self.max_body_bytes = max_body_bytes
        self.larger_limits = dict(larger_limits or {})

    def _too_large(self, path: str) -> bytes:
        return problem_body(
            413,
            "body_too_large",
            "Request body too large",
            f"a request body may not exceed {self._limit(path)} bytes",
            path,
        )

    def _limit(self, path: str) -> int:
        return self.larger_limits.get(path, self.max_body_bytes)

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """The `receive` the app may read the body from, or None once a 413 is sent."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self._limit(scope["path"]):
                    await _send_problem(send, 413, self._too_large(scope["path"]))
                    return None
                if declared >= 0:  # the server enforces Content-Length itself
                    return receive
        # No usable Content-Length (chunked): buffer up to the limit, then hand it over.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit(scope["path"]):
                await _send_problem(send, 413, self._too_large(scope["path"]))
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body_message: Message = {"type": "http.request", "body": b"".join(chunks)}
        return _replay([body_message], receive)


class BodyLimitMiddleware:
    """Applies a `BodyLimit` to every HTTP request that reaches it."""

    def __init__(self, app: ASGIApp, limit: BodyLimit) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        admitted = await self.limit.admit(scope, receive, send)
        if admitted is not None:
            await self.app(scope, admitted, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class LastResortMiddleware:
    """A bug must not show a traceback: log it, count it, answer problem+json 500."""

    def __init__(self, app: ASGIApp, on_error: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            report_bug(scope, self.on_error)
            if not started:
                await send_internal_error(scope, send)


def report_bug(scope: Scope, on_error: Callable[[], None]) -> None:
    """Log the exception being handled, with its traceback, and count it."""
    log.exception("unhandled error on %s %s", scope["method"], scope["path"])
    on_error()


async def send_internal_error(scope: Scope, send: Send) -> None:
    """Answer 500 `internal_error`: no detail, no traceback."""
    await _send_problem(send, 500, internal_error_body(scope["path"]))
