"""ASGI middleware of the service: the request body limit, and the last-resort error answer.

Both are plain ASGI (no BaseHTTPMiddleware) so they cost little on the hot path.
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


class BodyLimitMiddleware:
    """Refuse request bodies over `max_body_bytes` with 413 `body_too_large`, before the app
    reads them: by Content-Length when the client sends one, else by counting."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, larger_limits: Mapping[str, int] | None = None
    ) -> None:
        """`larger_limits`: exact paths that take more (an uploaded file), by path."""
        assert max_body_bytes > 0
        self.app = app
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self._limit(scope["path"]):
                    await _send_problem(send, 413, self._too_large(scope["path"]))
                    return
                if declared >= 0:  # the server enforces Content-Length itself
                    await self.app(scope, receive, send)
                    return
        # No usable Content-Length (chunked): buffer up to the limit, then hand it over.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit(scope["path"]):
                await _send_problem(send, 413, self._too_large(scope["path"]))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body_message: Message = {"type": "http.request", "body": b"".join(chunks)}
        await self.app(scope, _replay([body_message], receive), send)


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
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            self.on_error()
            if not started:
                await _send_problem(send, 500, internal_error_body(scope["path"]))
