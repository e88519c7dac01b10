"""HTTP benchmark (issue 3): durable payments per second and latency through the real server
(uvicorn, auth, validation, idempotency, ledger, commit), against a bare FastAPI endpoint that
takes the same JSON body, measured in the same run on the same machine.

- One server process each, on 127.0.0.1: `rollon`'s app (its lifespan: Ledger, group
  commit, idempotency store) or the bare app. The service's server has its ledger writer
  in a second process, as `rollon serve` does (rollon.ledger.writer_process): one writer
  per database, beside one event loop. Not two server processes, because the ledger
  commits through one writer per server process and the machine has two cores: a second
  server splits the batches (two writers taking turns at the journal head) while competing
  with the load generator for the same cores. Measured with two uvicorn workers each (and
  the writer in each server's process): the service stayed at 4,300-4,500 payments/s, and
  the bare app went from 10,500 to 14,700-16,900/s. The bare app runs in one process as
  well. Both servers are uvicorn with the service's HTTP parser (httptools, a
  dependency of the service): with uvicorn's pure-Python h11 parser instead, the service
  answered 25-35% fewer payments and the bare app half as many, which made the ratio look
  better than the service is.
- The load generator is this process: CONNECTIONS keep-alive HTTP/1.1 connections, each a
  client that sends its next payment as soon as the last one is answered (closed loop), over
  a plain asyncio protocol (`benchmarks/load.py`). A heavier client (httpx) would saturate the
  cores itself and make both servers look equally fast; this one leaves the servers as the
  bottleneck.
- Every payment is a member paying another member from its own token, with a fresh
  Idempotency-Key, and must be answered 201; the service's committed-transfer count is read
  back from /metrics and must match.
- Each round runs both servers back to back, the first one in turn (service then bare, then
  bare then service). The ratio is the median over rounds of each round's service rate over
  its bare rate: on a noisy machine whose speed drifts over tens of seconds, a ratio of two
  runs seconds apart is steadier than a ratio of medians taken minutes apart. The other
  figures are medians over rounds.

`python -m benchmarks --only http [--quick]`. PostgreSQL is measured when
ROLLON_BENCH_POSTGRES_URL (else ROLLON_TEST_POSTGRES_URL) is set.
`python -m benchmarks.http serve {service,bare} URL PORT KEY_FILE` runs one server (used
internally).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import BaseModel

from benchmarks.load import Connection, post_request
from benchmarks.suite import SuiteResult, median, percentile
from rollon.api.app import NO_OPENTELEMETRY
from rollon.api.cli import HTTP_PARSER
from rollon.api.gc_policy import serving
from rollon.ledger.storage import create_engine, normalize_url

CONNECTIONS = 64
MEMBERS = 64
FUNDING = 10**9  # centimes per member: no payment of the workload ever runs short
STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Plan:
    repetitions: int
    duration_s: float
    warmup_s: float


FULL = Plan(repetitions=7, duration_s=4.0, warmup_s=0.5)
QUICK = Plan(repetitions=2, duration_s=2.0, warmup_s=0.5)


# -- the servers --------------------------------------------------------------------------------
class BareTransferIn(BaseModel):
    """The service's transfer body, as the bare endpoint takes it."""

    id: UUID | None = None
    source_id: UUID
    destination_id: UUID
    amount: int
    memo: str = ""


class BareTransferOut(BareTransferIn):
    result: str


def bare_app() -> FastAPI:
    """The ceiling: FastAPI parsing the same body into a model, answering 201 with JSON,
    configured as the service is where that makes FastAPI itself cheaper (no OpenTelemetry
    lookups per request, the service's garbage-collector policy while it runs), so that the
    ceiling stays a ceiling."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with serving():
            yield

    app = FastAPI(telemetry=NO_OPENTELEMETRY, lifespan=lifespan)

    @app.post("/v1/transfers", status_code=201)
    async def transfer(body: BareTransferIn) -> BareTransferOut:
        return BareTransferOut(**body.model_dump(), result="ok")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(kind: str, url: str, port: int, key_file: Path) -> None:
    """Run one server in this process until it is told to stop."""
    import uvicorn

    app: FastAPI
    if kind == "bare":
        app = bare_app()
    else:
        from rollon.api.app import create_app
        from rollon.api.settings import Settings

        app = create_app(
            Settings(
                database_url=url,
                signing_key_file=key_file,
                access_log=False,
            )
        )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http=HTTP_PARSER,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=60,  # clients keep their connections between phases: no idle close
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def server(kind: str, url: str, key_file: Path) -> Iterator[int]:
    """A server subprocess; yields its port once /healthz answers."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.http", "serve", kind, url, str(port), str(key_file)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {kind} server did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


