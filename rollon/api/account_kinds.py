"""Which kind each account is (member, merchant, ...), cached: kinds never change and
accounts are never deleted, so a known kind can be kept. Unknown ids are not cached (the
account may be opened later). Bounded: the least recently used entries go first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from uuid import UUID

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from rollon.ledger.accounts import AccountKind
from rollon.ledger.queries import get_account

MAX_CACHED_ACCOUNTS = 100_000


class AccountKinds:
    """Account id -> kind, read through from the database."""

    def __init__(self, engine: Engine, max_cached: int = MAX_CACHED_ACCOUNTS) -> None:
        assert max_cached > 0
        self._engine = engine
        self._max_cached = max_cached
        self._kinds: OrderedDict[UUID, AccountKind] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, account_id: UUID) -> AccountKind | None:
        with self._lock:
            kind = self._kinds.get(account_id)
            if kind is not None:
                self._kinds.move_to_end(account_id)
            return kind

    async def kind_of(self, account_id: UUID) -> AccountKind | None:
        """The account's kind, None if there is no such account; reads the database (off
        the event loop) only on a cache miss."""
        kind = self.cached(account_id)
        if kind is None:
            kind = await run_in_threadpool(self.lookup, account_id)
        return kind

    def lookup(self, account_id: UUID) -> AccountKind | None:
        """The account's kind, None if there is no such account (blocking on a miss)."""
        kind = self.cached(account_id)
        if kind is not None:
            return kind
        with self._engine.connect() as connection:
            account = get_account(connection, account_id)
        if account is None:
            return None
        with self._lock:
            self._kinds[account_id] = account.kind
            while len(self._kinds) > self._max_cached:
                self._kinds.popitem(last=False)
        return account.kind
