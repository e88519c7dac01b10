"""Fixtures of the ledger tests: a manual clock, a signing key and a Ledger on each database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from rollon.ledger.service import Ledger
from tests.ledger.builders import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def ledger(engine: Engine, clock: ManualClock, signing_key: Ed25519PrivateKey) -> Iterator[Ledger]:
    """A Ledger on a fresh database of each kind, with a clock the test moves by hand."""
    opened = Ledger(engine, signing_key=signing_key, clock_ns=clock, checkpoint_every=10)
    yield opened
    opened.close()
