"""Audit benchmarks (issue 5): verify, exports and the trial balance on large journals.

For each database (SQLite; PostgreSQL when ROLLON_BENCH_POSTGRES_URL or ROLLON_TEST_POSTGRES_URL
is set) one journal is grown through the ledger's own hot path (benchmarks.core's loader:
funded accounts, then full batches of payments through the GroupCommitter), and at each size:

1. `verify_database`, each export (journal, CSV, FEC, Beancount) and the offline verification
   of the journal export, each in a fresh interpreter: seconds, and peak resident memory
   during the task above the interpreter's baseline (imports and a connection; the imports'
   high-water mark is reset first through /proc/self/clear_refs, and the peak read from
   VmHWM). Measured at two sizes, the memory must not grow with the journal
   (`*_mem_growth` ratios close to 1).
2. Ceilings in the same run with the raw driver (sqlite3 / psycopg): reading every row and
   hashing it (verify), reading every row into csv.writer (export). Ratios are service
   seconds over raw seconds (lower is better).
3. The trial balance at a past moment (the middle of the journal): median milliseconds, against
   the raw driver running the same per-account index seeks, and a naive full-scan aggregate
   for scale.

`python -m benchmarks --only audit [--quick]`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks.core import Database, _postgres_url, fresh_database, grow, open_funded_accounts
from benchmarks.suite import SuiteResult, median
from rollon.ledger import queries
from rollon.ledger.keys import public_key_pem
from rollon.ledger.service import Ledger
from rollon.ledger.storage import create_engine


@dataclass(frozen=True)
class Settings:
    """How big a run is: full (100k and 1M) or quick (CI's smoke mode)."""

    sizes: Sequence[int]  # journal sizes measured, ascending
    accounts: int
    trial_balance_samples: int


FULL = Settings(sizes=(100_000, 1_000_000), accounts=1_000, trial_balance_samples=9)
QUICK = Settings(sizes=(10_000, 20_000), accounts=200, trial_balance_samples=3)
TASKS = ("verify", "export_journal", "export_csv", "export_fec", "export_beancount", "offline")

# Runs one task in a fresh interpreter and prints {seconds, baseline_kb, peak_kb, detail}.
_TASK_SCRIPT = """
import json, os, resource, sys, time
from rollon.ledger.storage import create_engine
from rollon.ledger.keys import load_public_key_pem
url, pem, task, journal_path = sys.argv[1:5]
keys = [load_public_key_pem(pem)]
engine = create_engine(url)
from rollon.ledger.verify import verify_database
from rollon.ledger.audit.exports import ExportFormat, export
from rollon.ledger.audit.offline_verify import verify_file
with engine.connect() as connection:  # the baseline: imports, engine, one connection
    connection.exec_driver_sql("SELECT 1")
def status_kb(field):
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith(field))
# Linux: forget the imports' high-water mark, so the peak below is the task's own. VmHWM, not
# ru_maxrss: the latter also keeps the parent's size at fork time, from before the exec.
try:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    baseline_kb, peak = status_kb("VmRSS"), lambda: status_kb("VmHWM")
except OSError:
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
if task == "verify":
    report = verify_database(engine, keys)
    detail = {"ok": report.ok, "entries": report.entries_checked}
elif task == "offline":
    outcome = verify_file(__import__("pathlib").Path(journal_path), keys)
    detail = {"ok": outcome.ok, "entries": outcome.report.entries_checked}
else:
    fmt = ExportFormat(task.removeprefix("export_"))
    target = journal_path if fmt is ExportFormat.JOURNAL else os.devnull
    written = 0
    with open(target, "w", encoding="utf-8") as out:
        for chunk in export(engine, fmt, public_keys=keys):
            out.write(chunk)
            written += len(chunk)
    detail = {"ok": True, "chars": written}
elapsed = time.perf_counter() - started
print(json.dumps({
    "seconds": elapsed,
    "baseline_kb": baseline_kb,
    "peak_kb": peak(),
    "detail": detail,
}))
"""


def measure_task(url: str, pem: str, task: str, journal_path: Path) -> dict[str, Any]:
    """Run one audit task in a fresh interpreter; its seconds and memory, as it printed."""
    completed = subprocess.run(
        [sys.executable, "-c", _TASK_SCRIPT, url, pem, task, str(journal_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"audit task {task} failed:\n{completed.stderr[-2000:]}")
    measured: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    if not measured["detail"]["ok"]:
        raise RuntimeError(f"audit task {task} found the books unsound: {measured['detail']}")
    return measured


# -- raw-driver ceilings ------------------------------------------------------------------------
class RawReader:
    """A plain DB-API connection to the same database, for the ceilings."""

    def __init__(self, database: Database) -> None:
        self.kind = database.kind
        if database.kind == "sqlite":
            import sqlite3

            self.connection: Any = sqlite3.connect(database.sqlite_path)
            self.mark = "?"
        else:
            import psycopg

            self.connection = psycopg.connect(
                database.conninfo, options=f"-csearch_path={database.schema}"
            )
            self.mark = "%s"

    def close(self) -> None:
        self.connection.close()

    def rows(self, columns: str) -> Any:
        cursor = self.connection.cursor()
        cursor.execute(f"SELECT {columns} FROM transfers ORDER BY seq")
        while True:
            page = cursor.fetchmany(5_000)
            if not page:
                return
            yield from page

    def hash_chain(self) -> float:
        """Read every entry and chain its hash: the least any verification must do."""
        started = time.perf_counter()
        prev = bytes(32)
        for seq, ts, tid, debit, credit, amount, memo in self.rows(
            "seq, timestamp_ns, id, debit_account_id, credit_account_id, amount, memo"
        ):
            prev = hashlib.sha256(
                b"".join(
                    (
                        prev,
                        seq.to_bytes(8),
                        ts.to_bytes(8),
                        str(tid).encode(),
                        str(debit).encode(),
                        str(credit).encode(),
                        amount.to_bytes(8),
                        memo.encode(),
                    )
                )
            ).digest()
        return time.perf_counter() - started

    def csv_dump(self) -> float:
        """Read every entry into csv.writer: the least any export must do."""
        import csv
        import os

        started = time.perf_counter()
        with open(os.devnull, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerows(self.rows("*"))
        return time.perf_counter() - started

    def balance_seeks(self, accounts: Sequence[Any], seq: int) -> float:
        """The trial balance's own index seeks, issued from the bare driver."""
        cursor = self.connection.cursor()
        m = self.mark
        started = time.perf_counter()
        for account in accounts:
            value = account.hex if self.kind == "sqlite" else account
            for column, balance in (
                ("debit_account_id", "debit_balance_after"),
                ("credit_account_id", "credit_balance_after"),
            ):
                cursor.execute(
                    f"SELECT seq, {balance} FROM transfers WHERE {column} = {m} AND seq <= {m} "
                    "ORDER BY seq DESC LIMIT 1",
                    (value, seq),
                )
                cursor.fetchone()
        return time.perf_counter() - started

    def full_scan_sum(self, seq: int) -> float:
        """The naive way: aggregate the journal up to `seq`."""
        cursor = self.connection.cursor()
        started = time.perf_counter()
        cursor.execute(
            f"SELECT debit_account_id, sum(amount) FROM transfers WHERE seq <= {self.mark} "
            "GROUP BY debit_account_id",
            (seq,),
        )
        cursor.fetchall()
        cursor.execute(
            f"SELECT credit_account_id, sum(amount) FROM transfers WHERE seq <= {self.mark} "
            "GROUP BY credit_account_id",
            (seq,),
        )
        cursor.fetchall()
        return time.perf_counter() - started


def _timed(samples: int, run: Callable[[], float]) -> float:
    return median([run() for _ in range(samples)])


def trial_balance_past(
    database: Database, accounts: Sequence[Any], samples: int
) -> dict[str, float]:
    """Milliseconds of a trial balance at the middle of the journal, and its ceilings."""
    engine = create_engine(database.url)
    raw = RawReader(database)
    try:
        with engine.connect() as connection:
            head = connection.execute(sa.text("SELECT seq FROM journal_head")).scalar_one()
            at_ns = connection.execute(
                sa.text("SELECT timestamp_ns FROM transfers WHERE seq = :s"), {"s": head // 2}
            ).scalar_one()

            def service() -> float:
                started = time.perf_counter()
                balance = queries.trial_balance(connection, at_ns)
                elapsed = time.perf_counter() - started
                assert balance.as_of_seq == head // 2
                assert all(balance.total(code) == 0 for code in {ln.ledger for ln in balance.lines})
                return elapsed

            service_s = _timed(samples, service)
            ids = [line.account_id for line in queries.trial_balance(connection, at_ns).lines]
        seeks_s = _timed(samples, lambda: raw.balance_seeks(ids, head // 2))
        scan_s = _timed(max(1, samples // 3), lambda: raw.full_scan_sum(head // 2))
    finally:
        raw.close()
        engine.dispose()
    assert len(ids) >= len(accounts)
    return {"service_ms": service_s * 1000, "raw_ms": seeks_s * 1000, "scan_ms": scan_s * 1000}


# -- the suite ----------------------------------------------------------------------------------
def _label(size: int) -> str:
    return f"{size // 1_000_000}m" if size % 1_000_000 == 0 else f"{size // 1_000}k"


def measure_database(
    database: Database, settings: Settings, result: SuiteResult, prefix: str, workdir: Path
) -> None:
    """Grow one journal through the ledger to each size and measure every task there."""
    key = Ed25519PrivateKey.generate()
    pem = public_key_pem(key.public_key())
    engine = create_engine(database.url)
    ledger = Ledger(engine, signing_key=key)
    peaks: dict[str, list[float]] = {task: [] for task in TASKS}
    try:
        accounts = open_funded_accounts(ledger, settings.accounts)
        size = 2 * settings.accounts  # the funding issuances: two legs each
        for target in settings.sizes:
            started = time.perf_counter()
            rate = grow(ledger.hot_path, accounts, target - size, seed=target)
            size = target
            ledger.checkpoint()
            label = _label(size)
            print(
                f"  {prefix}: {label} transfers loaded at {rate:,.0f}/s "
                f"in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            journal = workdir / f"{prefix}_{label}.jsonl"
            for task in TASKS:
                measured = measure_task(database.url, pem, task, journal)
                above_mb = (measured["peak_kb"] - measured["baseline_kb"]) / 1024
                peaks[task].append(above_mb)
                result.figures[f"{prefix}_{task}_s_at_{label}"] = measured["seconds"]
                result.figures[f"{prefix}_{task}_mem_above_base_mb_at_{label}"] = above_mb
                print(
                    f"  {prefix} {task} at {label}: {measured['seconds']:.1f} s, "
                    f"+{above_mb:.1f} MB",
                    flush=True,
                )
            journal.unlink(missing_ok=True)
            raw = RawReader(database)
            try:
                chain_s = raw.hash_chain()
                dump_s = raw.csv_dump()
            finally:
                raw.close()
            result.figures[f"{prefix}_raw_hash_chain_s_at_{label}"] = chain_s
            result.figures[f"{prefix}_raw_csv_dump_s_at_{label}"] = dump_s
            result.ratios[f"{prefix}_verify_vs_raw_at_{label}"] = (
                result.figures[f"{prefix}_verify_s_at_{label}"] / chain_s
            )
            result.ratios[f"{prefix}_export_csv_vs_raw_at_{label}"] = (
                result.figures[f"{prefix}_export_csv_s_at_{label}"] / dump_s
            )
            past = trial_balance_past(database, accounts, settings.trial_balance_samples)
            result.figures[f"{prefix}_trial_balance_past_ms_at_{label}"] = past["service_ms"]
            result.figures[f"{prefix}_trial_balance_raw_seeks_ms_at_{label}"] = past["raw_ms"]
            result.figures[f"{prefix}_trial_balance_full_scan_ms_at_{label}"] = past["scan_ms"]
            result.ratios[f"{prefix}_trial_balance_vs_raw_at_{label}"] = (
                past["service_ms"] / past["raw_ms"]
            )
    finally:
        ledger.close()
        engine.dispose()
    small, large = _label(settings.sizes[0]), _label(settings.sizes[-1])
    for task, values in peaks.items():
        # Memory must not grow with the journal: the larger journal's peak over the smaller's
        # (1 MB floors keep noise around an empty baseline from reading as growth).
        result.ratios[f"{prefix}_{task}_mem_growth_{small}_to_{large}"] = max(
            values[-1], 1.0
        ) / max(values[0], 1.0)


def run(quick: bool) -> SuiteResult:
    """The audit suite: verify and exports in bounded memory, trial balance in the past."""
    settings = QUICK if quick else FULL
    result = SuiteResult()
    kinds = ["sqlite"] + (["postgres"] if _postgres_url() else [])
    if not _postgres_url():
        print("  (PostgreSQL skipped: set ROLLON_BENCH_POSTGRES_URL)", flush=True)
    with tempfile.TemporaryDirectory(prefix="rollon-audit-bench-") as tmp:
        workdir = Path(tmp)
        for kind in kinds:
            with fresh_database(kind, workdir, f"audit_{kind}") as database:
                measure_database(database, settings, result, f"audit_{kind}", workdir)
    return result
