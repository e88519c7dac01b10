"""Idempotent money-moving POSTs: the `Idempotency-Key` header and the answers kept for it.

For route authors, a money-moving POST looks like this:

    @router.post("/things", status_code=201, responses=PROBLEM_RESPONSES)
    async def create_thing(
        body: ThingIn,
        principal: Annotated[Principal, Depends(require_roles(Role.MERCHANT))],
        idempotency: IdempotencyDep,
        state: StateDep,
    ) -> Response:
        operation_id = idempotency.operation_id(principal, body.id)

        async def execute() -> Answer:
            results = await state.ledger.submit_async([...])   # raise ProblemError on refusal
            return json_answer(201, ThingOut(...))

        return await idempotency.run(principal, body, execute)

`run` answers a retry (same token, same key, same method, path and body) with the first
answer again, byte for byte, marked `Idempotent-Replayed: true`; the same key with another
request is a 409 `idempotency_key_reused`. Answers are kept in the database
(`idempotency_keys`, per token and key) and are durable before the client sees them, so keys
survive a restart. Problems below 500 raised by `execute` (the ledger's refusals) are kept
too; 5xx and 429 are not, so a retry after them runs again.

`operation_id` gives the id to hand the ledger: the body's own `id` when the client chose
one, else one derived from the token and the key (so a retry whose answer was lost still
lands on the same ledger id, which the ledger itself deduplicates), else a fresh one.

Writes are group-committed like the ledger's: one writer thread per process takes every
answer queued meanwhile and stores them in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID, uuid4, uuid5

import sqlalchemy as sa
from fastapi import Depends, Header, Request
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rollon.api.auth import Principal
from rollon.api.problems import PROBLEM_MEDIA_TYPE, ProblemError, problem_body
from rollon.api.schema import MAX_IDEMPOTENCY_KEY_LENGTH, idempotency_keys
from rollon.api.state import get_state
from rollon.ledger.hot_path import LedgerOverloaded, StorageUnavailable
from rollon.ledger.storage import write_transaction

log = logging.getLogger(__name__)

MAX_BATCH_ANSWERS = 256
MAX_QUEUED_ANSWERS = 10_000
MAX_WRITE_ATTEMPTS = 5
RETRY_BACKOFF_MS = 10
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_NAMESPACE = UUID("0b4b8d3c-6a51-4f3e-9d0e-7c1f8e2a5b60")


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer as kept for replay."""

    status_code: int
    media_type: str
    body: bytes

    def response(self, *, replayed: bool = False) -> Response:
        headers = {REPLAYED_HEADER: "true"} if replayed else None
        return Response(
            self.body, status_code=self.status_code, media_type=self.media_type, headers=headers
        )


def json_answer(status_code: int, model: BaseModel) -> Answer:
    """An answer with a pydantic model as its JSON body."""
    return Answer(status_code, "application/json", model.model_dump_json().encode())


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    """What the store holds for one key: the request's fingerprint and its first answer."""

    request_sha256: bytes
    answer: Answer


@dataclass(slots=True)
class _Pending:
    token_id: UUID
    key: str
    kept: KeptAnswer
    future: Future[KeptAnswer]


class IdempotencyStore:
    """Kept answers in the database; writes group-committed by one writer thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        max_batch: int = MAX_BATCH_ANSWERS,
        max_queued: int = MAX_QUEUED_ANSWERS,
    ) -> None:
        assert 0 < max_batch <= MAX_BATCH_ANSWERS
        self._engine = engine
        self._clock_ns = clock_ns
        self._max_batch = max_batch
        assert engine.dialect.name in ("postgresql", "sqlite"), engine.dialect.name
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="rollon-idempotency", daemon=True)
        self._thread.start()

    def lookup(self, token_id: UUID, key: str) -> KeptAnswer | None:
        """The answer kept for this token and key, if any (blocking: a database read)."""
        with self._engine.connect() as connection:
            return _select(connection, token_id, key)

    def save_nowait(self, token_id: UUID, key: str, kept: KeptAnswer) -> Future[KeptAnswer]:
        """Queue an answer; the future gives what the store holds for the key once durable:
        this answer, or one an earlier request kept first."""
        assert 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH
        future: Future[KeptAnswer] = Future()
        try:
            self._queue.put_nowait(_Pending(token_id, key, kept, future))
        except queue.Full:
            raise LedgerOverloaded("too many answers are waiting to be stored") from None
        return future

    async def save(self, token_id: UUID, key: str, kept: KeptAnswer) -> KeptAnswer:
        return await asyncio.wrap_future(self.save_nowait(token_id, key, kept))

    def close(self) -> None:
        """Store what is queued, then stop the writer."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    # -- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = [first], False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Pending]) -> None:
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            try:
                kept = self._write_once(batch)
            except OperationalError as error:
                if attempt == MAX_WRITE_ATTEMPTS:
                    self._fail(batch, StorageUnavailable(str(error.orig)))
                    return
                log.warning("idempotency write %d failed, retrying: %s", attempt, error.orig)
                time.sleep(RETRY_BACKOFF_MS * attempt / 1000)
            except DBAPIError as error:
                log.error("idempotency write refused by the database: %s", error.orig)
                self._fail(batch, StorageUnavailable(str(error.orig)))
                return
            except Exception as error:
                log.exception("idempotency write failed")
                self._fail(batch, StorageUnavailable(repr(error)))
                return
            else:
                for pending, answer in zip(batch, kept, strict=True):
                    pending.future.set_result(answer)
                return

    def _write_once(self, batch: list[_Pending]) -> list[KeptAnswer]:
        now_ns = self._clock_ns()
        firsts: dict[tuple[UUID, str], _Pending] = {}
        for pending in batch:
            firsts.setdefault((pending.token_id, pending.key), pending)
        rows = [
            {
                "token_id": p.token_id,
                "key": p.key,
                "request_sha256": p.kept.request_sha256,
                "status_code": p.kept.answer.status_code,
                "media_type": p.kept.answer.media_type,
                "body": p.kept.answer.body.decode(),
                "created_at_ns": now_ns,
            }
            for p in firsts.values()
        ]
        table = idempotency_keys
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        statement = (
            insert(table)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(table.c.token_id, table.c.key)
        )
        held: dict[tuple[UUID, str], KeptAnswer] = {}
        with write_transaction(self._engine) as connection:
            inserted = {(row[0], row[1]) for row in connection.execute(statement)}
            for identity, pending in firsts.items():
                if identity in inserted:
                    held[identity] = pending.kept
                else:  # kept by another request first (another process, or a lost race)
                    earlier = _select(connection, *identity)
                    assert earlier is not None, "a conflicting key must exist"
                    held[identity] = earlier
        return [held[(p.token_id, p.key)] for p in batch]

    @staticmethod
    def _fail(batch: list[_Pending], error: BaseException) -> None:
        for pending in batch:
            pending.future.set_exception(error)


