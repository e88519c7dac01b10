"""The service's configuration: environment variables, overridden by command-line flags.

| variable | default | meaning |
| --- | --- | --- |
| ROLLON_DATABASE_URL | sqlite:///rollon.db | SQLite file or postgresql://… URL |
| ROLLON_SIGNING_KEY_FILE | next to the SQLite file (rollon.key), else ./rollon.key | Ed25519 key |
| ROLLON_FEE_BPS | 300 | reconversion fee, in basis points (100 bps = 1 %) |
| ROLLON_BONUS_BPS | 0 | bonus on change paid on each issuance, in basis points |
| ROLLON_HOST / ROLLON_PORT | 127.0.0.1 / 8000 | where `rollon serve` listens |
| ROLLON_LOG_LEVEL | INFO | level of the JSON-lines log on stderr |
| ROLLON_WRITER | process | the ledger's writer: a child `process`, or a server's `thread` |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa

from rollon.ledger.storage import normalize_url

DEFAULT_DATABASE_URL = "sqlite:///rollon.db"
DEFAULT_KEY_FILE = Path("rollon.key")
DEFAULT_FEE_BPS = 300
DEFAULT_BONUS_BPS = 0
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_RATE_BPS = 10_000
SUPPORTED_DATABASES = ("sqlite", "postgresql")
WRITERS = ("process", "thread")


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment. Immutable once built."""

    database_url: str = DEFAULT_DATABASE_URL
    signing_key_file: Path = DEFAULT_KEY_FILE
    fee_bps: int = DEFAULT_FEE_BPS
    bonus_bps: int = DEFAULT_BONUS_BPS
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    log_level: str = "INFO"
    access_log: bool = True
    max_body_bytes: int = 64 * 1024
    # Failed logins allowed per client address within the window, before answers turn 429.
    login_failures_allowed: int = 20
    login_failure_window_s: float = 60.0
    # How long a checked token stays trusted in one process: revocation by another process
    # takes effect within this time (at once in the process that revoked it).
    token_cache_ttl_s: float = 2.0
    # The ledger's writer in a child process: under load it then runs beside the event loop
    # instead of taking turns with it at the GIL (see rollon.ledger.writer_process).
    writer: str = "process"

    @property
    def writer_process(self) -> bool:
        """Whether the ledger's writer runs in a child process: as `writer` says, except on
        an in-memory SQLite database, which only this process can open."""
        in_memory = (
            self.database_url.startswith("sqlite") and sqlite_path(self.database_url) is None
        )
        return self.writer == "process" and not in_memory

    def __post_init__(self) -> None:
        for name in ("fee_bps", "bonus_bps"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_RATE_BPS:
                raise SettingsError(f"{name} must be between 0 and {MAX_RATE_BPS}, not {value}")
        if not 0 < self.port < 65_536:
            raise SettingsError(f"port must be between 1 and 65535, not {self.port}")
        if self.max_body_bytes <= 0 or self.login_failures_allowed <= 0:
            raise SettingsError("limits must be positive")
        try:
            backend = sa.make_url(normalize_url(self.database_url)).get_backend_name()
        except sa.exc.ArgumentError:
            raise SettingsError(
                f"not a database URL: {self.database_url!r} "
                "(sqlite:///PATH or postgresql://USER@HOST/DB)"
            ) from None
        if backend not in SUPPORTED_DATABASES:
            raise SettingsError(f"{backend} is not supported: use SQLite or PostgreSQL")
        if self.writer not in WRITERS:
            raise SettingsError(f"the writer runs in a process or a thread, not {self.writer!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ROLLON_* variables, then apply `overrides` (flags given on the command line;
        None means "not given")."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if "ROLLON_DATABASE_URL" in env:
            values["database_url"] = env["ROLLON_DATABASE_URL"]
        if "ROLLON_SIGNING_KEY_FILE" in env:
            values["signing_key_file"] = Path(env["ROLLON_SIGNING_KEY_FILE"])
        for name, variable in (
            ("fee_bps", "ROLLON_FEE_BPS"),
            ("bonus_bps", "ROLLON_BONUS_BPS"),
            ("port", "ROLLON_PORT"),
        ):
            if variable in env:
                values[name] = _integer(variable, env[variable])
        if "ROLLON_HOST" in env:
            values["host"] = env["ROLLON_HOST"]
        if "ROLLON_LOG_LEVEL" in env:
            values["log_level"] = env["ROLLON_LOG_LEVEL"].upper()
        if "ROLLON_WRITER" in env:
            values["writer"] = env["ROLLON_WRITER"].lower()
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "signing_key_file" not in values:
            url = str(values.get("database_url", DEFAULT_DATABASE_URL))
            values["signing_key_file"] = default_key_file(url)
        settings = cls()
        return replace(settings, **values)  # type: ignore[arg-type]


def _integer(variable: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SettingsError(f"{variable} must be a whole number, not {text!r}") from None


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL, or None for other databases and in-memory SQLite."""
    try:
        url = sa.make_url(normalize_url(database_url))
    except sa.exc.ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def default_key_file(database_url: str) -> Path:
    """The signing key lives next to the SQLite file (rollon.db -> rollon.key), else in
    ./rollon.key."""
    path = sqlite_path(database_url)
    return DEFAULT_KEY_FILE if path is None else path.with_suffix(".key")
