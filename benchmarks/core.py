"""Core ledger benchmarks (issue 2), on SQLite and PostgreSQL, side by side.

1. Durable transfers per second through the hot path, against the raw-driver ceiling of
   `benchmarks.raw_ledger` run in the same process at the batch size the hot path achieved
   (its average, from the GroupCommitter's BatchReports), with the same durability.
   Repetitions alternate ledger and raw runs; ratios are medians over medians.
   The headline (`core_sqlite_vs_raw`, `core_postgres_vs_raw`) is what the API does: 256
   coroutines of one asyncio loop, each awaiting `Ledger.submit_async` for one transfer at a
   time. The full run also sweeps 16, 64 and 1024 in-flight submissions (batch sizes grow
   with them: group commit at work) and 64 threads calling `Ledger.submit`.
2. Latency of one lone transfer (p50, p99), and of a lone raw write for scale.
3. How cost grows: `queries.get_account` and `queries.history` (first page, and a page deep in
   the past) at 10k, 100k and 1M transfers, loaded through the hot path in full batches.
4. `verify_database` time and peak resident memory, in a fresh interpreter, on the journals
   of 3. (from 50k entries on).

`python -m benchmarks --only core [--quick] [--json FILE]`. PostgreSQL is measured when
ROLLON_BENCH_POSTGRES_URL (else ROLLON_TEST_POSTGRES_URL) is set; each database lives in a
private schema dropped afterwards. SQLite files live in a temporary directory.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from benchmarks.raw_ledger import RawLedger
from benchmarks.suite import SuiteResult, median, percentile
from rollon.ledger import operations, queries
from rollon.ledger.accounts import AccountKind, LedgerCode
from rollon.ledger.hot_path import BatchReport, HotPath
from rollon.ledger.service import Ledger, install_chart
from rollon.ledger.state_machine import MAX_BATCH_TRANSFERS
from rollon.ledger.storage import create_engine, normalize_url
from rollon.ledger.transfers import Result, Transfer, TransferCode
from rollon.migrations import upgrade

FUNDING = 10**9  # centimes per account: no payment of the workload ever runs short
SUBMITTERS_ASYNC = 256  # in-flight submissions of the headline run (API-like)
SUBMITTERS_THREADS = 64


@dataclass(frozen=True)
class Settings:
    repetitions: int
    accounts: int  # members paying each other in the throughput runs
    transfers_per_run: int
    sweep: Sequence[tuple[str, int]]  # (mode, concurrency) measured besides the headline
    lone_transfers: int
    growth_sizes: Sequence[int]
    query_samples: int


FULL = Settings(
    repetitions=5,
    accounts=1_000,
    transfers_per_run=20_000,
    sweep=(("async", 16), ("async", 64), ("async", 1024), ("threads", SUBMITTERS_THREADS)),
    lone_transfers=300,
    growth_sizes=(10_000, 100_000, 1_000_000),
    query_samples=300,
)
QUICK = Settings(
    repetitions=3,
    accounts=300,  # each is opened in a transaction of its own: keep the smoke run short
    transfers_per_run=3_000,
    sweep=(),
    lone_transfers=60,
    growth_sizes=(10_000, 50_000),
    query_samples=50,
)


# -- databases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Database:
    """A fresh, migrated database with the chart installed, and how raw drivers reach it."""

    kind: str  # "sqlite" or "postgres"
    url: str  # SQLAlchemy URL
    sqlite_path: str = ""
    conninfo: str = ""
    schema: str = ""

    def raw(self) -> RawLedger:
        if self.kind == "sqlite":
            return RawLedger.sqlite(self.sqlite_path)
        return RawLedger.postgres(self.conninfo, self.schema)


def _postgres_url() -> str:
    return os.environ.get("ROLLON_BENCH_POSTGRES_URL") or os.environ.get(
        "ROLLON_TEST_POSTGRES_URL", ""
    )


@contextmanager
def fresh_database(kind: str, workdir: Path, label: str) -> Iterator[Database]:
    """A new empty ledger database of this kind; PostgreSQL schemas are dropped afterwards."""
    if kind == "sqlite":
        path = workdir / f"{label}.db"
        database = Database(kind, f"sqlite:///{path}", sqlite_path=str(path))
        _migrate(database.url)
        yield database
        return
    server = _postgres_url()
    schema = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.make_url(normalize_url(server)).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    conninfo = sa.make_url(normalize_url(server)).set(drivername="postgresql")
    database = Database(
        kind,
        url.render_as_string(hide_password=False),
        conninfo=conninfo.render_as_string(hide_password=False),
        schema=schema,
    )
    try:
        _migrate(database.url)
        yield database
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _migrate(url: str) -> None:
    engine = create_engine(url)
    upgrade(engine)
    install_chart(engine)
    engine.dispose()


def open_funded_accounts(ledger: Ledger, count: int) -> list[UUID]:
    """Open `count` member accounts and issue FUNDING to each, through the ledger."""
    ids = [
        ledger.open_account(kind=AccountKind.MEMBER, name=f"member {i}").id for i in range(count)
    ]
    legs = [leg for i in ids for leg in operations.issuance(uuid.uuid4(), i, FUNDING, "bench")]
    for start in range(0, len(legs), MAX_BATCH_TRANSFERS - 1):  # chains of 2 never split
        results = ledger.submit(legs[start : start + MAX_BATCH_TRANSFERS - 1])
        assert set(results) == {Result.OK}, set(results)
    return ids


def payments(accounts: Sequence[UUID], count: int, rng: random.Random) -> list[Transfer]:
    """Plain payments between random members, built before any clock starts."""
    out = []
    for _ in range(count):
        payer, payee = rng.sample(accounts, 2)
        out.append(
            Transfer(
                uuid.UUID(int=rng.getrandbits(128), version=4),
                payer,
                payee,
                rng.randint(1, 5_000),
                LedgerCode.RLN,
                TransferCode.PAYMENT,
                memo="bench",
            )
        )
    return out


@contextmanager
def workload_outside_gc() -> Iterator[None]:
    """Keep the pre-built workload (tens of thousands of transfers held by the benchmark, not
    by the ledger) out of the garbage collector's full scans while a run is timed; the
    ledger's own allocations are collected as usual."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# -- 1. throughput ------------------------------------------------------------------------------
