"""The WAL checkpoints beside the ledger's writer (SQLite), on real databases."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from rollon.ledger.service import Ledger
from rollon.ledger.storage import create_engine
from rollon.ledger.wal_checkpoints import (
    AUTOCHECKPOINT_BACKSTOP_PAGES,
    CheckpointReport,
    WalCheckpointer,
)
from tests.ledger.builders import assert_books_sound, member, transfer

WAIT_S = 10.0


def _checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rollon-wal"]


def test_a_ledger_on_sqlite_has_its_wal_copied_back_by_its_own_thread(
    ledger: Ledger, engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    checkpointer = ledger.hot_path.wal_checkpointer
    if engine.dialect.name != "sqlite":
        assert checkpointer is None  # PostgreSQL has no WAL of ours to checkpoint
        return
    assert checkpointer is not None
    with engine.connect() as connection:
        backstop = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert backstop == AUTOCHECKPOINT_BACKSTOP_PAGES
    payer = member(ledger, "Payer", funded=10_000)
    payee = member(ledger, "Payee")
    for _ in range(20):
        ledger.submit([transfer(payer.id, payee.id, 1) for _ in range(50)])
    # Far below the backstop, so no commit checkpointed by itself: the frames copied back
    # into the database file were copied by the checkpointer's thread.
    deadline = time.monotonic() + WAIT_S
    while (report := checkpointer.last) is None or report.copied_frames == 0:
        assert time.monotonic() < deadline, f"nothing checkpointed: {report}"
        time.sleep(0.01)
    assert 0 < report.wal_frames < AUTOCHECKPOINT_BACKSTOP_PAGES
    assert report.copied_frames <= report.wal_frames
    assert_books_sound(engine, [signing_key.public_key()])


def test_closing_the_ledger_stops_its_checkpoints(engine: Engine) -> None:
    before = len(_checkpointer_threads())
    ledger = Ledger(engine)
    expected = 1 if engine.dialect.name == "sqlite" else 0
    assert len(_checkpointer_threads()) == before + expected
    ledger.close()
    assert len(_checkpointer_threads()) == before


def test_a_checkpoint_that_fails_is_logged_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A real failure: the database's directory does not exist yet, so SQLite cannot open it.
    directory = tmp_path / "not-yet"
    engine = create_engine(f"sqlite:///{directory / 'rollon.db'}")
    caplog.set_level(logging.WARNING, logger="rollon.ledger.wal_checkpoints")
    checkpointer = WalCheckpointer(engine, interval_ms=5)
    try:
        deadline = time.monotonic() + WAIT_S
        while "WAL checkpoint failed" not in caplog.text:
            assert time.monotonic() < deadline, "the failure was not logged"
            time.sleep(0.01)
        directory.mkdir()  # the next tick opens a connection and checkpoints
        while checkpointer.last is None:
            assert time.monotonic() < deadline, "no checkpoint after the failure"
            time.sleep(0.01)
    finally:
        checkpointer.close()
        engine.dispose()
    assert checkpointer.last.copied_frames >= 0


def test_the_backlog_is_what_is_left_to_copy() -> None:
    assert CheckpointReport(wal_frames=10, copied_frames=4).backlog_frames == 6
    assert CheckpointReport(wal_frames=10, copied_frames=10).backlog_frames == 0
    # SQLite's answer when the database is not in WAL mode.
    assert CheckpointReport(wal_frames=-1, copied_frames=-1).backlog_frames == 0
