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

A route whose whole work is one ledger submission uses `submit` instead of `run`: the key's
lookup and its answer then ride in the ledger's own batch transaction (a `BatchParticipant`),
so the request costs one hand-off to the ledger's writer and one commit, and the answer is
durable exactly when the transfers are:

        @dataclass(frozen=True)
        class ThingAnswer:   # module level: it runs in the ledger's writer process
            body: ThingIn

            def __call__(self, results: Sequence[Result]) -> Answer:   # ProblemError refuses
                return json_answer(201, ThingOut(...))

        async def prepare() -> Sequence[Transfer]:   # raise ProblemError to refuse
            return [Transfer(...)]

        return await idempotency.submit(principal, body, state.ledger, prepare, ThingAnswer(body))

`run` stays for routes that do other work around the ledger (their own tables, several
submissions): there the lookups and writes are batched like the ledger's, by the store's own
thread, which takes every lookup and answer queued meanwhile, reads them in one query and
stores them in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol
from uuid import UUID, uuid4, uuid5

from fastapi import Depends, Header, Request
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.responses import Response

from rollon.api.auth import Principal
from rollon.api.problems import PROBLEM_MEDIA_TYPE, ProblemError, problem_body
from rollon.api.schema import MAX_IDEMPOTENCY_KEY_LENGTH
from rollon.api.state import get_state
from rollon.ledger.hot_path import LedgerOverloaded, StorageUnavailable
from rollon.ledger.storage import driver_cursor, write_transaction
from rollon.ledger.transfers import Result, Transfer

if TYPE_CHECKING:
    from rollon.ledger.service import Ledger

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

    def __reduce__(self) -> tuple[type[Answer], tuple[int, str, bytes]]:
        # Answers cross to the ledger's writer process and back with every keyed payment: a
        # tuple of plain values pickles in C, a slots dataclass's state in Python.
        return Answer, (self.status_code, self.media_type, self.body)

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

    def __reduce__(self) -> tuple[type[KeptAnswer], tuple[bytes, Answer]]:
        return KeptAnswer, (self.request_sha256, self.answer)  # see Answer.__reduce__


@dataclass(slots=True)
class _Save:
    token_id: UUID
    key: str
    kept: KeptAnswer
    future: Future[KeptAnswer]


@dataclass(slots=True)
class _Lookup:
    token_id: UUID
    key: str
    future: Future[KeptAnswer | None]


class Answerer(Protocol):
    """A route's answer for its request's results, raising ProblemError to refuse. It runs
    in the ledger's writer, which may be another process: make it a module-level class whose
    fields pickle (ids, the validated body), not a closure."""

    def __call__(self, results: Sequence[Result]) -> Answer: ...


@dataclass(slots=True)
class KeptInBatch:
    """A keyed request's ticket with the ledger's batch (see `KeyedAnswers`). Once the batch
    committed, `kept` is what its key holds and `kept_own` whether that is this request's
    own answer; `failure` is set instead when the answer must not be kept (a 5xx or 429)."""

    identity: tuple[UUID, str]  # (token id, key)
    request_sha256: bytes
    answer_of: Answerer
    kept: KeptAnswer | None = None
    kept_own: bool = False
    failure: BaseException | None = None

    def __post_init__(self) -> None:
        assert 0 < len(self.identity[1]) <= MAX_IDEMPOTENCY_KEY_LENGTH

    def __reduce__(self) -> tuple[Callable[..., KeptInBatch], tuple[Any, ...]]:
        token_id, key = self.identity  # see Answer.__reduce__
        # A settled ticket goes back to the server without its answerer (and the transfers
        # in it): a third of the bytes, and some 14 µs less pickling per payment.
        settled = self.kept is not None or self.failure is not None
        answer_of = None if settled else self.answer_of
        state = (answer_of, self.kept, self.kept_own, self.failure)
        return _kept_in_batch, (token_id.bytes, key, self.request_sha256, *state)


