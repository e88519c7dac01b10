"""Configuration from the environment and flags; refused with a message naming the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollon.api.settings import Settings, SettingsError, default_key_file


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///rollon.db"
    assert settings.signing_key_file == Path("rollon.key")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert (settings.fee_bps, settings.bonus_bps) == (300, 0)
    assert settings.writer == "process" and settings.writer_process


@pytest.mark.parametrize(
    ("env", "writer_process"),
    [
        ({"ROLLON_WRITER": "thread"}, False),
        ({"ROLLON_WRITER": "Process"}, True),
        ({"ROLLON_DATABASE_URL": "postgresql://u@h/db"}, True),
        ({"ROLLON_DATABASE_URL": "sqlite://"}, False),  # no other process can open it
    ],
)
def test_where_the_ledger_writer_runs(env: dict[str, str], writer_process: bool) -> None:
    assert Settings.from_env(env).writer_process is writer_process


def test_environment_then_flags() -> None:
    env = {
        "ROLLON_DATABASE_URL": "postgresql://u@db/rollon",
        "ROLLON_FEE_BPS": "150",
        "ROLLON_BONUS_BPS": "500",
        "ROLLON_PORT": "9000",
        "ROLLON_HOST": "0.0.0.0",
        "ROLLON_LOG_LEVEL": "debug",
    }
    settings = Settings.from_env(env, port=9100, fee_bps=None)
    assert settings.database_url == "postgresql://u@db/rollon"
    assert (settings.fee_bps, settings.bonus_bps, settings.port) == (150, 500, 9100)
    assert settings.host == "0.0.0.0" and settings.log_level == "DEBUG"
    assert settings.signing_key_file == Path("rollon.key")


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("sqlite:///data/books.db", Path("data/books.key")),
        ("sqlite:////var/lib/rollon/rollon.db", Path("/var/lib/rollon/rollon.key")),
        ("sqlite://", Path("rollon.key")),
        ("postgresql://u@h/db", Path("rollon.key")),
    ],
)
def test_the_key_sits_next_to_the_sqlite_file(url: str, key: Path) -> None:
    assert default_key_file(url) == key
    assert Settings.from_env({"ROLLON_DATABASE_URL": url}).signing_key_file == key


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROLLON_FEE_BPS": "1.5"}, "ROLLON_FEE_BPS must be a whole number"),
        ({"ROLLON_FEE_BPS": "10001"}, "fee_bps must be between 0 and 10000"),
        ({"ROLLON_BONUS_BPS": "-1"}, "bonus_bps must be between 0 and 10000"),
        ({"ROLLON_PORT": "70000"}, "port must be between 1 and 65535"),
        ({"ROLLON_DATABASE_URL": "nonsense"}, "not a database URL"),
        ({"ROLLON_DATABASE_URL": "oracle://x/y"}, "oracle is not supported"),
        ({"ROLLON_WRITER": "fiber"}, "in a process or a thread, not 'fiber'"),
    ],
)
def test_bad_values_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)
