"""The load generator's HTTP client: keep-alive HTTP/1.1 over a plain asyncio protocol.

A client library costs the load generator more CPU than the servers it measures: httpx, with
32 connections on this 2-core machine, spent about 7 ms of CPU per request, so the client set
the pace and every server looked alike. This one writes a request in one `write` and reads
the answer by its Content-Length, which is all a benchmark of JSON POSTs needs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

RESPONSE_TIMEOUT_S = 30.0


def post_request(path: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> bytes:
    """The bytes of one JSON POST."""
    encoded = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head += f"Content-Length: {len(encoded)}\r\n\r\n"
    return head.encode() + encoded


class _Answers(asyncio.Protocol):
    """Reads answers off one connection as they arrive: status and body by Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._buffer = b""
        self._lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in self._buffer[:end].split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if len(self._buffer) < end + 4 + length:
            return
        status = int(self._buffer[9:12])
        body = self._buffer[end + 4 : end + 4 + length]
        self._buffer = self._buffer[end + 4 + length :]
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionError("the server closed the connection"))

    def fail(self, error: Exception) -> None:
        """Fail the answer awaited, and every later request on this connection."""
        self._lost = self._lost or error
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def expect(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[tuple[int, bytes]]:
        if self._lost is not None:
            raise self._lost
        assert self.waiter is None, "one request at a time"
        self.waiter = loop.create_future()
        return self.waiter


class Connection:
    """One keep-alive connection; one request at a time.

    A protocol, not asyncio streams: `StreamReader.readuntil` under `wait_for` made a task
    and a timer per answer, and the load generator shares the machine with the servers it
    measures."""

    def __init__(self, answers: _Answers) -> None:
        self._answers = answers
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, answers = await loop.create_connection(_Answers, "127.0.0.1", port)
        return cls(answers)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send a request's bytes; the answer's status and body."""
        answer = self._answers.expect(self._loop)
        assert self._answers.transport is not None
        self._answers.transport.write(request)
        timeout = self._loop.call_later(RESPONSE_TIMEOUT_S, self._time_out)
        try:
            return await answer
        finally:
            timeout.cancel()

    def _time_out(self) -> None:
        # A late answer would be read as the next request's: the connection is done for.
        self._answers.fail(TimeoutError(f"no answer within {RESPONSE_TIMEOUT_S} s"))
        self.close()

    async def post(
        self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        """POST a JSON body; the answer's status and body."""
        return await self.send(post_request(path, body, headers))

    def close(self) -> None:
        if self._answers.transport is not None:
            self._answers.transport.close()
