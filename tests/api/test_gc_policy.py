"""The garbage-collector policy of a running service."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from rollon.api.app import create_app
from rollon.api.gc_policy import SERVING_THRESHOLDS, serving
from tests.api.conftest import make_settings


def _scanned(thing: object) -> bool:
    """Whether the collector's scans see `thing` (frozen objects are in none of them)."""
    return any(candidate is thing for candidate in gc.get_objects())


def test_serving_freezes_what_exists_and_undoes_it() -> None:
    thresholds = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    start_up_state: list[int] = [1]
    with serving():
        assert gc.get_threshold() == SERVING_THRESHOLDS
        assert not _scanned(start_up_state)
        made_later: list[int] = [2]
        assert _scanned(made_later)
    assert gc.get_freeze_count() == 0
    assert _scanned(start_up_state)
    assert gc.get_threshold() == thresholds


def test_serving_undoes_itself_after_an_error() -> None:
    thresholds = gc.get_threshold()
    with pytest.raises(RuntimeError), serving():
        raise RuntimeError("the service failed")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


@pytest.mark.anyio
async def test_the_service_runs_under_the_policy(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'gc.db'}", tmp_path))
    async with app.router.lifespan_context(app):
        assert gc.get_threshold() == SERVING_THRESHOLDS
        # The Ledger is opened before the freeze: start-up state, out of the scans.
        assert not _scanned(app.state.rollon.ledger)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() != SERVING_THRESHOLDS