class BatchSizes:
    """GroupCommitter observer: how many transfers each committed batch held."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, report: BatchReport) -> None:
        self.sizes.append(report.transfers)

    def take(self) -> list[int]:
        sizes, self.sizes = self.sizes, []
        return sizes


def submit_all(ledger: Ledger, transfers: Sequence[Transfer], mode: str, concurrency: int) -> float:
    """Submit each transfer alone from `concurrency` submitters; returns the elapsed seconds."""
    shares = [transfers[k::concurrency] for k in range(concurrency)]
    started = time.perf_counter()
    if mode == "async":

        async def submitter(share: Sequence[Transfer]) -> None:
            for transfer in share:
                results = await ledger.submit_async([transfer])
                assert results == [Result.OK], results

        async def everyone() -> None:
            await asyncio.gather(*(submitter(share) for share in shares))

        asyncio.run(everyone())
    else:

        def worker(share: Sequence[Transfer]) -> None:
            for transfer in share:
                results = ledger.submit([transfer])
                assert results == [Result.OK], results

        threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return time.perf_counter() - started


@dataclass
class Throughput:
    ledger_rates: list[float]
    raw_rates: list[float]
    batch_sizes: list[float]

    @property
    def ratio(self) -> float:
        return median(self.ledger_rates) / median(self.raw_rates)


def throughput(
    ledger_db: Database,
    raw_db: Database,
    settings: Settings,
    mode: str,
    concurrency: int,
    rng: random.Random,
) -> Throughput:
    """Alternate ledger runs and raw runs at the batch size the ledger just achieved."""
    sizes = BatchSizes()
    engine = create_engine(ledger_db.url)
    ledger = Ledger(engine, observer=sizes)
    raw = raw_db.raw()
    out = Throughput([], [], [])
    try:
        accounts = open_funded_accounts(ledger, settings.accounts)
        raw_accounts = _raw_accounts(raw_db, accounts)
        submit_all(ledger, payments(accounts, min(2_000, concurrency * 4), rng), mode, concurrency)
        sizes.take()  # warm-up: connections, statement caches
        for _ in range(settings.repetitions):
            work = payments(accounts, settings.transfers_per_run, rng)
            raw_work = payments(raw_accounts, settings.transfers_per_run, rng)
            with workload_outside_gc():
                elapsed = submit_all(ledger, work, mode, concurrency)
                batches = sizes.take()
                batch = max(1, round(sum(batches) / len(batches)))
                out.ledger_rates.append(len(work) / elapsed)
                out.batch_sizes.append(sum(batches) / len(batches))
                started = time.perf_counter()
                for start in range(0, len(raw_work), batch):
                    raw.write(raw_work[start : start + batch])
                out.raw_rates.append(len(raw_work) / (time.perf_counter() - started))
    finally:
        raw.close()
        ledger.close()
        engine.dispose()
    return out


def _raw_accounts(raw_db: Database, like: Sequence[UUID]) -> list[UUID]:
    """The same accounts, funded the same way, in the raw run's own database."""
    engine = create_engine(raw_db.url)
    ledger = Ledger(engine)
    try:
        accounts = open_funded_accounts(ledger, len(like))
    finally:
        ledger.close()
        engine.dispose()
    return accounts


