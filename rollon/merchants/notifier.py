"""Wake-ups for tills waiting on a payment request, without reloading.

`notify(request_id)` may be called from any thread (the payment path runs in worker
threads); `wait(request_id, timeout_s)` is awaited on an event loop. Waiters of one process
are woken at once; other processes' changes are found by the caller's database poll, which
is why `wait` always returns by its timeout.
"""

from __future__ import annotations

import asyncio
import threading
from uuid import UUID

MAX_WAITERS = 10_000


class TooManyWaiters(RuntimeError):
    """Every waiting slot of this process is taken: the caller should retry later."""


class RequestNotifier:
    """In-process wake-ups keyed by payment request id; bounded."""

    def __init__(self, max_waiters: int = MAX_WAITERS) -> None:
        assert max_waiters > 0
        self._max_waiters = max_waiters
        self._waiters: dict[UUID, set[asyncio.Future[None]]] = {}
        self._count = 0
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """How many waiters are registered now."""
        return self._count

    def notify(self, request_id: UUID) -> None:
        """Wake every waiter of this request (thread-safe, never blocks)."""
        with self._lock:
            futures = self._waiters.pop(request_id, set())
            self._count -= len(futures)
        for future in futures:
            future.get_loop().call_soon_threadsafe(_resolve, future)

    async def wait(self, request_id: UUID, timeout_s: float) -> bool:
        """Wait until this request is notified (True) or `timeout_s` passes (False)."""
        assert timeout_s >= 0
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._count >= self._max_waiters:
                raise TooManyWaiters(f"{self._max_waiters} requests are being waited on")
            self._waiters.setdefault(request_id, set()).add(future)
            self._count += 1
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                waiters = self._waiters.get(request_id)
                if waiters is not None and future in waiters:
                    waiters.discard(future)
                    self._count -= 1
                    if not waiters:
                        del self._waiters[request_id]
            assert self._count >= 0


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