def _select(connection: Connection, token_id: UUID, key: str) -> KeptAnswer | None:
    table = idempotency_keys
    row = connection.execute(
        sa.select(
            table.c.request_sha256, table.c.status_code, table.c.media_type, table.c.body
        ).where(table.c.token_id == token_id, table.c.key == key)
    ).first()
    if row is None:
        return None
    return KeptAnswer(bytes(row[0]), Answer(row[1], row[2], row[3].encode()))


# -- the per-request helper -----------------------------------------------------------------
class Idempotency:
    """The idempotency of one request: its key (if any) and how to run it once."""

    def __init__(self, request: Request, key: str | None, store: IdempotencyStore) -> None:
        self.key = key
        self._request = request
        self._store = store

    def operation_id(self, principal: Principal, given: UUID | None) -> UUID:
        """The ledger id for this request: the client's own, else derived from the key."""
        if given is not None:
            return given
        if self.key is not None:
            return uuid5(_KEY_NAMESPACE, f"{principal.token_id}:{self.key}")
        return uuid4()

    def fingerprint(self, body: BaseModel) -> bytes:
        """What makes two requests "the same": method, path and the validated body."""
        digest = hashlib.sha256(f"{self._request.method} {self._request.url.path}\n".encode())
        digest.update(body.model_dump_json().encode())
        return digest.digest()

    async def run(
        self, principal: Principal, body: BaseModel, execute: Callable[[], Awaitable[Answer]]
    ) -> Response:
        """Run `execute` once per key; answer retries with the first answer."""
        if self.key is None:
            return (await self._execute(execute)).response()
        fingerprint = self.fingerprint(body)
        earlier = await run_in_threadpool(self._store.lookup, principal.token_id, self.key)
        if earlier is not None:
            return self._replay(earlier, fingerprint)
        answer = await self._execute(execute)
        kept = await self._store.save(principal.token_id, self.key, KeptAnswer(fingerprint, answer))
        if kept.answer != answer or kept.request_sha256 != fingerprint:
            return self._replay(kept, fingerprint)  # another request with this key came first
        return answer.response()

    async def _execute(self, execute: Callable[[], Awaitable[Answer]]) -> Answer:
        try:
            return await execute()
        except ProblemError as problem:
            if problem.status_code >= 500 or problem.status_code == 429:
                raise
            body = problem_body(
                problem.status_code,
                problem.code,
                problem.title,
                problem.detail,
                self._request.url.path,
                problem.errors,
            )
            return Answer(problem.status_code, PROBLEM_MEDIA_TYPE, body)

    def _replay(self, kept: KeptAnswer, fingerprint: bytes) -> Response:
        if kept.request_sha256 != fingerprint:
            raise ProblemError(
                409,
                "idempotency_key_reused",
                "Idempotency key reused",
                "this Idempotency-Key was used for another request; use a new key",
            )
        return kept.answer.response(replayed=True)


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH and all(" " <= c <= "~" for c in key)


async def idempotency(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Any unique string (a UUID is best), 1 to 255 printable ASCII "
            "characters. A retry with the same key and body gets the first answer again.",
            examples=["5f0c1e9a-7f1b-4c52-b5d6-0d6f4b0e8a11"],
        ),
    ] = None,
) -> Idempotency:
    """The request's idempotency helper (a FastAPI dependency)."""
    if idempotency_key is not None and not _valid_key(idempotency_key):
        raise ProblemError(
            400,
            "invalid_idempotency_key",
            "Invalid Idempotency-Key",
            f"an Idempotency-Key has 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters",
        )
    return Idempotency(request, idempotency_key, get_state(request).idempotency)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]
