"""The payment requests this process signed and has not seen paid yet, in its own memory.

A payer nearly always pays a request through the process that made it, seconds after it
was made. That process need not check the payload's signature again: the text is, byte for
byte, one it signed itself, and verifying the same bytes under the same key always gives
the same answer. Nor need it read the request's row before paying: the row it inserted is
what a read would give, unless a cancellation, an expiry or a payer in another process
touched it since, and the ledger referees those (an attempt's transfer id is spent once,
and the row's update is guarded by its attempt and status).

The memory is the process's own, not the database: someone who rewrites a request's row
with plain SQL still cannot make a forged text pay without the service's key. It is
bounded: when full, the oldest entry goes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")

# About 1 kB an entry (the payload text and its request's row), some 10 MB when full. A
# request leaves when it is paid; when full, the oldest unpaid one makes room.
MAX_REMEMBERED = 10_000


class SignedHere(Generic[T]):
    """Payload texts this process signed, each with the request it stands for."""

    def __init__(self, max_entries: int = MAX_REMEMBERED) -> None:
        assert max_entries > 0
        self._max_entries = max_entries
        self._entries: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()  # requests are made on the loop and in worker threads

    def remember(self, text: str, request: T) -> None:
        """Keep `request` under the payload `text` this process just signed and stored."""
        with self._lock:
            self._entries[text] = request
            if len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def take(self, text: str) -> T | None:
        """The request signed here as exactly `text`, forgotten as it is handed out (a
        second payment of it goes the full way); None if this process did not sign it."""
        with self._lock:
            return self._entries.pop(text, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