def _kept_in_batch(
    token_id: bytes,
    key: str,
    request_sha256: bytes,
    answer_of: Answerer | None,
    kept: KeptAnswer | None,
    kept_own: bool,
    failure: BaseException | None,
) -> KeptInBatch:
    """A KeptInBatch from what its `__reduce__` gave."""
    return KeptInBatch(
        (UUID(bytes=token_id), key),
        request_sha256,
        _answered if answer_of is None else answer_of,
        kept,
        kept_own,
        failure,
    )


def _answered(results: Sequence[Result]) -> Answer:
    """The answerer of a ticket that came back settled: its answer is kept already."""
    raise AssertionError("a settled ticket's answer was asked again")


class KeyedAnswers:
    """Keeps keyed requests' answers in the ledger's batch transaction (a BatchParticipant).

    Before the batch is decided it reads every ticket's key in one query: a kept answer
    withdraws the request. After, it turns each request's results into its answer and keeps
    them in one statement; a key a request decided earlier in the batch (or another process)
    kept first gives that answer instead."""

    def __init__(self, clock_ns: Callable[[], int]) -> None:
        self._clock_ns = clock_ns

    def before_decide(self, connection: Connection, tickets: Sequence[KeptInBatch]) -> list[bool]:
        """Withdraw the requests whose keys already hold an answer."""
        found = _select_many(connection, list({t.identity for t in tickets}))
        for ticket in tickets:
            ticket.kept, ticket.kept_own, ticket.failure = found.get(ticket.identity), False, None
        return [ticket.kept is not None for ticket in tickets]

    def after_decide(
        self,
        connection: Connection,
        tickets: Sequence[KeptInBatch],
        results: Sequence[list[Result]],
    ) -> None:
        """Keep each request's answer, or learn the one its key got first."""
        firsts: dict[tuple[UUID, str], KeptAnswer] = {}
        for ticket, ticket_results in zip(tickets, results, strict=True):
            try:
                answer = ticket.answer_of(ticket_results)
            except Exception as error:  # never into the ledger's writer: it would halt
                if not isinstance(error, ProblemError):
                    log.exception("answering a keyed request failed")
                ticket.failure = error
                continue
            ticket.kept = KeptAnswer(ticket.request_sha256, answer)
            firsts.setdefault(ticket.identity, ticket.kept)
        entries = [(token_id, key, kept) for (token_id, key), kept in firsts.items()]
        inserted = _insert_new(connection, entries, self._clock_ns()) if entries else set()
        earlier = _select_many(connection, [i for i in firsts if i not in inserted])
        for ticket in tickets:
            if ticket.failure is not None:
                continue
            held = firsts[ticket.identity] if ticket.identity in inserted else None
            if held is None:
                held = earlier[ticket.identity]
            ticket.kept_own = held is ticket.kept
            ticket.kept = held