# -- the load generator -------------------------------------------------------------------------
@dataclass
class Member:
    account_id: str
    token: str


def _request(member: Member, payee: Member, rng: random.Random) -> bytes:
    body = {
        "source_id": member.account_id,
        "destination_id": payee.account_id,
        "amount": rng.randint(1, 100),
        "memo": "bench",
    }
    headers = {"Authorization": f"Bearer {member.token}", "Idempotency-Key": str(uuid.uuid4())}
    return post_request("/v1/transfers", body, headers)


async def _client(
    port: int,
    member: Member,
    members: list[Member],
    rng: random.Random,
    window: tuple[float, float],
    latencies_s: list[float],
    statuses: dict[int, int],
) -> None:
    connection = await Connection.open(port)
    start, stop = window
    try:
        while True:
            payee = rng.choice(members)
            while payee is member:
                payee = rng.choice(members)
            request = _request(member, payee, rng)
            sent = time.perf_counter()
            if sent >= stop:
                return
            status, _ = await connection.send(request)
            answered = time.perf_counter()
            if sent >= start:
                latencies_s.append(answered - sent)
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        connection.close()


@dataclass(frozen=True)
class Run:
    rate_per_s: float
    p50_ms: float
    p99_ms: float
    answered: int
    statuses: dict[int, int]


async def _load(port: int, members: list[Member], plan: Plan, seed: int) -> Run:
    rng = random.Random(seed)
    now = time.perf_counter()
    window = (now + plan.warmup_s, now + plan.warmup_s + plan.duration_s)
    latencies_s: list[float] = []
    statuses: dict[int, int] = {}
    await asyncio.gather(
        *(
            _client(
                port,
                members[k % len(members)],
                members,
                random.Random(rng.getrandbits(64)),
                window,
                latencies_s,
                statuses,
            )
            for k in range(CONNECTIONS)
        )
    )
    return Run(
        rate_per_s=len(latencies_s) / plan.duration_s,
        p50_ms=percentile(latencies_s, 50) * 1000,
        p99_ms=percentile(latencies_s, 99) * 1000,
        answered=len(latencies_s),
        statuses=statuses,
    )


# -- databases ----------------------------------------------------------------------------------
def _postgres_url() -> str:
    return os.environ.get("ROLLON_BENCH_POSTGRES_URL") or os.environ.get(
        "ROLLON_TEST_POSTGRES_URL", ""
    )


@contextmanager
def _database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'http.db'}"
        return
    server_url = _postgres_url()
    schema = f"bench_http_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        url = sa.make_url(normalize_url(server_url)).update_query_dict(
            {"options": f"-csearch_path={schema}"}
        )
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _members(url: str) -> list[Member]:
    """Funded member accounts, each with its own token, made through the ledger."""
    from rollon.api.bootstrap import prepare_database
    from rollon.api.token_store import Role, create_token
    from rollon.ledger import operations
    from rollon.ledger.accounts import AccountKind
    from rollon.ledger.service import Ledger
    from rollon.ledger.transfers import Result

    engine = create_engine(url)
    prepare_database(engine)
    ledger = Ledger(engine)
    members = []
    legs = []
    for n in range(MEMBERS):
        account = ledger.open_account(kind=AccountKind.MEMBER, name=f"bench member {n}")
        _, token = create_token(engine, Role.MEMBER, account.id, f"bench {n}")
        members.append(Member(str(account.id), token))
        legs += operations.issuance(uuid.uuid4(), account.id, FUNDING, "bench")
    assert set(ledger.submit(legs)) == {Result.OK}
    ledger.close()
    engine.dispose()
    return members


