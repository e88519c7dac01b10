"""Entry points of the OS processes the concurrency and crash tests start (spawn context):
each opens its own engine and Ledger on the shared database, as a second service would."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.synchronize import Event
from pathlib import Path
from uuid import UUID, uuid4

from rollon.ledger.accounts import LedgerCode
from rollon.ledger.service import Ledger
from rollon.ledger.storage import create_engine
from rollon.ledger.transfers import Transfer, TransferCode, TransferFlag

Answer = tuple[str, str]  # transfer id, result


def random_requests(
    rng: random.Random, spenders: Sequence[UUID], payees: Sequence[UUID], count: int
) -> list[list[Transfer]]:
    """Payments between the same few accounts, so writers fight over them: lone transfers
    and linked pairs (the second leg often more than is left)."""
    requests: list[list[Transfer]] = []
    for _ in range(count):
        payer = rng.choice(spenders)
        payee = rng.choice([a for a in (*spenders, *payees) if a != payer])
        first = Transfer(
            uuid4(), payer, payee, rng.randint(1, 150), LedgerCode.RLN, TransferCode.PAYMENT
        )
        if rng.random() < 0.2:
            second = Transfer(
                uuid4(), payee, payer, rng.randint(1, 300), LedgerCode.RLN, TransferCode.PAYMENT
            )
            linked = replace(first, flags=TransferFlag.LINKED)
            requests.append([linked, second])
        else:
            requests.append([first])
    return requests


def spend_concurrently(
    ledger: Ledger, requests: Sequence[Sequence[Transfer]], n_threads: int
) -> list[Answer]:
    """Submit the requests from `n_threads` threads; one (id, result) per transfer."""
    answers: list[Answer] = []
    lock = threading.Lock()

    def work(share: Sequence[Sequence[Transfer]]) -> None:
        for request in share:
            results = ledger.submit(request)
            with lock:
                answers.extend((str(t.id), r.value) for t, r in zip(request, results, strict=True))

    threads = [
        threading.Thread(target=work, args=(requests[i::n_threads],)) for i in range(n_threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def spender(
    db_url: str,
    spenders: list[UUID],
    payees: list[UUID],
    seed: int,
    n_requests: int,
    n_threads: int,
    ready: Event,
    go: Event,
    out: str,
) -> None:
    """A second service process: opens its own Ledger, waits for the start, spends, and
    writes every answer it was given to `out`, one "id result" line each."""
    engine = create_engine(db_url)
    ledger = Ledger(engine)
    requests = random_requests(random.Random(seed), spenders, payees, n_requests)
    ready.set()
    assert go.wait(timeout=60)
    answers = spend_concurrently(ledger, requests, n_threads)
    ledger.close()
    engine.dispose()
    Path(out).write_text("".join(f"{i} {r}\n" for i, r in answers))


def issue_until_killed(db_url: str, members: list[UUID], acks: str, n_threads: int) -> None:
    """A writer under load until someone kills it: issuances (linked legs, with a bonus) to
    members. Before submitting an operation it notes the intent ("S op account amount");
    after the ledger acknowledged it, "A op result". Each line is one append: a line is
    there whole or not at all."""
    engine = create_engine(db_url)
    ledger = Ledger(engine)
    fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def note(line: str) -> None:
        os.write(fd, line.encode() + b"\n")

    def work(seed: int) -> None:
        rng = random.Random(seed)
        while True:
            op, account, amount = uuid4(), rng.choice(members), rng.randint(1, 5_000)
            note(f"S {op} {account} {amount}")
            outcome = ledger.issue(op, account, amount, "crash test", bonus_bps=300)
            note(f"A {op} {outcome.result.value}")
            if rng.random() < 0.5:  # and payments between members, fighting for balances
                payer, payee = rng.sample(members, 2)
                t = Transfer(
                    uuid4(),
                    payer,
                    payee,
                    rng.randint(1, 4_000),
                    LedgerCode.RLN,
                    TransferCode.PAYMENT,
                )
                note(f"T {t.id} {payer} {payee} {t.amount}")
                [result] = ledger.submit([t])
                note(f"R {t.id} {result.value}")

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # never: the test kills this process