class IdempotencyStore:
    """Kept answers in the database. One thread serves every lookup and save: it takes all
    that queued meanwhile, reads the lookups in one query and commits the saves in one
    transaction, so a burst of requests costs a few round trips, not one each."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        max_batch: int = MAX_BATCH_ANSWERS,
        max_queued: int = MAX_QUEUED_ANSWERS,
    ) -> None:
        assert 0 < max_batch <= MAX_BATCH_ANSWERS
        assert engine.dialect.name in ("postgresql", "sqlite"), engine.dialect.name
        self._engine = engine
        self._clock_ns = clock_ns
        self._in_batch = KeyedAnswers(clock_ns)
        self._max_batch = max_batch
        self._queue: queue.Queue[_Save | _Lookup | None] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="rollon-idempotency", daemon=True)
        self._thread.start()

    def lookup_nowait(self, token_id: UUID, key: str) -> Future[KeptAnswer | None]:
        """Queue a lookup; the future gives the answer kept for this token and key, if any."""
        future: Future[KeptAnswer | None] = Future()
        self._put(_Lookup(token_id, key, future))
        return future

    async def lookup(self, token_id: UUID, key: str) -> KeptAnswer | None:
        return await asyncio.wrap_future(self.lookup_nowait(token_id, key))

    def save_nowait(self, token_id: UUID, key: str, kept: KeptAnswer) -> Future[KeptAnswer]:
        """Queue an answer; the future gives what the store holds for the key once durable:
        this answer, or one an earlier request kept first."""
        assert 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH
        future: Future[KeptAnswer] = Future()
        self._put(_Save(token_id, key, kept, future))
        return future

    async def save(self, token_id: UUID, key: str, kept: KeptAnswer) -> KeptAnswer:
        return await asyncio.wrap_future(self.save_nowait(token_id, key, kept))

    @property
    def in_batch(self) -> KeyedAnswers:
        """The participant keeping answers in the ledger's batch transaction."""
        return self._in_batch

    def close(self) -> None:
        """Serve what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _put(self, item: _Save | _Lookup) -> None:
        if not self._thread.is_alive():
            raise StorageUnavailable("the idempotency store is closed")
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise LedgerOverloaded("too many requests are waiting for their keys") from None

    # -- the store's thread -----------------------------------------------------------------
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
            lookups = [item for item in batch if isinstance(item, _Lookup)]
            saves = [item for item in batch if isinstance(item, _Save)]
            if lookups:
                self._serve(lookups, self._read)
            if saves:
                self._serve(saves, self._write)
            if stopping:
                return

    def _serve(self, items: list[Any], work: Callable[[list[Any]], list[Any]]) -> None:
        """Run `work` on a batch, retrying passing failures; resolve every item's future."""
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            try:
                results = work(items)
            except OperationalError as error:
                if attempt == MAX_WRITE_ATTEMPTS:
                    self._fail(items, StorageUnavailable(str(error.orig)))
                    return
                log.warning("idempotency store attempt %d failed: %s", attempt, error.orig)
                time.sleep(RETRY_BACKOFF_MS * attempt / 1000)
            except DBAPIError as error:
                log.error("idempotency store refused by the database: %s", error.orig)
                self._fail(items, StorageUnavailable(str(error.orig)))
                return
            except Exception as error:
                log.exception("idempotency store failed")
                self._fail(items, StorageUnavailable(repr(error)))
                return
            else:
                for item, result in zip(items, results, strict=True):
                    item.future.set_result(result)
                return

    def _read(self, lookups: list[_Lookup]) -> list[KeptAnswer | None]:
        identities = list({(item.token_id, item.key) for item in lookups})
        with self._engine.connect() as connection:
            found = _select_many(connection, identities)
        return [found.get((item.token_id, item.key)) for item in lookups]

    def _write(self, batch: list[_Save]) -> list[KeptAnswer]:
        now_ns = self._clock_ns()
        firsts: dict[tuple[UUID, str], _Save] = {}
        for save in batch:
            firsts.setdefault((save.token_id, save.key), save)
        with write_transaction(self._engine) as connection:
            entries = [(s.token_id, s.key, s.kept) for s in firsts.values()]
            inserted = _insert_new(connection, entries, now_ns)
            # Kept by another request first (another process, or a lost race).
            earlier = _select_many(connection, [i for i in firsts if i not in inserted])
        held = {i: firsts[i].kept if i in inserted else earlier[i] for i in firsts}
        return [held[(save.token_id, save.key)] for save in batch]

    @staticmethod
    def _fail(items: list[Any], error: BaseException) -> None:
        for item in items:
            item.future.set_exception(error)