# -- 2. latency ---------------------------------------------------------------------------------
def lone_latency(database: Database, count: int, rng: random.Random) -> tuple[list[float], ...]:
    """Milliseconds per lone transfer, one after the other: through the ledger, then raw."""
    engine = create_engine(database.url)
    ledger = Ledger(engine)
    raw = database.raw()
    try:
        accounts = open_funded_accounts(ledger, 10)
        ledger_ms = []
        for transfer in payments(accounts, count, rng):
            started = time.perf_counter()
            assert ledger.submit([transfer]) == [Result.OK]
            ledger_ms.append((time.perf_counter() - started) * 1000)
        ledger.close()  # the raw writes below must not race the ledger's writer
        raw_ms = []
        for transfer in payments(accounts, count, rng):
            started = time.perf_counter()
            raw.write([transfer])
            raw_ms.append((time.perf_counter() - started) * 1000)
    finally:
        raw.close()
        ledger.close()
        engine.dispose()
    return ledger_ms, raw_ms


# -- 3. growth ----------------------------------------------------------------------------------
GROWTH_ACCOUNTS = 100  # each is in ~2% of transfers: full history pages from 10k on


def grow(committer: HotPath, accounts: Sequence[UUID], count: int, seed: int) -> float:
    """Append `count` payments through the hot path in full batches; returns transfers/s."""
    rng = random.Random(seed)
    started = time.perf_counter()
    done = 0
    while done < count:
        batch = payments(accounts, min(MAX_BATCH_TRANSFERS, count - done), rng)
        assert set(committer.submit(batch, timeout_s=600)) == {Result.OK}
        done += len(batch)
    return count / (time.perf_counter() - started)


