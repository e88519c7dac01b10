"""End to end: the real `rollon serve --demo` process, driven over HTTP, stopped, restarted
on the same database (demo again: no crash), and its books verified by `rollon audit verify`."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_S = 60.0
_CREDENTIAL = re.compile(r"^\s+(\w+)\s+(.+?)\s+(\S+)\s+(rln_\S+)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rollon(*args: str) -> list[str]:
    """The installed `rollon` command: the console script pip made next to this Python."""
    script = Path(sys.executable).parent / "rollon"
    assert script.exists(), "install the package (pip install -e .) to get the command"
    return [str(script), *args]


@contextmanager
def serving(db_url: str, directory: Path, *extra: str) -> Iterator[tuple[str, list[str]]]:
    """Start `rollon serve`, wait for /healthz, yield (base URL, stdout lines); stop it."""
    port = free_port()
    log = (directory / f"server-{port}.log").open("w")
    process = subprocess.Popen(
        rollon("serve", "--db", db_url, "--port", str(port), *extra),
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "ROLLON_SIGNING_KEY_FILE": str(directory / "rollon.key")},
    )
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        assert process.stdout is not None
        if "--demo" in extra:
            for line in process.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("API:"):
                    break
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert process.poll() is None, (directory / f"server-{port}.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield base, lines
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
            log.close()


def credentials(lines: list[str]) -> dict[str, tuple[str, str]]:
    """Holder name -> (account id, token), from the demo's printout."""
    found = {}
    for line in lines:
        match = _CREDENTIAL.match(line)
        if match:
            _role, name, account, token = match.groups()
            found[name] = (account, token)
    return found


def test_serve_demo_drive_restart_verify(db_url: str, tmp_path: Path) -> None:
    with serving(db_url, tmp_path, "--demo") as (base, lines):
        people = credentials(lines)
        assert len(people) == 9, lines
        alice, alice_token = people["Alice Martin"]
        bakery, bakery_token = people["Boulangerie du Gros-Horloge, Rouen"]
        _, admin_token = people["Association Rollon"]
        with httpx.Client(base_url=base, timeout=10) as client:
            me = client.get("/v1/tokens/self", headers={"Authorization": f"Bearer {alice_token}"})
            assert me.json()["account_id"] == alice
            before = client.get(
                f"/v1/accounts/{alice}", headers={"Authorization": f"Bearer {alice_token}"}
            ).json()["balance"]
            paid = client.post(
                "/v1/transfers",
                json={"source_id": alice, "destination_id": bakery, "amount": 320, "memo": "Pain"},
                headers={
                    "Authorization": f"Bearer {alice_token}",
                    "Idempotency-Key": str(uuid4()),
                },
            )
            assert paid.status_code == 201, paid.text
            history = client.get(
                f"/v1/accounts/{bakery}/transfers",
                headers={"Authorization": f"Bearer {bakery_token}"},
            ).json()
            assert history["items"][0]["memo"] == "Pain"
            # The demo's merchants are in the directory, so they can take QR payments.
            cities = {m["city"] for m in client.get("/v1/merchants").json()["items"]}
            assert cities == {"Rouen", "Caen", "Le Havre"}
            request = client.post(
                "/v1/payment-requests",
                json={"amount": 250, "reference": "Table 4"},
                headers={"Authorization": f"Bearer {bakery_token}"},
            )
            assert request.status_code == 201, request.text
            qr_paid = client.post(
                "/v1/payments",
                json={"payload": request.json()["payload"], "source_id": alice},
                headers={"Authorization": f"Bearer {alice_token}"},
            )
            assert qr_paid.status_code == 201, qr_paid.text
            assert qr_paid.json()["merchant_name"] == "Boulangerie du Gros-Horloge"
            issued = client.post(
                "/v1/issuances",
                json={"account_id": alice, "amount": 1_000, "euro_reference": "e2e"},
                headers={"Authorization": f"Bearer {admin_token}"},
            )
            assert issued.status_code == 201
            bad = client.post(
                "/v1/transfers",
                content=b'{"amount": 12.5}',
                headers={
                    "Authorization": f"Bearer {alice_token}",
                    "Content-Type": "application/json",
                },
            )
            assert bad.headers["content-type"] == "application/problem+json"
            assert client.get("/v1/metrics").status_code == 200
            assert client.get("/docs").status_code == 200
            assert "RolloN ledger service" in client.get("/openapi.json").text

    # JSON-lines logs, one per request among them; no secret in them.
    log_lines = [json.loads(line) for path in tmp_path.glob("server-*.log") for line in
                 path.read_text().splitlines()]  # fmt: skip
    requests = [entry for entry in log_lines if entry["message"] == "request"]
    assert any(e["route"] == "/v1/transfers" and e["status"] == 201 for e in requests)
    assert alice_token not in json.dumps(log_lines)

    # The same database again, demo again: no crash, old tokens revoked, money kept.
    with serving(db_url, tmp_path, "--demo") as (base, lines):
        people_again = credentials(lines)
        _, new_alice_token = people_again["Alice Martin"]
        with httpx.Client(base_url=base, timeout=10) as client:
            old = client.get("/v1/tokens/self", headers={"Authorization": f"Bearer {alice_token}"})
            assert old.status_code == 401
            balance = client.get(
                f"/v1/accounts/{alice}", headers={"Authorization": f"Bearer {new_alice_token}"}
            ).json()["balance"]
            assert balance == before - 320 - 250 + 1_000

    verified = subprocess.run(
        rollon("audit", "verify", "--db", db_url, "--key-file", str(tmp_path / "rollon.key")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok:")


def test_serve_refuses_a_bad_database_cleanly(tmp_path: Path) -> None:
    done = subprocess.run(
        rollon("serve", "--db", "postgresql://nobody@127.0.0.1:1/x", "--port", str(free_port())),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "cannot use the database" in done.stderr
    assert "Traceback" not in done.stderr
