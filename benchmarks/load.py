"""The load generator's HTTP client: keep-alive HTTP/1.1 over plain asyncio streams.

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


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send a request's bytes; the answer's status and body."""
        self._writer.write(request)
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), RESPONSE_TIMEOUT_S)
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(head[9:12]), await self._reader.readexactly(length)

    async def post(
        self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        """POST a JSON body; the answer's status and body."""
        return await self.send(post_request(path, body, headers))

    def close(self) -> None:
        self._writer.close()