def _committed(port: int) -> float:
    """rollon_transfers_committed_total, from the service's own /metrics."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    for line in b"".join(chunks).decode().splitlines():
        if line.startswith("rollon_transfers_committed_total "):
            return float(line.split()[1])
    raise RuntimeError("no committed-transfer count in /metrics")


# -- the suite ----------------------------------------------------------------------------------
def _measure(kind: str, plan: Plan, result: SuiteResult) -> None:
    with tempfile.TemporaryDirectory() as workdir, _database(kind, Path(workdir)) as url:
        members = _members(url)
        issued = 2 * len(members)
        service_runs: list[Run] = []
        bare_runs: list[Run] = []
        key_file = Path(workdir) / "rollon.key"
        with (
            server("service", url, key_file) as service_port,
            server("bare", url, key_file) as bare_port,
        ):
            for repetition in range(plan.repetitions):
                # Each round runs both servers back to back, the first one in turn: the
                # machine's speed drifts over tens of seconds, and a round's two runs see
                # the same machine.
                if repetition % 2 == 0:
                    run = _service_run(service_port, members, plan, repetition)
                    bare = _bare_run(bare_port, members, plan, repetition)
                else:
                    bare = _bare_run(bare_port, members, plan, repetition)
                    run = _service_run(service_port, members, plan, repetition)
                service_runs.append(run)
                bare_runs.append(bare)
                print(
                    f"  {kind} #{repetition + 1}: service {run.rate_per_s:,.0f}/s "
                    f"(p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms), "
                    f"bare {bare.rate_per_s:,.0f}/s, ratio {run.rate_per_s / bare.rate_per_s:.2f}",
                    flush=True,
                )
            assert _committed(service_port) >= issued
    result.figures[f"http_transfers_per_s_{kind}"] = median([r.rate_per_s for r in service_runs])
    result.figures[f"http_transfer_p50_ms_{kind}"] = median([r.p50_ms for r in service_runs])
    result.figures[f"http_transfer_p99_ms_{kind}"] = median([r.p99_ms for r in service_runs])
    result.figures[f"bare_fastapi_per_s_{kind}"] = median([r.rate_per_s for r in bare_runs])
    result.figures[f"bare_fastapi_p50_ms_{kind}"] = median([r.p50_ms for r in bare_runs])
    result.figures[f"bare_fastapi_p99_ms_{kind}"] = median([r.p99_ms for r in bare_runs])
    rounds = zip(service_runs, bare_runs, strict=True)
    ratios = [run.rate_per_s / bare.rate_per_s for run, bare in rounds]
    result.ratios[f"http_transfer_vs_bare_fastapi_{kind}"] = median(ratios)


def _service_run(port: int, members: list[Member], plan: Plan, seed: int) -> Run:
    before = _committed(port)
    run = asyncio.run(_load(port, members, plan, seed))
    ok = run.statuses.get(201, 0)
    assert run.statuses == {201: ok}, run.statuses
    # Payments answered during the warm-up and at the end count too.
    assert _committed(port) - before >= ok
    return run


def _bare_run(port: int, members: list[Member], plan: Plan, seed: int) -> Run:
    run = asyncio.run(_load(port, members, plan, seed))
    assert run.statuses == {201: run.answered}, run.statuses
    return run


def run(quick: bool) -> SuiteResult:
    plan = QUICK if quick else FULL
    result = SuiteResult()
    result.figures["http_server_processes"] = 1  # and the service's ledger writer process
    result.figures["http_client_connections"] = CONNECTIONS
    kinds = ["sqlite"] + (["postgres"] if _postgres_url() else [])
    for kind in kinds:
        _measure(kind, plan, result)
    result.ratios["http_transfer_vs_bare_fastapi"] = result.ratios[
        "http_transfer_vs_bare_fastapi_sqlite"
    ]
    return result


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
    else:
        sys.exit("usage: python -m benchmarks.http serve {service,bare} URL PORT KEY_FILE")