_SELECTED = "SELECT token_id, key, request_sha256, status_code, media_type, body"
# On PostgreSQL the arrays go in binary (%b): in text, psycopg quotes and escapes every
# element of an array literal with regular expressions, and answers are JSON, full of quotes.
_PG_SELECT = (
    _SELECTED + " FROM idempotency_keys JOIN unnest(%b::uuid[], %b::text[]) AS wanted(t, k)"
    " ON token_id = wanted.t AND key = wanted.k"
)
_SQLITE_SELECT = _SELECTED + " FROM idempotency_keys WHERE token_id = ? AND key = ?"
_PG_INSERT = (
    "INSERT INTO idempotency_keys"
    " (token_id, key, request_sha256, status_code, media_type, body, created_at_ns)"
    " SELECT *, %s FROM unnest(%b::uuid[], %b::text[], %b::bytea[], %b::int[],"
    " %b::text[], %b::text[]) ON CONFLICT DO NOTHING RETURNING token_id, key"
)
_SQLITE_INSERT = (
    "INSERT INTO idempotency_keys"
    " (token_id, key, request_sha256, status_code, media_type, body, created_at_ns)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


# Plain driver statements: building SQLAlchemy expressions for a batch of a new size
# costs more than the database work itself.
def _select_many(
    connection: Connection, identities: list[tuple[UUID, str]]
) -> dict[tuple[UUID, str], KeptAnswer]:
    """The kept answers of these (token, key) pairs, by primary-key seeks."""
    if not identities:
        return {}
    rows = []
    with driver_cursor(connection) as cursor:  # also what the ledger's pipeline needs
        if connection.dialect.name == "postgresql":
            tokens, keys = [t for t, _ in identities], [k for _, k in identities]
            rows = cursor.execute(_PG_SELECT, (tokens, keys)).fetchall()
        else:
            for token_id, key in identities:  # a seek costs microseconds this way
                rows += cursor.execute(_SQLITE_SELECT, (token_id.hex, key)).fetchall()
    return {
        (_uuid(row[0]), row[1]): KeptAnswer(bytes(row[2]), Answer(row[3], row[4], row[5].encode()))
        for row in rows
    }


def _insert_new(
    connection: Connection, entries: list[tuple[UUID, str, KeptAnswer]], now_ns: int
) -> set[tuple[UUID, str]]:
    """Insert the answers whose keys are free; returns the (token, key) pairs inserted."""
    if connection.dialect.name == "postgresql":
        rows = connection.exec_driver_sql(
            _PG_INSERT,
            (
                now_ns,
                [token_id for token_id, _, _ in entries],
                [key for _, key, _ in entries],
                [kept.request_sha256 for _, _, kept in entries],
                [kept.answer.status_code for _, _, kept in entries],
                [kept.answer.media_type for _, _, kept in entries],
                [kept.answer.body.decode() for _, _, kept in entries],
            ),
        ).all()
        return {(row[0], row[1]) for row in rows}
    # SQLite: one seek per row through the driver's own cursor; the row count tells which
    # keys were free.
    inserted = set()
    with driver_cursor(connection) as cursor:
        for token_id, key, kept in entries:
            answer = kept.answer
            row = (token_id.hex, key, kept.request_sha256, answer.status_code)
            cursor.execute(_SQLITE_INSERT, (*row, answer.media_type, answer.body.decode(), now_ns))
            if cursor.rowcount == 1:
                inserted.add((token_id, key))
    return inserted


def _uuid(value: UUID | str) -> UUID:
    """A token id as the driver returns it: a UUID (PostgreSQL) or its hex (SQLite)."""
    return value if isinstance(value, UUID) else UUID(hex=value)


# -- the per-request helper -----------------------------------------------------------------
def kept_problem(problem: ProblemError, path: str) -> Answer:
    """A refusal as an answer to keep; 5xx and 429 are raised again, never kept."""
    if problem.status_code >= 500 or problem.status_code == 429:
        raise problem
    body = problem_body(
        problem.status_code, problem.code, problem.title, problem.detail, path, problem.errors
    )
    return Answer(problem.status_code, PROBLEM_MEDIA_TYPE, body)


@dataclass(frozen=True, slots=True)
class _Answering:
    """A keyed request's answer for its results: the refusal `prepare` raised, else what the
    route's `answer_of` gives, a refusal it raises kept as an answer."""

    refusal: Answer | None
    answer_of: Answerer
    path: str

    def __reduce__(self) -> tuple[type[_Answering], tuple[Any, ...]]:
        return _Answering, (self.refusal, self.answer_of, self.path)  # see Answer.__reduce__

    def __call__(self, results: Sequence[Result]) -> Answer:
        if self.refusal is not None:
            return self.refusal
        try:
            return self.answer_of(results)
        except ProblemError as problem:
            return kept_problem(problem, self.path)


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
        request = self._request  # the scope's path: building request.url costs more
        digest = hashlib.sha256(f"{request.method} {request.scope['path']}\n".encode())
        digest.update(body.model_dump_json().encode())
        return digest.digest()

    async def run(
        self, principal: Principal, body: BaseModel, execute: Callable[[], Awaitable[Answer]]
    ) -> Response:
        """Run `execute` once per key; answer retries with the first answer."""
        if self.key is None:
            return (await self._execute(execute)).response()
        fingerprint = self.fingerprint(body)
        earlier = await self._store.lookup(principal.token_id, self.key)
        if earlier is not None:
            return self._replay(earlier, fingerprint)
        answer = await self._execute(execute)
        kept = await self._store.save(principal.token_id, self.key, KeptAnswer(fingerprint, answer))
        if kept.answer != answer or kept.request_sha256 != fingerprint:
            return self._replay(kept, fingerprint)  # another request with this key came first
        return answer.response()

    async def submit(
        self,
        principal: Principal,
        body: BaseModel,
        ledger: Ledger,
        prepare: Callable[[], Awaitable[Sequence[Transfer]]],
        answer_of: Answerer,
    ) -> Response:
        """Submit the transfers `prepare` gives, once per key, keeping the answer `answer_of`
        gives for their results in the same transaction; answer retries with the first
        answer. A refusal `prepare` raises is kept like one of `answer_of`. `answer_of` runs
        in the ledger's writer, which may be another process: it must pickle."""
        path = self._request.scope["path"]
        refusal: Answer | None = None
        transfers: Sequence[Transfer] = ()
        try:
            transfers = await prepare()
        except ProblemError as problem:
            refusal = kept_problem(problem, path)
        answer = _Answering(refusal, answer_of, path)
        if self.key is None:
            if refusal is not None:
                return refusal.response()
            return answer(await ledger.submit_async(transfers)).response()
        fingerprint = self.fingerprint(body)
        ticket = KeptInBatch((principal.token_id, self.key), fingerprint, answer)
        _, ticket = await ledger.submit_joined_async(transfers, self._store.in_batch, ticket)
        if ticket.failure is not None:
            raise ticket.failure
        assert ticket.kept is not None, "a committed batch knows each ticket's answer"
        if ticket.kept_own:
            return ticket.kept.answer.response()
        return self._replay(ticket.kept, fingerprint)  # kept before, or first in the batch

    async def _execute(self, execute: Callable[[], Awaitable[Answer]]) -> Answer:
        try:
            return await execute()
        except ProblemError as problem:
            return kept_problem(problem, self._request.scope["path"])

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
    # Printable ASCII is exactly " " to "~".
    return 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH and key.isascii() and key.isprintable()


_KEY_DESCRIPTION = (
    "Any unique string (a UUID is best), 1 to 255 printable ASCII characters. A retry with "
    "the same key and body gets the first answer again."
)
_KEY_EXAMPLE = "5f0c1e9a-7f1b-4c52-b5d6-0d6f4b0e8a11"

# The header as OpenAPI shows it, for the hot routes that call `idempotency_of` directly.
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": _KEY_DESCRIPTION,
    "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
    "example": _KEY_EXAMPLE,
}


def idempotency_of(request: Request) -> Idempotency:
    """The request's idempotency helper, from its `Idempotency-Key` header (400 if bad)."""
    key = request.headers.get("idempotency-key")
    if key is not None and not _valid_key(key):
        raise ProblemError(
            400,
            "invalid_idempotency_key",
            "Invalid Idempotency-Key",
            f"an Idempotency-Key has 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters",
        )
    return Idempotency(request, key, get_state(request).idempotency)


async def idempotency(
    request: Request,
    idempotency_key: Annotated[  # read by idempotency_of; declared here for the manual
        str | None,
        Header(
            alias="Idempotency-Key",
            description=_KEY_DESCRIPTION,
            examples=[_KEY_EXAMPLE],
        ),
    ] = None,
) -> Idempotency:
    """The request's idempotency helper (a FastAPI dependency)."""
    return idempotency_of(request)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]