def query_costs(engine: Engine, accounts: Sequence[UUID], samples: int) -> dict[str, float]:
    """Median microseconds of a balance lookup, a first history page, a deep history page."""
    rng = random.Random(7)
    with engine.connect() as connection:
        head = connection.execute(sa.text("SELECT seq FROM journal_head")).scalar_one()
        costs: dict[str, list[float]] = {"balance": [], "history": [], "history_deep": []}
        for _ in range(samples):
            account = rng.choice(accounts)
            started = time.perf_counter()
            assert queries.get_account(connection, account) is not None
            costs["balance"].append(time.perf_counter() - started)
            started = time.perf_counter()
            assert len(queries.history(connection, account, limit=50)) == 50
            costs["history"].append(time.perf_counter() - started)
            cursor = rng.randint(head // 2, 3 * head // 4)
            started = time.perf_counter()
            assert len(queries.history(connection, account, before_seq=cursor, limit=50)) == 50
            costs["history_deep"].append(time.perf_counter() - started)
    return {name: median(values) * 1e6 for name, values in costs.items()}


# Run in a fresh interpreter, so that the peak resident memory is verify's own: the peak
# (VmHWM) restarts from the current size just before verifying.
_VERIFY_SCRIPT = """
import json, sys, time
from pathlib import Path
from rollon.ledger.keys import load_public_key_pem
from rollon.ledger.storage import create_engine
from rollon.ledger.verify import verify_database

def status_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)

engine = create_engine(sys.argv[1])
keys = [load_public_key_pem(sys.argv[2])]
with engine.connect() as connection:
    connection.exec_driver_sql("SELECT 1")
Path("/proc/self/clear_refs").write_text("5")
baseline_kb = status_kb("VmRSS")
started = time.perf_counter()
report = verify_database(engine, keys)
elapsed = time.perf_counter() - started
print(json.dumps({
    "seconds": elapsed,
    "baseline_kb": baseline_kb,
    "peak_kb": status_kb("VmHWM"),
    "entries": report.entries_checked,
    "problems": [repr(p)[:200] for p in report.problems[:3]],
}))
"""


def verify_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("rollon.ledger.verify") is not None


def measure_verify(url: str, public_pem: str) -> dict[str, float]:
    """verify_database's time and peak resident memory, in a fresh interpreter that imports
    this same checkout of rollon."""
    import rollon

    checkout = str(Path(rollon.__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([checkout, os.environ.get("PYTHONPATH", "")]),
    }
    completed = subprocess.run(
        [sys.executable, "-c", _VERIFY_SCRIPT, url, public_pem],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    assert not measured["problems"], f"verify found problems: {measured['problems']}"
    return {
        "seconds": measured["seconds"],
        "entries": measured["entries"],
        "peak_mb": measured["peak_kb"] / 1024,
        "above_baseline_mb": (measured["peak_kb"] - measured["baseline_kb"]) / 1024,
    }


def growth(database: Database, settings: Settings, result: SuiteResult, prefix: str) -> None:
    """Query cost (and verify) at each journal size, growing one database through the ledger."""
    from rollon.ledger.keys import public_key_pem

    key = Ed25519PrivateKey.generate()
    engine = create_engine(database.url)
    ledger = Ledger(engine, signing_key=key)
    try:
        accounts = open_funded_accounts(ledger, GROWTH_ACCOUNTS)
        size = 0
        for target in settings.growth_sizes:
            rate = grow(ledger.hot_path, accounts, target - size, seed=target)
            size = target
            label = _size_label(size)
            result.figures[f"{prefix}_load_rate_tps_to_{label}"] = rate
            for name, micros in query_costs(engine, accounts, settings.query_samples).items():
                result.figures[f"{prefix}_{name}_us_at_{label}"] = micros
            if verify_available() and size >= 50_000:
                ledger.checkpoint()
                measured = measure_verify(database.url, public_key_pem(key.public_key()))
                result.figures[f"{prefix}_verify_s_at_{label}"] = measured["seconds"]
                result.figures[f"{prefix}_verify_us_per_entry_at_{label}"] = (
                    measured["seconds"] / measured["entries"] * 1e6
                )
                result.figures[f"{prefix}_verify_peak_rss_mb_at_{label}"] = measured["peak_mb"]
                result.figures[f"{prefix}_verify_rss_growth_mb_at_{label}"] = measured[
                    "above_baseline_mb"
                ]
    finally:
        ledger.close()
        engine.dispose()


def _size_label(size: int) -> str:
    return f"{size // 1_000_000}m" if size % 1_000_000 == 0 else f"{size // 1_000}k"


# -- the suite ----------------------------------------------------------------------------------
def run(quick: bool) -> SuiteResult:
    """The core suite: throughput vs raw, lone latency, growth, verify."""
    settings = QUICK if quick else FULL
    result = SuiteResult()
    kinds = ["sqlite"] + (["postgres"] if _postgres_url() else [])
    if not _postgres_url():
        print("  (PostgreSQL skipped: set ROLLON_BENCH_POSTGRES_URL)", flush=True)
    rng = random.Random(2018)
    with tempfile.TemporaryDirectory(prefix="rollon-bench-") as tmp:
        workdir = Path(tmp)
        for kind in kinds:
            runs = [("async", SUBMITTERS_ASYNC), *settings.sweep]
            for mode, concurrency in runs:
                label = f"{kind}_{mode}{concurrency}"
                with (
                    fresh_database(kind, workdir, f"{label}_ledger") as ledger_db,
                    fresh_database(kind, workdir, f"{label}_raw") as raw_db,
                ):
                    measured = throughput(ledger_db, raw_db, settings, mode, concurrency, rng)
                name = f"core_{label}"
                result.figures[f"{name}_ledger_tps"] = median(measured.ledger_rates)
                result.figures[f"{name}_raw_tps"] = median(measured.raw_rates)
                result.figures[f"{name}_batch_avg"] = median(measured.batch_sizes)
                result.ratios[f"{name}_vs_raw"] = measured.ratio
                if (mode, concurrency) == ("async", SUBMITTERS_ASYNC):
                    result.ratios[f"core_{kind}_vs_raw"] = measured.ratio
                _progress(name, measured)
            with fresh_database(kind, workdir, f"{kind}_lone") as database:
                ledger_ms, raw_ms = lone_latency(database, settings.lone_transfers, rng)
            result.figures[f"core_{kind}_lone_p50_ms"] = median(ledger_ms)
            result.figures[f"core_{kind}_lone_p99_ms"] = percentile(ledger_ms, 99)
            result.figures[f"core_{kind}_lone_raw_p50_ms"] = median(raw_ms)
            result.figures[f"core_{kind}_lone_raw_p99_ms"] = percentile(raw_ms, 99)
            with fresh_database(kind, workdir, f"{kind}_growth") as database:
                growth(database, settings, result, f"core_{kind}")
    if not verify_available():
        print("  (verify not measured: rollon.ledger.verify does not exist yet)", flush=True)
    return result


def _progress(name: str, measured: Throughput) -> None:
    print(
        f"  {name}: ledger {statistics.median(measured.ledger_rates):,.0f}/s "
        f"raw {statistics.median(measured.raw_rates):,.0f}/s "
        f"batch {statistics.median(measured.batch_sizes):.0f} "
        f"ratio {measured.ratio:.2f}",
        flush=True,
    )
