"""Getting a database ready: schema migrations, the chart of accounts, the signing key.

`prepare_database` is safe to run any number of times; `rollon init` and every app start
run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from rollon.ledger.keys import load_or_create_signing_key, load_signing_key
from rollon.ledger.service import install_chart
from rollon.migrations import upgrade


def prepare_database(engine: Engine) -> None:
    """Create or migrate every table, then the system accounts, if missing."""
    upgrade(engine)
    install_chart(engine)


class KeyFileError(ValueError):
    """The signing key file exists but holds no usable key."""


@dataclass(frozen=True, slots=True)
class KeyFile:
    path: Path
    created: bool


def prepare_signing_key(path: Path) -> KeyFile:
    """Create the Ed25519 signing key file (mode 0600) unless it exists."""
    existed = path.exists()
    try:
        load_or_create_signing_key(path)
    except ValueError:
        raise KeyFileError(f"{path} does not hold an Ed25519 private key (PEM)") from None
    return KeyFile(path=path, created=not existed)


def load_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at `path`; KeyFileError if the file holds none."""
    try:
        return load_signing_key(path)
    except ValueError:
        raise KeyFileError(f"{path} does not hold an Ed25519 private key (PEM)") from None
