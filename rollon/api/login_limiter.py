"""Failed logins, counted per client address in a sliding window, in bounded memory.

After `max_failures` failed logins within `window_s`, an address gets 429 for every login
until its oldest failure leaves the window, valid token or not: otherwise a guesser would
still learn which guess was right. Memory is bounded: at most `max_clients` addresses are
tracked (the least recently failing are forgotten first), each with at most `max_failures`
timestamps. Counts are per process.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_TRACKED_CLIENTS = 10_000


class FailedLoginLimiter:
    """Sliding-window counter of failed logins per client address."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        *,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        assert max_failures > 0 and window_s > 0 and max_clients > 0
        self._max_failures = max_failures
        self._window_s = window_s
        self._max_clients = max_clients
        self._clock_s = clock_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after_s(self, client: str) -> float | None:
        """Seconds until `client` may try again, or None if it may try now."""
        with self._lock:
            failures = self._failures.get(client)
            if failures is None or len(failures) < self._max_failures:
                return None
            wait_s = failures[0] + self._window_s - self._clock_s()
            return wait_s if wait_s > 0 else None

    def record_failure(self, client: str) -> None:
        now = self._clock_s()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                failures = deque(maxlen=self._max_failures)
                self._failures[client] = failures
                while len(self._failures) > self._max_clients:
                    self._failures.popitem(last=False)
            else:
                self._failures.move_to_end(client)
            while failures and failures[0] <= now - self._window_s:
                failures.popleft()
            failures.append(now)

    @property
    def tracked_clients(self) -> int:
        return len(self._failures)
