"""Merchants benchmarks (issue 4).

1. The full QR flow through the real server (uvicorn in its own process, SQLite): a
   merchant creates a payment request, a member pays it from its payload. Flows per
   second against plain `POST /v1/transfers` per second in the same run, with the same
   clients: ratio `qr_payment_vs_transfer` (target 0.5 or better: a QR flow is two HTTP
   requests, an Ed25519 signature and two more small writes around one payment; the
   server that signed the payload does not verify it again, see
   `rollon/merchants/signed_here.py`).
   Phases alternate transfer / QR; the ratio is of medians. The clients are the lean
   keep-alive connections of `benchmarks/load.py`: with httpx they were the bottleneck
   (about 7 ms of client CPU per request), and measured the client's two requests per
   flow rather than the server.
2. Payload signing and verification per second (Ed25519 and the EMVCo layout), against the
   bare Ed25519 sign and verify of the same message: `payload_sign_vs_ed25519`,
   `payload_verify_vs_ed25519`.
3. Directory search latency with 2,000 merchants (by city, category, name), against the
   same SELECT run on the raw sqlite3 driver: `directory_search_vs_raw_sql`.

`python -m benchmarks --only merchants [--quick]`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks.http import server
from benchmarks.load import Connection
from benchmarks.suite import SuiteResult, median, percentile
from rollon.api.bootstrap import prepare_database
from rollon.api.token_store import Role, create_token
from rollon.ledger.journal import key_id
from rollon.ledger.storage import create_engine, write_transaction
from rollon.merchants import payload as p
from rollon.merchants.directory import (
    Category,
    MerchantApplication,
    MerchantDirectory,
    merchant_row,
    validate_application,
)
from rollon.merchants.iban import iban_from_bban
from rollon.merchants.schema import merchants as merchants_table
from rollon.merchants.siret import luhn_valid

DIRECTORY_SIZE = 2_000
CITIES = ["Rouen", "Caen", "Le Havre", "Évreux", "Saint-Lô", "Alençon", "Dieppe", "Cherbourg"]
FUNDING = 10**9


@dataclass(frozen=True)
class Plan:
    rounds: int
    phase_s: float
    clients: int
    crypto_s: float
    searches: int


QUICK = Plan(rounds=1, phase_s=3.0, clients=16, crypto_s=0.3, searches=50)
FULL = Plan(rounds=3, phase_s=8.0, clients=32, crypto_s=1.0, searches=300)


# -- 1. the QR flow through the real server -----------------------------------------------------
@contextmanager
def running_server(workdir: Path) -> Iterator[tuple[str, int, Any]]:
    """A migrated SQLite database and the service's server on it (the HTTP suite's); yields
    its URL, port and engine."""
    url = f"sqlite:///{workdir / 'rollon.db'}"
    engine = create_engine(url)
    prepare_database(engine)
    try:
        with server("service", url, workdir / "rollon.key") as port:
            yield f"http://127.0.0.1:{port}", port, engine
    finally:
        engine.dispose()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _siret(n: int) -> str:
    base = f"{n:08d}"
    siren = next(base + d for d in "0123456789" if luhn_valid(base + d))
    return next(siren + f"{k:05d}" for k in range(1, 100) if luhn_valid(siren + f"{k:05d}"))


async def _setup(base: str, engine: Any, clients: int) -> tuple[dict[str, str], list[Any]]:
    """A merchant and one funded member per client; their tokens."""
    _, admin_secret = create_token(engine, Role.ADMIN, None, "bench admin")
    admin = _bearer(admin_secret)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        onboarded = await client.post(
            "/v1/merchants",
            json={
                "name": "Le Fournil du Vieux-Marché",
                "siret": _siret(1),
                "category": "bakery",
                "address": "1 place du Vieux-Marché",
                "postcode": "76000",
                "city": "Rouen",
                "iban": iban_from_bban("FR", "30004000030000000000103"),
            },
            headers=admin,
        )
        onboarded.raise_for_status()
        merchant_account = UUID(onboarded.json()["account_id"])
        _, merchant_secret = create_token(engine, Role.MERCHANT, merchant_account, "bench till")
        members = []
        for i in range(clients):
            opened = await client.post(
                "/v1/accounts", json={"kind": "member", "name": f"Payer {i}"}, headers=admin
            )
            opened.raise_for_status()
            account = UUID(opened.json()["id"])
            issued = await client.post(
                "/v1/issuances",
                json={"account_id": str(account), "amount": FUNDING, "euro_reference": "bench"},
                headers=admin,
            )
            issued.raise_for_status()
            _, secret = create_token(engine, Role.MEMBER, account, f"bench payer {i}")
            members.append((account, _bearer(secret)))
    return {"merchant": str(merchant_account), **_bearer(merchant_secret)}, members


async def _phase(
    port: int, clients: int, seconds: float, one: Callable[[Connection, int], Awaitable[None]]
) -> float:
    """Operations per second of `clients` concurrent loops of `one` for `seconds`, each on
    its own keep-alive connection."""
    done = [0] * clients
    stop_at = time.monotonic() + seconds
    connections = [await Connection.open(port) for _ in range(clients)]

    async def loop(index: int) -> None:
        while time.monotonic() < stop_at:
            await one(connections[index], index)
            done[index] += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*(loop(i) for i in range(clients)))
    finally:
        for connection in connections:
            connection.close()
    elapsed = time.monotonic() - started
    return sum(done) / elapsed


async def _http_flows(
    base: str, port: int, engine: Any, plan: Plan
) -> tuple[list[float], list[float]]:
    till, members = await _setup(base, engine, plan.clients)
    merchant_account = till.pop("merchant")

    async def transfer(connection: Connection, index: int) -> None:
        account, token = members[index]
        body = {"source_id": str(account), "destination_id": merchant_account, "amount": 1}
        status, answer = await connection.post("/v1/transfers", body, token)
        assert status == 201, answer

    async def qr_flow(connection: Connection, index: int) -> None:
        account, token = members[index]
        status, asked = await connection.post("/v1/payment-requests", {"amount": 1}, till)
        assert status == 201, asked
        payload = json.loads(asked)["payload"]
        body = {"payload": payload, "source_id": str(account)}
        status, paid = await connection.post("/v1/payments", body, token)
        assert status == 201, paid

    await _phase(port, plan.clients, 1.0, transfer)  # warm up both paths
    await _phase(port, plan.clients, 1.0, qr_flow)
    transfers, flows = [], []
    for _ in range(plan.rounds):
        transfers.append(await _phase(port, plan.clients, plan.phase_s, transfer))
        flows.append(await _phase(port, plan.clients, plan.phase_s, qr_flow))
    return transfers, flows


# -- 2. signing and verifying payloads --------------------------------------------------------
def _rate(seconds: float, work: Callable[[], object]) -> float:
    count = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(50):
            work()
        count += 50
    return count / elapsed


def crypto_rates(seconds: float) -> dict[str, float]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    keys = {key_id(public): public}
    now_s = int(time.time())
    payload = p.dynamic_payload(
        merchant_account_id=uuid4(),
        key_id=key_id(public),
        merchant_name="Le Fournil du Vieux-Marché",
        merchant_city="Rouen",
        amount=1_250,
        request_id=uuid4(),
        issued_at_s=now_s,
        expires_at_s=now_s + 300,
        reference="Table 4",
    )
    text = p.sign_payload(payload, key)
    message = p.signing_message(payload)
    signature = key.sign(message)
    return {
        "sign": _rate(seconds, lambda: p.sign_payload(payload, key)),
        "verify": _rate(seconds, lambda: p.verify_payload(text, keys, now_s)),
        "raw_sign": _rate(seconds, lambda: key.sign(message)),
        "raw_verify": _rate(seconds, lambda: public.verify(signature, message)),
    }


# -- 3. directory search ------------------------------------------------------------------------
_RAW_SEARCHES = {
    "city": (
        "SELECT * FROM merchants WHERE city_key = ? ORDER BY name_key, id LIMIT 21",
        ("caen",),
    ),
    "category": (
        "SELECT * FROM merchants WHERE category = ? ORDER BY name_key, id LIMIT 21",
        ("bakery",),
    ),
    "name": (
        "SELECT * FROM merchants WHERE name_key LIKE ? ESCAPE '\\' ORDER BY name_key, id LIMIT 21",
        ("%librairie 1%",),
    ),
}
_SEARCHES: dict[str, dict[str, str]] = {
    "city": {"city": "Caen"},
    "category": {"category": "bakery"},
    "name": {"name": "Librairie 1"},
}


def directory_latency(workdir: Path, searches: int) -> dict[str, tuple[float, float, float]]:
    """Per kind of search: (service p50 ms, service p95 ms, raw sqlite3 p50 ms)."""
    url = f"sqlite:///{workdir / 'directory.db'}"
    engine = create_engine(url)
    prepare_database(engine)
    rows = []
    kinds = ["Boulangerie", "Café", "Librairie", "Ferme"]
    categories = list(Category)
    for n in range(DIRECTORY_SIZE):
        clean = validate_application(
            MerchantApplication(
                legal_name=f"SARL {n}",
                trade_name=f"{kinds[n % 4]} {n}",
                siret=_siret(10_000 + n),
                category=categories[n % len(categories)].value,
                address=f"{n} rue Jeanne-d'Arc",
                postcode="76000",
                city=CITIES[n % len(CITIES)],
                iban=iban_from_bban("FR", f"3000400003{n:011d}03"),
            )
        )
        rows.append(merchant_row(uuid4(), uuid4(), clean, time.time_ns()))
    with write_transaction(engine) as connection:
        connection.execute(merchants_table.insert(), rows)
    directory = MerchantDirectory(engine, ledger=None)  # type: ignore[arg-type]  # reads only
    raw = sqlite3.connect(workdir / "directory.db")
    measured = {}
    for name, query in _SEARCHES.items():
        service_ms, raw_ms = [], []
        sql, params = _RAW_SEARCHES[name]
        for _ in range(searches):
            started = time.perf_counter()
            directory.search(
                city=query.get("city"), category=query.get("category"), name=query.get("name")
            )
            service_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            raw.execute(sql, params).fetchall()
            raw_ms.append((time.perf_counter() - started) * 1000)
        measured[name] = (median(service_ms), percentile(service_ms, 95), median(raw_ms))
    raw.close()
    engine.dispose()
    return measured


def run(quick: bool) -> SuiteResult:
    """The merchants suite: QR flow vs plain transfer, payload crypto, directory search."""
    plan = QUICK if quick else FULL
    result = SuiteResult()
    rates = crypto_rates(plan.crypto_s)
    result.figures["merchants_payload_sign_per_s"] = rates["sign"]
    result.figures["merchants_payload_verify_per_s"] = rates["verify"]
    result.ratios["payload_sign_vs_ed25519"] = rates["sign"] / rates["raw_sign"]
    result.ratios["payload_verify_vs_ed25519"] = rates["verify"] / rates["raw_verify"]
    with tempfile.TemporaryDirectory(prefix="rollon-bench-merchants-") as tmp:
        workdir = Path(tmp)
        latency = directory_latency(workdir, plan.searches)
        for name, (p50, p95, _) in latency.items():
            result.figures[f"merchants_search_{name}_p50_ms"] = p50
            result.figures[f"merchants_search_{name}_p95_ms"] = p95
        result.ratios["directory_search_vs_raw_sql"] = median(
            [raw / service for service, _, raw in latency.values()]
        )
        with running_server(workdir) as (base, port, engine):
            transfers, flows = asyncio.run(_http_flows(base, port, engine, plan))
    result.figures["merchants_http_transfers_per_s"] = median(transfers)
    result.figures["merchants_http_qr_flows_per_s"] = median(flows)
    result.ratios["qr_payment_vs_transfer"] = median(flows) / median(transfers)
    return result
