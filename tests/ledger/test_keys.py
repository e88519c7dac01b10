"""The service's signing key: made once, kept readable by its owner only, loaded back."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rollon.ledger.journal import key_id
from rollon.ledger.keys import (
    load_or_create_signing_key,
    load_public_key_pem,
    load_signing_key,
    public_key_pem,
)


def test_the_key_is_created_once_then_loaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.key"
    made = load_or_create_signing_key(path)
    loaded = load_or_create_signing_key(path)
    assert key_id(made.public_key()) == key_id(loaded.public_key())
    assert key_id(load_signing_key(path).public_key()) == key_id(made.public_key())
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_public_key_round_trips_as_pem() -> None:
    public = Ed25519PrivateKey.generate().public_key()
    pem = public_key_pem(public)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert key_id(load_public_key_pem(pem)) == key_id(public)


def test_a_file_that_is_not_an_ed25519_key_is_refused(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.key"
    path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_signing_key(path)
    with pytest.raises(ValueError, match="Ed25519"):
        load_public_key_pem(
            other.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
